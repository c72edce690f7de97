"""Statements POSTed to the LRS over real HTTP become evidence in the same transaction:
voiding over HTTP voids it, a cmi5 Browse launch's statements never become evidence."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway.model import Identifier, record_id
from tests import factories as f

ADL = "http://adlnet.gov/expapi/verbs/"
CMI5 = "https://w3id.org/xapi/cmi5/context/"
ACTOR = {"objectType": "Agent", "account": {"homePage": "http://www.example.com", "name": "1625378"}}
AU = "http://www.example.com/LA1/001/intro"


@pytest.fixture
def lrs(api) -> httpx.Client:
    cid, secret = api.credentials(f.T, ["xapi/all"])
    c = api.client()
    c.auth = httpx.BasicAuth(cid, secret)
    c.headers["X-Experience-API-Version"] = "1.0.3"
    return c


def stmt(verb: str, **extra) -> dict:
    return {"id": str(uuid.uuid4()), "actor": ACTOR, "verb": {"id": ADL + verb, "display": {"en-US": verb}},
            "object": {"id": AU, "objectType": "Activity"}, **extra}


def evidence_of(store, statement_id: str):
    return store.records.get(f.T, "evidence", record_id(f.T, "evidence", "xapi", statement_id))


def test_posted_statement_becomes_aligned_evidence_for_the_roster_person(api, lrs):
    school = f.org()
    kid = f.person("u1", school, identifiers=[Identifier(system="lms", kind="xapi.account", value="http://www.example.com|1625378")])
    fw = f.framework()
    comp = f.competency("RL.3.1", fw, identifiers=[Identifier(system="case", kind="case.uri", value="https://case.example/uri/rl31")])
    api.store.records.apply(f.T, [school, kid, fw, comp])
    s = stmt("passed", result={"score": {"scaled": 0.9}},
             context={"contextActivities": {"grouping": [{"id": "https://case.example/uri/rl31"}]}})
    assert lrs.post("/xapi/statements", json=[s]).status_code == 200
    ev = evidence_of(api.store, s["id"])
    assert (ev.learner_id, ev.competency_id, ev.success, ev.score.scaled) == (kid.id, comp.id, True, 0.9)
    assert ev.provenance.received_at is not None


def test_voiding_statement_over_http_voids_the_evidence(api, lrs):
    s = stmt("completed")
    lrs.post("/xapi/statements", json=[s])
    assert evidence_of(api.store, s["id"]).voided is False
    void = {"actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"}, "verb": {"id": ADL + "voided"},
            "object": {"objectType": "StatementRef", "id": s["id"]}}
    assert lrs.post("/xapi/statements", json=[void]).status_code == 200
    assert evidence_of(api.store, s["id"]).voided is True


def test_cmi5_browse_session_statements_are_stored_but_not_evidence(api, lrs):
    session = str(uuid.uuid4())
    ctx = {"registration": str(uuid.uuid4()),
           "contextActivities": {"category": [{"id": CMI5 + "categories/cmi5"}]},
           "extensions": {CMI5 + "extensions/sessionid": session}}
    launched = stmt("launched", context={**ctx, "extensions": {**ctx["extensions"], CMI5 + "extensions/launchmode": "Browse"}})
    assert lrs.post("/xapi/statements", json=[launched]).status_code == 200
    passed = stmt("passed", result={"success": True, "duration": "PT1M"}, context=ctx)
    assert lrs.post("/xapi/statements", json=[passed]).status_code == 200
    assert lrs.get("/xapi/statements", params={"statementId": passed["id"]}).status_code == 200
    assert api.store.records.count(f.T, "evidence") == 0
