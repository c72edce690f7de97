"""OAuth 2.0 client credentials (RFC 6749 4.4), RS256 access tokens (RFC 7519, RFC 7517
JWKS), bearer token use (RFC 6750), key rotation and client secrets at rest.

Everything a client sees is exercised over real HTTP against the ``api`` fixture; what
only an operator sees (the database rows, the CLI) is checked where it lives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update
from typer.testing import CliRunner

from gateway.auth import ClientStore, KeyStore, TokenService
from gateway.auth.clients import verify_secret
from gateway.auth.tokens import AUDIENCE
from gateway.config import get_settings
from gateway.errors import AuthError
from gateway.store import tables as t

READ = ["roster-core.readonly"]


# --- helpers ---------------------------------------------------------------------------------


def token_request(api: Any, *, auth: tuple[str, str] | None = None, **form: str) -> httpx.Response:
    with api.client() as c:
        return c.post("/oauth/token", data=form, auth=auth)


def bearer_get(api: Any, token: str, path: str = "/v1/people") -> httpx.Response:
    with api.client() as c:
        return c.get(path, headers={"Authorization": f"Bearer {token}"})


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """RFC 9457: the status, the media type and the members type/title/status/detail."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    return body


def auth_params(header: str) -> dict[str, str]:
    """Parse ``Bearer k="v", k2="v2"`` (RFC 6750 3) strictly: every value a quoted string
    whose characters RFC 6750 allows (no '"' and no '\\' inside)."""
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    pairs = re.findall(r'\s*([a-z_]+)="([\x20\x21\x23-\x5b\x5d-\x7e]*)"\s*(?:,|$)', rest)
    rebuilt = ", ".join(f'{k}="{v}"' for k, v in pairs)
    assert rebuilt == rest.strip(), f"WWW-Authenticate is not a well-formed list of auth-params: {header!r}"
    return dict(pairs)


def assert_invalid_token(r: httpx.Response) -> dict[str, Any]:
    body = assert_problem(r, 401)
    params = auth_params(r.headers["www-authenticate"])
    assert params["error"] == "invalid_token"
    return body


def signing_key(api: Any) -> Any:
    """The server's current signing key, read the way any gateway process reads it."""
    return KeyStore(api.store.engine, token_ttl_seconds=api.settings.token_ttl_seconds).current()


