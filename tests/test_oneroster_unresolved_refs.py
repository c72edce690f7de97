"""References that point outside a OneRoster CSV package (issue 15 item 2).

Tolerant (the default): the record is stored and holds the reference unresolved; the
import report lists one ``unresolved-reference`` warning per target (file, row, column,
sourcedId), with a count; reads show the reference unresolved (canonical API:
``extensions["unresolved"]``; OneRoster REST: the GUIDRef as sent plus
``metadata["tessera.unresolved"]``); and a later package from the same source that brings
the target resolves it, with no re-import. ``strict=True`` refuses as before, same words.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import respx
from sqlalchemy import select

from adapters.oneroster.csv import ingest
from adapters.oneroster.csv.ingest import import_package, parse_package
from gateway.errors import IntegrityError, ValidationError
from gateway.model import Enrollment, record_id
from gateway.store import Store
from gateway.store import tables as t
from tests import factories as f
from tests.conftest import Api
from tests.test_oneroster_csv import FIX, T, errors_of, manifest, package, snapshot

V12 = "/ims/oneroster/rostering/v1p2"
V11 = "/ims/oneroster/v1p1"
SRC = "sis"
ROSTER = ["roster.readonly"]
COURSES = (FIX / "district-v1p2" / "courses.csv").read_text()
FULL = dict(orgs="bulk", academicSessions="bulk", courses="bulk", classes="bulk", users="bulk", roles="bulk",
            demographics="bulk", enrollments="bulk")


def without_courses(tmp_path: Path) -> Path:
    """The fixture district with no courses.csv: both classes name a course it does not send."""
    files = {k: v for k, v in FULL.items() if k != "courses"}
    return package(tmp_path, manifest=manifest(**files), courses=None)


def courses_only(tmp_path: Path) -> Path:
    empty = {n: None for n in FULL if n != "courses"}
    return package(tmp_path, manifest=manifest(courses="delta"), courses=COURSES, **empty)


def rid(kind: str, sid: str, source: str = SRC) -> Any:
    return record_id(T, kind, source, sid)


def warnings(report: Any, kind: str = "unresolved-reference") -> list[tuple[str | None, str | None, str]]:
    return [(d.location, d.field, d.message) for d in report.deviations.items if d.kind == kind]


def class_updated_at(store: Store, sid: str) -> Any:
    with store.engine.connect() as conn:
        return conn.scalar(select(t.sections.c.updated_at).where(t.sections.c.id == rid("section", sid)))


# --------------------------------------------------------------------------- import: kept, listed, refused when strict


def test_a_class_whose_course_file_is_absent_is_stored_and_listed(store: Store, tmp_path: Path) -> None:
    report = import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    assert warnings(report) == [
        ("classes.csv row 2", "courseSourcedId",
         "courseSourcedId 'c1': no such course in courses.csv or the store; kept as an unresolved reference"),
        ("classes.csv row 3", "courseSourcedId",
         "courseSourcedId 'c2': no such course in courses.csv or the store; kept as an unresolved reference"),
    ]
    assert report.deviations.counts == {"unresolved-reference": 2} and report.unresolved == {"course": 2}
    k1 = store.records.get(T, "section", rid("section", "k1"))
    assert k1.course_id == rid("course", "c1")  # the id the course will have: nothing invented, nothing to rewrite
    assert k1.extensions["unresolved"] == [{"field": "course_id", "kind": "course", "id": str(rid("course", "c1")), "native_id": "c1"}]
    assert store.records.count(T, "course") == 0  # no placeholder course
    # the report's counts match what was stored
    assert report.result.counts["section"].created == 2 and report.records == sum(c.created for c in report.result.counts.values())


def test_strict_refuses_the_same_package_with_the_same_words_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as exc:
        import_package(store, without_courses(tmp_path), tenant=T, source=SRC, strict=True)
    assert errors_of(exc) == [
        ("classes.csv row 2", "courseSourcedId", "courseSourcedId 'c1': no such course in courses.csv or the store"),
        ("classes.csv row 3", "courseSourcedId", "courseSourcedId 'c2': no such course in courses.csv or the store"),
    ]
    assert snapshot(store) == {}


def test_every_reference_kind_outside_the_package_is_held(store: Store, tmp_path: Path) -> None:
    """An org whose parent is another district's, a term whose school year came earlier
    from elsewhere, a course's school year and org, a class's school and terms, a user's
    agents, roles' orgs and primary org, an enrollment whose user AND class are unknown."""
    d = package(
        tmp_path,
        orgs="sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
             "s1,,,Maple Elementary,school,0101,other-district\n"
             "s2,,,Maple Middle,school,0202,other-district\n",
        academicSessions="sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n"
                         "t1,,,Fall 2025,semester,2025-08-15,2026-01-16,y-earlier,2026\n",
        courses="sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\n"
                "c1,,,y-earlier,Mathematics 5,MATH5,05,s1,mathematics,\n"
                "c2,,,y-earlier,Science 7,SCI7,07,s-gone,science,\n",
        classes="sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,"
                "termSourcedIds,subjects,subjectCodes,periods\n"
                "k1,,,Math 5,05,c1,M5,scheduled,,s1,t1,,,\n"
                "k2,,,Science 7,07,c2,S7,scheduled,,s-gone,\"t1,t-gone\",,,\n",
        roles="sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n"
              "r1,,,u1,primary,student,,,s1,\nr2,,,u2,primary,student,,,s2,\nr3,,,u3,primary,teacher,,,s1,\n"
              "r4,,,u3,secondary,teacher,,,s-gone,\nr5,,,u4,primary,guardian,,,other-district,\n",
        enrollments="sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
                    "e1,,,k1,s1,u1,student,false,,\n"
                    "e2,,,k-gone,s2,u-gone,student,false,,\n",
        users=(FIX / "district-v1p2" / "users.csv").read_text().replace(",u4,05,", ",\"u4,u-parent\",05,").replace(",,,s2,,", ",,,s-gone,,"),
    )
    report = import_package(store, d, tenant=T, source=SRC)
    held = {(loc, col): msg.split("'")[1] for loc, col, msg in warnings(report)}
    assert held == {
        # each target once, where strict mode names it (references to other files are
        # gathered before same-file ones: the school year at the course, the district at the role)
        ("roles.csv row 6", "orgSourcedId"): "other-district",
        ("courses.csv row 2", "schoolYearSourcedId"): "y-earlier",
        ("courses.csv row 3", "orgSourcedId"): "s-gone",
        ("classes.csv row 3", "termSourcedIds"): "t-gone",
        ("users.csv row 2", "agentSourcedIds"): "u-parent",
        ("enrollments.csv row 3", "classSourcedId"): "k-gone",
        ("enrollments.csv row 3", "userSourcedId"): "u-gone",
    }
    assert report.unresolved == {"org": 2, "academic_session": 2, "person": 2, "section": 1}

    def marked(kind: str, sid: str) -> dict[str, str]:
        rec = store.records.get(T, kind, rid(kind, sid))
        return {e["field"]: e["native_id"] for e in rec.extensions.get("unresolved", [])}

    assert marked("org", "s1") == {"parent_id": "other-district"}
    assert marked("academic_session", "t1") == {"parent_id": "y-earlier"}
    assert marked("course", "c1") == {"session_id": "y-earlier"}
    assert marked("course", "c2") == {"session_id": "y-earlier", "org_id": "s-gone"}
    assert marked("section", "k1") == {}
    assert marked("section", "k2") == {"org_id": "s-gone", "session_ids[1]": "t-gone"}
    assert marked("person", "u1") == {"agent_ids[1]": "u-parent"}
    assert marked("person", "u2") == {"primaryOrg": "s-gone"}
    assert marked("person", "u3") == {"roles[1].org_id": "s-gone"}
    assert marked("person", "u4") == {"roles[0].org_id": "other-district"}
    assert marked("enrollment", "e2") == {"person_id": "u-gone", "section_id": "k-gone"}
    assert marked("enrollment", "e1") == {}
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="strict-sis", strict=True)
    assert {(loc, col) for loc, col, _ in errors_of(exc)} == set(held)


