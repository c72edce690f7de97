"""xAPI 1.0.3 Communication 2.1 (Statement Resource) and Data 2.3 (immutability, voiding),
over real HTTP on both backends."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import orjson

from tests.xapi_support import statement

pytest_plugins = ["tests.xapi_fixtures"]  # the lrs fixture

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
PASSED = "http://adlnet.gov/expapi/verbs/passed"


def _agent_param(agent: dict) -> str:
    return quote(orjson.dumps(agent).decode())


def test_put_stores_a_statement_under_statement_id_and_get_returns_it_as_stored(lrs) -> None:
    c = lrs()
    s = statement()
    sid = s.pop("id")
    r = c.put(f"/statements?statementId={sid}", json=s)
    assert r.status_code == 204, r.text
    assert r.headers["X-Experience-API-Version"] == "1.0.3"
    assert "X-Experience-API-Consistent-Through" in r.headers
    got = c.get(f"/statements?statementId={sid}")
    assert got.status_code == 200
    body = got.json()
    assert body["id"] == sid
    assert body["actor"] == s["actor"] and body["object"] == s["object"]
    # Data 2.4: the LRS sets stored, authority, timestamp and version
    assert body["stored"] and body["timestamp"] and body["version"] == "1.0.0"
    assert body["authority"]["objectType"] == "Agent" and "account" in body["authority"]
    assert "Last-Modified" in got.headers


def test_identical_re_put_is_accepted_and_conflicting_re_put_is_409(lrs) -> None:
    c = lrs()
    s = statement()
    sid = s["id"]
    assert c.put(f"/statements?statementId={sid}", json=s).status_code == 204
    assert c.put(f"/statements?statementId={sid}", json=s).status_code == 204
    other = {**s, "verb": {"id": PASSED}}
    r = c.put(f"/statements?statementId={sid}", json=other)
    assert r.status_code == 409
    assert c.get(f"/statements?statementId={sid}").json()["verb"]["id"] == s["verb"]["id"]


def test_a_batch_re_sending_stored_statements_stores_only_the_new_ones(lrs) -> None:
    """Data 2.3.1.s9 within a batch: a stored statement sent again unchanged is accepted
    beside new ones; one sent changed rejects the whole batch (409) and stores nothing.
    The scored result makes each statement evidence too, so the re-sent one also meets
    the store's append-only evidence rule."""
    c = lrs()
    scored = {"score": {"scaled": 0.8}, "success": True}
    first = statement(result=scored)
    assert c.post("/statements", json=[first]).status_code == 200
    new = statement(result=scored)
    r = c.post("/statements", json=[first, new])
    assert r.status_code == 200, r.text
    assert r.json() == [first["id"], new["id"]]
    assert c.get(f"/statements?statementId={new['id']}").status_code == 200
    changed, another = {**first, "result": {"score": {"scaled": 0.2}}}, statement(result=scored)
    r = c.post("/statements", json=[another, changed])
    assert r.status_code == 409
    assert c.get(f"/statements?statementId={another['id']}").status_code == 404
    assert c.get(f"/statements?statementId={first['id']}").json()["result"]["score"]["scaled"] == 0.8


def test_put_without_statement_id_or_with_a_different_body_id_is_400(lrs) -> None:
    c = lrs()
    assert c.put("/statements", json=statement()).status_code == 400
    s = statement()
    assert c.put(f"/statements?statementId={uuid.uuid4()}", json=s).status_code == 400


def test_post_batch_returns_ids_in_order_and_assigns_missing_ids(lrs) -> None:
    c = lrs()
    a, b = statement(), statement(id=None)
    r = c.post("/statements", json=[a, b])
    assert r.status_code == 200, r.text
    ids = r.json()
    assert ids[0] == a["id"] and uuid.UUID(ids[1])
    assert c.get(f"/statements?statementId={ids[1]}").status_code == 200


def test_a_batch_with_one_invalid_statement_stores_none(lrs) -> None:
    c = lrs()
    good, bad = statement(), statement(actor={"mbox": "sally@example.com"})
    r = c.post("/statements", json=[good, bad])
    assert r.status_code == 400
    assert "statement[1].actor.mbox" in r.json()["message"]
    assert c.get(f"/statements?statementId={good['id']}").status_code == 404


def test_a_batch_with_the_same_id_twice_is_400(lrs) -> None:
    c = lrs()
    s = statement()
    assert c.post("/statements", json=[s, dict(s)]).status_code == 400
    assert c.get(f"/statements?statementId={s['id']}").status_code == 404


