"""OneRoster 1.2 Gradebook service over real HTTP, and gradebook results as competency evidence:
PUT (201 create / 200 replace), DELETE (soft: tobedeleted), POST with sourcedIdPairs, GET with
the query grammar and nested paths, scopes, imsx_StatusInfo errors, tenant isolation; results ->
Evidence aligned through the line item's CASE learning objectives, supersede on change, void on
delete, unresolvable objectives kept with competency_id null."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.oneroster.gradebook.apply import put_objects
from adapters.oneroster.gradebook.prepare import Item, Preparer
from gateway.errors import ValidationError
from gateway.model import Evidence
from gateway.store import Store
from tests import factories as f
from tests.conftest import Api, serve

GB = "/ims/oneroster/gradebook/v1p2"
V11 = "/ims/oneroster/v1p1"
READ, PUT, DEL = ["gradebook.readonly"], ["gradebook.createput"], ["gradebook.delete"]
ALL = READ + PUT + DEL
GUID = uuid.UUID("0a6f5b1e-3c2d-4e8f-9a1b-2c3d4e5f6a7b")


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    """The real app on a real port, with the OneRoster adapter alone (the suite's other
    adapters are not needed here)."""
    from adapters.base import Registry
    from adapters.oneroster import OneRosterAdapter
    from gateway.api.app import create_app
    from gateway.config import Settings

    settings = Settings(database_url=str(store.engine.url.render_as_string(hide_password=False)))
    with serve(create_app(settings, store=store, registry=Registry({"oneroster": OneRosterAdapter()}))) as base_url:
        yield Api(base_url, store, settings)


def _minor(r: httpx.Response) -> str:
    return r.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def _world(store: Store, tenant: str = "t1") -> dict[str, Any]:
    school = f.org("s1", tenant=tenant)
    crs = f.course("c1", school, tenant)
    sec = f.section("k1", crs, school, tenant)
    students = [f.person(f"u{i}", school, tenant) for i in range(3)]
    fw = f.framework(tenant=tenant)
    comp = f.competency("RL.3.1", fw, tenant, guid=GUID)
    store.records.apply(tenant, [school, crs, sec, *students, fw, comp])
    return {"section": sec, "students": students, "competency": comp}


def _line_item(sid: str = "li1", objectives: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    obj = {"sourcedId": sid, "title": "Reading quiz", "assignDate": "2026-09-01T00:00:00Z", "dueDate": "2026-09-08T00:00:00Z",
           "class": {"sourcedId": "k1"}, "category": {"sourcedId": "cat1"}, "resultValueMin": 0, "resultValueMax": 20, **kw}
    if objectives:
        obj["learningObjectiveSet"] = [{"source": "case", "learningObjectiveIds": objectives}]
    return obj


def _result(sid: str = "r1", score: float = 15, student: str = "u0", **kw: Any) -> dict[str, Any]:
    return {"sourcedId": sid, "lineItem": {"sourcedId": "li1"}, "student": {"sourcedId": student},
            "scoreStatus": "fully graded", "score": score, "scoreDate": "2026-09-09", **kw}


def _setup(c: httpx.Client, objectives: list[str] | None = None) -> None:
    assert c.put(f"{GB}/categories/cat1", json={"category": {"sourcedId": "cat1", "title": "Quizzes"}}).status_code == 201
    r = c.put(f"{GB}/lineItems/li1", json={"lineItem": _line_item(objectives=objectives)})
    assert r.status_code == 201, r.text


def _evidence(store: Store, tenant: str = "t1") -> list[Evidence]:
    return [e for e in store.records.iter_records(tenant, ["evidence"])]  # type: ignore[misc]


# --- REST: PUT / GET / DELETE / POST -------------------------------------------------------


def test_put_creates_with_201_then_replaces_with_200_and_get_returns_it(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    r = c.put(f"{GB}/results/r1", json={"result": _result()})
    assert r.status_code == 201, r.text
    assert r.json()["result"]["score"] == 15 and r.json()["result"]["student"]["sourcedId"] == "u0"
    r = c.put(f"{GB}/results/r1", json={"result": _result(score=18)})
    assert r.status_code == 200, r.text
    got = c.get(f"{GB}/results/r1").json()["result"]
    assert got["score"] == 18 and got["lineItem"] == {"href": "/lineItems/li1", "sourcedId": "li1", "type": "lineItem"}


def test_put_with_a_body_sourcedid_other_than_the_path_is_invaliddata(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    r = c.put(f"{GB}/results/r1", json={"result": _result(sid="other")})
    assert r.status_code == 400 and _minor(r) == "invaliddata"


def test_put_of_an_invalid_result_names_every_bad_field_and_writes_nothing(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    bad = _result(scoreStatus="graded", scoreDate="yesterday", student="nobody")
    r = c.put(f"{GB}/results/r1", json={"result": bad})
    assert r.status_code == 400 and _minor(r) == "invaliddata"
    desc = r.json()["imsx_description"]
    assert "scoreStatus" in desc and "scoreDate" in desc and "nobody" in desc
    assert c.get(f"{GB}/results/r1").status_code == 404
    assert _evidence(api.store) == []


def test_score_above_the_line_items_result_value_max_is_rejected(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    r = c.put(f"{GB}/results/r1", json={"result": _result(score=21)})
    assert r.status_code == 400 and "resultValueMax" in r.json()["imsx_description"]


def test_delete_marks_tobedeleted_and_a_second_delete_is_unknownobject(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    c.put(f"{GB}/results/r1", json={"result": _result()})
    r = c.delete(f"{GB}/results/r1")
    assert r.status_code == 204
    assert c.get(f"{GB}/results/r1").json()["result"]["status"] == "tobedeleted"
    r = c.delete(f"{GB}/results/r1")
    assert r.status_code == 404 and _minor(r) == "unknownobject"


def test_post_line_items_for_a_class_answers_sourcedid_pairs(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    li = {k: v for k, v in _line_item("li2").items() if k != "class"}
    r = c.post(f"{GB}/classes/k1/lineItems", json={"lineItems": [li]})
    assert r.status_code == 201, r.text
    assert r.json()["sourcedIdPairs"] == {"suppliedSourcedId": "li2", "allocatedSourcedId": "li2"}
    assert c.get(f"{GB}/lineItems/li2").json()["lineItem"]["class"]["sourcedId"] == "k1"
    assert c.post(f"{GB}/classes/k1/lineItems", json={"lineItems": [li]}).status_code == 400  # exists: PUT replaces
    assert c.post(f"{GB}/classes/nope/lineItems", json={"lineItems": [li]}).status_code == 404


def test_post_results_for_a_line_item(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    res = {k: v for k, v in _result("r9").items() if k != "lineItem"}
    r = c.post(f"{GB}/lineItems/li1/results", json={"results": [res]})
    assert r.status_code == 201, r.text
    assert c.get(f"{GB}/lineItems/li1/results").json()["results"][0]["sourcedId"] == "r9"


def test_nested_paths_select_by_class_line_item_and_student(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    for i in range(3):
        assert c.put(f"{GB}/results/r{i}", json={"result": _result(f"r{i}", score=10 + i, student=f"u{i}")}).status_code == 201
    r = c.get(f"{GB}/classes/k1/results")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "3"
    assert [x["sourcedId"] for x in c.get(f"{GB}/classes/k1/students/u1/results").json()["results"]] == ["r1"]
    assert len(c.get(f"{GB}/classes/k1/lineItems/li1/results").json()["results"]) == 3
    assert [x["sourcedId"] for x in c.get(f"{GB}/classes/k1/lineItems").json()["lineItems"]] == ["li1"]
    assert [x["sourcedId"] for x in c.get(f"{GB}/classes/k1/categories").json()["categories"]] == ["cat1"]
    r = c.get(f"{GB}/classes/nope/results")
    assert r.status_code == 404 and _minor(r) == "unknownobject"


def test_collections_take_the_rostering_query_grammar(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    for i in range(3):
        c.put(f"{GB}/results/r{i}", json={"result": _result(f"r{i}", score=10 + i, student=f"u{i}")})
    r = c.get(f"{GB}/results", params={"filter": "score>='11'", "sort": "score", "orderBy": "desc", "fields": "sourcedId,score"})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"sourcedId": "r2", "score": 12}, {"sourcedId": "r1", "score": 11}]
    r = c.get(f"{GB}/results", params={"limit": 1, "offset": 1})
    assert r.headers["X-Total-Count"] == "3" and len(r.json()["results"]) == 1 and 'rel="next"' in r.headers["Link"]
    r = c.get(f"{GB}/results", params={"filter": "colour='red'"})
    assert r.status_code == 400 and _minor(r) == "invalid_filter_field"
    r = c.get(f"{GB}/results", params={"fields": "colour"})
    assert r.status_code == 400 and _minor(r) == "invalid_selection_field"


def test_scopes_separate_read_write_and_delete(api: Api):
    _world(api.store)
    writer = api.auth_client("t1", ALL)
    _setup(writer)
    writer.put(f"{GB}/results/r1", json={"result": _result()})
    reader = api.auth_client("t1", READ)
    assert reader.get(f"{GB}/results").status_code == 200
    r = reader.put(f"{GB}/results/r1", json={"result": _result(score=1)})
    assert r.status_code == 403 and _minor(r) == "forbidden"
    assert reader.delete(f"{GB}/results/r1").status_code == 403
    assert api.auth_client("t1", PUT).get(f"{GB}/results").status_code == 403
    assert api.auth_client("t1", ["roster.readonly"]).get(f"{GB}/results").status_code == 403
    r = api.client().get(f"{GB}/results")
    assert r.status_code == 401 and _minor(r) == "unauthorisedrequest"


def test_another_tenants_objects_are_unknown(api: Api):
    _world(api.store)
    _world(api.store, "t2")
    c = api.auth_client("t1", ALL)
    _setup(c)
    c.put(f"{GB}/results/r1", json={"result": _result()})
    other = api.auth_client("t2", ALL)
    assert other.get(f"{GB}/results/r1").status_code == 404
    assert other.get(f"{GB}/results").json()["results"] == []
    assert other.delete(f"{GB}/results/r1").status_code == 404


def test_v1p1_paths_serve_1_1_objects(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c)
    r = c.put(f"{V11}/results/r1", json={"result": {k: v for k, v in _result().items()}})
    assert r.status_code == 201, r.text
    r = c.put(f"{V11}/results/r2", json={"result": {k: v for k, v in _result("r2").items() if k != "score"}})
    assert r.status_code == 400 and "score" in r.json()["imsx_description"]  # 1.1: score is required
    li = c.get(f"{V11}/lineItems/li1").json()["lineItem"]
    assert "learningObjectiveSet" not in li and li["title"] == "Reading quiz"
    assert c.get(f"{V11}/classes/k1/students/u0/results").json()["results"][0]["sourcedId"] == "r1"


# --- gradebook as evidence -------------------------------------------------------------------


def test_a_result_of_an_aligned_line_item_is_evidence_for_the_competency(api: Api):
    w = _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c, objectives=[str(GUID)])
    alignments = list(api.store.records.iter_records("t1", ["alignment"]))
    assert len(alignments) == 1 and alignments[0].competency_id == w["competency"].id
    assert alignments[0].target_id == "lineItems/li1"
    c.put(f"{GB}/results/r1", json={"result": _result(score=15)})
    (ev,) = _evidence(api.store)
    assert ev.learner_id == w["students"][0].id and ev.competency_id == w["competency"].id
    assert ev.alignment_id == alignments[0].id
    assert ev.score.raw == 15 and ev.score.min == 0 and ev.score.max == 20 and ev.score.scaled == pytest.approx(0.75)
    assert ev.observed_at.isoformat().startswith("2026-09-09") and ev.activity.id == "lineItems/li1"
    assert ev.provenance.standard == "oneroster" and ev.provenance.native_id == "r1"


def test_a_changed_result_supersedes_and_a_deleted_one_voids(api: Api):
    _world(api.store)
    c = api.auth_client("t1", ALL)
    _setup(c, objectives=[str(GUID)])
    c.put(f"{GB}/results/r1", json={"result": _result(score=15)})
    c.put(f"{GB}/results/r1", json={"result": _result(score=15)})  # a re-delivery changes nothing
    assert len(_evidence(api.store)) == 1
    c.put(f"{GB}/results/r1", json={"result": _result(score=19)})
    evs = {e.score.raw: e for e in _evidence(api.store)}
    assert set(evs) == {15, 19}
    assert evs[15].superseded_by == evs[19].id and evs[19].supersedes == evs[15].id
    c.delete(f"{GB}/results/r1")
    current = next(e for e in _evidence(api.store) if e.score.raw == 19)
    assert current.voided is True


def test_unresolvable_objectives_keep_evidence_with_a_null_competency(store: Store):
    _world(store)
    unknown = str(uuid.uuid4())
    put_objects(store, "t1", "sis", [
        Item("category", {"sourcedId": "cat1", "title": "Quizzes"}, "x"),
        Item("lineItem", _line_item(objectives=[str(GUID), unknown, ]), "x"),
        Item("result", _result(), "x")], version="1.2")
    evs = _evidence(store)
    assert len(evs) == 2
    nulls = [e for e in evs if e.competency_id is None]
    assert len(nulls) == 1 and nulls[0].extensions["oneroster"]["learningObjective"] == {"source": "case", "id": unknown}
    assert len(list(store.records.iter_records("t1", ["alignment"]))) == 1


def test_learning_objective_results_give_one_evidence_per_objective_with_its_own_score(store: Store):
    w = _world(store)
    other = str(uuid.uuid4())
    res = _result(learningObjectiveSet=[{"source": "case", "learningObjectiveResults": [
        {"learningObjectiveId": str(GUID), "score": 20}, {"learningObjectiveId": other, "score": 4}]}])
    put_objects(store, "t1", "sis", [
        Item("category", {"sourcedId": "cat1", "title": "Quizzes"}, "x"), Item("lineItem", _line_item(), "x"),
        Item("result", res, "x")], version="1.2")
    evs = {e.score.raw: e for e in _evidence(store)}
    assert evs[20].competency_id == w["competency"].id and evs[20].score.scaled == 1.0
    assert evs[4].competency_id is None


def test_an_assessment_result_is_evidence_with_a_score_scale_level(store: Store):
    w = _world(store)
    scale = {"sourcedId": "ss1", "title": "Proficiency", "type": "proficiency", "class": {"sourcedId": "k1"},
             "scoreScaleValue": [{"itemValueLHS": "Beginning", "itemValueRHS": "1"}, {"itemValueLHS": "Proficient", "itemValueRHS": "3"}]}
    ali = {"sourcedId": "ali1", "title": "Unit test", "scoreScale": {"sourcedId": "ss1"}, "resultValueMin": 1, "resultValueMax": 4,
           "learningObjectiveSet": [{"source": "CASE", "learningObjectiveIds": [str(GUID)]}]}
    ar = {"sourcedId": "ar1", "assessmentLineItem": {"sourcedId": "ali1"}, "student": {"sourcedId": "u1"},
          "scoreStatus": "fully graded", "score": 3, "scoreDate": "2026-10-01T10:00:00Z"}
    put_objects(store, "t1", "sis", [Item("scoreScale", scale, "x"), Item("assessmentLineItem", ali, "x"),
                                     Item("assessmentResult", ar, "x")], version="1.2")
    (ev,) = _evidence(store)
    assert ev.level == "Proficient" and ev.competency_id == w["competency"].id and ev.learner_id == w["students"][1].id
    assert ev.activity.id == "assessmentLineItems/ali1"


def test_a_text_score_not_on_the_scale_is_invalid(store: Store):
    _world(store)
    scale = {"sourcedId": "ss1", "title": "P", "type": "p", "class": {"sourcedId": "k1"},
             "scoreScaleValue": [{"itemValueLHS": "A", "itemValueRHS": "4"}]}
    ar = {"sourcedId": "ar1", "assessmentLineItem": {"sourcedId": "ali1"}, "student": {"sourcedId": "u1"},
          "scoreStatus": "fully graded", "textScore": "Z", "scoreDate": "2026-10-01", "scoreScale": {"sourcedId": "ss1"}}
    with pytest.raises(ValidationError) as e:
        put_objects(store, "t1", "sis", [Item("scoreScale", scale, "x"), Item("assessmentLineItem", {"sourcedId": "ali1", "title": "T"}, "x"),
                                         Item("assessmentResult", ar, "assessmentResults.csv row 2")], version="1.2")
    assert any(d.field == "textScore" for d in e.value.errors)


def test_1_1_has_no_assessment_results(store: Store):
    _world(store)
    with pytest.raises(ValidationError):
        Preparer(store, "t1", "sis", version="1.1").prepare([Item("assessmentLineItem", {"sourcedId": "a", "title": "T"}, "x")])


def test_objects_and_their_evidence_commit_together_or_not_at_all(store: Store, monkeypatch: pytest.MonkeyPatch):
    import adapters.oneroster.gradebook.apply as gb

    _world(store)

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(gb, "write_rows", broken)
    with pytest.raises(RuntimeError):
        put_objects(store, "t1", "sis", [Item("category", {"sourcedId": "cat1", "title": "Q"}, "x"),
                                         Item("lineItem", _line_item(objectives=[str(GUID)]), "x"), Item("result", _result(), "x")],
                    version="1.2")
    assert _evidence(store) == [] and list(store.records.iter_records("t1", ["alignment"])) == []


def test_evidence_imported_before_its_framework_aligns_when_the_gradebook_comes_again(store: Store):
    school = f.org("s1")
    crs = f.course("c1", school)
    store.records.apply("t1", [school, crs, f.section("k1", crs, school), f.person("u0", school)])
    items = [Item("category", {"sourcedId": "cat1", "title": "Q"}, "x"), Item("lineItem", _line_item(objectives=[str(GUID)]), "x"),
             Item("result", _result(), "x")]
    put_objects(store, "t1", "sis", items, version="1.2")
    (ev,) = _evidence(store)
    assert ev.competency_id is None  # nothing to resolve to yet: kept, unaligned
    fw = f.framework()
    comp = f.competency("RL.3.1", fw, guid=GUID)
    store.records.apply("t1", [fw, comp])
    put_objects(store, "t1", "sis", items, version="1.2")
    (again,) = _evidence(store)
    assert again.id == ev.id and again.competency_id == comp.id and again.alignment_id is not None


def test_post_results_for_an_academic_session_for_a_class(api: Api):
    from gateway.model import AcademicSession

    _world(api.store)

    api.store.records.apply("t1", [AcademicSession(tenant="t1", source="sis", native_id="term1", title="Fall", type="term",
                                                   start_date="2026-08-01", end_date="2026-12-20", school_year=2027)])
    c = api.auth_client("t1", ALL)
    _setup(c)
    r = c.post(f"{GB}/classes/k1/academicSessions/term1/results", json={"results": [_result("r5")]})
    assert r.status_code == 201, r.text
    assert c.get(f"{GB}/results/r5").json()["result"]["class"]["sourcedId"] == "k1"
    r = c.post(f"{GB}/classes/k1/academicSessions/nope/results", json={"results": [_result("r6")]})
    assert r.status_code == 404 and _minor(r) == "unknownobject"
