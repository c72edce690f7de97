"""The canonical API (/v1) over real HTTP: tenancy, authorisation, keyset pagination,
filters, the atomic batch write, and RFC 9457 problem details for every failure."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from gateway.model import Org, Person, record_id

SRC = "sis"
READ = ["roster-core.readonly"]
PROBLEM_MEMBERS = {"type", "title", "status", "detail"}


# --- helpers ---------------------------------------------------------------------------------


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """RFC 9457: the status, the media type and the members type/title/status/detail."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == "application/problem+json", r.headers
    body = r.json()
    assert PROBLEM_MEMBERS <= set(body), body
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def error_paths(body: dict[str, Any]) -> set[str]:
    """Where each error points: ``location.field``, or whichever of the two is given."""
    return {".".join(p for p in (e.get("location"), e.get("field")) if p) for e in body.get("errors", [])}


def org(tenant: str, native_id: str = "school-1", **kw: Any) -> dict[str, Any]:
    return {"kind": "org", "source": SRC, "native_id": native_id, "name": "Lincoln Middle School", "type": "school", **kw}


def person(tenant: str, native_id: str, **kw: Any) -> dict[str, Any]:
    doc = {
        "kind": "person", "source": SRC, "native_id": native_id, "given_name": "Ada", "family_name": "Lovelace",
        "roles": [{"role": "student", "org_id": str(record_id(tenant, "org", SRC, "school-1")), "primary": True}],
    }
    doc.update(kw)
    return doc


def seed_people(store: Any, tenant: str, native_ids: list[str], **kw: Any) -> list[uuid.UUID]:
    """Write people through the store's one door (RecordStore.apply), with their school."""
    recs = [Org.model_validate({**org(tenant), "tenant": tenant})]
    recs += [Person.model_validate({**person(tenant, n, **kw), "tenant": tenant}) for n in native_ids]
    store.records.apply(tenant, recs)
    return [record_id(tenant, "person", SRC, n) for n in native_ids]


def post_batch(c: httpx.Client, records: list[dict[str, Any]]) -> httpx.Response:
    return c.post("/v1/batches", json={"records": records})


