"""xAPI 1.0.3 Communication 1 (headers, alternate request syntax, CORS), 3.2-3.3 (errors,
versioning), 4 (authentication) and 2.8 (About), over real HTTP."""

from __future__ import annotations

import httpx
import orjson

from tests.xapi_support import V1, V2, statement

pytest_plugins = ["tests.xapi_fixtures"]  # the lrs fixture


def test_about_needs_no_credentials_nor_version_and_lists_versions(api) -> None:
    r = httpx.get(api.base_url + "/xapi/about")
    assert r.status_code == 200
    assert set(r.json()["version"]) >= {"1.0.3", "2.0.0"}
    assert r.headers["X-Experience-API-Version"]
    assert httpx.get(api.base_url + "/xAPI/about").status_code == 200


def test_missing_or_unsupported_version_header_is_400_with_the_header(lrs) -> None:
    """Communication 3.3: a request without a version is rejected; the answer still names a
    version, the LRS's latest (3.3.s3.b2) since the request chose none."""
    c = lrs(version=None)
    for r in (c.get("/statements"), c.post("/statements", json=statement()), c.put(f"/statements?statementId={statement()['id']}", json=statement())):
        assert r.status_code == 400 and "X-Experience-API-Version" in r.json()["message"]
        assert r.headers["X-Experience-API-Version"] == "2.0.0"
    for bad in ("0.95", "1.1.0", "3.0", "x"):
        assert c.get("/statements", headers={"X-Experience-API-Version": bad}).status_code == 400, bad
    for good, answered in (("1.0", "1.0.3"), ("1.0.1", "1.0.3"), ("1.0.3", "1.0.3"), ("2.0", "2.0.0"), ("2.0.0", "2.0.0")):
        r = c.get("/statements", headers={"X-Experience-API-Version": good})
        assert r.status_code == 200, good
        assert r.headers["X-Experience-API-Version"] == answered