def test_a_11_users_orgs_outside_the_package_are_held(store: Store, tmp_path: Path) -> None:
    users = (FIX / "district-v1p1" / "users.csv").read_text()
    header, first, *rest = users.splitlines()
    cols = header.split(",")
    cells = next(csv.reader([first]))
    cells[cols.index("orgSourcedIds")] = cells[cols.index("orgSourcedIds")] + ",s-gone"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    d = package(tmp_path, "v1p1", users="\n".join([header, buf.getvalue().rstrip("\n"), *rest]) + "\n")
    report = import_package(store, d, tenant=T, source=SRC)
    assert [(loc, col) for loc, col, _ in warnings(report)] == [("users.csv row 2", "orgSourcedIds")]
    person = store.records.get(T, "person", rid("person", cells[0]))
    assert [e["native_id"] for e in person.extensions["unresolved"]] == ["s-gone"]


# --------------------------------------------------------------------------- reads, and resolving by itself


def test_reads_show_the_reference_unresolved_until_a_later_package_brings_the_target(api: Api, tmp_path: Path) -> None:
    store = api.store
    import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    c = api.auth_client(T, ROSTER)
    section = f"/v1/sections/{rid('section', 'k1')}"
    body = c.get(section).json()
    assert body["course_id"] == str(rid("course", "c1"))
    assert body["extensions"]["unresolved"] == [{"field": "course_id", "kind": "course", "id": str(rid("course", "c1")), "native_id": "c1"}]
    listed = {s["native_id"]: s for s in c.get("/v1/sections").json()["items"]}
    assert listed["k1"]["extensions"]["unresolved"][0]["native_id"] == "c1"
    wire = c.get(f"{V12}/classes/k1").json()["class"]
    assert wire["course"] == {"href": "/courses/c1", "sourcedId": "c1", "type": "course"}
    assert wire["metadata"] == {"tessera.unresolved": ["course"]}
    assert c.get(f"{V11}/classes/k1").json()["class"]["metadata"] == {"tessera.unresolved": ["course"]}
    assert c.get(f"{V12}/courses/c1").status_code == 404
    before = class_updated_at(store, "k1")

    report = import_package(store, courses_only(tmp_path), tenant=T, source=SRC)  # package B: a delta with the courses
    assert report.deviations.total == 0 and "section" not in report.result.counts
    body = c.get(section).json()
    assert "unresolved" not in body["extensions"] and body["course_id"] == str(rid("course", "c1"))
    assert "unresolved" not in {s["native_id"]: s for s in c.get("/v1/sections").json()["items"]}["k1"]["extensions"]
    wire = c.get(f"{V12}/classes/k1").json()["class"]
    assert wire["course"]["sourcedId"] == "c1" and "metadata" not in wire
    assert c.get(f"{V12}/courses/c1").json()["course"]["title"] == "Mathematics 5"
    assert class_updated_at(store, "k1") == before  # package A was not re-imported nor the class rewritten


