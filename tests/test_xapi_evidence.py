"""xAPI statements -> canonical Evidence (issue 7 part 5), on both backends.

Statements are the xAPI 1.0.3 spec's own examples (xAPI-Data.md, Appendix A), made into
stored statements (id, stored, authority, version as an LRS sets them, Data 2.4.8-2.4.10),
and cmi5 statements built from the cmi5 spec's section 9 (verbs, context, extensions).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from adapters.xapi.evidence import EvidenceMapper, VerbMap
from gateway.model import Alignment, Evidence, Identifier, Person
from tests import factories as f

T = f.T
STORED = "2026-11-20T10:00:00.000Z"
AUTHORITY = {"objectType": "Agent", "name": "lrs", "account": {"homePage": "https://tessera.example", "name": "cred-1"}}

# xAPI 1.0.3 Data, Appendix A: "Example of a simple Statement"
SIMPLE = {
    "id": "fd41c918-b88b-4b20-a0a5-a4c32391aaa0",
    "timestamp": "2015-11-18T12:17:00+00:00",
    "actor": {"objectType": "Agent", "name": "Project Tin Can API", "mbox": "mailto:user@example.com"},
    "verb": {"id": "http://example.com/xapi/verbs#sent-a-statement", "display": {"en-US": "sent"}},
    "object": {
        "id": "http://example.com/xapi/activity/simplestatement",
        "definition": {"name": {"en-US": "simple statement"}},
    },
}
# xAPI 1.0.3 Data, Appendix A: "Completion with Verb named 'attempted'..."
ATTEMPTED = {
    "id": "7ccd3322-e1a5-411a-a67d-6a735c76f119",
    "timestamp": "2015-12-18T12:17:00+00:00",
    "actor": {"objectType": "Agent", "name": "Example Learner", "mbox": "mailto:example.learner@adlnet.gov"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}},
    "object": {
        "id": "http://example.adlnet.gov/xapi/example/simpleCBT",
        "definition": {"name": {"en-US": "simple CBT course"}, "description": {"en-US": "A fictitious example CBT course."}},
    },
    "result": {"score": {"scaled": 0.95}, "success": True, "completion": True, "duration": "PT1234S"},
}
# xAPI 1.0.3 Data, Appendix A: the long example (a Group actor), trimmed to what matters here
TEAM = {
    "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
    "actor": {
        "name": "Team PB", "mbox": "mailto:teampb@example.com", "objectType": "Group",
        "member": [{"name": "Andrew Downes", "account": {"homePage": "http://www.example.com", "name": "13936749"}, "objectType": "Agent"}],
    },
    "verb": {"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-US": "attended"}},
    "result": {"success": True, "completion": True, "response": "We agreed on some example actions.", "duration": "PT1H0M0S"},
    "timestamp": "2013-05-18T05:32:34.804+00:00",
    "object": {"id": "http://www.example.com/meetings/occurances/34534"},
}

# cmi5 9.2 (actor with an account), 9.6 (context), 9.6.2.1 (category), 9.6.3 (extensions)
CMI5_ACTOR = {"objectType": "Agent", "account": {"homePage": "http://www.example.com", "name": "1625378"}}
AU = "http://www.example.com/LA1/001/intro"
REGISTRATION = "760e3480-ba55-4991-94b0-01820dbd23a2"
CMI5 = "https://w3id.org/xapi/cmi5/context/"
ADL = "http://adlnet.gov/expapi/verbs/"


def stored(stmt: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``stmt`` as the LRS stores it (Data 2.4.8 stored, 2.4.9 authority, 2.4.10 version)."""
    out = copy.deepcopy(stmt)
    out.setdefault("id", str(uuid.uuid4()))
    out.update(stored=STORED, authority=AUTHORITY, version="1.0.0")
    out.setdefault("timestamp", STORED)
    out.update(changes)
    return out


def cmi5_statement(verb: str, session: str, *, result: dict | None = None, ext: dict | None = None, moveon: bool = False) -> dict:
    category = [{"id": CMI5 + "categories/cmi5"}] + ([{"id": CMI5 + "categories/moveon"}] if moveon else [])
    stmt: dict[str, Any] = {
        "actor": CMI5_ACTOR,
        "verb": {"id": ADL + verb, "display": {"en-US": verb}},
        "object": {"id": AU, "objectType": "Activity"},
        "context": {
            "registration": REGISTRATION,
            "contextActivities": {"category": category, "grouping": [{"id": "http://www.example.com/LA1/001"}]},
            "extensions": {CMI5 + "extensions/sessionid": session, **(ext or {})},
        },
    }
    if result is not None:
        stmt["result"] = result
    return stored(stmt)