def claims(api: Any, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {
        "iss": api.settings.issuer,
        "aud": AUDIENCE,
        "sub": "tsr_handmade",
        "client_id": "tsr_handmade",
        "tenant": "t1",
        "scope": "roster-core.readonly",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=10),
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jws(header: dict[str, Any], payload: dict[str, Any], sign: Any) -> str:
    """A compact JWS assembled by hand, so that tests can forge what pyjwt refuses to make."""
    enc = {k: int(v.timestamp()) if isinstance(v, datetime) else v for k, v in payload.items()}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(enc).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


@pytest.fixture
def fresh_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gateway process caches the signing keys for KeyStore.CACHE_SECONDS; tests that
    change the signing_keys rows behind the server's back turn the cache off so that the
    server sees the change at once, as it would after the cache period."""
    monkeypatch.setattr(KeyStore, "CACHE_SECONDS", 0.0)


# --- the token endpoint ------------------------------------------------------------------------


def test_client_credentials_in_http_basic_get_a_bearer_token(api):
    cid, secret = api.credentials("t1", ["roster-core.readonly", "records.write"])
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == api.settings.token_ttl_seconds
    assert set(body["scope"].split()) == {"roster-core.readonly", "records.write"}
    assert bearer_get(api, body["access_token"]).status_code == 200


def test_client_credentials_in_body_parameters_get_a_bearer_token(api):
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, grant_type="client_credentials", client_id=cid, client_secret=secret)
    assert r.status_code == 200, r.text
    assert bearer_get(api, r.json()["access_token"]).status_code == 200


def test_token_response_is_never_cached(api):
    """RFC 6749 5.1: Cache-Control: no-store and Pragma: no-cache on the token response."""
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials")
    assert r.status_code == 200
    assert "no-store" in r.headers["cache-control"]
    assert r.headers["pragma"] == "no-cache"


def test_requested_subset_of_the_clients_scopes_is_granted_exactly(api):
    cid, secret = api.credentials("t1", ["roster.readonly", "records.write"])
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials", scope="roster.readonly")
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["scope"] == "roster.readonly"
    with api.client() as c:
        w = c.post("/v1/batches", json={"records": []}, headers={"Authorization": f"Bearer {token}"})
    assert_problem(w, 403)


def test_oneroster_uri_scope_is_accepted_as_its_short_name(api):
    cid, secret = api.credentials("t1", READ)
    uri = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials", scope=uri)
    assert r.status_code == 200, r.text
    assert jwt.decode(r.json()["access_token"], options={"verify_signature": False})["scope"] == "roster-core.readonly"


def test_wrong_secret_is_refused_with_401_invalid_client(api):
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, auth=(cid, secret + "x"), grant_type="client_credentials")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")  # RFC 6749 5.2, not a problem document
    assert r.json()["error"] == "invalid_client"
    assert "access_token" not in r.json()
    assert r.headers["www-authenticate"].lower().startswith("basic")  # the scheme the client used (RFC 6749 5.2)
    assert "no-store" in r.headers["cache-control"]


def test_wrong_secret_in_body_parameters_is_refused_with_400_invalid_client(api):
    cid, _ = api.credentials("t1", READ)
    r = token_request(api, grant_type="client_credentials", client_id=cid, client_secret="not-the-secret")
    assert r.status_code == 400  # no HTTP authentication scheme was used: no 401 challenge (tests/test_revocation.py)
    assert r.json()["error"] == "invalid_client"


def test_unknown_client_is_refused_exactly_like_a_wrong_secret(api):
    cid, secret = api.credentials("t1", READ)
    wrong = token_request(api, auth=(cid, "not-the-secret"), grant_type="client_credentials")
    unknown = token_request(api, auth=("tsr_" + "0" * 24, "not-the-secret"), grant_type="client_credentials")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"error": "invalid_client"}


def test_request_without_client_credentials_is_refused_with_401_invalid_client(api):
    r = token_request(api, grant_type="client_credentials")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_revoked_client_gets_no_token(api):
    cid, secret = api.credentials("t1", READ)
    ClientStore(api.store.engine).revoke(cid)
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_unknown_and_revoked_clients_cost_the_same_hashing_as_a_wrong_secret(store, monkeypatch):
    """No timing oracle: whether the id is unknown, revoked or real, one scrypt is run."""
    from gateway.auth import clients as clients_module

    calls: list[str] = []
    real = clients_module.verify_secret
    monkeypatch.setattr(clients_module, "verify_secret", lambda secret, stored: calls.append(stored) or real(secret, stored))
    cs = ClientStore(store.engine)
    live, secret = cs.create("t1", READ)
    revoked, revoked_secret = cs.create("t1", READ)
    cs.revoke(revoked.client_id)
    for cid, attempt in ((live.client_id, "wrong"), ("tsr_unknown", "wrong"), (revoked.client_id, revoked_secret)):
        calls.clear()
        assert cs.authenticate(cid, attempt) is None
        assert len(calls) == 1, cid
    assert cs.authenticate(live.client_id, secret) is not None


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused on the form's grant_type; clients are read on both backends by the token tests
def test_grant_type_other_than_client_credentials_is_refused_with_unsupported_grant_type(api, grant):
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, auth=(cid, secret), grant_type=grant, username="u", password="p", code="c", refresh_token="r")
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
    assert "access_token" not in r.json()


def test_missing_grant_type_is_refused_with_invalid_request(api):
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, auth=(cid, secret), scope="roster-core.readonly")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_credentials_in_the_query_string_are_refused_with_400_invalid_request(api):
    """RFC 6749 2.3.1: client credentials in the request URI are not allowed."""
    cid, secret = api.credentials("t1", READ)
    with api.client() as c:
        r = c.post("/oauth/token", params={"client_id": cid, "client_secret": secret},
                   data={"grant_type": "client_credentials"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert "access_token" not in r.json()
    assert "no-store" in r.headers["cache-control"]


@pytest.mark.parametrize("scope", ["records.write", "roster-core.readonly admin", "no-such-scope"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: the scopes are compared in memory; the client's scopes are read on both backends by test_requested_subset_of_the_clients_scopes_is_granted_exactly
def test_requesting_a_scope_the_client_lacks_is_refused_with_invalid_scope(api, scope):
    cid, secret = api.credentials("t1", READ)
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials", scope=scope)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"
    assert "access_token" not in r.json()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"grant_type": "client_credentials"}},
        {"content": b"grant_type=client_credentials", "headers": {"content-type": "text/plain"}},
        {"content": b"grant_type=client_credentials"},
    ],
    ids=["json", "text-plain", "no-content-type"],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused on the request's headers, before any client is read
def test_token_request_in_the_wrong_content_type_is_refused_with_415_problem(api, kwargs):
    cid, secret = api.credentials("t1", READ)
    with api.client() as c:
        r = c.post("/oauth/token", auth=(cid, secret), **kwargs)
    body = assert_problem(r, 415)
    assert "application/x-www-form-urlencoded" in body["detail"]


# --- the access token --------------------------------------------------------------------------


def test_access_token_is_an_rs256_jwt_whose_kid_verifies_against_the_jwks(api):
    cid, secret = api.credentials("t1", ["roster.readonly"])
    token = token_request(api, auth=(cid, secret), grant_type="client_credentials").json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"]
    with api.client() as c:
        jwks = c.get("/.well-known/jwks.json").json()
    matching = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert len(matching) == 1
    key = jwt.PyJWK(matching[0])
    assert key.algorithm_name == "RS256"
    got = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=api.settings.issuer)
    assert got["tenant"] == "t1"
    assert got["sub"] == cid
    assert got["scope"] == "roster.readonly"
    assert got["exp"] - got["iat"] == api.settings.token_ttl_seconds


def test_jwks_publishes_only_the_public_half_of_each_key(api):
    token_request(api, auth=api.credentials("t1", READ), grant_type="client_credentials")
    with api.client() as c:
        r = c.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert keys
    for k in keys:
        assert k["kty"] == "RSA" and k["use"] == "sig" and k["alg"] == "RS256"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k), f"private members published: {sorted(k)}"
        assert "PRIVATE" not in json.dumps(k)


def test_expired_token_is_refused_with_401_problem(api):
    keys = KeyStore(api.store.engine, token_ttl_seconds=api.settings.token_ttl_seconds)
    tokens = TokenService(keys, issuer=api.settings.issuer, ttl_seconds=api.settings.token_ttl_seconds)
    expired = tokens.issue(client_id="tsr_x", tenant="t1", scopes=READ, ttl_seconds=-120)
    body = assert_invalid_token(bearer_get(api, expired))
    assert "expired" in body["detail"]


def test_handmade_expired_jwt_signed_with_the_current_key_is_refused_with_401_problem(api):
    key = signing_key(api)
    past = datetime.now(UTC) - timedelta(hours=2)
    token = jwt.encode(claims(api, iat=past, nbf=past, exp=past + timedelta(minutes=5)), key.private_key,
                       algorithm="RS256", headers={"kid": key.kid})
    body = assert_invalid_token(bearer_get(api, token))
    assert "expired" in body["detail"]


def test_handmade_valid_jwt_signed_with_the_current_key_is_accepted(api):
    """The control for the forgeries below: the same construction, properly signed, works."""
    key = signing_key(api)
    token = jwt.encode(claims(api), key.private_key, algorithm="RS256", headers={"kid": key.kid})
    assert bearer_get(api, token).status_code == 200


def test_token_signed_by_another_key_under_the_servers_kid_is_refused(api):
    kid = signing_key(api).kid
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(api), intruder, algorithm="RS256", headers={"kid": kid})
    body = assert_invalid_token(bearer_get(api, token))
    assert "signature" in body["detail"]


def test_token_with_a_tampered_payload_is_refused(api):
    key = signing_key(api)
    token = jwt.encode(claims(api, tenant="t1"), key.private_key, algorithm="RS256", headers={"kid": key.kid})
    head, _, sig = token.split(".")
    forged_payload = b64url(json.dumps({**jwt.decode(token, options={"verify_signature": False}), "tenant": "t2"}).encode())
    assert_invalid_token(bearer_get(api, f"{head}.{forged_payload}.{sig}"))


def test_unsigned_token_with_alg_none_is_refused(api):
    kid = signing_key(api).kid
    token = jws({"alg": "none", "typ": "JWT", "kid": kid}, claims(api), lambda _: b"")
    assert_invalid_token(bearer_get(api, token))
    assert_invalid_token(bearer_get(api, token.rstrip(".") + "."))


def test_hs256_token_keyed_with_the_published_public_key_is_refused(api):
    """The classic algorithm confusion: HMAC keyed with the RSA public key everyone can fetch."""
    key = signing_key(api)
    pem = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with api.client() as c:
        jwk_json = json.dumps(next(k for k in c.get("/.well-known/jwks.json").json()["keys"] if k["kid"] == key.kid)).encode()
    for secret in (pem, jwk_json):
        token = jws({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims(api),
                    lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest())
        assert_invalid_token(bearer_get(api, token))


def test_token_for_another_audience_or_issuer_is_refused(api):
    key = signing_key(api)
    for bad in ({"aud": "someone-else"}, {"iss": "https://other.example"}):
        token = jwt.encode(claims(api, **bad), key.private_key, algorithm="RS256", headers={"kid": key.kid})
        assert_invalid_token(bearer_get(api, token))


def test_token_without_a_tenant_is_refused_with_a_well_formed_www_authenticate(api):
    """RFC 6750 3: error_description may not contain '"' or '\\'; pyjwt's own message for a
    missing claim quotes the claim's name."""
    key = signing_key(api)
    token = jwt.encode(claims(api, tenant=None), key.private_key, algorithm="RS256", headers={"kid": key.kid})
    r = bearer_get(api, token)
    body = assert_invalid_token(r)
    assert "tenant" in body["detail"]
    assert "tenant" in auth_params(r.headers["www-authenticate"])["error_description"]


def test_token_with_an_unknown_kid_is_refused(api):
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(api), intruder, algorithm="RS256", headers={"kid": "not-a-kid-we-know"})
    assert_invalid_token(bearer_get(api, token))


