"""Revoking a client stops the tokens it already holds (issue 21 item 3), on every surface, in
that surface's own error shape; and the token endpoint challenges with the scheme the client
used (RFC 6749 5.2, item 4).

The servers run with ``revocation_check_seconds=0`` (ask the database on every request) so
the first request after the revocation must be refused; the cache itself is tested on its
own with a clock the test moves.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.auth import ClientStore, RevocationCheck
from gateway.config import Settings

SCOPES = ["roster-core.readonly", "competencies.readonly", "xapi/all"]
XAPI = {"X-Experience-API-Version": "1.0.3"}

#: (path, extra headers) of one read on each surface a bearer token opens
SURFACES = {
    "canonical": ("/v1/people", {}),
    "oneroster-1.2": ("/ims/oneroster/rostering/v1p2/users", {}),
    "case": ("/ims/case/v1p0/CFDocuments", {}),
    "xapi": ("/xapi/statements", XAPI),
}


def _token(api: Any, cid: str, secret: str) -> str:
    r = httpx.post(f"{api.base_url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _get(api: Any, path: str, headers: dict[str, str], token: str) -> httpx.Response:
    return httpx.get(api.base_url + path, headers={**headers, "Authorization": f"Bearer {token}"})


def _assert_refused_in_the_surfaces_shape(surface: str, r: httpx.Response) -> None:
    assert r.status_code == 401, (surface, r.status_code, r.text)
    if surface == "canonical":
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401 and "revoked" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith('Bearer realm="tessera", error="invalid_token"')
    elif surface in ("oneroster-1.2", "case"):
        body = r.json()
        assert (body["imsx_codeMajor"], body["imsx_severity"]) == ("failure", "error")
        minor = body["imsx_CodeMinor" if surface == "oneroster-1.2" else "imsx_codeMinor"]  # as each binding spells it
        assert minor["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"] == "unauthorisedrequest"
        assert "revoked" in body["imsx_description"]
    else:  # xAPI: a 401 with the LRS's own JSON message
        assert "revoked" in r.text


@pytest.fixture
def api0(make_api):
    return make_api(revocation_check_seconds=0)


def test_a_revoked_clients_tokens_are_refused_on_every_surface_at_the_next_request(api0) -> None:
    cid, secret = api0.credentials("t1", SCOPES)
    token = _token(api0, cid, secret)
    for surface, (path, headers) in SURFACES.items():
        r = _get(api0, path, headers, token)
        assert r.status_code == 200, (surface, r.status_code, r.text)
    ClientStore(api0.store.engine).revoke(cid)
    for surface, (path, headers) in SURFACES.items():
        _assert_refused_in_the_surfaces_shape(surface, _get(api0, path, headers, token))


def test_tessera_clients_revoke_stops_a_token_already_issued(api0, monkeypatch) -> None:
    from typer.testing import CliRunner

    from gateway.cli import app
    from gateway.config import get_settings

    cid, secret = api0.credentials("t1", SCOPES)
    token = _token(api0, cid, secret)
    assert _get(api0, "/v1/people", {}, token).status_code == 200
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["clients", "revoke", cid], env={"TESSERA_DATABASE_URL": api0.settings.database_url})
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    _assert_refused_in_the_surfaces_shape("canonical", _get(api0, "/v1/people", {}, token))


def test_revoked_lrs_basic_credentials_are_refused_at_the_next_request(api0) -> None:
    """LRS Basic credentials are verified once and cached 30 s; a revocation does not wait for that."""
    cid, secret = api0.credentials("t1", ["xapi/all"])
    with httpx.Client(base_url=api0.base_url, auth=(cid, secret), headers=XAPI) as c:
        assert c.get("/xapi/statements").status_code == 200
        assert c.get("/xapi/statements").status_code == 200  # now from the verified-secrets cache
        ClientStore(api0.store.engine).revoke(cid)
        r = c.get("/xapi/statements")
    assert r.status_code == 401, r.text


def test_other_clients_of_the_tenant_keep_working(api0) -> None:
    kept_id, kept_secret = api0.credentials("t1", SCOPES)
    gone_id, _ = api0.credentials("t1", SCOPES)
    token = _token(api0, kept_id, kept_secret)
    ClientStore(api0.store.engine).revoke(gone_id)
    assert _get(api0, "/v1/people", {}, token).status_code == 200


def test_the_revocation_answer_is_cached_per_client_for_the_configured_seconds(store, monkeypatch) -> None:
    import gateway.auth.clients as clients_module

    clients = ClientStore(store.engine)
    client, _ = clients.create("t1", ["roster-core.readonly"])
    now = [1000.0]
    monkeypatch.setattr(clients_module.time, "monotonic", lambda: now[0])
    asked: list[str] = []
    real = clients.is_revoked
    monkeypatch.setattr(clients, "is_revoked", lambda cid: asked.append(cid) or real(cid))
    check = RevocationCheck(clients, ttl_seconds=5)

    assert check.revoked(client.client_id) is False
    clients.revoke(client.client_id)
    now[0] += 4.9
    assert check.revoked(client.client_id) is False  # still the answer of 4.9 s ago
    assert len(asked) == 1
    now[0] += 0.2
    assert check.revoked(client.client_id) is True  # 5.1 s: asked again
    assert len(asked) == 2
    assert RevocationCheck(clients, ttl_seconds=0).revoked(client.client_id) is True


def test_an_unknown_client_id_is_not_revoked(store) -> None:
    """Tokens the gateway issues for others (an LTI tool's service token) name ids that are not clients."""
    assert ClientStore(store.engine).is_revoked("lti-tool-client-id") is False


def test_the_revocation_window_is_a_setting_with_a_default_of_five_seconds() -> None:
    assert Settings().revocation_check_seconds == 5.0
    assert Settings(revocation_check_seconds=0).revocation_check_seconds == 0


# --- the token endpoint's challenge (RFC 6749 5.2) ------------------------------------------------


def _token_request(api: Any, *, auth: tuple[str, str] | None = None, **form: str) -> httpx.Response:
    return httpx.post(f"{api.base_url}/oauth/token", data=form, auth=auth)


def test_a_wrong_secret_sent_with_basic_is_challenged_with_basic(api) -> None:
    cid, secret = api.credentials("t1", ["roster-core.readonly"])
    r = _token_request(api, auth=(cid, secret + "x"), grant_type="client_credentials")
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client"}
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Basic realm="tessera"'), challenge
    assert "bearer" not in challenge.lower()


def test_a_wrong_secret_sent_in_the_body_is_a_400_without_an_http_challenge(api) -> None:
    cid, _ = api.credentials("t1", ["roster-core.readonly"])
    r = _token_request(api, grant_type="client_credentials", client_id=cid, client_secret="not-the-secret")
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_client"}
    assert "www-authenticate" not in r.headers
    assert "no-store" in r.headers["cache-control"]


def test_a_request_without_credentials_is_told_the_scheme_to_use(api) -> None:
    r = _token_request(api, grant_type="client_credentials")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith('Basic realm="tessera"')