def test_errors_are_400_never_422_and_carry_a_message(lrs) -> None:
    c = lrs()
    r = c.post("/statements", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = c.get("/statements?limit=abc")
    assert r.status_code == 400 and "limit" in r.json()["message"]
    r = c.get("/statements?unknown=1")
    assert r.status_code == 400 and "unknown" in r.json()["message"]
    r = c.get("/statements?ascending=yes")
    assert r.status_code == 400
    r = c.get("/statements?agent=not-json")
    assert r.status_code == 400 and "agent" in r.json()["message"]
    r = c.get("/statements?since=yesterday")
    assert r.status_code == 400


def test_credentials_are_required_and_bad_ones_are_401(api, lrs) -> None:
    r = httpx.get(api.base_url + "/xapi/statements", headers=V1)
    assert r.status_code == 401 and r.headers["X-Experience-API-Version"]
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = httpx.get(api.base_url + "/xapi/statements", headers=V1, auth=("tsr_nobody", "wrong"))
    assert r.status_code == 401
    cid, _ = api.credentials("t1", ["xapi/all"])
    assert httpx.get(api.base_url + "/xapi/statements", headers=V1, auth=(cid, "wrong")).status_code == 401
    r = httpx.get(api.base_url + "/xapi/statements", headers={**V1, "Authorization": "Bearer nonsense"})
    assert r.status_code == 401


def test_scopes_are_enforced_with_403(lrs) -> None:
    reader = lrs(scopes=["xapi/statements/read"])
    assert reader.post("/statements", json=statement()).status_code == 403
    assert reader.get("/statements").status_code == 200
    writer = lrs(scopes=["xapi/statements/write"])
    assert writer.post("/statements", json=statement()).status_code == 200
    assert writer.get("/statements").status_code == 403
    # gateway scopes give no LRS access
    other = lrs(scopes=["evidence.readonly"])
    assert other.get("/statements").status_code == 403


def test_alternate_request_syntax_put_and_get(lrs, api) -> None:
    """Communication 1.3: POST ?method=PUT with the headers, content and parameters as form fields."""
    c = lrs(version=None)
    s = statement()
    auth = c.auth._auth_header  # the Basic header the client would send
    form = {
        "Authorization": auth,
        "X-Experience-API-Version": "1.0.3",
        "Content-Type": "application/json",
        "statementId": s["id"],
        "content": orjson.dumps(s).decode(),
    }
    r = httpx.post(api.base_url + "/xapi/statements?method=PUT", data=form)
    assert r.status_code == 204, r.text
    r = httpx.post(api.base_url + "/xapi/statements?method=GET",
                   data={"Authorization": auth, "X-Experience-API-Version": "1.0.3", "statementId": s["id"]})
    assert r.status_code == 200 and r.json()["id"] == s["id"]


def test_alternate_request_syntax_rejects_query_parameters_and_version_2(lrs, api) -> None:
    c = lrs(version=None)
    auth = c.auth._auth_header
    r = httpx.post(api.base_url + "/xapi/statements?method=GET&limit=1",
                   data={"Authorization": auth, "X-Experience-API-Version": "1.0.3"})
    assert r.status_code == 400
    r = httpx.post(api.base_url + "/xapi/statements?method=GET",
                   data={"Authorization": auth, "X-Experience-API-Version": "2.0.0"})
    assert r.status_code == 400 and "2.0" in r.json()["message"]


def test_alternate_request_syntax_headers_may_stay_headers_and_form_fields_win(lrs, api) -> None:
    """Communication 1.3.s3.b6-b7: the client MAY put Authorization, X-Experience-API-Version,
    ... in the form, and the LRS treats those fields as headers; real headers still count."""
    c = lrs()
    real = {"Authorization": c.auth._auth_header, **V1}
    s = statement()
    form = {"statementId": s["id"], "content": orjson.dumps(s).decode()}
    r = httpx.post(api.base_url + "/xapi/statements?method=PUT", data=form, headers=real)
    assert r.status_code == 204, r.text
    r = httpx.post(api.base_url + "/xapi/statements?method=GET", data={"limit": "1"}, headers=real)
    assert r.status_code == 200 and set(r.json()) == {"statements", "more"}
    r = httpx.post(api.base_url + "/xapi/statements?method=GET", data={"X-Experience-API-Version": "0.8"}, headers=real)
    assert r.status_code == 400 and "0.8" in r.json()["message"]


def test_a_body_over_the_size_limit_is_413_in_the_xapi_shape(make_api) -> None:
    """Communication 3.2: 413 Request Entity Too Large, answered like every xAPI error (a
    message, the version header) before the body is read."""
    small = make_api(max_body_bytes=2048)
    cid, secret = small.credentials("t1", ["xapi/all"])
    body = orjson.dumps([statement() for _ in range(20)])
    for headers, version in ((V1, "1.0.3"), ({}, "2.0.0")):
        r = httpx.post(small.base_url + "/xapi/statements", content=body, auth=(cid, secret),
                       headers={**headers, "Content-Type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["message"]
        assert r.headers["X-Experience-API-Version"] == version


def test_cors_preflight_and_exposed_headers(api) -> None:
    r = httpx.options(api.base_url + "/xapi/statements", headers={
        "Origin": "https://course.example.com", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "Authorization, Content-Type, X-Experience-API-Version"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://course.example.com")
    assert "x-experience-api-version" in r.headers["Access-Control-Allow-Headers"].lower()
    r = httpx.get(api.base_url + "/xapi/about", headers={"Origin": "https://course.example.com"})
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    for h in ("etag", "last-modified", "x-experience-api-version", "x-experience-api-consistent-through"):
        assert h in exposed


def test_unknown_resource_is_404_in_the_xapi_shape(lrs) -> None:
    r = lrs().get("/nothing-here")
    assert r.status_code == 404 and "message" in r.json()
    assert r.headers["X-Experience-API-Version"] == "1.0.3"
    assert lrs(version="2.0.0").get("/nothing").headers["X-Experience-API-Version"] == "2.0.0"


def test_uppercase_xapi_prefix_is_the_same_lrs(api, lrs) -> None:
    c = lrs()
    s = statement()
    c.post("/statements", json=s).raise_for_status()
    r = httpx.get(api.base_url + f"/xAPI/statements?statementId={s['id']}", headers=V2, auth=c.auth)
    assert r.status_code == 200 and r.json()["id"] == s["id"]


def test_an_internal_error_is_a_500_in_the_xapi_shape(lrs, monkeypatch) -> None:
    from adapters.xapi.statement_store import StatementStore

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(StatementStore, "query", broken)
    r = lrs().get("/statements")
    assert r.status_code == 500
    assert r.headers["X-Experience-API-Version"] == "1.0.3"
    assert "internal error" in r.json()["message"] and "fire" not in r.text
