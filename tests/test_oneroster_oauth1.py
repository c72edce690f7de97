"""OneRoster 1.1 REST security: OAuth 1.0a signed requests on /ims/oneroster/v1p1/, over real HTTP.

Requests are signed here with oauthlib's own ``Client`` (an independent signer, RFC 5849),
never with the server's helpers; the body hash follows OAuth Request Body Hash 1.0
(base64 of the SHA-1 of the body). The end-to-end test has Tessera's own OneRoster REST
client (``oauth1=True``) pull a tenant from the real app with a key made by the store and by
the CLI, so the two ends of the 1.1 binding meet.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet
from oauthlib.oauth1 import (
    SIGNATURE_HMAC_SHA1,
    SIGNATURE_HMAC_SHA256,
    SIGNATURE_PLAINTEXT,
    SIGNATURE_TYPE_QUERY,
    Client,
)
from sqlalchemy import func, insert, select

from adapters.oneroster import DEMO_PACKAGE, SAMPLES, OneRosterAdapter
from adapters.oneroster.client import OneRosterClient
from adapters.oneroster.oauth1_auth import ConsumerStore
from gateway.auth.sealed import ENV_KEY
from gateway.config import Settings
from gateway.errors import AuthError, ValidationError
from gateway.model import utcnow
from gateway.store import Store
from gateway.store.tables import oauth1_consumers, oauth1_nonces
from gateway.wiring import open_store
from tests import factories as f
from tests.conftest import Api, serve

V11 = "/ims/oneroster/v1p1"
V12 = "/ims/oneroster/rostering/v1p2"
CORE = ["roster-core.readonly"]


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sealing key from the environment: on PostgreSQL the key file would otherwise land in
    the working directory (there is no database file to put it next to)."""
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())


def _roster(store: Store, tenant: str = "t1") -> None:
    school = f.org("s1", tenant=tenant)
    crs = f.course("c1", school, tenant)
    sec = f.section("k1", crs, school, tenant)
    people = [f.person(f"{tenant}-u{i}", school, tenant, family_name=f"de la Cruz {i}") for i in range(5)]
    people.append(f.person(f"{tenant}-t", school, tenant, role="teacher", family_name="O Brien"))
    store.records.apply(tenant, [school, crs, sec, *people, *(f.enrollment(p, sec, tenant) for p in people)])


def _key(store: Store, tenant: str = "t1", scopes: list[str] | None = None) -> tuple[str, str]:
    consumer, secret = ConsumerStore(store.engine).create(tenant, scopes or CORE, "District SIS")
    return consumer.consumer_key, secret


def _url(api: Api, path: str, params: dict[str, Any] | None = None) -> str:
    return str(httpx.URL(api.base_url + path, params=params))


def _sign(url: str, key: str, secret: str, method: str = "GET", **kw: Any) -> tuple[str, dict[str, str]]:
    kw.setdefault("signature_method", SIGNATURE_HMAC_SHA256)
    uri, headers, _ = Client(key, client_secret=secret, **kw).sign(url, method)
    return uri, headers


def _get(api: Api, uri: str, headers: dict[str, str]) -> httpx.Response:
    with api.client() as c:
        return c.get(uri, headers=headers)