def ids_of(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


def rostering(tenant: str) -> list[dict[str, Any]]:
    """A school, a course, two sections, three people and their enrollments."""
    school = str(record_id(tenant, "org", SRC, "school-1"))
    course = str(record_id(tenant, "course", SRC, "math-7"))

    def section(n: str) -> dict[str, Any]:
        return {"kind": "section", "source": SRC, "native_id": n, "title": f"Math 7 {n}", "course_id": course, "org_id": school}

    def enrol(p: str, s: str, role: str) -> dict[str, Any]:
        return {
            "kind": "enrollment", "source": SRC, "native_id": f"{p}-{s}", "role": role,
            "person_id": str(record_id(tenant, "person", SRC, p)), "section_id": str(record_id(tenant, "section", SRC, s)),
        }

    return [
        org(tenant),
        {"kind": "course", "source": SRC, "native_id": "math-7", "title": "Math 7", "org_id": school},
        section("s1"), section("s2"),
        person(tenant, "stu-1"), person(tenant, "stu-2"),
        person(tenant, "tea-1", roles=[{"role": "teacher", "org_id": school, "primary": True}]),
        enrol("stu-1", "s1", "student"), enrol("stu-2", "s2", "student"), enrol("tea-1", "s1", "teacher"),
    ]


# --- tenant isolation --------------------------------------------------------------------------


def test_a_tenants_token_never_sees_another_tenants_records(api):
    with api.auth_client("alpha") as a, api.auth_client("beta") as b:
        assert post_batch(a, rostering("alpha")).status_code == 201
        assert post_batch(b, rostering("beta")).status_code == 201
        for path in ("orgs", "courses", "sections", "people", "enrollments"):
            seen_a, seen_b = ids_of(a.get(f"/v1/{path}")), ids_of(b.get(f"/v1/{path}"))
            assert seen_a and seen_b
            assert not set(seen_a) & set(seen_b), path
            assert all(item["tenant"] == "alpha" for item in a.get(f"/v1/{path}").json()["items"])
        # a filter naming the other tenant's section finds nothing
        beta_section = str(record_id("beta", "section", SRC, "s1"))
        assert ids_of(a.get("/v1/enrollments", params={"section_id": beta_section})) == []


def test_another_tenants_record_is_404_exactly_like_a_random_id(api):
    with api.auth_client("alpha") as a, api.auth_client("beta") as b:
        assert post_batch(b, [org("beta"), person("beta", "p-1")]).status_code == 201
        assert post_batch(a, [org("alpha")]).status_code == 201
        beta_id = str(record_id("beta", "person", SRC, "p-1"))
        assert b.get(f"/v1/people/{beta_id}").status_code == 200

        theirs = a.get(f"/v1/people/{beta_id}")
        random = a.get(f"/v1/people/{uuid.uuid4()}")
        for r in (theirs, random):
            assert_problem(r, 404)
        strip = lambda body: {k: re.sub(r"[0-9a-f-]{36}", "<id>", v) if isinstance(v, str) else v for k, v in body.items()}  # noqa: E731
        assert strip(theirs.json()) == strip(random.json())
        assert "Ada" not in theirs.text and "beta" not in theirs.text


def test_batch_cannot_write_into_another_tenant(api, store):
    with api.auth_client("alpha") as a:
        r = post_batch(a, [{**org("beta"), "tenant": "beta"}])
    body = assert_problem(r, 422)
    assert "records[0].tenant" in error_paths(body)
    assert store.records.count("beta", "org") == 0
    assert store.records.count("alpha", "org") == 0


def test_batch_record_must_be_a_json_object(api, store):
    """A record given as a JSON string is not a record, whatever the string holds."""
    inner = '{"kind": "org", "source": "sis", "native_id": "x", "name": "X", "type": "school", "tenant": "alpha"}'
    with api.auth_client("alpha") as a:
        r = post_batch(a, [org("alpha"), inner])
    body = assert_problem(r, 422)
    assert any(p.startswith("records[1]") for p in error_paths(body)), body
    assert store.records.count("alpha", "org") == 0


# --- authentication on every endpoint ------------------------------------------------------------


def v1_operations(api: Any) -> list[tuple[str, str]]:
    with api.client() as c:
        spec = c.get("/openapi.json").json()
    ops = []
    for path, item in spec["paths"].items():
        if path.startswith("/v1/"):
            concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            ops += [(method.upper(), concrete) for method in item if method in ("get", "post", "put", "patch", "delete")]
    return ops


def test_every_v1_endpoint_refuses_a_request_without_a_token(api):
    ops = v1_operations(api)
    assert ("POST", "/v1/batches") in ops and ("GET", "/v1/people") in ops
    assert len(ops) >= 19
    with api.client() as c:
        for method, path in ops:
            r = c.request(method, path, json={"records": []} if method != "GET" else None)
            assert_problem(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)
            r = c.request(method, path, headers={"Authorization": "Bearer not-a-token"})
            assert_problem(r, 401)


def test_ops_token_and_jwks_endpoints_need_no_token(api):
    cid, secret = api.credentials("t1", READ)
    with api.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert c.get("/.well-known/jwks.json").status_code == 200
        r = c.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret})
        assert r.status_code == 200


# --- reading: pagination and filters -------------------------------------------------------------


