"""OneRoster 1.2 Rostering REST/JSON binding, provider side, over real HTTP: envelopes, paging
(X-Total-Count, Link), filter/sort/fields, imsx_StatusInfo errors, tenant isolation, nested
paths, scopes; and the 1.1 read paths."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from gateway.store import Store
from tests import factories as f
from tests.conftest import Api

V12 = "/ims/oneroster/rostering/v1p2"
V11 = "/ims/oneroster/v1p1"
CORE = ["roster-core.readonly"]


@pytest.fixture
def or_api(api: Api) -> Api:
    """The real gateway (the oneroster adapter comes from the registry) on a real port."""
    return api


def _minor(r: httpx.Response) -> str:
    return r.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def _roster(store: Store, tenant: str = "t1", n: int = 5) -> dict[str, Any]:
    school = f.org("s1", tenant=tenant)
    other = f.org("s2", tenant=tenant)
    crs = f.course("c1", school, tenant)
    sec = f.section("k1", crs, school, tenant)
    crs2 = f.course("c2", other, tenant)
    sec2 = f.section("k2", crs2, other, tenant)
    students = [f.person(f"u{i}", school, tenant) for i in range(n)]
    teacher = f.person("teach", school, tenant, role="teacher")
    recs = [school, other, crs, crs2, sec, sec2, *students, teacher,
            *(f.enrollment(p, sec, tenant) for p in students), f.enrollment(teacher, sec, tenant, role="teacher"),
            f.enrollment(students[0], sec2, tenant)]
    store.records.apply(tenant, recs)
    return {"school": school, "section": sec, "students": students, "teacher": teacher}


def test_collection_answers_in_the_binding_envelope_with_total_count(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    r = c.get(f"{V12}/users")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"users"} and len(body["users"]) == 6
    assert r.headers["X-Total-Count"] == "6"
    u = next(u for u in body["users"] if u["sourcedId"] == "u0")
    assert u["roles"][0]["org"]["sourcedId"] == "s1" and u["status"] == "active"


def test_paging_with_limit_and_offset_covers_every_record_exactly_once(or_api: Api):
    _roster(or_api.store, n=23)
    c = or_api.auth_client("t1", CORE)
    seen: list[str] = []
    url: str | None = f"{V12}/users?limit=5"
    pages = 0
    while url:
        r = c.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["X-Total-Count"] == "24"
        seen += [u["sourcedId"] for u in r.json()["users"]]
        links = {part.split('rel="')[1].rstrip('"'): part.split(">")[0].lstrip("<") for part in r.headers["Link"].split(", ")}
        assert "first" in links and "last" in links
        url = links.get("next")
        pages += 1
    assert pages == 5
    assert sorted(seen) == sorted({*(f"u{i}" for i in range(23)), "teach"}) and len(seen) == len(set(seen))


def test_prev_link_points_one_page_back(or_api: Api):
    _roster(or_api.store, n=10)
    r = or_api.auth_client("t1", CORE).get(f"{V12}/users?limit=4&offset=4")
    assert 'offset=0>; rel="prev"' in r.headers["Link"] and "offset=8" in r.headers["Link"]


def test_filter_on_date_last_modified_returns_only_later_changes(or_api: Api):
    parts = _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    first = c.get(f"{V12}/users/u1").json()["user"]["dateLastModified"]
    time.sleep(0.01)
    changed = parts["students"][1].model_copy(update={"given_name": "Grace"})
    or_api.store.records.apply("t1", [changed])
    r = c.get(f"{V12}/users", params={"filter": f"dateLastModified>'{first}'"})
    assert r.status_code == 200, r.text
    assert [u["sourcedId"] for u in r.json()["users"]] == ["u1"]
    assert r.json()["users"][0]["givenName"] == "Grace"


def test_filter_on_a_field_without_a_column_is_evaluated(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    r = c.get(f"{V12}/users", params={"filter": "familyName~'lovelace u3' OR sourcedId='teach'"})
    assert sorted(u["sourcedId"] for u in r.json()["users"]) == ["teach", "u3"]
    assert r.headers["X-Total-Count"] == "2"


def test_invalid_filter_field_is_400_invalid_filter_field(or_api: Api):
    c = or_api.auth_client("t1", CORE)
    r = c.get(f"{V12}/users", params={"filter": "shoeSize='42'"})
    assert r.status_code == 400
    assert r.json()["imsx_codeMajor"] == "failure" and r.json()["imsx_severity"] == "error"
    assert _minor(r) == "invalid_filter_field"


def test_malformed_filter_is_400_invalid_filter_field_naming_the_position(or_api: Api):
    r = or_api.auth_client("t1", CORE).get(f"{V12}/users", params={"filter": "familyName=jones"})
    assert r.status_code == 400 and _minor(r) == "invalid_filter_field"
    assert "position 11" in r.json()["imsx_description"]


def test_fields_selects_members_and_unknown_is_invalid_selection_field(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    r = c.get(f"{V12}/users", params={"fields": "sourcedId,givenName"})
    assert all(set(u) == {"sourcedId", "givenName"} for u in r.json()["users"])
    r = c.get(f"{V12}/users", params={"fields": "sourcedId,shoeSize"})
    assert r.status_code == 400 and _minor(r) == "invalid_selection_field"


def test_sort_and_order_by(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    names = [u["familyName"] for u in c.get(f"{V12}/users", params={"sort": "familyName", "orderBy": "desc"}).json()["users"]]
    assert names == sorted(names, reverse=True)
    ids = [u["sourcedId"] for u in c.get(f"{V12}/users", params={"sort": "sourcedId"}).json()["users"]]
    assert ids == sorted(ids)
    r = c.get(f"{V12}/users", params={"sort": "shoeSize"})
    assert r.status_code == 400 and _minor(r) == "invaliddata" and "shoeSize" in r.json()["imsx_description"]


def test_single_object_envelope_and_unknown_id_is_404_unknownobject(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    assert c.get(f"{V12}/classes/k1").json()["class"]["course"]["sourcedId"] == "c1"
    assert c.get(f"{V12}/schools/s1").json()["org"]["type"] == "school"
    r = c.get(f"{V12}/users/nobody")
    assert r.status_code == 404 and _minor(r) == "unknownobject"
    # an object of another subset is unknown there
    assert c.get(f"{V12}/students/teach").status_code == 404
    assert c.get(f"{V12}/teachers/teach").json()["user"]["sourcedId"] == "teach"


def test_tenant_isolation(or_api: Api):
    _roster(or_api.store, "t1")
    or_api.store.records.apply("t2", [f.org("other-school", tenant="t2")])
    c2 = or_api.auth_client("t2", CORE)
    assert [o["sourcedId"] for o in c2.get(f"{V12}/orgs").json()["orgs"]] == ["other-school"]
    r = c2.get(f"{V12}/users/u1")
    assert r.status_code == 404 and _minor(r) == "unknownobject"
    assert c2.get(f"{V12}/schools/s1/classes").status_code == 404
    assert c2.get(f"{V12}/users").json() == {"users": []}


def test_nested_paths(or_api: Api):
    _roster(or_api.store, n=3)
    c = or_api.auth_client("t1", CORE)

    def ids(path: str, key: str) -> list[str]:
        r = c.get(V12 + path)
        assert r.status_code == 200, (path, r.text)
        return sorted(x["sourcedId"] for x in r.json()[key])

    assert ids("/schools/s1/classes", "classes") == ["k1"]
    assert ids("/schools/s1/courses", "courses") == ["c1"]
    assert ids("/schools/s1/students", "users") == ["u0", "u1", "u2"]
    assert ids("/schools/s1/teachers", "users") == ["teach"]
    assert ids("/schools/s1/enrollments", "enrollments") == ["k1:teach", "k1:u0", "k1:u1", "k1:u2"]
    assert ids("/classes/k1/students", "users") == ["u0", "u1", "u2"]
    assert ids("/classes/k1/teachers", "users") == ["teach"]
    assert ids("/courses/c1/classes", "classes") == ["k1"]
    assert ids("/users/u0/classes", "classes") == ["k1", "k2"]
    assert ids("/students/u0/classes", "classes") == ["k1", "k2"]
    assert ids("/teachers/teach/classes", "classes") == ["k1"]
    assert ids("/schools/s1/classes/k1/students", "users") == ["u0", "u1", "u2"]
    assert ids("/schools/s1/classes/k1/teachers", "users") == ["teach"]
    # a class of another school, and an unknown parent, are unknown objects
    r = c.get(f"{V12}/schools/s2/classes/k1/students")
    assert r.status_code == 404 and _minor(r) == "unknownobject"
    assert c.get(f"{V12}/schools/nope/classes").status_code == 404
    assert c.get(f"{V12}/students/teach/classes").status_code == 404


def test_nested_paths_take_the_query_parameters(or_api: Api):
    _roster(or_api.store, n=6)
    r = or_api.auth_client("t1", CORE).get(f"{V12}/classes/k1/students", params={"limit": 2, "sort": "sourcedId", "fields": "sourcedId"})
    assert r.json() == {"users": [{"sourcedId": "u0"}, {"sourcedId": "u1"}]}
    assert r.headers["X-Total-Count"] == "6"


def test_no_token_is_401_and_a_token_without_roster_scope_is_403_forbidden(or_api: Api):
    r = or_api.client().get(f"{V12}/users")
    assert r.status_code == 401 and _minor(r) == "unauthorisedrequest"
    r = or_api.auth_client("t1", ["evidence.readonly"]).get(f"{V12}/users")
    assert r.status_code == 403 and _minor(r) == "forbidden"


def test_roster_readonly_reads_rostering_too(or_api: Api):
    _roster(or_api.store)
    assert or_api.auth_client("t1", ["roster.readonly"]).get(f"{V12}/orgs").status_code == 200


def test_demographics_need_the_demographics_scope(or_api: Api):
    r = or_api.auth_client("t1", CORE).get(f"{V12}/demographics")
    assert r.status_code == 403 and _minor(r) == "forbidden"
    r = or_api.auth_client("t1", ["roster-demographics.readonly"]).get(f"{V12}/demographics")
    assert r.status_code == 200 and r.json() == {"demographics": []}


def test_one_point_one_paths_answer_one_point_one_objects(or_api: Api):
    _roster(or_api.store)
    c = or_api.auth_client("t1", CORE)
    u = c.get(f"{V11}/users/u0").json()["user"]
    assert u["role"] == "student" and u["orgs"][0]["sourcedId"] == "s1"
    r = c.get(f"{V11}/users", params={"filter": "shoeSize='1'"})
    assert r.status_code == 400 and _minor(r) == "invalid_filter_field"


def _sessions(store: Store) -> None:
    from datetime import date

    from gateway.model import AcademicSession, SessionType

    school = f.org("s1")
    year = AcademicSession(tenant="t1", source="sis", native_id="y2026", title="2026", type=SessionType.school_year,
                           start_date=date(2025, 8, 1), end_date=date(2026, 6, 30), school_year=2026, org_id=school.id)
    term = AcademicSession(tenant="t1", source="sis", native_id="fall", title="Fall", type=SessionType.term, start_date=date(2025, 8, 1),
                           end_date=date(2025, 12, 20), school_year=2026, parent_id=year.id, org_id=school.id)
    gp = AcademicSession(tenant="t1", source="sis", native_id="gp1", title="GP 1", type=SessionType.grading_period,
                         start_date=date(2025, 8, 1), end_date=date(2025, 10, 1), school_year=2026, parent_id=term.id)
    crs = f.course("c1", school)
    sec = f.section("k1", crs, school).model_copy(update={"session_ids": [term.id]})
    store.records.apply("t1", [school, year, term, gp, crs, sec, f.section("k2", crs, school)])


def test_terms_grading_periods_and_their_nested_paths(or_api: Api):
    _sessions(or_api.store)
    c = or_api.auth_client("t1", CORE)
    assert [s["sourcedId"] for s in c.get(f"{V12}/terms").json()["academicSessions"]] == ["fall"]
    assert c.get(f"{V12}/gradingPeriods/gp1").json()["academicSession"]["type"] == "gradingPeriod"
    assert c.get(f"{V12}/terms/gp1").status_code == 404
    assert [k["sourcedId"] for k in c.get(f"{V12}/terms/fall/classes").json()["classes"]] == ["k1"]
    assert [g["sourcedId"] for g in c.get(f"{V12}/terms/fall/gradingPeriods").json()["academicSessions"]] == ["gp1"]
    assert [t["sourcedId"] for t in c.get(f"{V12}/schools/s1/terms").json()["academicSessions"]] == ["fall"]
    r = c.get(f"{V12}/academicSessions", params={"filter": "type='term' OR type='gradingPeriod'", "sort": "sourcedId"})
    assert [s["sourcedId"] for s in r.json()["academicSessions"]] == ["fall", "gp1"]
    r = c.get(f"{V12}/academicSessions", params={"filter": "startDate<'2025-08-02' AND endDate<='2025-12-20'", "sort": "title"})
    assert [s["sourcedId"] for s in r.json()["academicSessions"]] == ["fall", "gp1"]


def test_demographics_are_served_with_the_demographics_scope(or_api: Api):
    from datetime import date

    from gateway.model import Demographics

    school = f.org("s1")
    p = f.person("u1", school).model_copy(update={"demographics": Demographics(birth_date=date(2012, 5, 1), races=["asian"])})
    or_api.store.records.apply("t1", [school, p, f.person("u2", school)])
    c = or_api.auth_client("t1", ["roster.readonly"])
    body = c.get(f"{V12}/demographics").json()
    assert [d["sourcedId"] for d in body["demographics"]] == ["u1"] and body["demographics"][0]["birthDate"] == "2012-05-01"
    assert c.get(f"{V12}/demographics/u1").json()["demographics"]["asian"] == "true"
    r = c.get(f"{V12}/demographics/u2")
    assert r.status_code == 404 and _minor(r) == "unknownobject"
    assert c.get(f"{V12}/demographics", params={"filter": "birthDate>'2013-01-01'"}).json() == {"demographics": []}


def test_an_unknown_path_under_oneroster_is_an_imsx_404(or_api: Api):
    r = or_api.auth_client("t1", CORE).get(f"{V12}/nothing-here")
    assert r.status_code == 404 and _minor(r) == "unknownobject"


def _require_registered() -> None:
    from adapters.base import discover

    if "oneroster" not in [a.name for a in discover()]:
        pytest.skip("the oneroster adapter is not registered in this environment")


def test_the_registered_adapter_mounts_the_provider(api: Api):
    _require_registered()
    api.store.records.apply("t1", [f.org("s1")])
    r = api.auth_client("t1", CORE).get(f"{V12}/schools")
    assert r.status_code == 200 and [o["sourcedId"] for o in r.json()["orgs"]] == ["s1"]


def test_a_limit_above_the_maximum_pages_at_the_maximum(make_api):
    _require_registered()
    api = make_api(page_size_max=3)
    _roster(api.store, n=5)
    r = api.auth_client("t1", CORE).get(f"{V12}/users", params={"limit": 5000})
    assert r.status_code == 200 and len(r.json()["users"]) == 3 and r.headers["X-Total-Count"] == "6"
    assert "limit=3&offset=3>; rel=\"next\"" in r.headers["Link"]