def test_tokens_naming_unknown_kids_do_not_make_the_server_reparse_its_keys(api, monkeypatch):
    """An unknown kid makes the server look for a key another process may just have made.
    That look-up must stay one query, not a new parse of every private key (tens of
    milliseconds each): otherwise anyone could burn the server's CPU with made-up kids."""
    from gateway.auth import keys as keys_module

    assert bearer_get(api, api.token("t1", READ)).status_code == 200  # the server has its key loaded
    parses: list[int] = []
    real = keys_module.serialization.load_pem_private_key
    monkeypatch.setattr(keys_module.serialization, "load_pem_private_key", lambda *a, **k: parses.append(1) or real(*a, **k))
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(5):
        token = jwt.encode(claims(api), intruder, algorithm="RS256", headers={"kid": uuid.uuid4().hex[:16]})
        assert_invalid_token(bearer_get(api, token))
    assert parses == []


@pytest.mark.parametrize("header", ["Bearer not.a.jwt", "Bearer", "Token abc", "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOi"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused while the header is parsed, before any key is read; token checks run on both backends in the tests above
def test_malformed_authorization_is_refused_with_401_problem(api, header):
    with api.client() as c:
        r = c.get("/v1/people", headers={"Authorization": header})
    assert_invalid_token(r)


def test_missing_token_is_refused_with_401_problem_and_www_authenticate(api):
    with api.client() as c:
        r = c.get("/v1/people")
    body = assert_invalid_token(r)
    assert "/oauth/token" in body["detail"]


def test_token_without_the_needed_scope_is_refused_with_403_problem_naming_the_scope(api):
    token = api.token("t1", ["competencies.readonly"])
    r = bearer_get(api, token, "/v1/people")
    body = assert_problem(r, 403)
    assert "roster-core.readonly" in body["detail"]
    params = auth_params(r.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "roster-core.readonly"
    assert bearer_get(api, token, "/v1/competencies").status_code == 200


# --- key rotation --------------------------------------------------------------------------------


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def jwks_kids(api: Any) -> set[str]:
    with api.client() as c:
        return {k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]}


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(api):
    old_token = api.token("t1", READ)
    old_kid = kid_of(old_token)
    new_kid = KeyStore(api.store.engine, token_ttl_seconds=api.settings.token_ttl_seconds).rotate()
    assert new_kid != old_kid

    assert bearer_get(api, old_token).status_code == 200
    new_token = api.token("t1", READ)
    assert kid_of(new_token) == new_kid
    assert bearer_get(api, new_token).status_code == 200
    assert {old_kid, new_kid} <= jwks_kids(api)


@pytest.fixture
def cli(api: Any, monkeypatch: pytest.MonkeyPatch):
    """Run ``tessera`` against the test database, as an operator would next to the server."""
    from gateway.cli import app

    runner = CliRunner()
    url = api.settings.database_url

    def run(*args: str) -> Any:
        get_settings.cache_clear()
        # wide enough that rich does not elide the table's cells (a 28-character client_id)
        result = runner.invoke(app, list(args), env={"TESSERA_DATABASE_URL": url, "COLUMNS": "200"})
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    yield run
    get_settings.cache_clear()  # the CLI cached settings pointing at this test's database


def test_cli_keys_rotate_makes_the_server_sign_with_the_new_key_while_old_tokens_still_work(api, cli):
    old_token = api.token("t1", READ)
    old_kid = kid_of(old_token)
    cli("keys", "rotate")
    with api.store.engine.connect() as conn:
        rows = {r.kid: r for r in conn.execute(select(t.signing_keys))}
    current = [kid for kid, r in rows.items() if r.retired_at is None]
    assert len(current) == 1 and current[0] != old_kid
    assert rows[old_kid].retired_at is not None
    assert rows[old_kid].verify_until >= rows[old_kid].retired_at + timedelta(seconds=api.settings.token_ttl_seconds)

    new_token = api.token("t1", READ)
    assert kid_of(new_token) == current[0]
    assert bearer_get(api, old_token).status_code == 200
    assert bearer_get(api, new_token).status_code == 200
    assert {old_kid, current[0]} <= jwks_kids(api)
    listed = cli("keys", "list").output
    assert old_kid in listed and current[0] in listed


def test_retired_key_no_longer_verifies_once_its_verify_until_has_passed(api, fresh_keys):
    old_token = api.token("t1", READ)
    old_kid = kid_of(old_token)
    KeyStore(api.store.engine, token_ttl_seconds=api.settings.token_ttl_seconds).rotate()
    assert bearer_get(api, old_token).status_code == 200

    with api.store.engine.begin() as conn:
        conn.execute(
            update(t.signing_keys)
            .where(t.signing_keys.c.kid == old_kid)
            .values(verify_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    body = assert_invalid_token(bearer_get(api, old_token))
    assert "key" in body["detail"]
    assert old_kid not in jwks_kids(api)
    assert bearer_get(api, api.token("t1", READ)).status_code == 200


def test_cached_retired_key_stops_verifying_when_its_verify_until_passes(store, monkeypatch):
    """A process that loaded the keys before verify_until passed must not keep trusting
    the retired key until its cache happens to expire."""
    keys = KeyStore(store.engine, token_ttl_seconds=3600)
    tokens = TokenService(keys, issuer="tessera", ttl_seconds=3600)
    old = tokens.issue(client_id="c", tenant="t1", scopes=READ)
    keys.rotate()
    retired = next(k for k in keys.keys() if k.kid == kid_of(old))
    assert tokens.verify(old).tenant == "t1"

    later = retired.verify_until + timedelta(seconds=1)
    monkeypatch.setattr("gateway.auth.keys.utcnow", lambda: later)
    assert keys.find(retired.kid) is None
    with pytest.raises(AuthError):
        tokens.verify(old)


# --- client secrets ------------------------------------------------------------------------------


def test_client_secret_is_stored_only_as_a_hash(api):
    cid, secret = api.credentials("t1", READ)
    with api.store.engine.connect() as conn:
        row = conn.execute(select(t.oauth_clients).where(t.oauth_clients.c.client_id == cid)).one()
    for column, value in row._mapping.items():
        assert secret not in str(value), f"the secret appears in oauth_clients.{column}"
    assert row.secret_hash.startswith("scrypt$")
    assert verify_secret(secret, row.secret_hash)
    assert not verify_secret(secret + "x", row.secret_hash)
    # and the hash itself is no credential
    r = token_request(api, auth=(cid, row.secret_hash), grant_type="client_credentials")
    assert r.status_code == 401


def test_secrets_are_hashed_with_scrypt_at_the_products_cost() -> None:
    """The tests hash with a cheaper N (``conftest.py``); the product's own is this one."""
    from gateway.auth import clients as clients_module

    from .conftest import PRODUCT_SCRYPT_N

    assert (PRODUCT_SCRYPT_N, clients_module._R, clients_module._P) == (2**14, 8, 1)
    stored = clients_module.hash_secret("s3cret")
    assert stored.startswith(f"scrypt${clients_module._N}$8$1$") and verify_secret("s3cret", stored)


def _squash(text: str) -> str:
    """CLI output without whitespace and table rules, so a wrapped value reads as one string."""
    return re.sub(r"[\s│┃┏┓┗┛┡┩└┘┌┐├┤┬┴┼━─═║╇╈╋╿╽|+-]", "", text)


def test_cli_clients_create_prints_the_secret_once_and_clients_list_never_shows_it(api, cli):
    created = cli("clients", "create", "--tenant", "cli-tenant", "--scopes", "roster-core.readonly records.write")
    cid = re.search(r"client_id:\s+(\S+)", created.output).group(1)
    secret = re.search(r"client_secret:\s+(\S+)", created.output).group(1)
    assert created.output.count(secret) == 1
    assert (created.stderr or "").count(secret) == 0

    # the printed secret is the real one
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials")
    assert r.status_code == 200, r.text
    assert set(r.json()["scope"].split()) == {"roster-core.readonly", "records.write"}

    listed = cli("clients", "list").output + cli("clients", "list", "--tenant", "cli-tenant").output
    assert cid in listed
    flat = _squash(listed)
    assert secret not in listed
    for i in range(0, len(secret) - 8):
        assert _squash(secret[i : i + 8]) not in flat, "a piece of the secret is listed"
    with api.store.engine.connect() as conn:
        stored = conn.scalar(select(t.oauth_clients.c.secret_hash).where(t.oauth_clients.c.client_id == cid))
    assert stored.split("$")[-1][:16] not in flat, "the secret's hash is listed"


def test_cli_clients_revoke_stops_the_client_getting_tokens(api, cli):
    cid, secret = api.credentials("t1", READ)
    assert token_request(api, auth=(cid, secret), grant_type="client_credentials").status_code == 200
    cli("clients", "revoke", cid)
    r = token_request(api, auth=(cid, secret), grant_type="client_credentials")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