def test_a_target_from_another_source_does_not_resolve_it(api: Api, tmp_path: Path) -> None:
    """Record ids include the source (two systems may use one sourcedId for different
    things): a course that another source sends is another record, and the class's
    reference stays unresolved, and says so."""
    store = api.store
    import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    import_package(store, courses_only(tmp_path), tenant=T, source="other-sis", strict=False)
    c = api.auth_client(T, ROSTER)
    assert "unresolved" in c.get(f"/v1/sections/{rid('section', 'k1')}").json()["extensions"]
    assert c.get(f"{V12}/classes/k1").json()["class"]["metadata"] == {"tessera.unresolved": ["course"]}
    import_package(store, courses_only(tmp_path), tenant=T, source=SRC)
    assert "metadata" not in c.get(f"{V12}/classes/k1").json()["class"]


def test_reimporting_the_package_once_the_target_is_stored_drops_the_marker(store: Store, tmp_path: Path) -> None:
    import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    import_package(store, courses_only(tmp_path), tenant=T, source=SRC)
    report = import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    assert report.deviations.total == 0
    assert "unresolved" not in store.records.get(T, "section", rid("section", "k1")).extensions


def test_an_export_writes_the_reference_as_it_was_sent(store: Store, tmp_path: Path) -> None:
    from adapters.oneroster.csv.export import export_package

    import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    out = tmp_path / "out.zip"
    export_package(store, out, tenant=T)
    records, report = parse_package(out, tenant=T, source=SRC)
    k1 = next(r for r in records if r.KIND == "section" and r.native_id == "k1")
    assert k1.course_id == rid("course", "c1") and report.unresolved == {"course": 2}
    assert not any("tessera.unresolved" in str(r.extensions) for r in records)  # the marker is not data: never read back


