"""``xapi-lrs`` checks: GET /statements (single statements, every filter, formats, order,
paging through ``more``, the consistency header) and voiding.

The checks share one fixture, written by the first check that needs it: five statements of
one fresh registration, stored one by one (so their ``stored`` times are ordered), the last
of them voided by a sixth."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from ..kit import Fail, Session, Skip
from .xapi_lrs_common import (
    ATTEMPTED,
    C103,
    CONSISTENT,
    D103,
    EXPERIENCED,
    KIT,
    V1,
    VOIDED,
    activity,
    agent,
    body_json,
    default_version,
    excerpt,
    expect,
    get_one,
    get_statements,
    hv,
    ids_of,
    parse_ts,
    post_statements,
    result_statements,
    statement,
    store,
    versions,
)


def _check(cid: str, req: str, desc: str, adl: tuple[str, ...] = (), required: bool = True, tags: tuple[str, ...] = ("query",)) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return KIT.check(cid, req, desc, requirement_ids=adl, required=required, tags=tags)


def fixture(s: Session) -> dict[str, Any]:
    """The query fixture (written once per run): ``reg``, ``actor``, ``ids`` s1..s4 in
    stored order, ``voided`` (s5), ``voiding``, ``stored`` (ids -> stored)."""
    f = s.state.get("query_fixture")
    if isinstance(f, dict):
        return f
    if isinstance(f, str):
        raise Fail(f"the query fixture could not be written: {f}")
    try:
        f = _write_fixture(s)
    except Fail as exc:
        s.state["query_fixture"] = str(exc)
        raise
    s.state["query_fixture"] = f
    return f


def _write_fixture(s: Session) -> dict[str, Any]:
    reg, void_reg = str(uuid.uuid4()), str(uuid.uuid4())
    actor = agent(s, "querier")
    main, other, parent = activity(s, "q-main"), activity(s, "q-other"), activity(s, "q-parent")
    instructor = agent(s, "q-instructor")
    ctx = {"registration": reg}
    sts = [
        statement(s, actor=actor, object={"objectType": "Activity", "id": main, "definition": {"name": {"en-US": "Main activity", "fr-FR": "Activité principale"}}},
                  context={**ctx, "instructor": instructor, "contextActivities": {"parent": [{"id": parent}]}}),
        statement(s, actor=actor, verb={"id": ATTEMPTED, "display": {"en-US": "attempted"}}, object={"objectType": "Activity", "id": other}, context=ctx),
        statement(s, actor=agent(s, "q-other-actor"), object={"objectType": "Activity", "id": main}, context=ctx),
        statement(s, actor=actor, object={"objectType": "Activity", "id": main}, context=ctx, result={"completion": True}),
        # the statement voided below: a registration of its own, so only the voiding checks' queries can see it
        statement(s, actor=actor, object={"objectType": "Activity", "id": main}, context={"registration": void_reg}),
    ]
    stored: dict[str, str] = {}
    for st in sts:
        store(s, st)
        got = get_one(s, st["id"])
        expect(got, 200, what="GET of a fixture statement")
        stored[st["id"]] = str(body_json(got).get("stored"))
        time.sleep(0.002)
    voiding = statement(s, actor=actor, verb={"id": VOIDED, "display": {"en-US": "voided"}}, object={"objectType": "StatementRef", "id": sts[4]["id"]})
    store(s, voiding)
    return {"reg": reg, "actor": actor, "instructor": instructor, "main": main, "other": other, "parent": parent,
            "ids": [x["id"] for x in sts[:4]], "voided": sts[4]["id"], "void_reg": void_reg, "voiding": voiding["id"], "stored": stored}


def _query(s: Session, f: dict[str, Any] | None = None, **params: Any) -> list[dict[str, Any]]:
    if f is not None:
        params.setdefault("registration", f["reg"])
    return result_statements(get_statements(s, **params))


def _same(got: list[dict[str, Any]], want: list[str], what: str, ordered: bool = False) -> None:
    g = ids_of(got)
    if (g != want) if ordered else (sorted(g) != sorted(want)):
        raise Fail(f"{what}: got {g}, expected {want}")


# --------------------------------------------------------------------------- single statements

@_check("XAPI-Q-001", f"{C103} 2.1.3.s1", "GET with statementId answers 200 and that one statement", ("XAPI-00156", "XAPI-00158", "XAPI-00159"))
def _by_id(s: Session) -> None:
    f = fixture(s)
    r = get_one(s, f["ids"][0])
    expect(r, 200)
    got = body_json(r)
    if not isinstance(got, dict) or got.get("id") != f["ids"][0]:
        raise Fail(f"GET statementId answered {excerpt(r)}")


@_check("XAPI-Q-002", f"{C103} 2.1.3.s1", "GET without statementId answers a StatementResult with 'statements' and 'more'", ("XAPI-00154", "XAPI-00113", "XAPI-00110"))
def _result(s: Session) -> None:
    f = fixture(s)
    r = get_statements(s, registration=f["reg"])
    sts = result_statements(r)
    body = body_json(r)
    if set(body) - {"statements", "more"}:
        raise Fail(f"the StatementResult has properties beyond statements/more: {sorted(body)}")
    for st in sts:
        if not all(k in st for k in ("id", "actor", "verb", "object", "stored")):
            raise Fail(f"a returned statement is incomplete: {json.dumps(st)[:200]}")


@_check("XAPI-Q-003", f"{C103} 2.1.3.s2.b4", "A query matching nothing answers 200 with an empty 'statements' array", ("XAPI-00149",))
def _empty(s: Session) -> None:
    r = get_statements(s, registration=str(uuid.uuid4()))
    if result_statements(r):
        raise Fail("statements of a fresh registration were returned")
    more = body_json(r).get("more")
    if more not in (None, ""):
        raise Fail(f"'more' is {more!r} for an empty result")


# --------------------------------------------------------------------------- filters

@_check("XAPI-Q-010", f"{C103} 2.1.3.s1.table1.row6", "The registration filter returns exactly that registration's statements", ("XAPI-00178", "XAPI-00164"))
def _registration(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f), f["ids"], "registration filter")


@_check("XAPI-Q-011", f"{C103} 2.1.3.s1.table1.row3", "The agent filter returns the statements whose actor is that agent", ("XAPI-00181", "XAPI-00164"))
def _agent(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, agent=json.dumps(f["actor"])), [f["ids"][0], f["ids"][1], f["ids"][3]], "agent filter")


@_check("XAPI-Q-012", f"{C103} 2.1.3.s1.table1.row4", "The verb filter returns the statements with that verb", ("XAPI-00180", "XAPI-00164"))
def _verb(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, verb=ATTEMPTED), [f["ids"][1]], "verb filter")


@_check("XAPI-Q-013", f"{C103} 2.1.3.s1.table1.row5", "The activity filter returns the statements whose object is that activity", ("XAPI-00179", "XAPI-00164"))
def _activity(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, activity=f["main"]), [f["ids"][0], f["ids"][2], f["ids"][3]], "activity filter")


@_check("XAPI-Q-014", f"{C103} 2.1.3.s1.table1.row7", "related_activities=true matches context activities too; false does not", ("XAPI-00177",))
def _related_activities(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, activity=f["parent"]), [], "activity filter on a parent activity without related_activities")
    _same(_query(s, f, activity=f["parent"], related_activities="true"), [f["ids"][0]], "activity filter with related_activities=true")


@_check("XAPI-Q-015", f"{C103} 2.1.3.s1.table1.row8", "related_agents=true matches the instructor too; false does not", ("XAPI-00176",))
def _related_agents(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, agent=json.dumps(f["instructor"])), [], "agent filter on the instructor without related_agents")
    _same(_query(s, f, agent=json.dumps(f["instructor"]), related_agents="true"), [f["ids"][0]], "agent filter with related_agents=true")


@_check("XAPI-Q-016", f"{C103} 2.1.3.s1.table1.row9", "since returns only statements stored after it (exclusive)", ("XAPI-00175",))
def _since(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, since=f["stored"][f["ids"][1]]), f["ids"][2:], "since the second statement's stored time")


@_check("XAPI-Q-017", f"{C103} 2.1.3.s1.table1.row10", "until returns only statements stored at or before it (inclusive)", ("XAPI-00174",))
def _until(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, until=f["stored"][f["ids"][1]]), f["ids"][:2], "until the second statement's stored time")


@_check("XAPI-Q-018", f"{C103} 2.1.3.s1.table1.row11", "limit caps the number of statements returned", ("XAPI-00173",))
def _limit(s: Session) -> None:
    f = fixture(s)
    got = _query(s, f, limit=1)
    if len(got) != 1:
        raise Fail(f"limit=1 returned {len(got)} statements")


@_check("XAPI-Q-019", f"{C103} 2.1.3.s1.table1.row11", "limit=0 means the server's maximum: every statement of a small result", ())
def _limit_zero(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f, limit=0), f["ids"], "limit=0")


@_check("XAPI-Q-020", f"{C103} 2.1.3.s1.table1.row14", "Statements come newest stored first by default, oldest first with ascending=true", ("XAPI-00166",))
def _order(s: Session) -> None:
    f = fixture(s)
    _same(_query(s, f), list(reversed(f["ids"])), "default order", ordered=True)
    _same(_query(s, f, ascending="true"), f["ids"], "ascending=true", ordered=True)


@_check("XAPI-Q-021", f"{D103} 2.5.s2.table1.row2", "Paging: 'more' leads to the next page, the last page's 'more' is empty, nothing is lost or repeated",
        ("XAPI-00108", "XAPI-00109", "XAPI-00111", "XAPI-00114"))
def _paging(s: Session) -> None:
    f = fixture(s)
    r = get_statements(s, registration=f["reg"], limit=2, ascending="true")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        sts = result_statements(r)
        seen += ids_of(sts)
        more = body_json(r).get("more")
        if not more:
            break
        if pages > 4:
            raise Fail(f"paging did not end after {pages} pages of 2 (seen {seen})")
        if more.strip() != more:
            raise Fail(f"'more' has whitespace: {more!r}")
        url = urljoin(str(r.request.url), more)
        r = s.get(url, headers=hv(default_version(s)))
    if seen != f["ids"]:
        raise Fail(f"paging with limit=2 returned {seen}, expected {f['ids']}")
    if pages < 2:
        raise Fail("4 statements with limit=2 came back on one page")


@_check("XAPI-Q-022", f"{C103} 2.1.3.s1.table1.row12", "format=ids returns actors, verbs and activities by identifier only", ("XAPI-00171",))
def _format_ids(s: Session) -> None:
    f = fixture(s)
    got = body_json(get_one(s, f["ids"][0], format="ids"))
    actor, verb, obj = got.get("actor") or {}, got.get("verb") or {}, got.get("object") or {}
    if "name" in actor or "display" in verb or "definition" in obj:
        raise Fail(f"format=ids kept more than identifiers: actor {actor}, verb {verb}, object {obj}")
    if actor.get("mbox") != f["actor"]["mbox"] or verb.get("id") != EXPERIENCED or obj.get("id") != f["main"]:
        raise Fail("format=ids lost an identifier")


@_check("XAPI-Q-023", f"{C103} 2.1.3.s1.table1.row12", "format=exact (and no format) returns the statement as it was sent", ("XAPI-00170", "XAPI-00168"))
def _format_exact(s: Session) -> None:
    f = fixture(s)
    for params in ({"format": "exact"}, {}):
        got = body_json(get_one(s, f["ids"][0], **params))
        name = (((got.get("object") or {}).get("definition") or {}).get("name")) or {}
        if name != {"en-US": "Main activity", "fr-FR": "Activité principale"} or (got.get("actor") or {}).get("name") != "Querier":
            raise Fail(f"format {params.get('format', '(absent)')} changed the statement: object name {name}")


@_check("XAPI-Q-024", f"{C103} 2.1.3.s1.table1.row12", "format=canonical with Accept-Language returns one language per language map, the one asked for",
        ("XAPI-00169", "XAPI-00172"))
def _format_canonical(s: Session) -> None:
    f = fixture(s)
    got = body_json(get_statements(s, headers={"Accept-Language": "fr-FR"}, statementId=f["ids"][0], format="canonical"))
    name = (((got.get("object") or {}).get("definition") or {}).get("name")) or {}
    if list(name) != ["fr-FR"]:
        raise Fail(f"format=canonical with Accept-Language fr-FR gave the name {name}")


@_check("XAPI-Q-025", f"{D103} 2.2.s4.b4", "Query parameters are validated as statement values: an agent that is not JSON is a 400", ("XAPI-00012",))
def _bad_agent(s: Session) -> None:
    expect(get_statements(s, agent="mailto:someone@example.com"), 400)


@_check("XAPI-Q-026", f"{D103} 2.2.s4.b4", "A since that is not a timestamp, or a registration that is not a UUID, is a 400", ("XAPI-00012",))
def _bad_values(s: Session) -> None:
    expect(get_statements(s, since="last tuesday"), 400)
    expect(get_statements(s, registration="not-a-uuid"), 400)


@_check("XAPI-Q-027", f"{C103} 2.1.3.s2.b2", "statementId with any parameter but attachments/format is a 400", ("XAPI-00151",))
def _id_plus(s: Session) -> None:
    f = fixture(s)
    expect(get_statements(s, statementId=f["ids"][0], verb=EXPERIENCED), 400)


@_check("XAPI-Q-028", f"{C103} 2.1.3.s2.b2", "voidedStatementId with any parameter but attachments/format is a 400", ("XAPI-00150",))
def _voided_plus(s: Session) -> None:
    f = fixture(s)
    expect(get_statements(s, voidedStatementId=f["voided"], verb=EXPERIENCED), 400)


@_check("XAPI-Q-029", f"{C103} 3.2.s2.b1", "A parameter the LRS does not know is a 400", ("XAPI-00324",))
def _unknown_param(s: Session) -> None:
    expect(get_statements(s, colour="blue"), 400)


@_check("XAPI-Q-030", f"{C103} 3.2.s3.b8", "A parameter in the wrong case (Verb=) is a 400", ("XAPI-00325",))
def _case_param(s: Session) -> None:
    expect(get_statements(s, Verb=EXPERIENCED), 400)


@_check("XAPI-Q-031", f"{C103} 2.1.3.s2.b5", "GET /statements answers X-Experience-API-Consistent-Through, an ISO 8601 timestamp", ("XAPI-00153", "XAPI-00160"))
def _consistent(s: Session) -> None:
    f = fixture(s)
    r = get_statements(s, registration=f["reg"])
    value = r.headers.get(CONSISTENT)
    if not value:
        raise Fail("no X-Experience-API-Consistent-Through header on GET /statements")
    parse_ts(value)


@_check("XAPI-Q-032", f"{C103} 2.1.3.s2.b5", "X-Experience-API-Consistent-Through is on error answers of the Statement Resource too", ("XAPI-00153",))
def _consistent_error(s: Session) -> None:
    r = get_statements(s, colour="blue")
    if not r.headers.get(CONSISTENT):
        raise Fail(f"the {r.status_code} answer has no X-Experience-API-Consistent-Through header")


@_check("XAPI-Q-033", f"{C103} 2.1.3.s1.b1", "GET /statements answers Content-Type application/json; attachments=false keeps it JSON", ("XAPI-00165", "XAPI-00161"))
def _content_type(s: Session) -> None:
    f = fixture(s)
    options: list[dict[str, Any]] = [{}, {"attachments": "false"}]
    for params in options:
        r = get_statements(s, registration=f["reg"], **params)
        expect(r, 200)
        if not r.headers.get("content-type", "").startswith("application/json"):
            raise Fail(f"Content-Type {r.headers.get('content-type')!r} with {params or 'no attachments parameter'}")


@_check("XAPI-Q-034", f"{C103} 1.1", "HEAD /statements answers like GET without a body", ("XAPI-00125", "XAPI-00126"))
def _head(s: Session) -> None:
    f = fixture(s)
    r = s.request("HEAD", "statements", params={"statementId": f["ids"][0]}, headers=hv(default_version(s)))
    expect(r, 200)
    if r.content:
        raise Fail(f"HEAD answered a body of {len(r.content)} bytes")
    expect(s.request("HEAD", "statements", params={"statementId": str(uuid.uuid4())}, headers=hv(default_version(s))), 404, what="HEAD of an unknown statement")


@_check("XAPI-Q-035", f"{C103} 1.3", "xAPI 1.0.3: the alternate request syntax (POST ?method=GET, form body) queries statements", ("XAPI-00148", "XAPI-00336"))
def _alternate(s: Session) -> None:
    if V1 not in versions(s):
        raise Skip("the LRS does not speak 1.0.3")
    f = fixture(s)
    r = s.post("statements", params={"method": "GET"}, data={"registration": f["reg"], "X-Experience-API-Version": V1},
               headers={"Content-Type": "application/x-www-form-urlencoded", "X-Experience-API-Version": V1})
    _same(result_statements(r), f["ids"], "alternate-syntax query by registration")


# --------------------------------------------------------------------------- voiding

@_check("XAPI-VOID-001", f"{D103} 2.3.2", "A voiding statement (verb voided, object a StatementRef) is accepted", ("XAPI-00019",), tags=("voiding",))
def _voiding_ok(s: Session) -> None:
    f = fixture(s)
    expect(get_one(s, f["voiding"]), 200, what="GET of the voiding statement")


@_check("XAPI-VOID-002", f"{C103} 2.1.4.s1.b1", "GET statementId of a voided statement answers 404", ("XAPI-00163",), tags=("voiding",))
def _voided_404(s: Session) -> None:
    f = fixture(s)
    expect(get_one(s, f["voided"]), 404)


@_check("XAPI-VOID-003", f"{C103} 2.1.3.s1.table1.row2", "GET voidedStatementId answers the voided statement", ("XAPI-00155", "XAPI-00157"), tags=("voiding",))
def _voided_get(s: Session) -> None:
    f = fixture(s)
    r = get_statements(s, voidedStatementId=f["voided"])
    expect(r, 200)
    if body_json(r).get("id") != f["voided"]:
        raise Fail(f"voidedStatementId answered {excerpt(r)}")


@_check("XAPI-VOID-004", f"{C103} 2.1.4.s1.b1; {D103} 2.3.2", "Queries never return a voided statement", ("XAPI-00163", "XAPI-00018"), tags=("voiding",))
def _voided_filtered(s: Session) -> None:
    f = fixture(s)
    for params in ({}, {"agent": json.dumps(f["actor"])}, {"activity": f["main"]}, {"verb": EXPERIENCED}):
        if f["voided"] in ids_of(_query(s, None, registration=f["void_reg"], **params)):
            raise Fail(f"the voided statement was returned by a query with {params or 'registration only'}")


@_check("XAPI-VOID-005", f"{C103} 2.1.4.s1.b2", "The voiding statement itself is returned by queries", ("XAPI-00162",), tags=("voiding",))
def _voiding_listed(s: Session) -> None:
    f = fixture(s)
    got = ids_of(result_statements(get_statements(s, agent=json.dumps(f["actor"]), verb=VOIDED)))
    if f["voiding"] not in got:
        raise Fail(f"the voiding statement is not among agent+verb=voided results {got}")


@_check("XAPI-VOID-006", f"{C103} 2.1.3.s1.table1.row2", "voidedStatementId of a statement that is not voided answers 404", (), tags=("voiding",))
def _not_voided(s: Session) -> None:
    f = fixture(s)
    expect(get_statements(s, voidedStatementId=f["ids"][0]), 404)


@_check("XAPI-VOID-007", f"{D103} 2.3.2.s2.b7", "A statement voiding a voiding statement is refused (400) or has no effect", ("XAPI-00016",), tags=("voiding",))
def _void_voiding(s: Session) -> None:
    target = statement(s)
    store(s, target)
    voiding = statement(s, verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": target["id"]})
    store(s, voiding)
    again = statement(s, verb={"id": VOIDED}, object={"objectType": "StatementRef", "id": voiding["id"]})
    r = post_statements(s, [again])
    if r.status_code == 400:
        return
    expect(r, 200, what="POST of a statement voiding a voiding statement")
    expect(get_one(s, voiding["id"]), 200, what="the voiding statement after it was 'voided'")


@_check("XAPI-VOID-008", f"{C103} 2.1.4.s1.b1", "A voided statement is not returned by GET statementId even in xAPI 2.0 and with format/attachments", ("XAPI-00163",), tags=("voiding",))
def _voided_all_versions(s: Session) -> None:
    f = fixture(s)
    for v in versions(s):
        expect(get_one(s, f["voided"], v, format="exact"), 404, what=f"xAPI {v}: GET statementId of the voided statement")