def ingest(store, mapper: EvidenceMapper, statements: list[dict]) -> list[Evidence]:
    batch = mapper.map(T, statements)
    store.records.apply(T, batch.records, within=batch.write)
    return batch.evidence


def stored_evidence(store, statement_id: str) -> Evidence:
    return store.records.get(T, "evidence", mapper_id(statement_id))


def mapper_id(statement_id: str) -> uuid.UUID:
    from gateway.model import record_id

    return record_id(T, "evidence", "xapi", statement_id)


@pytest.fixture
def mapper(store) -> EvidenceMapper:
    return EvidenceMapper(store)


@pytest.fixture
def case_items(store):
    """A framework with two competencies carrying CASE identifiers, as the CASE adapter stores them."""
    fw = f.framework()
    guid = uuid.UUID("4c070c86-6120-5b6c-8bb0-c0cc1cb3ef07")
    uri = f"https://case.northwind.example/uri/{guid}"
    c1 = f.competency("c1", fw, guid=guid, uri=uri, identifiers=[
        Identifier(system="case", kind="case.identifier", value=str(guid)), Identifier(system="case", kind="case.uri", value=uri)])
    c2 = f.competency("c2", fw, identifiers=[Identifier(system="case", kind="case.uri", value="https://case.example/uri/c2")])
    store.records.apply(T, [fw, c1, c2])
    return c1, c2


# --- which statements are evidence ---------------------------------------------------------


def test_statement_with_unknown_verb_and_no_result_is_not_evidence(store, mapper):
    assert mapper.map(T, [stored(SIMPLE)]).records == []


def test_statement_with_result_is_evidence_whatever_its_verb(store, mapper):
    (ev,) = ingest(store, mapper, [stored(ATTEMPTED)])
    assert ev.success is True and ev.completion is True
    assert ev.score.scaled == 0.95
    assert ev.activity.id == "http://example.adlnet.gov/xapi/example/simpleCBT"
    assert ev.activity.title == "simple CBT course"
    assert ev.observed_at.isoformat() == "2015-12-18T12:17:00+00:00"
    assert ev.provenance.standard == "xapi" and ev.provenance.native_id == ATTEMPTED["id"]
    assert ev.provenance.version == "1.0.0" and len(ev.provenance.payload_sha256) == 64
    assert ev.id == mapper_id(ATTEMPTED["id"])


@pytest.mark.parametrize(
    ("verb", "kind", "success", "completion"),
    [("passed", "assessment", True, None), ("failed", "assessment", False, None), ("mastered", "assessment", True, None),
     ("completed", "completion", None, True), ("scored", "assessment", None, None), ("answered", "assessment", None, None)],
)
def test_recognised_verb_without_result_is_evidence_with_the_mapped_meaning(store, mapper, verb, kind, success, completion):
    stmt = stored(SIMPLE, id=str(uuid.uuid4()), verb={"id": ADL + verb, "display": {"en-US": verb}})
    (ev,) = ingest(store, mapper, [stmt])
    assert (ev.evidence_kind.value, ev.success, ev.completion) == (kind, success, completion)


def test_result_success_overrides_the_verb_default(store, mapper):
    stmt = stored(SIMPLE, verb={"id": ADL + "passed"}, result={"success": False})
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.success is False


def test_session_verbs_are_not_evidence_even_with_a_result(store, mapper):
    # cmi5 9.5.4.1: "terminated" MUST carry a duration; it says nothing about learning
    stmt = stored(SIMPLE, verb={"id": ADL + "terminated"}, result={"duration": "PT1M", "completion": True})
    assert mapper.map(T, [stmt]).records == []


def test_group_actor_is_not_one_learner(store, mapper):
    assert mapper.map(T, [stored(TEAM)]).records == []


