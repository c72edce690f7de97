"""LTI Assignment and Grade Services 2.0, Tessera as platform: line items, scores -> Evidence,
results, media types and scopes, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.test_lti_platform import AGS, ToolKey, register, seed, service_token

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"
ALL = [AGS + s for s in ("lineitem", "lineitem.readonly", "result.readonly", "score")]


@pytest.fixture
def ags(api, store) -> dict[str, Any]:
    data = seed(store)
    key = ToolKey()
    tool = register(store, key)
    http = httpx.Client(headers={"Authorization": f"Bearer {service_token(api, tool, key, ALL)}"}, timeout=30)
    base = f"{api.base_url}/lti/platform/ags/contexts/{data['section'].id}/lineitems"
    return {**data, "tool": tool, "key": key, "http": http, "base": base}


def _item(ags: dict[str, Any], **body: Any) -> httpx.Response:
    doc = {"label": "Chapter 5 test", "scoreMaximum": 60, **body}
    return ags["http"].post(ags["base"], content=orjson.dumps(doc), headers={"Content-Type": LINEITEM})


def _score(ags: dict[str, Any], url: str, user, **body: Any) -> httpx.Response:
    doc = {"userId": str(user.id), "scoreGiven": 83, "scoreMaximum": 100, "timestamp": "2026-11-20T10:34:56.000Z",
           "activityProgress": "Completed", "gradingProgress": "FullyGraded", **body}
    doc = {k: v for k, v in doc.items() if v is not None}
    return ags["http"].post(f"{url}/scores", content=orjson.dumps(doc), headers={"Content-Type": SCORE})


def _evidence(store) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in store.records.iter_records("t1", ["evidence"])]


def test_a_line_item_naming_a_case_competency_is_created_with_its_alignment(ags, store) -> None:
    comp = ags["competency"]
    r = _item(ags, resourceId=comp.uri, tag="grade", resourceLinkId="rl-1")
    assert r.status_code == 201 and r.headers["content-type"] == LINEITEM
    item = r.json()
    assert item["id"].startswith(ags["base"] + "/") and r.headers["location"] == item["id"]
    assert item == {"id": item["id"], "label": "Chapter 5 test", "scoreMaximum": 60, "resourceId": comp.uri, "tag": "grade", "resourceLinkId": "rl-1"}
    alignments = list(store.records.iter_records("t1", ["alignment"]))
    assert len(alignments) == 1 and alignments[0].competency_id == comp.id and alignments[0].target_kind.value == "line_item"


def test_a_tag_with_the_case_identifier_aligns_too_and_an_unknown_one_does_not(ags, store) -> None:
    _item(ags, tag=str(ags["competency"].guid))
    _item(ags, resourceId="quiz-7", tag="no-competency")
    assert [a.competency_id for a in store.records.iter_records("t1", ["alignment"])] == [ags["competency"].id]


def test_a_posted_score_becomes_evidence_aligned_through_its_line_item_once(ags, store) -> None:
    item = _item(ags, resourceId=ags["competency"].uri).json()
    learner = ags["students"][0]
    assert _score(ags, item["id"], learner).status_code in (200, 204)
    assert _score(ags, item["id"], learner).status_code in (200, 204)  # the same score again: one evidence
    [ev] = _evidence(store)
    assert ev["learner_id"] == str(learner.id) and ev["competency_id"] == str(ags["competency"].id)
    assert ev["score"] == {"raw": 83.0, "min": 0.0, "max": 100.0, "scaled": 0.83}
    assert ev["completion"] is True and ev["evidence_kind"] == "assessment" and ev["activity"]["id"] == item["id"]
    assert ev["provenance"]["standard"] == "lti-ags" and ev["observed_at"].startswith("2026-11-20T10:34:56")
    results = ags["http"].get(f"{item['id']}/results")
    assert results.headers["content-type"] == RESULTS
    [res] = results.json()
    assert res["userId"] == str(learner.id) and res["resultScore"] == 83 and res["resultMaximum"] == 100 and res["scoreOf"] == item["id"]


def test_a_newer_score_adds_evidence_and_an_older_one_is_a_conflict(ags, store) -> None:
    item = _item(ags).json()
    learner = ags["students"][0]
    _score(ags, item["id"], learner)
    assert _score(ags, item["id"], learner, scoreGiven=95, timestamp="2026-11-21T08:00:00Z").status_code in (200, 204)
    r = _score(ags, item["id"], learner, scoreGiven=10, timestamp="2026-11-19T08:00:00Z")
    assert r.status_code == 409 and "later timestamp" in r.json()["message"]
    assert len(_evidence(store)) == 2
    assert ags["http"].get(f"{item['id']}/results", params={"user_id": str(learner.id)}).json()[0]["resultScore"] == 95


def test_progress_without_a_final_grade_updates_the_result_but_is_not_evidence(ags, store) -> None:
    item = _item(ags).json()
    r = _score(ags, item["id"], ags["students"][0], scoreGiven=None, scoreMaximum=None, activityProgress="Started", gradingProgress="NotReady")
    assert r.status_code in (200, 204) and _evidence(store) == []
    assert ags["http"].get(f"{item['id']}/results").json()[0]["userId"] == str(ags["students"][0].id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scoreMaximum": None}, "scoreMaximum"),
        ({"timestamp": None}, "timestamp"),
        ({"activityProgress": "Done"}, "activityProgress"),
        ({"gradingProgress": None}, "gradingProgress"),
        ({"userId": None}, "userId"),
    ],
)
def test_a_score_missing_a_required_field_is_refused_and_records_nothing(ags, store, body, field) -> None:
    item = _item(ags).json()
    r = _score(ags, item["id"], ags["students"][0], **body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert any(field in (e.get("field") or "") or field in e["message"] for e in r.json()["errors"])
    assert _evidence(store) == []


def test_a_score_for_an_unknown_user_records_nothing(ags, store) -> None:
    item = _item(ags).json()
    r = ags["http"].post(f"{item['id']}/scores", headers={"Content-Type": SCORE}, content=orjson.dumps(
        {"userId": str(uuid.uuid4()), "scoreGiven": 1, "scoreMaximum": 2, "timestamp": "2026-11-20T10:00:00Z",
         "activityProgress": "Completed", "gradingProgress": "FullyGraded"}))
    assert r.status_code == 422 and _evidence(store) == []
    assert ags["http"].get(f"{item['id']}/results").json() == []


def test_a_score_for_someone_outside_the_context_is_refused_and_records_nothing(ags, store) -> None:
    """AGS 2.0 3.4: the score's userId is a member of the line item's context; a person of the
    tenant who is not enrolled in this section, or whose enrollment was withdrawn, is not."""
    from gateway.model import Status
    from tests import factories as f

    school = store.records.get("t1", "org", ags["section"].org_id)
    outsider = f.person("outsider", school)
    leaver = ags["students"][1]
    withdrawn = f.enrollment(leaver, ags["section"]).model_copy(update={"status": Status.tobedeleted})
    store.records.apply("t1", [outsider, withdrawn])
    item = _item(ags).json()
    for who in (outsider, leaver):
        r = _score(ags, item["id"], who)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["userId"]
    assert _evidence(store) == [] and ags["http"].get(f"{item['id']}/results").json() == []
    assert _score(ags, item["id"], ags["students"][0]).status_code == 204  # an active member still scores
    assert len(_evidence(store)) == 1


def test_wrong_media_type_and_bad_json_are_refused(ags) -> None:
    item = _item(ags).json()
    assert ags["http"].post(f"{item['id']}/scores", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    r = ags["http"].post(f"{item['id']}/scores", content=b"{not json", headers={"Content-Type": SCORE})
    assert r.status_code == 400 and "message" in r.json()
    assert _item(ags, scoreMaximum=0).status_code == 422


def test_container_filters_pages_and_item_crud(ags) -> None:
    for i in range(3):
        _item(ags, label=f"Quiz {i}", resourceLinkId="rl-A" if i < 2 else "rl-B")
    r = ags["http"].get(ags["base"], params={"resource_link_id": "rl-A"})
    assert r.headers["content-type"] == CONTAINER and [i["label"] for i in r.json()] == ["Quiz 0", "Quiz 1"]
    page = ags["http"].get(ags["base"], params={"limit": 2})
    assert len(page.json()) == 2 and 'rel="next"' in page.headers["link"]
    nxt = page.headers["link"].split(">")[0].lstrip("<")
    assert [i["label"] for i in ags["http"].get(nxt).json()] == ["Quiz 2"]
    url = page.json()[0]["id"]
    put = ags["http"].put(url, content=orjson.dumps({"label": "Renamed", "scoreMaximum": 10}), headers={"Content-Type": LINEITEM})
    assert put.status_code == 200 and put.json()["label"] == "Renamed" and ags["http"].get(url).json()["scoreMaximum"] == 10
    assert ags["http"].delete(url).status_code == 204 and ags["http"].get(url).status_code == 404


def test_scopes_tools_and_tenants_are_kept_apart(api, ags, store) -> None:
    item = _item(ags).json()
    read_only = service_token(api, ags["tool"], ags["key"], [AGS + "lineitem.readonly"])
    ro = httpx.Client(headers={"Authorization": f"Bearer {read_only}"})
    r = ro.post(ags["base"], content=orjson.dumps({"label": "x", "scoreMaximum": 1}), headers={"Content-Type": LINEITEM})
    assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"]
    assert ro.get(item["id"]).status_code == 200
    assert _score({**ags, "http": ro}, item["id"], ags["students"][0]).status_code == 403
    key2 = ToolKey()
    other = register(store, key2)
    http2 = httpx.Client(headers={"Authorization": f"Bearer {service_token(api, other, key2, [AGS + 'lineitem', AGS + 'score'])}"})
    assert http2.get(item["id"]).status_code == 404
    assert http2.get(ags["base"]).json() == []
    assert httpx.get(ags["base"]).status_code == 401
    seed(store, tenant="t2")
    key3 = ToolKey()
    t2 = register(store, key3, tenant="t2")
    http3 = httpx.Client(headers={"Authorization": f"Bearer {service_token(api, t2, key3, [AGS + 'lineitem'])}"})
    assert http3.get(ags["base"]).status_code == 404  # another tenant's section


def test_the_alignment_follows_the_line_item_through_put_and_delete(ags, store) -> None:
    url = _item(ags, resourceId=ags["competency"].uri).json()["id"]
    put = ags["http"].put(url, content=orjson.dumps({"label": "Untagged", "scoreMaximum": 60}), headers={"Content-Type": LINEITEM})
    assert put.status_code == 200
    [alignment] = list(store.records.iter_records("t1", ["alignment"]))
    assert alignment.status.value == "tobedeleted"
    _score(ags, url, ags["students"][0])
    assert _evidence(store)[0].get("competency_id") is None  # kept, unaligned
    ags["http"].put(url, content=orjson.dumps({"label": "Tagged", "scoreMaximum": 60, "tag": ags["competency"].uri}),
                    headers={"Content-Type": LINEITEM})
    assert [a.status.value for a in store.records.iter_records("t1", ["alignment"])] == ["active"]
    assert ags["http"].delete(url).status_code == 204
    assert [a.status.value for a in store.records.iter_records("t1", ["alignment"])] == ["tobedeleted"]
    assert len(_evidence(store)) == 1  # evidence is append-only: deleting the column keeps it


def test_a_submitted_score_awaiting_grading_is_completion_evidence(ags, store) -> None:
    item = _item(ags).json()
    _score(ags, item["id"], ags["students"][0], scoreGiven=None, scoreMaximum=None, activityProgress="Submitted",
           gradingProgress="PendingManual")
    [ev] = _evidence(store)
    assert ev["evidence_kind"] == "completion" and ev["completion"] is True and ev["score"] is None


def test_concurrent_scores_commit_together_and_a_bad_one_fails_alone(ags, store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    item = _item(ags).json()
    learners = ags["students"]
    stranger = type("P", (), {"id": uuid.uuid4()})()
    jobs = [(learners[i % len(learners)], f"2026-11-20T10:{i:02d}:00Z") for i in range(24)]
    jobs.insert(11, (stranger, "2026-11-20T11:00:00Z"))
    # one learner's scores must arrive in timestamp order: one worker per learner
    by_learner: dict = {}
    for who, ts in jobs:
        by_learner.setdefault(who.id, []).append((who, ts))

    def post_all(items):
        return [(who, _score(ags, item["id"], who, timestamp=ts).status_code) for who, ts in items]

    with ThreadPoolExecutor(len(by_learner)) as pool:
        answers = [a for part in pool.map(post_all, by_learner.values()) for a in part]
    assert sorted(code for who, code in answers if who is stranger) == [422]
    assert all(code in (200, 204) for who, code in answers if who is not stranger)
    assert len(_evidence(store)) == 24
