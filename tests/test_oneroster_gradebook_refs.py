"""OneRoster CSV gradebook and resources files under the rostering rule for references
outside the package (docs/oneroster-references.md, issue 15): tolerant (the default) keeps
the object and holds the reference, with one ``unresolved-reference`` warning per target;
a result holding its student becomes evidence when a later import stores the student;
``--strict`` refuses as before, naming the place, nothing written. Their values get the
rostering files' tolerance checks (enum case, boolean spellings, dates without a zone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.oneroster.csv.ingest import import_package
from adapters.oneroster.gradebook.storage import ObjectStore
from gateway.errors import ValidationError
from gateway.store import Store
from tests.conftest import Api
from tests.test_oneroster_gradebook import GB
from tests.test_oneroster_gradebook_csv import FIX, GRADEBOOK, LIO, RESULTS, T, package, with_framework
from tests.test_oneroster_resources import FILES
from tests.test_oneroster_resources import package as resources_package

USERS_HEADER = (FIX / "users.csv").read_text(encoding="utf-8").splitlines()[0]


ROLES_HEADER = (FIX / "roles.csv").read_text(encoding="utf-8").splitlines()[0]


def ghost_users() -> dict[str, str]:
    """users.csv and roles.csv with the one user ``ghost`` (a student of s1)."""
    n = len(USERS_HEADER.split(","))
    row = ["ghost", "", "", "true", "ghost", "", "Gus", "Host"] + [""] * (n - 8)
    cols = ROLES_HEADER.split(",")
    values = {"sourcedId": "rg", "userSourcedId": "ghost", "roleType": "primary", "role": "student", "orgSourcedId": "s1"}
    return {"users": USERS_HEADER + "\n" + ",".join(row) + "\n",
            "roles": ROLES_HEADER + "\n" + ",".join(values.get(c, "") for c in cols) + "\n"}


def warnings(report: object, kind: str) -> list[tuple[str | None, str | None]]:
    return [(d.location, d.field) for d in report.deviations.items if d.kind == kind]  # type: ignore[attr-defined]


def nothing_written(store: Store) -> None:
    assert list(store.records.iter_records(T, ["person", "evidence"])) == []
    objs = ObjectStore(store.engine)
    assert all(objs.where(T, ty) == [] for ty in ("lineItem", "result", "resource", "classResource"))


def test_a_result_of_an_unknown_student_is_kept_and_becomes_evidence_when_the_student_arrives(store: Store, tmp_path: Path) -> None:
    with_framework(store)
    two = RESULTS.replace("li1,u1", "li1,ghost") + "r2,,,li1,ghost,fully graded,6,2025-09-10,,,,,,,\n"
    report = import_package(store, package(tmp_path, {**GRADEBOOK, "results": two}), tenant=T, source="sis")
    # one warning per target, at the first row naming it
    assert warnings(report, "unresolved-reference") == [("results.csv row 2", "studentSourcedId")]
    assert report.deviations.counts["unresolved-reference"] == 1
    assert "kept as an unresolved reference" in report.deviations.items[0].message
    stored = ObjectStore(store.engine).get(T, "result", ["r1", "r2"])
    assert set(stored) == {"r1", "r2"}
    assert stored["r1"].data["student"] == {"sourcedId": "ghost", "type": "user"}  # as sent, nothing invented
    assert stored["r1"].derived["unresolved"] == [{"field": "student", "type": "user", "sourcedId": "ghost"}]
    assert list(store.records.iter_records(T, ["evidence"])) == []  # no learner: no evidence yet
    # a later package storing the student derives the held results' evidence, in its own transaction
    later = import_package(store, package(tmp_path, ghost_users(), {"users": "delta", "roles": "delta"}, roster=False), tenant=T, source="sis")
    assert later.deviations.counts.get("unresolved-reference") is None
    evidence = sorted(store.records.iter_records(T, ["evidence"]), key=lambda e: e.provenance.native_id)
    assert [e.provenance.native_id for e in evidence] == ["r1", "r2"]
    (ghost,) = [p for p in store.records.iter_records(T, ["person"]) if p.native_id == "ghost"]
    assert {e.learner_id for e in evidence} == {ghost.id}
    assert [e.score.scaled for e in evidence] == [pytest.approx(0.8), pytest.approx(0.6)]
    after = ObjectStore(store.engine).get(T, "result", ["r1"])["r1"]
    assert "unresolved" not in after.derived and after.data == stored["r1"].data
    # importing the student again derives nothing twice
    import_package(store, package(tmp_path, ghost_users(), {"users": "delta", "roles": "delta"}, roster=False), tenant=T, source="sis")
    assert len(list(store.records.iter_records(T, ["evidence"]))) == 2


def test_unknown_line_items_classes_and_objective_owners_are_held_or_not_kept(store: Store, tmp_path: Path) -> None:
    results = RESULTS + "r2,,,li9,u2,fully graded,5,2025-09-10,,,,,,,\n"
    lines = "\n".join(["sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,"
                       "gradingPeriodSourcedId,resultValueMin,resultValueMax,academicSessionSourcedId,schoolSourcedId",
                       "li1,,,Fractions quiz,,2025-09-01,2025-09-08,k1,cat1,,0,10,,",
                       "li2,,,Other class,,2025-09-01,2025-09-08,k404,cat1,,0,10,,"]) + "\n"
    files = {**GRADEBOOK, "results": results, "lineItems": lines, "lineItemLearningObjectiveIds": LIO + "li7,case,x\n"}
    report = import_package(store, package(tmp_path, files), tenant=T, source="sis")
    assert sorted(warnings(report, "unresolved-reference")) == [("lineItems.csv row 3", "classSourcedId"),
                                                                ("results.csv row 3", "lineItemSourcedId")]
    assert warnings(report, "orphan-row") == [("lineItemLearningObjectiveIds.csv row 3", "lineItemSourcedId")]
    objs = ObjectStore(store.engine)
    assert objs.get(T, "lineItem", ["li2"])["li2"].derived["unresolved"] == [{"field": "class", "type": "class", "sourcedId": "k404"}]
    assert objs.get(T, "result", ["r2"])["r2"].data["lineItem"]["sourcedId"] == "li9"
    assert "li7" not in objs.get(T, "lineItem", ["li7"])
    # the line item arrives later: its results are derived again, the reference no longer held
    li9 = lines.splitlines()[0] + "\nli9,,,Late quiz,,2025-09-01,2025-09-08,k1,cat1,,0,10,,\n"
    import_package(store, package(tmp_path, {"lineItems": li9}, {"lineItems": "delta"}, roster=False), tenant=T, source="sis")
    assert objs.get(T, "lineItem", ["li9"])["li9"].data["title"] == "Late quiz"


def test_strict_refuses_each_unknown_reference_naming_the_place_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    files = {**GRADEBOOK, "results": RESULTS.replace("li1,u1", "li1,ghost"), "lineItemLearningObjectiveIds": LIO + "li7,case,x\n"}
    with pytest.raises(ValidationError) as e:
        import_package(store, package(tmp_path, files), tenant=T, source="sis", strict=True)
    errs = {(d.location, d.field) for d in e.value.errors}
    assert ("results.csv row 2", "studentSourcedId") in errs
    assert ("lineItemLearningObjectiveIds.csv row 3", "lineItemSourcedId") in errs
    # each once, worded as the refusal it always was (not also as the tolerant warning)
    assert [d.location for d in e.value.errors].count("lineItemLearningObjectiveIds.csv row 3") == 1
    assert not any("row not kept" in d.message or "kept as an unresolved" in d.message for d in e.value.errors)
    nothing_written(store)


def test_a_resource_link_to_an_unknown_resource_is_held(store: Store, tmp_path: Path) -> None:
    files = {**FILES, "classResources": "sourcedId,status,dateLastModified,title,classSourcedId,resourceSourcedId\ncr1,,,,k1,res404\n"}
    report = import_package(store, resources_package(tmp_path, files), tenant=T, source="sis")
    assert warnings(report, "unresolved-reference") == [("classResources.csv row 2", "resourceSourcedId")]
    cr = ObjectStore(store.engine).get(T, "classResource", ["cr1"])["cr1"]
    assert cr.data["resource"]["sourcedId"] == "res404"
    assert cr.derived["unresolved"] == [{"field": "resource", "type": "resource", "sourcedId": "res404"}]
    with pytest.raises(ValidationError) as e:
        import_package(store, resources_package(tmp_path, files), tenant="t2", source="sis", strict=True)
    assert ("classResources.csv row 2", "resourceSourcedId") in {(d.location, d.field) for d in e.value.errors}
    assert ObjectStore(store.engine).where("t2", "classResource") == []


def test_a_delta_deletion_of_an_unknown_result_is_skipped_with_a_warning(store: Store, tmp_path: Path) -> None:
    delta = "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,scoreDate\nr404,tobedeleted,,,,,\n"
    report = import_package(store, package(tmp_path, {"results": delta}, {"results": "delta"}, roster=False), tenant=T, source="sis")
    assert warnings(report, "nothing-to-delete") == [("results.csv row 2", "status")]
    assert ObjectStore(store.engine).where(T, "result") == []
    # strict: the one error it always was, not a second one worded as the warning
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, {"results": delta}, {"results": "delta"}, roster=False), tenant=T, source="sis",
                       strict=True)
    assert [str(e) for e in exc.value.errors] == ['results.csv row 2, field "status": row deletes result \'r404\', which is not stored']


DEVIANT = {
    "results": RESULTS.replace("fully graded,8,2025-09-09", "Fully Graded,8,2025-09-09T10:00:00").replace(",,,,false\n", ",,,Y,false\n"),
}


def test_gradebook_values_get_the_rostering_tolerance_checks(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path, {**GRADEBOOK, **DEVIANT}), tenant=T, source="sis")
    c = report.deviations.counts
    assert (c["enum-case"], c["boolean-spelling"], c["date-without-zone"]) == (1, 1, 1)
    assert warnings(report, "enum-case") == [("results.csv row 2", "scoreStatus")]
    assert warnings(report, "boolean-spelling") == [("results.csv row 2", "late")]
    assert warnings(report, "date-without-zone") == [("results.csv row 2", "scoreDate")]
    r1 = ObjectStore(store.engine).get(T, "result", ["r1"])["r1"].data
    assert (r1["scoreStatus"], r1["late"], r1["scoreDate"]) == ("fully graded", "true", "2025-09-09T10:00:00.000Z")
    with pytest.raises(ValidationError) as e:
        import_package(store, package(tmp_path, {**GRADEBOOK, **DEVIANT}), tenant="t2", source="sis", strict=True)
    errs = {(d.location, d.field) for d in e.value.errors}
    assert {("results.csv row 2", "scoreStatus"), ("results.csv row 2", "late"), ("results.csv row 2", "scoreDate")} <= errs
    assert ObjectStore(store.engine).where("t2", "result") == []


def test_resource_importance_case_and_score_spellings(store: Store, tmp_path: Path) -> None:
    report = import_package(store, resources_package(tmp_path, {**FILES, "resources": FILES["resources"].replace("primary", "Primary")}),
                            tenant=T, source="sis")
    assert warnings(report, "enum-case") == [("resources.csv row 2", "importance")]
    assert ObjectStore(store.engine).get(T, "resource", ["res1"])["res1"].data["importance"] == "primary"
    # a score Python would read ("1_0") is no OneRoster number: refused in both modes
    for strict in (False, True):
        with pytest.raises(ValidationError) as e:
            import_package(store, package(tmp_path, {**GRADEBOOK, "results": RESULTS.replace(",8,", ",1_0,")}), tenant="t3", source="sis",
                           strict=strict)
        assert ("results.csv row 2", "score") in {(d.location, d.field) for d in e.value.errors}


def test_rest_reads_show_a_held_reference_until_its_target_is_stored(api: Api, tmp_path: Path) -> None:
    """As rostering reads do: the GUIDRef as sent, and metadata["tessera.unresolved"] naming
    its field while nothing stored answers it; a class stored since resolves it, with no
    re-import of the line item."""
    lines = "\n".join(["sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,"
                       "gradingPeriodSourcedId,resultValueMin,resultValueMax,academicSessionSourcedId,schoolSourcedId",
                       "li1,,,Fractions quiz,,2025-09-01,2025-09-08,k1,cat1,,0,10,,",
                       "li2,,,Other class,,2025-09-01,2025-09-08,k404,cat1,,0,10,,"]) + "\n"
    import_package(api.store, package(tmp_path, {**GRADEBOOK, "lineItems": lines}), tenant=T, source="sis")
    c = api.auth_client(T, ["gradebook.readonly"])
    held = c.get(f"{GB}/lineItems/li2").json()["lineItem"]
    assert held["class"] == {"href": "/classes/k404", "sourcedId": "k404", "type": "class"}
    assert held["metadata"] == {"tessera.unresolved": ["class"]}
    assert "metadata" not in c.get(f"{GB}/lineItems/li1").json()["lineItem"]
    listed = {o["sourcedId"]: o.get("metadata") for o in c.get(f"{GB}/lineItems").json()["lineItems"]}
    assert listed == {"li1": None, "li2": {"tessera.unresolved": ["class"]}}
    # the class arrives with a later package (the fixture district's class row, as k404)
    classes = (FIX / "classes.csv").read_text(encoding="utf-8").splitlines()
    k404 = classes[1].replace(classes[1].split(",")[0], "k404", 1)
    import_package(api.store, package(tmp_path, {"classes": classes[0] + "\n" + k404 + "\n"}, {"classes": "delta"}, roster=False),
                   tenant=T, source="sis")
    assert "metadata" not in c.get(f"{GB}/lineItems/li2").json()["lineItem"]