def test_statement_about_a_statement_ref_is_not_evidence(store, mapper):
    stmt = stored(SIMPLE, verb={"id": ADL + "passed"}, object={"objectType": "StatementRef", "id": str(uuid.uuid4())})
    assert mapper.map(T, [stmt]).records == []


# --- scores ---------------------------------------------------------------------------------


def test_raw_min_max_are_kept_and_scaled_derived_from_them(store, mapper):
    stmt = stored(SIMPLE, verb={"id": ADL + "scored"}, result={"score": {"raw": 15, "min": 10, "max": 20}})
    (ev,) = ingest(store, mapper, [stmt])
    assert (ev.score.raw, ev.score.min, ev.score.max, ev.score.scaled) == (15, 10, 20, 0.5)


def test_negative_scaled_score_is_clamped_to_zero_and_the_original_kept(store, mapper):
    # xAPI 1.0.3 Data 2.4.5.1: -1 <= scaled <= 1; the canonical scale is 0..1
    stmt = stored(SIMPLE, verb={"id": ADL + "scored"}, result={"score": {"scaled": -0.25, "raw": -5, "min": -20, "max": 20}})
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.score.scaled == 0.0 and ev.score.raw == -5
    assert ev.extensions["xapi"]["scaled"] == -0.25


# --- who ------------------------------------------------------------------------------------


def test_mbox_actor_resolves_to_the_roster_person_with_that_email(store, mapper):
    school = f.org()
    ada = f.person("u1", school, email="user@example.com", identifiers=[
        Identifier(system="sis", kind="oneroster.sourcedId", value="u1"), Identifier(system="sis", kind="email", value="user@example.com")])
    store.records.apply(T, [school, ada])
    stmt = stored(ATTEMPTED, actor={"objectType": "Agent", "mbox": "mailto:User@Example.com"})
    batch = mapper.map(T, [stmt])
    assert [r.kind for r in batch.records] == ["evidence"]
    assert batch.evidence[0].learner_id == ada.id


def test_unknown_actor_becomes_a_person_found_again_by_its_identifiers(store, mapper):
    (ev,) = ingest(store, mapper, [stored(ATTEMPTED)])
    person = store.records.get(T, "person", ev.learner_id)
    assert isinstance(person, Person) and person.source == "xapi"
    assert (person.given_name, person.family_name, person.email) == ("Example", "Learner", "example.learner@adlnet.gov")
    assert store.records.lookup(T, "xapi", "xapi.mbox", "mailto:example.learner@adlnet.gov") == [("person", ev.learner_id)]
    # a fresh mapper (no cache) and the same mailbox given as mbox_sha1sum (Data 2.4.2.3)
    import hashlib

    sha1 = hashlib.sha1(b"mailto:example.learner@adlnet.gov").hexdigest()
    again = stored(ATTEMPTED, id=str(uuid.uuid4()), actor={"objectType": "Agent", "mbox_sha1sum": sha1})
    batch = EvidenceMapper(store).map(T, [again])
    assert [r.kind for r in batch.records] == ["evidence"] and batch.evidence[0].learner_id == ev.learner_id


def test_account_actor_resolves_by_home_page_and_name(store, mapper):
    school = f.org()
    kid = f.person("u7", school, identifiers=[Identifier(system="lms", kind="xapi.account", value="http://www.example.com|1625378")])
    store.records.apply(T, [school, kid])
    stmt = stored(ATTEMPTED, actor=CMI5_ACTOR)
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.learner_id == kid.id
    assert store.records.count(T, "person") == 1


def test_one_new_actor_in_many_statements_is_one_person(store, mapper):
    stmts = [stored(ATTEMPTED, id=str(uuid.uuid4())) for _ in range(3)]
    batch = mapper.map(T, stmts)
    assert [r.kind for r in batch.records].count("person") == 1
    store.records.apply(T, batch.records)
    assert store.records.count(T, "evidence") == 3


# --- what (competency resolution order) -----------------------------------------------------


def test_alignment_of_the_object_activity_wins(store, mapper, case_items):
    c1, c2 = case_items
    al = Alignment(tenant=T, source="admin", native_id="a1", target_system="xapi", target_kind="activity",
                   target_id=ATTEMPTED["object"]["id"], competency_id=c2.id)
    store.records.apply(T, [al])
    stmt = stored(ATTEMPTED, context={"contextActivities": {"category": [{"id": c1.uri}]}})
    (ev,) = ingest(store, mapper, [stmt])
    assert (ev.competency_id, ev.alignment_id) == (c2.id, al.id)