# --------------------------------------------------------------------------- deletions of nothing, rows of nobody


def test_a_delta_deletion_of_a_record_never_stored_is_skipped_with_a_warning(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source=SRC)
    before = snapshot(store)
    empty = {n: None for n in FULL if n != "enrollments"}
    d = package(tmp_path, manifest=manifest(enrollments="delta"), **empty, enrollments=(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
        "e-nobody,tobedeleted,2025-10-01T08:30:00.000Z,,,,,,,\n"
        "e1,tobedeleted,2025-10-01T08:30:00.000Z,,,,,,,\n"))
    report = import_package(store, d, tenant=T, source=SRC)
    assert warnings(report, "nothing-to-delete") == [
        ("enrollments.csv row 2", "status",
         "row deletes enrollment 'e-nobody', which is neither stored nor in this import: nothing to delete, row skipped")]
    after = snapshot(store)
    assert after[("enrollment", SRC, "e1")][0] == "tobedeleted" and ("enrollment", SRC, "e-nobody") not in after
    assert {k for k in after if after[k] != before[k]} == {("enrollment", SRC, "e1")}


def test_demographics_of_a_user_in_neither_the_package_nor_the_store_are_not_kept(store: Store, tmp_path: Path) -> None:
    demo = (FIX / "district-v1p2" / "demographics.csv").read_text() + "u-gone,,,2015-01-01,male,,,,,,,,,,,\n"
    report = import_package(store, package(tmp_path, demographics=demo), tenant=T, source=SRC)
    assert [(loc, kind) for loc, kind, _ in warnings(report, "orphan-row")] == [("demographics.csv row 3", "sourcedId")]
    assert store.records.count(T, "person") == 4
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, demographics=demo), tenant=T, source="sis2", strict=True)
    assert [(loc, col) for loc, col, _ in errors_of(exc)] == [("demographics.csv row 3", "sourcedId")]


# --------------------------------------------------------------------------- streamed enrollments: the same behaviour


@pytest.mark.parametrize("child", [False, True], ids=["in-process", "reader-process"])
def test_streamed_enrollments_hold_references_as_the_one_batch_import_does(store: Store, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch, child: bool) -> None:
    monkeypatch.setattr(ingest, "STREAM_BATCH", 2)
    monkeypatch.setattr(ingest, "READER_BYTES", 0 if child else 1 << 62)
    text = (FIX / "district-v1p2" / "enrollments.csv").read_text() + (
        "e5,,,k1,s1,u-ghost,student,false,,\ne6,,,k-ghost,s1,u-ghost,student,false,,\ne7,,,k2,s2,u1,student,false,,\n")
    one = import_package(store, package(tmp_path, enrollments=text), tenant="t2", source=SRC, stream=False)
    report = import_package(store, package(tmp_path, enrollments=text), tenant=T, source=SRC, stream=True)
    assert report.streamed and report.reader_process == child
    assert warnings(report) == warnings(one) and report.unresolved == one.unresolved == {"person": 1, "section": 1}
    assert report.deviations.counts == {"unresolved-reference": 2}
    e6 = store.records.get(T, "enrollment", rid("enrollment", "e6"))
    assert {e["field"] for e in e6.extensions["unresolved"]} == {"person_id", "section_id"}
    e5 = store.records.get(T, "enrollment", rid("enrollment", "e5"))
    assert [e["native_id"] for e in e5.extensions["unresolved"]] == ["u-ghost"]
    assert "unresolved" not in store.records.get(T, "enrollment", rid("enrollment", "e7")).extensions
    assert report.result.counts["enrollment"].created == one.result.counts["enrollment"].created == 7


# --------------------------------------------------------------------------- the store: a held reference must say what it holds