def test_voided_statement_is_hidden_from_queries_but_retrievable_by_voided_statement_id(lrs) -> None:
    c = lrs()
    target = statement()
    c.post("/statements", json=target).raise_for_status()
    voiding = statement(verb={"id": VOIDED, "display": {"en-US": "voided"}},
                        object={"objectType": "StatementRef", "id": target["id"]})
    c.post("/statements", json=voiding).raise_for_status()
    assert c.get(f"/statements?statementId={target['id']}").status_code == 404
    got = c.get(f"/statements?voidedStatementId={target['id']}")
    assert got.status_code == 200 and got.json()["id"] == target["id"]
    ids = [s["id"] for s in c.get("/statements").json()["statements"]]
    assert target["id"] not in ids and voiding["id"] in ids
    # Data 2.3.2: a voiding statement cannot be voided
    again = statement(verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": voiding["id"]})
    assert c.post("/statements", json=again).status_code == 400
    # and a statement that is not voided is not found by voidedStatementId
    assert c.get(f"/statements?voidedStatementId={voiding['id']}").status_code == 404


def test_statement_id_with_other_filter_parameters_is_400(lrs) -> None:
    c = lrs()
    s = statement()
    c.post("/statements", json=s).raise_for_status()
    assert c.get(f"/statements?statementId={s['id']}&verb={PASSED}").status_code == 400
    assert c.get(f"/statements?statementId={s['id']}&voidedStatementId={s['id']}").status_code == 400
    assert c.get(f"/statements?statementId={s['id']}&format=ids&attachments=false").status_code == 200


def test_query_by_agent_and_verb_and_activity(lrs) -> None:
    c = lrs()
    bob = {"mbox": "mailto:bob@example.com"}
    batch = [
        statement(actor=bob, verb={"id": PASSED}),
        statement(actor=bob),
        statement(verb={"id": PASSED}),
        statement(actor={"objectType": "Agent", "account": {"homePage": "https://sis.example.edu", "name": "u1"}},
                  object={"id": "http://example.com/activities/other"},
                  context={"instructor": bob, "contextActivities": {"parent": {"id": "http://example.com/activities/solo-hang-gliding"}}}),
    ]
    c.post("/statements", json=batch).raise_for_status()
    agent = _agent_param(bob)
    got = c.get(f"/statements?agent={agent}&verb={PASSED}").json()["statements"]
    assert [s["id"] for s in got] == [batch[0]["id"]]
    got = c.get(f"/statements?agent={agent}").json()["statements"]
    assert {s["id"] for s in got} == {batch[0]["id"], batch[1]["id"]}
    got = c.get(f"/statements?verb={PASSED}").json()["statements"]
    assert [s["id"] for s in got] == [batch[2]["id"], batch[0]["id"]]
    got = c.get(f"/statements?agent={agent}&related_agents=true").json()["statements"]
    assert {s["id"] for s in got} == {batch[0]["id"], batch[1]["id"], batch[3]["id"]}
    act = "http://example.com/activities/solo-hang-gliding"
    got = c.get(f"/statements?activity={act}").json()["statements"]
    assert {s["id"] for s in got} == {batch[0]["id"], batch[1]["id"], batch[2]["id"]}
    got = c.get(f"/statements?activity={act}&related_activities=true").json()["statements"]
    assert len(got) == 4
    # Data 2.4.6.2: a single context activity is returned as an array of one
    assert isinstance(got[0]["context"]["contextActivities"]["parent"], list)


def test_statements_targeting_a_matching_statement_match_its_filters(lrs) -> None:
    """Communication 2.1.3.s3: filter conditions for StatementRefs."""
    c = lrs()
    ben = {"mbox": "mailto:ben@example.com"}
    original = statement(actor=ben, verb={"id": PASSED})
    follow = statement(actor={"mbox": "mailto:andrew@example.com"}, verb={"id": "http://example.com/verbs/confirmed"},
                       object={"objectType": "StatementRef", "id": original["id"]})
    c.post("/statements", json=[original]).raise_for_status()
    c.post("/statements", json=[follow]).raise_for_status()
    got = c.get(f"/statements?agent={_agent_param(ben)}").json()["statements"]
    assert {s["id"] for s in got} == {original["id"], follow["id"]}


def test_paging_with_more_and_ascending_and_limit(lrs) -> None:
    c = lrs()
    batch = [statement() for _ in range(5)]
    c.post("/statements", json=batch).raise_for_status()
    seen = []
    page = c.get("/statements?limit=2&ascending=true").json()
    seen += page["statements"]
    while page["more"]:
        assert page["more"].startswith("/xapi/statements?")
        page = httpx_get_more(c, page["more"])
        seen += page["statements"]
    assert [s["id"] for s in seen] == [s["id"] for s in batch]
    newest = c.get("/statements?limit=1").json()
    assert newest["statements"][0]["id"] == batch[-1]["id"] and newest["more"]


def httpx_get_more(c, more: str) -> dict:
    return c.get(more.removeprefix("/xapi")).json()


def test_since_and_until_filter_on_stored(lrs) -> None:
    c = lrs()
    first = statement()
    c.post("/statements", json=first).raise_for_status()
    stored = c.get(f"/statements?statementId={first['id']}").json()["stored"]
    second = statement()
    c.post("/statements", json=second).raise_for_status()
    after = [s["id"] for s in c.get(f"/statements?since={quote(stored)}").json()["statements"]]
    assert first["id"] not in after
    upto = [s["id"] for s in c.get(f"/statements?until={quote(stored)}").json()["statements"]]
    assert first["id"] in upto and second["id"] not in upto


def test_registration_filter(lrs) -> None:
    c = lrs()
    reg = str(uuid.uuid4())
    a = statement(context={"registration": reg})
    c.post("/statements", json=[a, statement()]).raise_for_status()
    got = c.get(f"/statements?registration={reg}").json()["statements"]
    assert [s["id"] for s in got] == [a["id"]]


def test_format_ids_and_canonical_with_accept_language(lrs) -> None:
    c = lrs()
    s = statement(object={"id": "http://example.com/activities/a1",
                          "definition": {"name": {"en-US": "Flight", "fr-FR": "Vol"}}})
    c.post("/statements", json=s).raise_for_status()
    ids = c.get(f"/statements?statementId={s['id']}&format=ids").json()
    assert ids["actor"] == {"mbox": "mailto:sally@example.com"}
    assert ids["object"] == {"id": "http://example.com/activities/a1"}
    assert ids["verb"] == {"id": s["verb"]["id"]}
    can = c.get(f"/statements?statementId={s['id']}&format=canonical", headers={"Accept-Language": "fr-FR"}).json()
    assert can["object"]["definition"]["name"] == {"fr-FR": "Vol"}


def test_activities_resource_returns_the_merged_definition(lrs) -> None:
    c = lrs()
    aid = "http://example.com/activities/merged"
    c.post("/statements", json=statement(object={"id": aid, "definition": {"name": {"en-US": "Merged"}}})).raise_for_status()
    c.post("/statements", json=statement(object={"id": aid, "definition": {"name": {"fr-FR": "Fusion"}}})).raise_for_status()
    got = c.get(f"/activities?activityId={quote(aid)}").json()
    assert got == {"objectType": "Activity", "id": aid, "definition": {"name": {"en-US": "Merged", "fr-FR": "Fusion"}}}
    unknown = c.get("/activities?activityId=http://example.com/activities/never").json()
    assert unknown == {"objectType": "Activity", "id": "http://example.com/activities/never"}
    assert c.get("/activities").status_code == 400


def test_agents_resource_returns_a_person(lrs) -> None:
    c = lrs()
    c.post("/statements", json=statement()).raise_for_status()
    person = c.get(f"/agents?agent={_agent_param({'mbox': 'mailto:sally@example.com'})}").json()
    assert person["objectType"] == "Person"
    assert person["mbox"] == ["mailto:sally@example.com"] and person["name"] == ["Sally Glider"]


def test_head_answers_headers_without_a_body(lrs) -> None:
    c = lrs()
    s = statement()
    c.post("/statements", json=s).raise_for_status()
    r = c.head(f"/statements?statementId={s['id']}")
    assert r.status_code == 200 and r.content == b""
    assert "X-Experience-API-Consistent-Through" in r.headers


def test_tenants_are_isolated(lrs) -> None:
    mine, theirs = lrs("t1"), lrs("t2")
    s = statement()
    mine.post("/statements", json=s).raise_for_status()
    assert theirs.get(f"/statements?statementId={s['id']}").status_code == 404
    assert theirs.get("/statements").json()["statements"] == []
    # filtered queries reach statements through index rows, which carry the tenant too
    for query in (f"agent={_agent_param(s['actor'])}", f"verb={quote(s['verb']['id'])}",
                  f"activity={quote(s['object']['id'])}&related_activities=true"):
        assert len(mine.get(f"/statements?{query}").json()["statements"]) == 1
        assert theirs.get(f"/statements?{query}").json()["statements"] == []
    # the same id is free in another tenant
    assert theirs.put(f"/statements?statementId={s['id']}", json=s).status_code == 204


def test_read_mine_scope_sees_only_its_own_statements(lrs) -> None:
    writer = lrs(scopes=["xapi/statements/write", "xapi/statements/read/mine"])
    other = lrs(scopes=["xapi/statements/write"])
    a, b = statement(), statement()
    writer.post("/statements", json=a).raise_for_status()
    other.post("/statements", json=b).raise_for_status()
    assert [s["id"] for s in writer.get("/statements").json()["statements"]] == [a["id"]]
    assert writer.get(f"/statements?statementId={b['id']}").status_code == 404
    assert other.get("/statements").status_code == 403


def test_version_2_statement_with_context_agents_and_rfc3339_timestamp(lrs) -> None:
    c = lrs(version="2.0.0")
    s = statement(timestamp="2023-10-01 12:00:00z",
                  context={"contextAgents": [{"objectType": "contextAgent", "agent": {"mbox": "mailto:coach@example.com"},
                                              "relevantTypes": ["https://example.com/types/coach"]}]})
    r = c.post("/statements", json=s)
    assert r.status_code == 200, r.text
    assert r.headers["X-Experience-API-Version"] == "2.0.0"
    got = c.get(f"/statements?statementId={s['id']}").json()
    assert got["timestamp"] == "2023-10-01T12:00:00.000Z" and got["version"] == "2.0.0"
    # contextAgents does not exist in 1.0.3
    assert lrs().post("/statements", json=statement(context=s["context"])).status_code == 400


def test_bearer_tokens_work_too(api) -> None:
    c = api.auth_client("t1", ["xapi/all"])
    r = c.post("/xapi/statements", json=statement(), headers={"X-Experience-API-Version": "1.0.3"})
    assert r.status_code == 200, r.text


def test_concurrent_batches_sharing_activities_all_commit(lrs) -> None:
    """Data is committed before it is acknowledged, and writers that define the same
    activities at once neither lose statements nor deadlock."""
    from concurrent.futures import ThreadPoolExecutor

    c = lrs()
    activities = [f"http://example.com/activities/shared-{i}" for i in range(10)]

    def post(n: int) -> list[str]:
        batch = [statement(object={"id": activities[(n + i) % 10], "definition": {"name": {"en-US": f"v{n}"}}})
                 for i in range(20)]
        r = c.post("/statements", json=batch)
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(4) as pool:
        ids = [i for got in pool.map(post, range(8)) for i in got]
    stored = c.get("/statements?limit=500").json()["statements"]
    assert {s["id"] for s in stored} == set(ids) and len(ids) == 160


def test_without_the_define_scope_definitions_are_not_learned(lrs) -> None:
    """Communication 4.2 "define": without it, statements are stored but their activity
    definitions are ignored."""
    aid = "http://example.com/activities/undefined"
    writer = lrs(scopes=["xapi/statements/write", "xapi/statements/read"])
    writer.post("/statements", json=statement(object={"id": aid, "definition": {"name": {"en-US": "Ignored"}}})).raise_for_status()
    assert writer.get(f"/activities?activityId={quote(aid)}").json() == {"objectType": "Activity", "id": aid}


def test_every_statement_resource_response_carries_consistent_through_errors_included(lrs) -> None:
    """Communication 2.1.3.s2.b5: X-Experience-API-Consistent-Through, an ISO 8601
    timestamp, "on all responses to Statements Resource requests"."""
    from adapters.xapi.parameters import parse_timestamp

    c = lrs()
    s = statement()
    answers = [
        c.post("/statements", json=s),  # 200
        c.put(f"/statements?statementId={uuid.uuid4()}", json=statement(id=None)),  # 204
        c.get(f"/statements?statementId={s['id']}"),  # 200
        c.get("/statements"),  # 200
        c.get(f"/statements?statementId={uuid.uuid4()}"),  # 404
        c.get(f"/statements?statementId={s['id']}&agent={_agent_param({'mbox': 'mailto:sally@example.com'})}"),  # 400
        c.post("/statements", json={"actor": "nobody"}),  # 400
        c.head(f"/statements?voidedStatementId={s['id']}"),  # 404
    ]
    assert [r.status_code for r in answers] == [200, 204, 200, 200, 404, 400, 400, 404]
    for r in answers:
        parse_timestamp(r.headers["X-Experience-API-Consistent-Through"], "header")
    assert "X-Experience-API-Consistent-Through" not in c.get("/activities?activityId=http://example.com/a").headers


def test_format_ids_keeps_only_what_identifies_each_object(lrs) -> None:
    """Communication 2.1.3 format=ids: "only include minimum information necessary in Agent,
    Activity, Verb and Group Objects to identify them": an Activity is its id (objectType
    Activity is the default), a Group its identifier and objectType."""
    c = lrs()
    group = {"objectType": "Group", "name": "Team PB", "mbox": "mailto:teampb@example.com"}
    activity = {"objectType": "Activity", "id": "http://example.com/activities/ids",
                "definition": {"name": {"en-US": "Ids"}, "type": "http://adlnet.gov/expapi/activities/lesson"}}
    s = statement(object={"objectType": "SubStatement", "actor": group, "verb": {"id": PASSED, "display": {"en-US": "passed"}},
                          "object": activity})
    c.post("/statements", json=s).raise_for_status()
    got = c.get(f"/statements?statementId={s['id']}&format=ids").json()
    assert got["object"]["actor"] == {"objectType": "Group", "mbox": "mailto:teampb@example.com"}
    assert got["object"]["object"] == {"id": activity["id"]}
    assert got["object"]["verb"] == {"id": PASSED}


def test_one_batch_defining_an_activity_in_two_languages_keeps_both(lrs) -> None:
    """Communication 2.5.s1: the Activity object holds all the LRS knows about the activity
    from every statement, statements of one batch included."""
    c = lrs()
    aid = "http://example.com/activities/one-batch"
    c.post("/statements", json=[
        statement(object={"id": aid, "definition": {"name": {"en-US": "example meeting"}, "type": "http://example.com/t"}}),
        statement(object={"id": aid, "definition": {"name": {"fr-FR": "réunion"}}}),
    ]).raise_for_status()
    got = c.get(f"/activities?activityId={quote(aid)}").json()
    assert got["definition"] == {"name": {"en-US": "example meeting", "fr-FR": "réunion"}, "type": "http://example.com/t"}


def test_durations_compare_to_the_hundredth_of_a_second(lrs) -> None:
    """Data 4.6.s1.b5: precision beyond 0.01 s is not part of a comparison, so re-sending a
    statement whose duration differs only there is the same statement (not a 409 conflict)."""
    c = lrs()
    s = statement(result={"duration": "P1DT12H36M0.12S"})
    sid = s["id"]
    assert c.put(f"/statements?statementId={sid}", json=s).status_code == 204
    assert c.put(f"/statements?statementId={sid}", json={**s, "result": {"duration": "P1DT12H36M0.1237S"}}).status_code == 204
    assert c.put(f"/statements?statementId={sid}", json={**s, "result": {"duration": "P1DT12H36M0.13S"}}).status_code == 409
    assert c.get(f"/statements?statementId={sid}").json()["result"]["duration"] == "P1DT12H36M0.12S"


def test_agent_filter_matches_groups_the_agent_is_a_member_of(lrs) -> None:
    """Communication 2.1.3 agent: "Groups that have members which match the specified Agent
    ... are considered a match" when the Group is the Actor or Object; a Group elsewhere
    (a context team, say) still needs related_agents."""
    c = lrs()
    dana = {"mbox": "mailto:dana@example.com"}
    other = {"mbox": "mailto:other@example.com"}
    as_actor = statement(actor={"objectType": "Group", "member": [other, dana]})
    as_object = statement(object={"objectType": "Group", "mbox": "mailto:team@example.com", "member": [dana]})
    in_team = statement(context={"team": {"objectType": "Group", "mbox": "mailto:t2@example.com", "member": [dana]}})
    unrelated = statement(actor={"objectType": "Group", "member": [other]})
    c.post("/statements", json=[as_actor, as_object, in_team, unrelated]).raise_for_status()
    got = c.get(f"/statements?agent={_agent_param(dana)}").json()["statements"]
    assert {s["id"] for s in got} == {as_actor["id"], as_object["id"]}
    got = c.get(f"/statements?agent={_agent_param(dana)}&verb={quote(as_actor['verb']['id'])}").json()["statements"]
    assert {s["id"] for s in got} == {as_actor["id"], as_object["id"]}
    got = c.get(f"/statements?agent={_agent_param(dana)}&related_agents=true").json()["statements"]
    assert {s["id"] for s in got} == {as_actor["id"], as_object["id"], in_team["id"]}


def test_malformed_limit_or_more_cursor_is_400_not_a_crash(lrs) -> None:
    """Communication 2.1.3: limit is a non-negative integer; a ``more`` IRL the client
    altered beyond what the LRS can have issued is a bad request (3.2: 400)."""
    c = lrs()
    for query in ("limit=%C2%B2", "limit=-1", "cursor=" + "9" * 40, "cursor=%C2%B2", "cursor=12a"):
        r = c.get(f"/statements?{query}")
        assert r.status_code == 400, (query, r.text)