def test_case_uri_among_context_activities_resolves(store, mapper, case_items):
    c1, _ = case_items
    stmt = stored(ATTEMPTED, context={"contextActivities": {
        "parent": [{"id": "https://case.example/uri/c2"}],  # parent is not a place competencies are named
        "grouping": [{"id": "http://example.com/unrelated"}, {"id": c1.uri}]}})
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.competency_id == c1.id and ev.alignment_id is None


def test_case_identifier_at_the_end_of_another_uri_resolves(store, mapper, case_items):
    c1, _ = case_items
    stmt = stored(ATTEMPTED, context={"contextActivities": {"other": [{"id": f"https://mirror.example/items/{c1.guid}"}]}})
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.competency_id == c1.id


def test_extension_named_in_the_mapping_resolves_last(store, mapper, case_items):
    _, c2 = case_items
    key = VerbMap.load().competency_extensions[0]
    stmt = stored(ATTEMPTED, context={"extensions": {key: "https://case.example/uri/c2"}})
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.competency_id == c2.id


def test_unresolvable_statement_is_kept_unaligned(store, mapper, case_items):
    (ev,) = ingest(store, mapper, [stored(ATTEMPTED)])
    assert ev.competency_id is None
    assert stored_evidence(store, ATTEMPTED["id"]).competency_id is None


def test_alignments_of_another_tenant_do_not_count(store, mapper):
    fw = f.framework(tenant="t2")
    comp = f.competency("c", fw, tenant="t2")
    al = Alignment(tenant="t2", source="admin", native_id="a", target_system="xapi", target_kind="activity",
                   target_id=ATTEMPTED["object"]["id"], competency_id=comp.id)
    store.records.apply("t2", [fw, comp, al])
    (ev,) = ingest(store, mapper, [stored(ATTEMPTED)])
    assert ev.competency_id is None


# --- voiding and idempotence ----------------------------------------------------------------


def voiding(target: str) -> dict:
    # xAPI 1.0.3 Data 2.5 example: a voiding statement
    return stored({"actor": {"objectType": "Agent", "name": "Example Admin", "mbox": "mailto:admin@example.adlnet.gov"},
                   "verb": {"id": ADL + "voided", "display": {"en-US": "voided"}},
                   "object": {"objectType": "StatementRef", "id": target}})


def test_voiding_a_statement_voids_its_evidence(store, mapper):
    ingest(store, mapper, [stored(ATTEMPTED)])
    batch = mapper.map(T, [voiding(ATTEMPTED["id"])])
    assert [(r.kind, r.voided) for r in batch.records] == [("evidence", True)]
    store.records.apply(T, batch.records)
    assert stored_evidence(store, ATTEMPTED["id"]).voided is True


def test_statement_voided_in_its_own_batch_is_stored_voided(store, mapper):
    ingest(store, mapper, [stored(ATTEMPTED), voiding(ATTEMPTED["id"])])
    assert stored_evidence(store, ATTEMPTED["id"]).voided is True


def test_void_by_ids(store, mapper):
    ingest(store, mapper, [stored(ATTEMPTED)])
    records = mapper.void(T, [ATTEMPTED["id"], str(uuid.uuid4())])
    assert [r.voided for r in records] == [True]


def test_re_ingesting_the_same_statements_changes_nothing(store, mapper, case_items):
    stmts = [stored(ATTEMPTED), stored(SIMPLE, verb={"id": ADL + "passed"})]
    ingest(store, mapper, stmts)
    result = store.records.apply(T, EvidenceMapper(store).map(T, copy.deepcopy(stmts)).records)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 2)


# --- cmi5 -----------------------------------------------------------------------------------


def launched(session: str, mode: str, **ext: Any) -> dict:
    return cmi5_statement("launched", session, ext={CMI5 + "extensions/launchmode": mode, **ext})


def test_cmi5_statements_of_a_browse_or_review_launch_are_not_evidence(store, mapper):
    ingest(store, mapper, [launched("s-browse", "Browse"), launched("s-review", "Review")])
    for session in ("s-browse", "s-review"):
        stmt = cmi5_statement("completed", session, result={"completion": True, "duration": "PT5M"}, moveon=True)
        assert mapper.map(T, [stmt]).records == []