def test_cursor_pagination_walks_the_whole_set_exactly_once(api, store):
    # three batches, so that page boundaries fall inside and across updated_at values
    all_ids: list[uuid.UUID] = []
    for lo, hi in ((0, 120), (120, 200), (200, 250)):
        all_ids += seed_people(store, "t1", [f"p-{i:03d}" for i in range(lo, hi)])
    with api.auth_client("t1", READ) as c:
        r = c.get("/v1/people", params={"limit": 100})
        pages = []
        while True:
            assert r.status_code == 200, r.text
            body = r.json()
            pages.append([item["id"] for item in body["items"]])
            if body["next_cursor"] is None:
                assert "link" not in r.headers
                assert body["next"] is None
                break
            assert r.links["next"]["url"] == body["next"]
            assert f"cursor={body['next_cursor']}" in body["next"] and "limit=100" in body["next"]
            r = c.get(r.links["next"]["url"])
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)) == 250
    assert set(seen) == {str(i) for i in all_ids}


def test_next_cursor_parameter_walks_the_same_pages_as_the_link(api, store):
    seed_people(store, "t1", [f"p-{i}" for i in range(7)])
    with api.auth_client("t1", READ) as c:
        seen, cursor = [], None
        while True:
            r = c.get("/v1/people", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
            seen += ids_of(r)
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == len(set(seen)) == 7


def test_updated_since_returns_only_records_changed_after_it(api):
    with api.auth_client("t1") as c:
        assert post_batch(c, [org("t1"), person("t1", "early-1"), person("t1", "early-2")]).status_code == 201
        first = {p["native_id"]: p for p in c.get("/v1/people").json()["items"]}
        mark = first["early-1"]["updated_at"]
        assert post_batch(c, [person("t1", "late-1"), person("t1", "early-1")]).status_code == 201  # early-1 unchanged
        got = c.get("/v1/people", params={"updated_since": mark}).json()["items"]
        assert [p["native_id"] for p in got] == ["late-1"]

        assert post_batch(c, [person("t1", "early-2", given_name="Augusta")]).status_code == 201
        got = c.get("/v1/people", params={"updated_since": mark}).json()["items"]
        assert sorted(p["native_id"] for p in got) == ["early-2", "late-1"]

        zulu = datetime.fromisoformat(mark).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        got = c.get("/v1/people", params={"updated_since": zulu}).json()["items"]
        assert [p["native_id"] for p in got] == ["late-1", "early-2"]  # in updated_at order
        assert len(c.get("/v1/people", params={"updated_since": "2000-01-01T00:00:00Z"}).json()["items"]) == 3


def test_filters_select_by_their_column(api):
    with api.auth_client("t1") as c:
        assert post_batch(c, rostering("t1")).status_code == 201
        s1 = str(record_id("t1", "section", SRC, "s1"))
        stu1 = str(record_id("t1", "person", SRC, "stu-1"))
        got = c.get("/v1/enrollments", params={"section_id": s1}).json()["items"]
        assert sorted(e["native_id"] for e in got) == ["stu-1-s1", "tea-1-s1"]
        got = c.get("/v1/enrollments", params={"section_id": s1, "role": "teacher"}).json()["items"]
        assert [e["native_id"] for e in got] == ["tea-1-s1"]
        got = c.get("/v1/enrollments", params={"person_id": stu1}).json()["items"]
        assert [e["native_id"] for e in got] == ["stu-1-s1"]
        got = c.get("/v1/people", params={"role": "teacher"}).json()["items"]
        assert [p["native_id"] for p in got] == ["tea-1"]
        course = str(record_id("t1", "course", SRC, "math-7"))
        assert len(c.get("/v1/sections", params={"course_id": course}).json()["items"]) == 2
        assert c.get("/v1/enrollments", params={"section_id": str(uuid.uuid4())}).json()["items"] == []


def test_unknown_query_parameter_is_refused_with_422_naming_it(api):
    with api.auth_client("t1", READ) as c:
        r = c.get("/v1/people", params={"sort": "family_name", "fields": "id"})
        body = assert_problem(r, 422)
        assert {"query.sort", "query.fields"} <= error_paths(body)
        # a filter of another collection is unknown here
        body = assert_problem(c.get("/v1/people", params={"section_id": str(uuid.uuid4())}), 422)
        assert "query.section_id" in error_paths(body)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "eyJmb28iOiJiYXIifQ", "%%%", "MjAyNi0wMS0wMXxub3QtYS11dWlk"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: query validation, before any SQL; paging runs on both backends in the listing tests
def test_invalid_cursor_is_refused_with_422(api, cursor):
    with api.auth_client("t1", READ) as c:
        body = assert_problem(c.get("/v1/people", params={"cursor": cursor}), 422)
    assert "query.cursor" in error_paths(body)


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5", ""])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: query validation, before any SQL; the bounds themselves are read on both backends (test_limit_at_the_bounds_is_accepted)
def test_limit_out_of_range_is_refused_with_422(api, limit):
    with api.auth_client("t1", READ) as c:
        body = assert_problem(c.get("/v1/people", params={"limit": limit}), 422)
    assert "query.limit" in error_paths(body)


def test_limit_at_the_bounds_is_accepted(api, store):
    seed_people(store, "t1", ["a", "b"])
    with api.auth_client("t1", READ) as c:
        assert len(ids_of(c.get("/v1/people", params={"limit": 1}))) == 1
        assert len(ids_of(c.get("/v1/people", params={"limit": api.settings.page_size_max}))) == 2


@pytest.mark.parametrize(
    "params, name",
    [
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"status": "deleted"}, "status"),
        ({"role": "x", "section_id": "not-a-uuid"}, "section_id"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: query validation, before any SQL; the filters run on both backends in the listing tests
def test_invalid_filter_value_is_refused_with_422_naming_it(api, params, name):
    with api.auth_client("t1", READ) as c:
        body = assert_problem(c.get("/v1/enrollments", params=params), 422)
    assert f"query.{name}" in error_paths(body)


def test_people_read_with_roster_core_scope_have_no_demographics(api):
    demo = {"birth_date": "2012-03-04", "sex": "female", "groups": ["ell"]}
    with api.auth_client("t1", ["records.write"]) as w:
        assert post_batch(w, [org("t1"), person("t1", "p-1", demographics=demo)]).status_code == 201
    pid = str(record_id("t1", "person", SRC, "p-1"))
    with api.auth_client("t1", ["roster-core.readonly"]) as core, api.auth_client("t1", ["roster.readonly"]) as full:
        listed = core.get("/v1/people")
        assert "demographics" not in listed.json()["items"][0] and "2012-03-04" not in listed.text
        one = core.get(f"/v1/people/{pid}")
        assert one.status_code == 200 and "demographics" not in one.json() and "2012-03-04" not in one.text
        assert one.json()["given_name"] == "Ada"

        assert full.get("/v1/people").json()["items"][0]["demographics"]["birth_date"] == "2012-03-04"
        assert full.get(f"/v1/people/{pid}").json()["demographics"]["sex"] == "female"


def test_demographics_scope_alone_does_not_read_people(api):
    with api.auth_client("t1", ["roster-demographics.readonly"]) as c:
        body = assert_problem(c.get("/v1/people"), 403)
    assert "roster-core.readonly" in body["detail"]


# --- writing: POST /v1/batches -------------------------------------------------------------------


def test_batch_is_stored_and_answers_201_with_counts(api, store):
    with api.auth_client("t1") as c:
        r = post_batch(c, [org("t1"), person("t1", "p-1"), person("t1", "p-2")])
        assert r.status_code == 201, r.text
        assert r.json()["created"] == 3
        again = post_batch(c, [org("t1"), person("t1", "p-1"), person("t1", "p-2")])
        assert again.json()["created"] == 0 and again.json()["unchanged"] == 3
    assert store.records.count("t1", "person") == 2


def test_malformed_json_is_refused_with_400_problem(api):
    with api.auth_client("t1") as c:
        r = c.post("/v1/batches", content=b'{"records": [', headers={"content-type": "application/json"})
    body = assert_problem(r, 400)
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    "ctype, content",
    [("text/plain", b'{"records": []}'), ("application/x-www-form-urlencoded", b"records=1"), (None, b'{"records": []}')],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused on the request's headers, before the body is read; batches are written on both backends by the batch tests
def test_batch_in_the_wrong_content_type_is_refused_with_415(api, ctype, content):
    with api.auth_client("t1") as c:
        r = c.post("/v1/batches", content=content, headers={"content-type": ctype} if ctype else {})
    body = assert_problem(r, 415)
    assert "application/json" in body["detail"]


def test_unknown_field_in_a_record_is_refused_with_422_naming_records_i_field(api, store):
    with api.auth_client("t1") as c:
        r = post_batch(c, [org("t1"), person("t1", "p-1", nickname="Addie")])
    body = assert_problem(r, 422)
    assert "records[1].nickname" in error_paths(body)
    assert "Addie" not in r.text
    assert store.records.count("t1", "org") == 0


def test_batch_with_one_invalid_record_stores_nothing(api, store):
    with api.auth_client("t1") as c:
        r = post_batch(c, [org("t1"), person("t1", "p-1"), person("t1", "p-2", email="not-an-email"), person("t1", "p-3")])
    body = assert_problem(r, 422)
    assert "records[2].email" in error_paths(body)
    assert "not-an-email" not in r.text
    assert store.records.count("t1", "org") == 0
    assert store.records.count("t1", "person") == 0


def test_batch_with_a_broken_reference_stores_nothing(api, store):
    ghost = str(record_id("t1", "section", SRC, "ghost"))
    bad = {"kind": "enrollment", "source": SRC, "native_id": "e-1", "role": "student",
           "person_id": str(record_id("t1", "person", SRC, "p-1")), "section_id": ghost}
    with api.auth_client("t1") as c:
        r = post_batch(c, [org("t1"), person("t1", "p-1"), bad])
    body = assert_problem(r, 422)
    assert any("section_id" in p for p in error_paths(body))
    assert store.records.count("t1", "person") == 0


@pytest.mark.parametrize("body", [[], {"records": {}}, {"records": [], "extra": 1}, {"items": []}])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused by the body's validation, before any write; batches are written on both backends by the batch tests
def test_batch_must_be_an_object_with_a_records_array(api, body):
    with api.auth_client("t1") as c:
        assert_problem(c.post("/v1/batches", json=body), 422)


def test_oversize_batch_is_refused_with_413(make_api, store):
    api = make_api(max_body_bytes=2048)
    records = [org("t1")] + [person("t1", f"p-{i}") for i in range(40)]
    with api.auth_client("t1") as c:
        r = post_batch(c, records)
        assert_problem(r, 413)
        # a chunked body (no Content-Length) is cut off too
        payload = httpx.Request("POST", "/", json={"records": records}).read()

        def chunks():
            for i in range(0, len(payload), 512):
                yield payload[i : i + 512]

        r = c.post("/v1/batches", content=chunks(), headers={"content-type": "application/json"})
        assert_problem(r, 413)
    with api.auth_client("t1") as c:
        assert post_batch(c, [org("t1")]).status_code == 201  # under the limit: fine
    assert store.records.count("t1", "person") == 0


def test_writing_without_records_write_is_refused_with_403_naming_the_scope(api, store):
    with api.auth_client("t1", ["roster.readonly", "evidence.write"]) as c:
        r = post_batch(c, [org("t1")])
    body = assert_problem(r, 403)
    assert "records.write" in body["detail"]
    assert 'scope="records.write"' in r.headers["www-authenticate"]
    assert store.records.count("t1", "org") == 0


# --- errors, readiness, routes, request ids --------------------------------------------------------


def test_every_error_answer_is_an_rfc9457_problem(make_api):
    api = make_api(max_body_bytes=2048)
    pid = uuid.uuid4()
    with api.auth_client("t1") as c, api.client() as anon, api.auth_client("t1", ["competencies.readonly"]) as other:
        answers = {
            401: anon.get("/v1/people"),
            403: other.get("/v1/people"),
            404: c.get(f"/v1/people/{pid}"),
            405: c.delete("/v1/people"),
            413: c.post("/v1/batches", content=b"{" + b" " * 4096 + b"}", headers={"content-type": "application/json"}),
            415: c.post("/v1/batches", content=b"x", headers={"content-type": "text/csv"}),
            422: c.get("/v1/people/not-a-uuid"),
            400: c.post("/v1/batches", content=b"{", headers={"content-type": "application/json"}),
        }
        for status, r in answers.items():
            body = assert_problem(r, status)
            assert body.get("instance", r.request.url.path) == r.request.url.path
        assert "GET" in answers[405].headers["allow"]
        assert "query.limit" in error_paths(assert_problem(c.get("/v1/people?limit=0"), 422))
        assert "path.record_id" in error_paths(answers[422].json())


def test_unknown_route_is_a_404_problem(api):
    with api.client() as anon, api.auth_client("t1", READ) as c:
        for r in (anon.get("/v1/no-such-thing"), c.get("/v1/no-such-thing"), anon.get("/nowhere")):
            assert_problem(r, 404)


def test_unhandled_error_is_a_500_problem_carrying_the_request_id(api, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(api.store.records, "page", broken)
    with api.auth_client("t1", READ) as c:
        r = c.get("/v1/people", headers={"X-Request-ID": "crash-123"})
    assert_problem(r, 500)
    assert "went away" not in r.text
    assert r.headers["x-request-id"] == "crash-123"


def test_readyz_is_200_on_a_migrated_database(api):
    with api.client() as c:
        r = c.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


@contextmanager
def serve_settings(settings: Any) -> Iterator[str]:
    """A server for an app built from ``settings`` alone (no fixture store): its base URL."""
    from gateway.api.app import create_app
    from tests.conftest import serve

    app = create_app(settings)
    try:
        with serve(app) as base_url:
            yield base_url
    finally:
        app.state.ctx.store.dispose()


def test_readyz_is_503_problem_on_an_unmigrated_database(tmp_path):
    from gateway.config import Settings

    with serve_settings(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}")) as base:
        r = httpx.get(f"{base}/readyz")
        assert httpx.get(f"{base}/healthz").status_code == 200
    body = assert_problem(r, 503)
    assert "migrate" in body["detail"]


def test_readyz_is_503_problem_when_the_database_is_unreachable():
    from gateway.config import Settings
    from tests.conftest import free_port

    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing?connect_timeout=2"
    with serve_settings(Settings(database_url=url)) as base:
        r = httpx.get(f"{base}/readyz", timeout=30)
    body = assert_problem(r, 503)
    assert "unreachable" in body["detail"]
    assert "nobody" not in r.text


def test_request_id_is_echoed_back(api):
    with api.client() as c:
        r = c.get("/healthz", headers={"X-Request-ID": "abc-123.x:y_z"})
        assert r.headers["x-request-id"] == "abc-123.x:y_z"
        failed = c.get("/v1/people", headers={"X-Request-ID": "req-401"})
        assert failed.status_code == 401 and failed.headers["x-request-id"] == "req-401"


def test_request_id_is_generated_when_absent_or_unsafe(api):
    with api.client() as c:
        a, b = c.get("/healthz"), c.get("/healthz")
        assert re.fullmatch(r"[0-9a-f]{32}", a.headers["x-request-id"])
        assert a.headers["x-request-id"] != b.headers["x-request-id"]
        for unsafe in ("has spaces in it", "x" * 200, "<script>", "a\tb"):
            r = c.get("/healthz", headers={"X-Request-ID": unsafe})
            assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), unsafe
