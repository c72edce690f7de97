"""OneRoster 1.2 CSV binding, gradebook and resources files: categories, lineItems, results,
scoreScales, assessment line items and results, their *LearningObjectiveIds / *ScoreScales
join files, resources and their class / course / user links. Validation names file, row and
column; a bad package changes nothing; results become evidence aligned through CASE GUIDs
in the same transaction; bulk and delta; an export re-imports to the identical state."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from adapters.oneroster.csv.export import export_package
from adapters.oneroster.csv.ingest import import_package
from adapters.oneroster.gradebook.storage import ObjectStore
from adapters.oneroster.gradebook.writeback import export_mastery_package
from gateway.errors import ValidationError
from gateway.store import Store
from gateway.wiring import open_store
from tests import factories as f

FIX = Path(__file__).parent / "fixtures" / "oneroster" / "district-v1p2"
T = "t1"
GUID = uuid.UUID("6b1a4f3e-2d5c-4a7b-8e9f-0a1b2c3d4e5f")
ROSTER = ["academicSessions", "classes", "courses", "demographics", "enrollments", "orgs", "roles", "users"]

CATEGORIES = "sourcedId,status,dateLastModified,title,weight\ncat1,,,Quizzes,0.25\n"
LINE_ITEMS = ("sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,"
              "gradingPeriodSourcedId,resultValueMin,resultValueMax,academicSessionSourcedId,schoolSourcedId\n"
              "li1,,,Fractions quiz,,2025-09-01,2025-09-08,k1,cat1,,0,10,,\n")
RESULTS = ("sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment,"
           "classSourcedId,textScore,inProgress,incomplete,late,missing\n"
           "r1,,,li1,u1,fully graded,8,2025-09-09,Good work,,,,,,false\n")
LIO = f"lineItemSourcedId,source,learningObjectiveId\nli1,case,{GUID}\n"
RESOURCES = ("sourcedId,status,dateLastModified,vendorResourceId,title,roles,importance,vendorId,applicationId\n"
             "res1,,,V-1,Fractions app,\"student,teacher\",primary,acme,\n")
CLASS_RESOURCES = "sourcedId,status,dateLastModified,title,classSourcedId,resourceSourcedId\ncr1,,,,k1,res1\n"


def package(tmp_path: Path, files: dict[str, str], modes: dict[str, str] | None = None, roster: bool = True) -> Path:
    """The rostering fixture (or none) plus the given gradebook / resources files."""
    d = tmp_path / f"pkg-{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    listed: dict[str, str] = {}
    if roster:
        for name in ROSTER:
            shutil.copy(FIX / f"{name}.csv", d / f"{name}.csv")
            listed[name] = "bulk"
    for name, text in files.items():
        (d / f"{name}.csv").write_text(text, encoding="utf-8", newline="")
        listed[name] = (modes or {}).get(name, "bulk")
    rows = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.2", *(f"file.{k},{v}" for k, v in listed.items())]
    (d / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return d


def with_framework(store: Store) -> None:
    fw = f.framework()
    store.records.apply(T, [fw, f.competency("NF.1", fw, guid=GUID)])


GRADEBOOK = {"categories": CATEGORIES, "lineItems": LINE_ITEMS, "results": RESULTS, "lineItemLearningObjectiveIds": LIO}


def test_a_gradebook_package_gives_objects_alignments_and_evidence_in_one_import(store: Store, tmp_path: Path) -> None:
    with_framework(store)
    report = import_package(store, package(tmp_path, GRADEBOOK), tenant=T, source="sis")
    assert report.rows["results"] == 1 and report.rows["lineItemLearningObjectiveIds"] == 1
    li = ObjectStore(store.engine).get(T, "lineItem", ["li1"])["li1"]
    assert li.data["learningObjectiveSet"] == [{"source": "case", "learningObjectiveIds": [str(GUID)]}]
    (al,) = store.records.iter_records(T, ["alignment"])
    (ev,) = store.records.iter_records(T, ["evidence"])
    assert ev.competency_id == al.competency_id and ev.alignment_id == al.id
    assert ev.score.scaled == pytest.approx(0.8) and ev.learner_id.hex  # u1 of users.csv
    assert ev.provenance.native_id == "r1"


def test_join_files_with_the_bindings_common_columns_are_read_and_tobedeleted_rows_drop_links(store: Store, tmp_path: Path) -> None:
    """OneRoster 1.2 CSV: the join files may carry sourcedId, status and dateLastModified first
    (as major implementations write them); a tobedeleted row is not a link."""
    with_framework(store)
    other = uuid.uuid4()
    lio = ("sourcedId,status,dateLastModified,lineItemSourcedId,source,learningObjectiveId\n"
           f"lio1,active,2025-09-01T00:00:00Z,li1,case,{GUID}\n"
           f"lio2,tobedeleted,2025-09-02T00:00:00Z,li1,case,{other}\n")
    import_package(store, package(tmp_path, {**GRADEBOOK, "lineItemLearningObjectiveIds": lio}), tenant=T, source="sis")
    li = ObjectStore(store.engine).get(T, "lineItem", ["li1"])["li1"]
    assert li.data["learningObjectiveSet"] == [{"source": "case", "learningObjectiveIds": [str(GUID)]}]
    # a delta that deletes the last link leaves the line item without objectives, and its alignment goes
    gone = f"sourcedId,status,dateLastModified,lineItemSourcedId,source,learningObjectiveId\nlio1,tobedeleted,,li1,case,{GUID}\n"
    import_package(store, package(tmp_path, {"lineItemLearningObjectiveIds": gone}, {"lineItemLearningObjectiveIds": "delta"}),
                   tenant=T, source="sis")
    li = ObjectStore(store.engine).get(T, "lineItem", ["li1"])["li1"]
    assert "learningObjectiveSet" not in li.data
    assert [a.status.value for a in store.records.iter_records(T, ["alignment"])] == ["tobedeleted"]
    bad = f"sourcedId,status,dateLastModified,lineItemSourcedId,source,learningObjectiveId\nlio1,gone,,li1,case,{GUID}\n"
    with pytest.raises(ValidationError) as e:
        import_package(store, package(tmp_path, {"lineItemLearningObjectiveIds": bad}, {"lineItemLearningObjectiveIds": "delta"}),
                       tenant=T, source="sis")
    assert ("lineItemLearningObjectiveIds.csv row 2", "status") in {(d.location, d.field) for d in e.value.errors}


def test_errors_name_file_row_and_column_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    bad_results = RESULTS.replace("fully graded,8,2025-09-09", "graded,eight,09/09/2025").replace("li1,u1", "li9,u1")
    bad_lio = LIO + "li7,case,x\n"
    pkg = package(tmp_path, {**GRADEBOOK, "results": bad_results, "lineItemLearningObjectiveIds": bad_lio})
    with pytest.raises(ValidationError) as e:  # strict: the unknown line item too (tolerant: held, test_oneroster_gradebook_refs)
        import_package(store, pkg, tenant=T, source="sis", strict=True)
    errs = {(d.location, d.field) for d in e.value.errors}
    assert ("results.csv row 2", "scoreStatus") in errs
    assert ("results.csv row 2", "score") in errs
    assert ("results.csv row 2", "scoreDate") in errs
    assert ("results.csv row 2", "lineItemSourcedId") in errs
    assert ("lineItemLearningObjectiveIds.csv row 3", "lineItemSourcedId") in errs
    assert list(store.records.iter_records(T, ["person", "evidence"])) == []
    assert ObjectStore(store.engine).where(T, "lineItem") == []


def test_a_missing_required_column_is_reported_on_the_header_row(store: Store, tmp_path: Path) -> None:
    no_date = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 7) for line in RESULTS.strip().split("\n")) + "\n"
    with pytest.raises(ValidationError) as e:
        import_package(store, package(tmp_path, {**GRADEBOOK, "results": no_date}), tenant=T, source="sis")
    assert ("results.csv row 1", "scoreDate") in {(d.location, d.field) for d in e.value.errors}


def test_strict_a_result_for_an_unknown_student_is_a_dangling_reference(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:  # tolerant: held (test_oneroster_gradebook_refs)
        import_package(store, package(tmp_path, {**GRADEBOOK, "results": RESULTS.replace("li1,u1", "li1,ghost")}), tenant=T, source="sis",
                       strict=True)
    assert any(d.location == "results.csv row 2" and d.field == "studentSourcedId" and "ghost" in d.message for d in e.value.errors)


def test_bulk_results_file_retires_absent_results_and_voids_their_evidence(store: Store, tmp_path: Path) -> None:
    with_framework(store)
    two = RESULTS + "r2,,,li1,u2,fully graded,5,2025-09-10,,,,,,,\n"
    import_package(store, package(tmp_path, {**GRADEBOOK, "results": two}), tenant=T, source="sis")
    assert len(list(store.records.iter_records(T, ["evidence"]))) == 2
    report = import_package(store, package(tmp_path, GRADEBOOK), tenant=T, source="sis")
    assert report.deleted.get("result") == 1
    assert ObjectStore(store.engine).get(T, "result", ["r2"])["r2"].data["status"] == "tobedeleted"
    voided = [e for e in store.records.iter_records(T, ["evidence"]) if e.voided]
    assert len(voided) == 1 and voided[0].provenance.native_id == "r2"


def test_a_delta_result_with_a_new_score_supersedes_its_evidence(store: Store, tmp_path: Path) -> None:
    with_framework(store)
    import_package(store, package(tmp_path, GRADEBOOK), tenant=T, source="sis")
    delta = RESULTS.replace(",8,", ",9,")
    import_package(store, package(tmp_path, {"results": delta}, {"results": "delta"}, roster=False), tenant=T, source="sis")
    evs = {e.score.raw: e for e in store.records.iter_records(T, ["evidence"])}
    assert evs[8].superseded_by == evs[9].id
    # the line item kept its objectives: the join file was absent from the delta
    assert evs[9].competency_id is not None


def test_strict_a_delta_deletion_of_an_unknown_result_is_an_error(store: Store, tmp_path: Path) -> None:
    delta = "sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,scoreDate\nr404,tobedeleted,,,,,\n"
    with pytest.raises(ValidationError) as e:  # tolerant: skipped, nothing-to-delete (test_oneroster_gradebook_refs)
        import_package(store, package(tmp_path, {"results": delta}, {"results": "delta"}, roster=False), tenant=T, source="sis",
                       strict=True)
    assert ("results.csv row 2", "status") in {(d.location, d.field) for d in e.value.errors}


def test_export_reimports_to_the_identical_gradebook(store: Store, tmp_path: Path) -> None:
    with_framework(store)
    scales = "sourcedId,status,dateLastModified,title,type,courseSourcedId,classSourcedId,scoreScaleValue\nss1,,,Levels,proficiency,,k1,\"{Low:1},{High:3}\"\n"
    ali = "sourcedId,status,dateLastModified,title,description,classSourcedId,parentAssessmentLineItemSourcedId,scoreScaleSourcedId,resultValueMin,resultValueMax\nali1,,,Benchmark,,k1,,ss1,1,3\n"
    ar = ("sourcedId,status,dateLastModified,assessmentLineItemSourcedId,studentSourcedId,score,textScore,scoreDate,scoreScaleSourcedId,"
          "scorePercentile,scoreStatus,comment,inProgress,incomplete,late,missing\nar1,,,ali1,u1,3,,2025-10-01,,88,fully graded,,,,,\n")
    arlo = f"assessmentResultSourcedId,source,learningObjectiveId,score,textScore\nar1,case,{GUID},3,\n"
    files = {**GRADEBOOK, "scoreScales": scales, "assessmentLineItems": ali, "assessmentResults": ar,
             "assessmentResultLearningObjectiveIds": arlo, "lineItemScoreScales": "lineItemSourcedId,scoreScaleSourcedId\nli1,ss1\n",
             "resources": RESOURCES, "classResources": CLASS_RESOURCES}
    import_package(store, package(tmp_path, files), tenant=T, source="sis")
    objs = ObjectStore(store.engine)

    def state() -> dict:
        return {(ty, s.sourced_id): s.data for ty in ("category", "lineItem", "result", "scoreScale", "assessmentLineItem",
                                                       "assessmentResult", "resource", "classResource") for s in objs.where(T, ty)}

    before = state()
    evidence = sorted(e.id for e in store.records.iter_records(T, ["evidence"]))
    assert before[("assessmentResult", "ar1")]["learningObjectiveSet"][0]["learningObjectiveResults"][0]["score"] == 3
    out = tmp_path / "out.zip"
    counts = export_package(store, out, tenant=T, version="1.2")
    assert counts["results"] == 1 and counts["lineItemLearningObjectiveIds"] == 1 and counts["lineItemScoreScales"] == 1
    report = import_package(store, out, tenant=T, source="sis")
    assert state() == before
    assert report.result.created == 0
    assert sorted(e.id for e in store.records.iter_records(T, ["evidence"])) == evidence
    other = open_store(f"sqlite:///{tmp_path / 'fresh.db'}")
    other.migrate()
    fw = f.framework()
    other.records.apply(T, [fw, f.competency("NF.1", fw, guid=GUID)])
    import_package(other, out, tenant=T, source="sis")
    assert {k: v for k, v in state().items()} == {(ty, s.sourced_id): s.data for ty in ("category", "lineItem", "result", "scoreScale",
                                                  "assessmentLineItem", "assessmentResult", "resource", "classResource")
                                                  for s in ObjectStore(other.engine).where(T, ty)}
    other.dispose()


def test_1_1_packages_read_lineitems_and_results_with_1_1_columns(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "v11"
    shutil.copytree(Path(__file__).parent / "fixtures" / "oneroster" / "district-v1p1", d)
    li = ("sourcedId,status,dateLastModified,title,description,assignDate,dueDate,classSourcedId,categorySourcedId,"
          "gradingPeriodSourcedId,resultValueMin,resultValueMax\n")
    (d / "categories.csv").write_text("sourcedId,status,dateLastModified,title\ncat1,,,Tests\n")
    classes = (d / "classes.csv").read_text().splitlines()[1].split(",")[0]
    sessions = (d / "academicSessions.csv").read_text().splitlines()[1].split(",")[0]
    student = next(line.split(",")[0] for line in (d / "users.csv").read_text().splitlines()[1:] if ",student," in line)
    (d / "lineItems.csv").write_text(li + f"li1,,,Test,,2025-09-01,2025-09-02,{classes},cat1,{sessions},0,100\n")
    (d / "results.csv").write_text("sourcedId,status,dateLastModified,lineItemSourcedId,studentSourcedId,scoreStatus,score,scoreDate,comment\n"
                                   f"r1,,,li1,{student},fully graded,70,2025-09-03,\n")
    text = (d / "manifest.csv").read_text()
    for name in ("categories", "lineItems", "results"):
        text = text.replace(f"file.{name},absent", f"file.{name},bulk")
    (d / "manifest.csv").write_text(text)
    import_package(store, d, tenant=T, source="sis")
    (ev,) = store.records.iter_records(T, ["evidence"])
    assert ev.score.scaled == pytest.approx(0.7) and ev.competency_id is None and ev.provenance.version == "1.1"


# --- mastery written back as OneRoster 1.2 assessment results ---------------------------------


def _mastery(store: Store, value: float, level: str) -> None:
    from datetime import UTC, datetime

    from gateway.model import MasteryState

    at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    fw = f.framework()
    comp = f.competency("NF.1", fw, guid=GUID)
    nocase = f.competency("LOCAL.1", fw)  # no CASE identifier: cannot be named in OneRoster
    school = f.org("s1")
    learner = f.person("u1", school)
    states = [MasteryState(tenant=T, source="tessera", native_id=f"{learner.id}:{c.id}", learner_id=learner.id,
                           competency_id=c.id, level=level, value=value, method="decaying_average", evidence_count=3,
                           last_at=at, computed_at=at) for c in (comp, nocase)]
    store.records.apply(T, [fw, comp, nocase, school, learner, *states])


def test_mastery_is_written_back_as_assessment_results_naming_the_case_guid(store: Store, tmp_path: Path) -> None:
    from adapters.oneroster.gradebook.writeback import mastery_objects

    _mastery(store, 0.8125, "proficient")
    line_items, results, skipped = mastery_objects(store, T, store.records.iter_records(T, ["mastery_state"]))
    assert skipped == 1 and len(line_items) == len(results) == 1
    (res,) = results
    assert res["student"]["sourcedId"] == "u1" and res["score"] == 0.8125 and res["textScore"] == "proficient"
    assert res["learningObjectiveSet"] == [{"source": "case", "learningObjectiveResults": [
        {"learningObjectiveId": str(GUID), "score": 0.8125, "textScore": "proficient"}]}]
    assert line_items[0]["learningObjectiveSet"][0]["learningObjectiveIds"] == [str(GUID)]


def test_a_mastery_package_imports_elsewhere_as_evidence_for_the_same_competency(store: Store, tmp_path: Path) -> None:
    _mastery(store, 0.75, "proficient")
    out = tmp_path / "mastery.zip"
    counts = export_mastery_package(store, out, tenant=T)
    assert counts["assessmentResults"] == 1 and counts["skipped"] == 1
    # another tenant that knows the student and the framework reads it as any OneRoster gradebook
    import_package(store, package(tmp_path, {}), tenant="t2", source="sis")
    fw = f.framework(tenant="t2")
    comp = f.competency("NF.1", fw, "t2", guid=GUID)
    store.records.apply("t2", [fw, comp])
    import_package(store, out, tenant="t2", source="sis")
    (ev,) = store.records.iter_records("t2", ["evidence"])
    assert ev.competency_id == comp.id and ev.level == "proficient" and ev.score.scaled == pytest.approx(0.75)


def test_cli_imports_a_gradebook_package_and_exports_mastery(cli, tmp_path: Path) -> None:
    import zipfile

    cli("migrate")
    store = open_store(cli.url)
    try:
        _mastery(store, 0.5, "developing")
        # exported before the import: the import's results become evidence, and the mastery
        # engine derives states of its own from them (tests/test_mastery_*.py)
        out = cli("export", "oneroster", str(tmp_path / "m.zip"), "--tenant", T, "--mastery").output
        assert "1 assessmentResults" in out and "1 skipped" in out
        with zipfile.ZipFile(tmp_path / "m.zip") as z:
            rows = z.read("assessmentResultLearningObjectiveIds.csv").decode().splitlines()
        assert rows[0] == "sourcedId,status,dateLastModified,assessmentResultSourcedId,source,learningObjectiveId,score,textScore"
        assert rows[1].startswith(f"tessera-mastery-u1-{GUID}:case:{GUID},active,")
        assert rows[1].endswith(f",tessera-mastery-u1-{GUID},case,{GUID},0.5,developing")
        out = cli("import", "oneroster", str(package(tmp_path, GRADEBOOK)), "--tenant", T, "--source", "sis").output
        assert "evidence" in out
        assert cli("export", "oneroster", str(tmp_path / "x.zip"), "--mastery", "--version", "1.1", code=None).exit_code != 0
    finally:
        store.dispose()