def test_the_store_refuses_a_marker_that_does_not_name_its_id_truthfully(store: Store) -> None:
    school = f.org("s1", tenant=T)
    crs = f.course("c1", school, T)
    sec = f.section("k1", crs, school, T)
    forged = sec.model_copy(update={"extensions": {"unresolved": [
        {"field": "course_id", "kind": "course", "id": str(crs.id), "native_id": "something-else"}]}})
    with pytest.raises(IntegrityError):
        store.records.apply(T, [school, forged])
    honest = sec.model_copy(update={"extensions": {"unresolved": [
        {"field": "course_id", "kind": "course", "id": str(crs.id), "native_id": crs.native_id}]}})
    store.records.apply(T, [school, honest])
    unheld = f.enrollment(f.person("u1", school, T), sec, T)
    with pytest.raises(IntegrityError):
        store.records.apply(T, [unheld])  # its person is neither in the batch nor stored, and it holds nothing


def test_an_enrollment_of_an_unknown_user_counts_no_learner(store: Store) -> None:
    """An enrollment holding its person unresolved is a relation to nobody known yet: the
    memberships and the reports' populations count only people that are stored."""
    from gateway.reports.population import resolve_population
    from gateway.reports.scope import Scope
    from gateway.store.unresolved import hold

    school = f.org("s1", tenant=T)
    crs = f.course("c1", school, T)
    sec = f.section("k1", crs, school, T)
    ada = f.person("ada", school, T)
    ghost = rid("person", "u-ghost", "tests")
    held = hold(Enrollment(tenant=T, source="tests", native_id="e-ghost", person_id=ghost, section_id=sec.id, org_id=school.id,
                           role="student"), {"person": {ghost: "u-ghost"}})
    store.records.apply(T, [school, crs, sec, ada, f.enrollment(ada, sec, T), held])
    with store.engine.connect() as conn:
        pop = resolve_population(conn, T, Scope(section=sec.id, group_by="section"))
    assert pop.learners == {ada.id}
    assert set(store.memberships.people(T, [ada.id, ghost])) == {ada.id}


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_pull_that_brings_the_target_resolves_it_too(store: Store, tmp_path: Path, respx_mock: respx.MockRouter) -> None:
    from tests.test_oneroster_client import Provider, client, wire_course

    import_package(store, without_courses(tmp_path), tenant=T, source=SRC)
    Provider(respx_mock, {"courses": [wire_course("c1", org="s1"), wire_course("c2", org="s2")]})
    with client() as c:  # an incremental pull from the same source's REST provider
        c.pull(store, tenant=T, source=SRC, since=datetime(2026, 1, 1, tzinfo=UTC))
    shown = store.records.show_unresolved(T, [store.records.get_json(T, "section", rid("section", "k1"))])[0]
    assert '"unresolved"' not in shown and store.records.count(T, "course") == 2


def test_each_held_reference_resolves_on_its_own(store: Store, tmp_path: Path) -> None:
    """A class holding two unresolved terms: the one a later package brings leaves the list,
    the other stays; the stored record is never rewritten."""
    classes = (FIX / "district-v1p2" / "classes.csv").read_text().replace('"t1,y2026"', '"t-next,t-later"')
    import_package(store, package(tmp_path, classes=classes), tenant=T, source=SRC)
    stored = store.records.get_json(T, "section", rid("section", "k2"))

    def shown() -> list[str]:
        doc = orjson.loads(store.records.show_unresolved(T, [store.records.get_json(T, "section", rid("section", "k2"))])[0])
        return [e["native_id"] for e in doc["extensions"].get("unresolved", [])]

    assert shown() == ["t-next", "t-later"]
    assert store.records.show_unresolved(T, [stored]) == [stored]  # nothing resolved: served as stored, byte for byte
    term = "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear\n" \
           "t-next,,,Spring 2026,semester,2026-01-17,2026-06-10,y2026,2026\n"
    empty = {n: None for n in FULL if n != "academicSessions"}
    import_package(store, package(tmp_path, manifest=manifest(academicSessions="delta"), academicSessions=term, **empty),
                   tenant=T, source=SRC)
    assert shown() == ["t-later"]
    assert store.records.get_json(T, "section", rid("section", "k2")) == stored


def test_the_cli_import_lists_the_references_it_kept_unresolved(cli: Any, tmp_path: Path) -> None:
    cli("migrate")
    result = cli("import", "oneroster", str(without_courses(tmp_path)), "--tenant", T)
    assert "unresolved-reference" in result.output and "courseSourcedId 'c1'" in result.output