def _signed_get(api: Api, path: str, key: str, secret: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return _get(api, *_sign(_url(api, path, params), key, secret, **kw))


def _minor(r: httpx.Response) -> str:
    return r.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def _refused(r: httpx.Response, problem: str) -> None:
    """401, the OAuth challenge naming the problem, and imsx_StatusInfo unauthorisedrequest."""
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == f'OAuth realm="tessera-oneroster", oauth_problem="{problem}"'
    body = r.json()
    assert (body["imsx_codeMajor"], body["imsx_severity"], _minor(r)) == ("failure", "error", "unauthorisedrequest")


def _nonces(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(oauth1_nonces)).scalar_one()


@pytest.fixture
def signer(api: Api) -> tuple[str, str]:
    _roster(api.store)
    return _key(api.store)


# --- signed requests that are served ------------------------------------------------------------


def test_a_signed_get_with_a_quoted_filter_and_paging_is_served(api: Api, signer: tuple[str, str]) -> None:
    params = {"filter": "familyName~'de la cruz' AND status='active'", "limit": 2, "offset": 1, "sort": "familyName"}
    r = _signed_get(api, f"{V11}/users", *signer, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["X-Total-Count"] == "5"
    assert [u["familyName"] for u in r.json()["users"]] == ["de la Cruz 1", "de la Cruz 2"]
    assert r.json()["users"][0]["role"] == "student"  # a 1.1 user object


def test_hmac_sha1_is_accepted_too(api: Api, signer: tuple[str, str]) -> None:
    r = _signed_get(api, f"{V11}/users/t1-u0", *signer, signature_method=SIGNATURE_HMAC_SHA1)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["sourcedId"] == "t1-u0"


def test_oauth_parameters_in_the_query_string_are_accepted_and_left_out_of_links(api: Api, signer: tuple[str, str]) -> None:
    r = _signed_get(api, f"{V11}/users", *signer, params={"limit": 2}, signature_type=SIGNATURE_TYPE_QUERY)
    assert r.status_code == 200, r.text
    assert "oauth_signature=" in str(r.request.url) and "Authorization" not in r.request.headers
    assert 'rel="next"' in r.headers["Link"] and "oauth_" not in r.headers["Link"]


def test_a_bearer_token_still_works_on_the_one_point_one_paths(api: Api) -> None:
    _roster(api.store)
    r = api.auth_client("t1", CORE).get(f"{V11}/users/t1-u0")
    assert r.status_code == 200 and r.json()["user"]["sourcedId"] == "t1-u0"


def test_a_signed_json_put_needs_the_body_hash_the_signature_covers(api: Api) -> None:
    key, secret = _key(api.store, scopes=["gradebook.createput", "gradebook.readonly"])
    body = orjson.dumps({"category": {"sourcedId": "cat1", "title": "Quizzes"}})
    url = _url(api, f"{V11}/categories/cat1")
    json_type = {"Content-Type": "application/json"}

    class BodyHashClient(Client):
        def get_oauth_params(self, request: Any) -> list[tuple[str, str]]:
            digest = base64.b64encode(hashlib.sha1(body).digest()).decode()
            return [*super().get_oauth_params(request), ("oauth_body_hash", digest)]

    with api.client() as c:
        uri, headers, _ = Client(key, client_secret=secret, signature_method=SIGNATURE_HMAC_SHA256).sign(url, "PUT", headers=json_type)
        _refused(c.put(uri, content=body, headers=headers), "parameter_absent")
        client = BodyHashClient(key, client_secret=secret, signature_method=SIGNATURE_HMAC_SHA256)
        uri, headers, _ = client.sign(url, "PUT", headers=json_type)
        _refused(c.put(uri, content=body.replace(b"Quizzes", b"Exams"), headers=headers), "signature_invalid")
        uri, headers, _ = client.sign(url, "PUT", headers=json_type)
        r = c.put(uri, content=body, headers=headers)
        assert r.status_code == 201, r.text
    r = _signed_get(api, f"{V11}/categories/cat1", key, secret)
    assert r.json()["category"]["title"] == "Quizzes"


def test_the_url_signed_is_the_public_one_behind_a_proxy(make_api) -> None:
    api = make_api(public_url="https://district.example/tessera/")  # the proxy maps /tessera/... to the app's /...
    _roster(api.store)
    key, secret = _key(api.store)
    public = f"https://district.example/tessera{V11}/users/t1-u0"
    _, headers = _sign(public, key, secret)
    assert _get(api, f"{api.base_url}{V11}/users/t1-u0", headers).status_code == 200
    _, headers = _sign(f"{api.base_url}{V11}/users/t1-u0", key, secret)  # what the proxy's client did not sign
    _refused(_get(api, f"{api.base_url}{V11}/users/t1-u0", headers), "signature_invalid")


# --- refusals ----------------------------------------------------------------------------------


def test_a_tampered_request_is_signature_invalid(api: Api, signer: tuple[str, str]) -> None:
    uri, headers = _sign(_url(api, f"{V11}/users", {"limit": 2}), *signer)
    _refused(_get(api, uri.replace("limit=2", "limit=3"), headers), "signature_invalid")
    uri, headers = _sign(_url(api, f"{V11}/users"), *signer)
    headers["Authorization"] = headers["Authorization"].replace('oauth_signature="', 'oauth_signature="A')
    _refused(_get(api, uri, headers), "signature_invalid")


def test_a_wrong_secret_is_refused_without_any_secret_in_the_answer(api: Api, signer: tuple[str, str],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    key, secret = signer
    with caplog.at_level(logging.DEBUG):
        r = _signed_get(api, f"{V11}/users", key, "guessed-secret")
    _refused(r, "signature_invalid")
    assert "signature" in r.json()["imsx_description"]
    for text in (r.text, str(r.headers), caplog.text):
        assert secret not in text and "guessed-secret" not in text


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_a_timestamp_outside_the_window_is_refused(api: Api, signer: tuple[str, str], skew: int) -> None:
    r = _signed_get(api, f"{V11}/users", *signer, timestamp=str(int(time.time()) + skew))
    _refused(r, "timestamp_refused")
    assert "imestamp" in r.json()["imsx_description"]
    assert _nonces(api.store) == 0


def test_a_replayed_nonce_is_refused(api: Api, signer: tuple[str, str]) -> None:
    uri, headers = _sign(_url(api, f"{V11}/users"), *signer)
    assert _get(api, uri, headers).status_code == 200
    r = _get(api, uri, headers)
    _refused(r, "nonce_used")
    assert "nonce" in r.json()["imsx_description"]


def test_a_refused_request_spends_no_nonce(api: Api, signer: tuple[str, str]) -> None:
    key, secret = signer
    fixed = {"nonce": "n-0123456789", "timestamp": str(int(time.time()))}
    _refused(_signed_get(api, f"{V11}/users", key, "wrong", **fixed), "signature_invalid")
    assert _nonces(api.store) == 0
    assert _signed_get(api, f"{V11}/users", key, secret, **fixed).status_code == 200  # the same nonce, now signed right
    assert _nonces(api.store) == 1


def test_unknown_and_revoked_keys_are_refused(api: Api, signer: tuple[str, str]) -> None:
    key, secret = signer
    r = _signed_get(api, f"{V11}/users", "or1_not-a-key", secret)
    _refused(r, "consumer_key_unknown")
    ConsumerStore(api.store.engine).revoke(key)
    r = _signed_get(api, f"{V11}/users", key, secret)
    _refused(r, "consumer_key_refused")
    assert "revoked" in r.json()["imsx_description"]
    assert _nonces(api.store) == 0


def test_plaintext_and_unknown_signature_methods_are_refused(api: Api, signer: tuple[str, str]) -> None:
    r = _signed_get(api, f"{V11}/users", *signer, signature_method=SIGNATURE_PLAINTEXT)
    _refused(r, "signature_method_rejected")
    assert "PLAINTEXT" in r.json()["imsx_description"]
    uri, headers = _sign(_url(api, f"{V11}/users"), *signer)
    headers["Authorization"] = headers["Authorization"].replace("HMAC-SHA256", "HMAC-SHA512")
    _refused(_get(api, uri, headers), "signature_method_rejected")


def test_missing_oauth_parameters_are_parameter_absent(api: Api, signer: tuple[str, str]) -> None:
    uri, headers = _sign(_url(api, f"{V11}/users"), *signer)
    headers["Authorization"] = re.sub(r'oauth_nonce="[^"]*",\s*', "", headers["Authorization"])
    assert "oauth_nonce" not in headers["Authorization"]
    _refused(_get(api, uri, headers), "parameter_absent")


def test_a_query_that_is_not_percent_encoded_is_refused_not_a_crash(api: Api, signer: tuple[str, str]) -> None:
    _, headers = _sign(_url(api, f"{V11}/users"), *signer)
    conn = http.client.HTTPConnection(urlsplit(api.base_url).netloc, timeout=10)
    conn.request("GET", f"{V11}/users?filter=familyName='a<b'", headers=headers)  # a raw '<' in the query
    resp = conn.getresponse()
    assert resp.status == 401
    assert resp.getheader("WWW-Authenticate") == 'OAuth realm="tessera-oneroster", oauth_problem="parameter_rejected"'
    conn.close()


def test_another_tenants_record_is_unknownobject(api: Api, signer: tuple[str, str]) -> None:
    _roster(api.store, "t2")
    key, secret = signer
    r = _signed_get(api, f"{V11}/users/t2-u0", key, secret)
    assert r.status_code == 404 and _minor(r) == "unknownobject"
    r = _signed_get(api, f"{V11}/users", key, secret)
    assert {u["sourcedId"] for u in r.json()["users"]} == {*(f"t1-u{i}" for i in range(5)), "t1-t"}


def test_a_key_without_the_scope_is_403_forbidden_like_a_token(api: Api) -> None:
    _roster(api.store)
    key, secret = _key(api.store, scopes=["gradebook.readonly"])
    r = _signed_get(api, f"{V11}/users", key, secret)
    assert r.status_code == 403 and _minor(r) == "forbidden"
    assert "roster-core.readonly" in r.json()["imsx_description"]
    assert "www-authenticate" not in r.headers  # no Bearer challenge for a signing consumer
    token = api.auth_client("t1", ["gradebook.readonly"]).get(f"{V11}/users")
    assert token.status_code == 403 and _minor(token) == "forbidden"
    assert _signed_get(api, f"{V11}/demographics", *_key(api.store)).status_code == 403  # core only: no demographics
    assert _signed_get(api, f"{V11}/demographics", *_key(api.store, scopes=["roster.readonly"])).status_code == 200
    assert _signed_get(api, f"{V11}/resources", *_key(api.store, scopes=["resource.readonly"])).status_code == 200


def test_the_one_point_two_paths_take_no_oauth1_signature(api: Api, signer: tuple[str, str]) -> None:
    for path in (f"{V12}/users", "/ims/oneroster/gradebook/v1p2/categories", "/ims/oneroster/resources/v1p2/resources"):
        r = _signed_get(api, path, *signer)
        assert r.status_code == 401 and _minor(r) == "unauthorisedrequest"
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert "OAuth" not in r.headers["www-authenticate"]
    assert _nonces(api.store) == 0


def test_no_credentials_on_one_point_one_offers_both_schemes(api: Api) -> None:
    with api.client() as c:
        r = c.get(f"{V11}/users")
    assert r.status_code == 401 and _minor(r) == "unauthorisedrequest"
    challenges = r.headers.get_list("www-authenticate")
    assert any(v.startswith("Bearer ") for v in challenges)
    assert 'OAuth realm="tessera-oneroster"' in challenges
    assert "OAuth 1.0a" in r.json()["imsx_description"]


# --- storage -----------------------------------------------------------------------------------


def test_the_secret_is_sealed_and_old_nonces_are_pruned(api: Api, signer: tuple[str, str]) -> None:
    key, secret = signer
    with api.store.engine.begin() as conn:
        stored = conn.execute(select(oauth1_consumers.c.secret_sealed)).scalar_one()
        conn.execute(insert(oauth1_nonces).values(consumer_key=key, nonce="old", timestamp=1, expires_at=utcnow()))
    assert secret not in stored
    time.sleep(0.01)
    assert _signed_get(api, f"{V11}/users", key, secret).status_code == 200
    with api.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth1_nonces).where(oauth1_nonces.c.nonce == "old")).scalar_one() == 0


def test_only_oneroster_scopes_make_a_consumer_key(store: Store) -> None:
    with pytest.raises(ValidationError, match="admin"):
        ConsumerStore(store.engine).create("t1", ["roster.readonly", "admin"])
    consumer, _ = ConsumerStore(store.engine).create("t1", ["https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"])
    assert consumer.scopes == ("roster.readonly",)


# --- both ends of the 1.1 binding --------------------------------------------------------------


def _pulled(base_url: str, store: Store, key: str, secret: str) -> dict[str, int]:
    with OneRosterClient(base_url, version="1.1", client_id=key, client_secret=secret, oauth1=True) as client:
        summary = client.pull(store, tenant="copy", source="district")
    return summary.counts


def _district(store: Store, tenant: str = "t1") -> None:
    """The bundled sample district (complete 1.1 objects: usernames, class terms...)."""
    OneRosterAdapter().import_package(store, SAMPLES / DEMO_PACKAGE, tenant=tenant, source="sis")


def test_the_rest_client_pulls_a_tenant_over_oauth1(api: Api) -> None:
    _district(api.store)
    key, secret = _key(api.store)
    counts = _pulled(api.base_url, api.store, key, secret)
    kinds = {"orgs": "org", "academicSessions": "academic_session", "courses": "course", "classes": "section",
             "users": "person", "enrollments": "enrollment"}
    assert set(counts) == set(kinds) and counts["users"] > 100
    for name, kind in kinds.items():
        assert counts[name] == api.store.records.count("t1", kind) == api.store.records.count("copy", kind), name
    assert _nonces(api.store) >= len(kinds)  # every page signed afresh, each nonce spent once


@pytest.fixture
def cli_server(cli: Any) -> Iterator[tuple[Any, str, Store]]:
    from gateway.api.app import create_app

    cli("migrate")
    store = open_store(cli.url)
    with serve(create_app(Settings(database_url=cli.url), store=store)) as base_url:
        yield cli, base_url, store
    store.dispose()


def test_a_key_made_with_the_cli_signs_the_clients_pull(cli_server: tuple[Any, str, Store]) -> None:
    cli, base_url, store = cli_server
    _district(store)
    made = cli("oneroster", "consumers", "create", "--tenant", "t1", "--scope", "roster-core.readonly", "--name", "Birchwood SIS")
    fields = dict(line.split(":", 1) for line in made.stdout.splitlines() if line.startswith("consumer_"))
    key, secret = fields["consumer_key"].strip(), fields["consumer_secret"].strip()
    assert _pulled(base_url, store, key, secret)["users"] == store.records.count("t1", "person")
    listed = cli("oneroster", "consumers", "list").stdout
    assert key in listed and secret not in listed
    cli("oneroster", "consumers", "revoke", key)
    with pytest.raises(AuthError, match="OAuth 1.0a signature"):
        _pulled(base_url, store, key, secret)
    with pytest.raises(ValidationError, match="not OneRoster scope"):
        cli("oneroster", "consumers", "create", "--tenant", "t1", "--scope", "admin")