def test_cmi5_statement_of_a_normal_launch_is_evidence_with_its_context(store, mapper):
    ingest(store, mapper, [launched("s-1", "Normal", **{CMI5 + "extensions/moveon": "CompletedAndPassed"})])
    stmt = cmi5_statement("completed", "s-1", result={"completion": True, "duration": "PT5M"}, moveon=True)
    (ev,) = ingest(store, mapper, [stmt])
    assert ev.completion is True and ev.evidence_kind.value == "completion"
    assert ev.extensions["cmi5"] == {"session_id": "s-1", "defined": True, "registration": REGISTRATION,
                                     "launch_mode": "Normal", "move_on": "CompletedAndPassed"}


def test_launched_and_review_statements_in_one_batch(store, mapper):
    stmts = [launched("s-2", "Review"), cmi5_statement("passed", "s-2", result={"success": True, "duration": "PT1M"}, moveon=True)]
    assert ingest(store, mapper, stmts) == []


def test_passed_is_judged_against_the_mastery_score(store, mapper):
    # cmi5 9.3.4: a passed statement's scaled score MUST be >= masteryScore; one below is not a pass
    ingest(store, mapper, [launched("s-3", "Normal", **{CMI5 + "extensions/masteryscore": 0.8})])
    low = cmi5_statement("passed", "s-3", result={"success": True, "score": {"scaled": 0.5}, "duration": "PT1M"}, moveon=True)
    high = cmi5_statement("failed", "s-3", result={"success": False, "score": {"scaled": 0.9}, "duration": "PT1M"},
                          ext={CMI5 + "extensions/masteryscore": 0.95}, moveon=True)
    ok = cmi5_statement("passed", "s-3", result={"success": True, "score": {"scaled": 0.8}, "duration": "PT1M"}, moveon=True)
    by_id = {e.native_id: e for e in ingest(store, mapper, [low, high, ok])}
    assert by_id[low["id"]].success is False  # session masteryScore 0.8
    assert by_id[high["id"]].success is False  # the statement's own masteryScore 0.95 wins
    assert by_id[ok["id"]].success is True
    assert by_id[ok["id"]].extensions["cmi5"]["mastery_score"] == 0.8


def test_cmi5_lms_statements_are_not_evidence(store, mapper):
    stmts = [launched("s-4", "Normal"), cmi5_statement("initialized", "s-4"),
             cmi5_statement("terminated", "s-4", result={"duration": "PT10M"})]
    assert mapper.map(T, stmts).records == []


def test_an_alignment_added_later_counts_for_the_next_statements_of_the_same_mapper(store, mapper, case_items):
    _, c2 = case_items
    (before,) = ingest(store, mapper, [stored(ATTEMPTED)])
    assert before.competency_id is None
    al = Alignment(tenant=T, source="admin", native_id="late", target_system="xapi.activity", target_kind="activity",
                   target_id=ATTEMPTED["object"]["id"], competency_id=c2.id)
    store.records.apply(T, [al])
    (after,) = ingest(store, mapper, [stored(ATTEMPTED, id=str(uuid.uuid4()))])
    assert (after.competency_id, after.alignment_id) == (c2.id, al.id)


@pytest.mark.parametrize(
    ("doc", "word"),
    [({"version": 2}, "version"),
     ({"version": 1, "verbs": {"http://x.example/v": {"kind": "guess"}}}, "http://x.example/v"),
     ({"version": 1, "verbs": {"http://x.example/v": {"kind": "assessment", "success": "yes"}}}, "success"),
     ({"version": 1, "verbs": {"http://x.example/v": {"kind": "assessment", "level": 3}}}, "http://x.example/v")],
)
def test_a_broken_verb_mapping_is_refused_naming_the_entry(doc, word):
    with pytest.raises(ValueError, match=word.replace(".", r"\.")):
        VerbMap.parse(doc)


def test_the_shipped_verb_mapping_knows_the_cmi5_verbs():
    verbs = VerbMap.load()
    assert verbs.verbs[ADL + "passed"].success is True and verbs.verbs[ADL + "failed"].success is False
    assert {ADL + "launched", ADL + "initialized", ADL + "terminated"} <= verbs.never
