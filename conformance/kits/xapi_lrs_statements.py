"""``xapi-lrs`` checks: statement validation (every rejection rule of Data 2 and 4, each
its own check, sent in every version the LRS speaks) and what valid statements the LRS
must accept and how it stores them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ..kit import Fail, Session
from .xapi_lrs_common import (
    C103,
    D103,
    KIT,
    V1,
    V2,
    VOIDED,
    X20,
    accepted,
    activity,
    agent,
    body_json,
    default_version,
    excerpt,
    expect,
    get_one,
    mbox,
    parse_ts,
    post_statements,
    put_statement,
    rejected,
    statement,
    store,
    versions,
)

Make = Callable[[Session], Any]


def _rule(cid: str, req: str, desc: str, adl: tuple[str, ...], make: Make, only: Iterable[str] | None = None) -> None:
    only_t = tuple(only) if only else None

    def run(s: Session) -> None:
        rejected(s, make(s), only=only_t)

    run.__name__ = cid
    KIT.check(cid, req, desc, requirement_ids=adl, tags=("validation",))(run)


def _with(path: str, value: Any) -> Make:
    """A statement whose property at dotted ``path`` is ``value`` (``...`` removes it)."""

    def make(s: Session) -> dict[str, Any]:
        st = statement(s)
        keys = path.split(".")
        node: Any = st
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is ...:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = copy.deepcopy(value)
        return st

    return make


def _obj(obj: Callable[[Session], Any]) -> Make:
    return lambda s: statement(s, object=obj(s))


def _ctx(ctx: Callable[[Session], Any], **over: Any) -> Make:
    return lambda s: statement(s, context=ctx(s), **{k: (v(s) if callable(v) else v) for k, v in over.items()})


def _res(res: Any) -> Make:
    return lambda s: statement(s, result=copy.deepcopy(res))


def _substatement(s: Session, **over: Any) -> dict[str, Any]:
    sub = {"objectType": "SubStatement", "actor": agent(s, "sub"), "verb": {"id": ATTEMPTED_SUB}, "object": {"objectType": "Activity", "id": activity(s, "sub")}}
    sub.update(over)
    return sub


ATTEMPTED_SUB = "http://adlnet.gov/expapi/verbs/attempted"
SHA1 = "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"

# --------------------------------------------------------------------------- structure and formatting

_rule("XAPI-VAL-001", f"{D103} 2.2.s2.b3; {X20} 4.2.2", "A statement without 'actor' is rejected with 400", ("XAPI-00003",), _with("actor", ...))
_rule("XAPI-VAL-002", f"{D103} 2.2.s2.b3", "A statement without 'verb' is rejected with 400", ("XAPI-00004",), _with("verb", ...))
_rule("XAPI-VAL-003", f"{D103} 2.2.s2.b3", "A statement without 'object' is rejected with 400", ("XAPI-00005",), _with("object", ...))
_rule("XAPI-VAL-004", f"{D103} 2.2.s4.b1.b1", "A property set to null outside 'extensions' is rejected with 400", ("XAPI-00001",), _with("context", {"platform": None}))
_rule("XAPI-VAL-005", f"{D103} 2.2.s4.b2", "A property of the wrong JSON type (verb.display a string) is rejected with 400", ("XAPI-00006", "XAPI-00045"), _with("verb.display", "experienced"))
_rule("XAPI-VAL-006", f"{D103} 2.2.s4.b1.b5", "A key in the wrong case ('Success' in result) is rejected with 400", ("XAPI-00008", "XAPI-00010"), _res({"Success": True}))
_rule("XAPI-VAL-007", f"{D103} 2.2.s4.b1.b6", "An enumerated value in the wrong case (objectType 'agent') is rejected with 400", ("XAPI-00009",),
      lambda s: statement(s, actor={"objectType": "agent", "mbox": mbox(s)}))
_rule("XAPI-VAL-008", f"{D103} 2.2.s4.b1.b8", "An IRI without a scheme (verb id 'experienced') is rejected with 400", ("XAPI-00011",), _with("verb.id", "experienced"))
_rule("XAPI-VAL-009", f"{D103} 2.2.s4.b4", "The empty string where an IRI is required (verb id '') is rejected with 400", ("XAPI-00007",), _with("verb.id", ""))
_rule("XAPI-VAL-010", f"{D103} 2.2.s4.b1.b4", "A property the spec does not define at the statement level is rejected with 400", (), _with("colour", "blue"))
_rule("XAPI-VAL-011", f"{D103} 2.4.1.s1", "A statement id that is not a UUID is rejected with 400", ("XAPI-00027", "XAPI-00030"), _with("id", "not-a-uuid"))
_rule("XAPI-VAL-012", f"{D103} 2.4.1.s1", "A statement id that is a UUID not in its standard string form (no hyphens) is rejected with 400", ("XAPI-00028", "XAPI-00029"),
      lambda s: statement(s, id=uuid.uuid4().hex))
_rule("XAPI-VAL-013", f"{C103} 2.1.2.s2.b2", "A batch holding two statements with the same id is rejected with 400", (),
      lambda s: (lambda a: [a, {**a, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}}])(statement(s)))
_rule("XAPI-VAL-014", f"{D103} 2.2.s4.b1.b6; Data 2.4.10", "A statement 'version' other than 1.0.x (or 2.0.x in 2.0) is rejected with 400", ("XAPI-00101",), _with("version", "0.9"))

# --------------------------------------------------------------------------- actor, agents, groups

_rule("XAPI-VAL-020", f"{D103} 2.4.2.1.s2.b1", "An Agent with no inverse functional identifier is rejected with 400", ("XAPI-00034",),
      lambda s: statement(s, actor={"objectType": "Agent", "name": "Nobody"}))
_rule("XAPI-VAL-021", f"{D103} 2.4.2.1.s2.b2", "An Agent with two inverse functional identifiers (mbox and account) is rejected with 400", ("XAPI-00034",),
      lambda s: statement(s, actor={"mbox": mbox(s), "account": {"homePage": "http://conformance.tessera.example", "name": "x"}}))
_rule("XAPI-VAL-022", f"{D103} 2.4.2.3.s3.table1.row1", "An mbox that is not a mailto IRI is rejected with 400", ("XAPI-00038",),
      lambda s: statement(s, actor={"mbox": "learner@conformance.tessera.example"}))
_rule("XAPI-VAL-023", f"{D103} 2.4.2.3.s3.table1.row2", "An mbox_sha1sum that is not a string is rejected with 400", ("XAPI-00039",),
      lambda s: statement(s, actor={"mbox_sha1sum": 12345}))
_rule("XAPI-VAL-024", f"{D103} 2.4.2.3.s3.table1.row3", "An openid that is not a URI is rejected with 400", ("XAPI-00040",),
      lambda s: statement(s, actor={"openid": "not a uri"}))
_rule("XAPI-VAL-025", f"{D103} 2.4.2.4.s2.table1.row1", "An account without homePage is rejected with 400", ("XAPI-00042",),
      lambda s: statement(s, actor={"account": {"name": "learner"}}))
_rule("XAPI-VAL-026", f"{D103} 2.4.2.4.s2.table1.row2", "An account without name is rejected with 400", ("XAPI-00043",),
      lambda s: statement(s, actor={"account": {"homePage": "http://conformance.tessera.example"}}))
_rule("XAPI-VAL-027", f"{D103} 2.4.2.4.s2.table1.row1", "An account homePage that is not an IRL is rejected with 400", ("XAPI-00042",),
      lambda s: statement(s, actor={"account": {"homePage": "conformance", "name": "learner"}}))
_rule("XAPI-VAL-028", f"{D103} 2.4.2.1; 2.4.2.2", "An actor whose objectType is neither Agent nor Group is rejected with 400", ("XAPI-00031",),
      lambda s: statement(s, actor={"objectType": "Activity", "mbox": mbox(s)}))
_rule("XAPI-VAL-029", f"{D103} 2.4.2.2.s2.table1.row3", "An anonymous Group without 'member' is rejected with 400", ("XAPI-00035",),
      lambda s: statement(s, actor={"objectType": "Group", "name": "Nobody"}))
_rule("XAPI-VAL-030", f"{D103} 2.4.2.2.s2.table2.row3", "A Group whose member is a Group is rejected with 400", ("XAPI-00036",),
      lambda s: statement(s, actor={"objectType": "Group", "member": [{"objectType": "Group", "member": [agent(s)]}]}))
_rule("XAPI-VAL-031", f"{D103} 2.4.2.2.s5.b1", "An identified Group with two inverse functional identifiers is rejected with 400", ("XAPI-00037",),
      lambda s: statement(s, actor={"objectType": "Group", "mbox": mbox(s, "team"), "openid": "http://conformance.tessera.example/team"}))
_rule("XAPI-VAL-032", f"{D103} 2.4.2.1.s2.table1.row2", "An Agent name that is not a string is rejected with 400", ("XAPI-00033",),
      lambda s: statement(s, actor={"mbox": mbox(s), "name": 42}))
_rule("XAPI-VAL-033", f"{D103} 2.4.2.1.s2.table1.row1", "An objectType that is not a string is rejected with 400", ("XAPI-00032",),
      lambda s: statement(s, actor={"objectType": ["Agent"], "mbox": mbox(s)}))

# --------------------------------------------------------------------------- verb

_rule("XAPI-VAL-040", f"{D103} 2.4.3.s3.table1.row1", "A verb without 'id' is rejected with 400", ("XAPI-00044",), _with("verb", {"display": {"en-US": "did"}}))
_rule("XAPI-VAL-041", f"{D103} 4.2.s1; RFC 5646", "A language map key that is not an RFC 5646 tag is rejected with 400", ("XAPI-00013", "XAPI-00121"),
      _with("verb.display", {"not a language tag": "experienced"}))
_rule("XAPI-VAL-042", f"{D103} 4.2", "A language map value that is not a string is rejected with 400", (), _with("verb.display", {"en-US": 7}))

# --------------------------------------------------------------------------- object

_rule("XAPI-VAL-050", f"{D103} 2.4.4.s2", "An object objectType outside Activity/Agent/Group/SubStatement/StatementRef is rejected with 400", ("XAPI-00046",),
      _obj(lambda s: {"objectType": "Thing", "id": activity(s)}))
_rule("XAPI-VAL-051", f"{D103} 2.4.4.1.s1.table1.row2", "An Activity id that is not an IRI is rejected with 400", ("XAPI-00047",),
      _obj(lambda s: {"objectType": "Activity", "id": "not an iri"}))
_rule("XAPI-VAL-052", f"{D103} 2.4.4.1.s1.table1.row2", "An Activity without id is rejected with 400", ("XAPI-00047",),
      _obj(lambda s: {"objectType": "Activity", "definition": {"name": {"en-US": "x"}}}))
_rule("XAPI-VAL-053", f"{D103} 2.4.4.1.s1.table1.row3", "An Activity definition that is not an object is rejected with 400", ("XAPI-00048",),
      _with("object.definition", "a definition"))
_rule("XAPI-VAL-054", f"{D103} 2.4.4.1.s2.table1.row1", "An Activity definition name that is not a language map is rejected with 400", ("XAPI-00056",),
      _with("object.definition.name", "Name"))
_rule("XAPI-VAL-055", f"{D103} 2.4.4.1.s2.table1.row2", "An Activity definition description that is not a language map is rejected with 400", ("XAPI-00059",),
      _with("object.definition.description", ["Description"]))
_rule("XAPI-VAL-056", f"{D103} 2.4.4.1.s2.table1.row3", "An Activity definition type that is not an IRI is rejected with 400", ("XAPI-00060",),
      _with("object.definition.type", "course"))
_rule("XAPI-VAL-057", f"{D103} 2.4.4.1.s2.table1.row4", "An Activity definition moreInfo that is not an IRL is rejected with 400", ("XAPI-00061",),
      _with("object.definition.moreInfo", "more info"))
_rule("XAPI-VAL-058", f"{D103} 2.4.4.1.s2.table1.row5", "Activity definition extensions that are not an object are rejected with 400", ("XAPI-00057",),
      _with("object.definition.extensions", ["x"]))
_rule("XAPI-VAL-059", f"{D103} 2.4.4.1 interaction activities", "An interactionType outside the spec's list is rejected with 400", ("XAPI-00049",),
      _with("object.definition.interactionType", "essay"))
_rule("XAPI-VAL-060", f"{D103} 2.4.4.1.s8", "Interaction components (choices) without interactionType are rejected with 400", ("XAPI-00064",),
      _with("object.definition.choices", [{"id": "a", "description": {"en-US": "A"}}]))
_rule("XAPI-VAL-061", f"{D103} 2.4.4.2.s1.b1", "An Agent as object without objectType is rejected with 400", ("XAPI-00065",),
      _obj(lambda s: {"mbox": mbox(s, "peer")}))
_rule("XAPI-VAL-062", f"{D103} 2.4.4.3.s4.table1.row2", "A StatementRef without id is rejected with 400", ("XAPI-00072",),
      _obj(lambda s: {"objectType": "StatementRef"}))
_rule("XAPI-VAL-063", f"{D103} 2.4.4.3.s4.table1.row2", "A StatementRef id that is not a UUID is rejected with 400", ("XAPI-00072",),
      _obj(lambda s: {"objectType": "StatementRef", "id": "statement-1"}))
_rule("XAPI-VAL-064", f"{D103} 2.4.4.3.s8.b3", "A SubStatement with 'id' is rejected with 400", ("XAPI-00070",),
      _obj(lambda s: _substatement(s, id=str(uuid.uuid4()))))
_rule("XAPI-VAL-065", f"{D103} 2.4.4.3.s8.b3", "A SubStatement with 'stored' is rejected with 400", ("XAPI-00069",),
      _obj(lambda s: _substatement(s, stored="2024-01-01T00:00:00Z")))
_rule("XAPI-VAL-066", f"{D103} 2.4.4.3.s8.b3", "A SubStatement with 'version' is rejected with 400", ("XAPI-00068",),
      _obj(lambda s: _substatement(s, version="1.0.0")))
_rule("XAPI-VAL-067", f"{D103} 2.4.4.3.s8.b3", "A SubStatement with 'authority' is rejected with 400", ("XAPI-00067",),
      _obj(lambda s: _substatement(s, authority=agent(s, "authority"))))
_rule("XAPI-VAL-068", f"{D103} 2.4.4.3.s8.b4", "A SubStatement holding a SubStatement is rejected with 400", ("XAPI-00071",),
      _obj(lambda s: _substatement(s, object=_substatement(s))))
_rule("XAPI-VAL-069", f"{D103} 2.4.4.3.s8.b2", "A SubStatement breaking a statement rule (actor without IFI) is rejected with 400", ("XAPI-00066",),
      _obj(lambda s: _substatement(s, actor={"objectType": "Agent", "name": "Nobody"})))

# --------------------------------------------------------------------------- result

_rule("XAPI-VAL-080", f"{D103} 2.4.5.s2.table1.row1", "result.success that is not a boolean is rejected with 400", ("XAPI-00074",), _res({"success": "true"}))
_rule("XAPI-VAL-081", f"{D103} 2.4.5.s2.table1.row2", "result.completion that is not a boolean is rejected with 400", ("XAPI-00075",), _res({"completion": 1}))
_rule("XAPI-VAL-082", f"{D103} 2.4.5.s2.table1.row3", "result.response that is not a string is rejected with 400", ("XAPI-00076",), _res({"response": {"a": 1}}))
_rule("XAPI-VAL-083", f"{D103} 2.4.5.s2.table1.row4; 4.6", "result.duration that is not an ISO 8601 duration is rejected with 400", ("XAPI-00077", "XAPI-00124"), _res({"duration": "90 minutes"}))
_rule("XAPI-VAL-084", f"{D103} 2.4.5.s2.table1.row6", "result.extensions that are not an object are rejected with 400", ("XAPI-00078",), _res({"extensions": "x"}))
_rule("XAPI-VAL-085", f"{D103} 2.4.5.1", "result.score that is not an object is rejected with 400", ("XAPI-00079",), _res({"score": 0.5}))
_rule("XAPI-VAL-086", f"{D103} 2.4.5.1.s2.table1.row1", "score.scaled above 1 is rejected with 400", ("XAPI-00083",), _res({"score": {"scaled": 1.5}}))
_rule("XAPI-VAL-087", f"{D103} 2.4.5.1.s2.table1.row1", "score.scaled below -1 is rejected with 400", ("XAPI-00083",), _res({"score": {"scaled": -1.01}}))
_rule("XAPI-VAL-088", f"{D103} 2.4.5.1.s2.table1.row2", "score.raw above max is rejected with 400", ("XAPI-00082",), _res({"score": {"raw": 11, "min": 0, "max": 10}}))
_rule("XAPI-VAL-089", f"{D103} 2.4.5.1.s2.table1.row2", "score.raw below min is rejected with 400", ("XAPI-00082",), _res({"score": {"raw": -1, "min": 0, "max": 10}}))
_rule("XAPI-VAL-090", f"{D103} 2.4.5.1.s2.table1.row3", "score.min above max is rejected with 400", ("XAPI-00081",), _res({"score": {"min": 10, "max": 5}}))
_rule("XAPI-VAL-091", f"{D103} 2.4.5.1.s2.table1.row4", "score.max that is not a number is rejected with 400", ("XAPI-00080",), _res({"score": {"max": "ten"}}))

# --------------------------------------------------------------------------- context

_rule("XAPI-VAL-100", f"{D103} 2.4.6.s3.table1.row1", "context.registration that is not a UUID is rejected with 400", ("XAPI-00087",),
      _ctx(lambda s: {"registration": "registration-1"}))
_rule("XAPI-VAL-101", f"{D103} 2.4.6.s3.table1.row2", "context.instructor that is not an Agent or Group is rejected with 400", ("XAPI-00087",),
      _ctx(lambda s: {"instructor": {"name": "No IFI"}}))
_rule("XAPI-VAL-102", f"{D103} 2.4.6.s3.table1.row3", "context.team that is an Agent, not a Group, is rejected with 400", ("XAPI-00088",),
      _ctx(lambda s: {"team": {"objectType": "Agent", "mbox": mbox(s, "team")}}))
_rule("XAPI-VAL-103", f"{D103} 2.4.6.s4.b1", "context.revision with an object that is not an Activity is rejected with 400", ("XAPI-00084",),
      _ctx(lambda s: {"revision": "r1"}, object=lambda s: {"objectType": "Agent", "mbox": mbox(s, "peer")}))
_rule("XAPI-VAL-104", f"{D103} 2.4.6.s4.b2", "context.platform with an object that is not an Activity is rejected with 400", ("XAPI-00085",),
      _ctx(lambda s: {"platform": "web"}, object=lambda s: {"objectType": "Agent", "mbox": mbox(s, "peer")}))
_rule("XAPI-VAL-105", f"{D103} 2.4.6.s3.table1.row5", "context.revision that is not a string is rejected with 400", ("XAPI-00089",), _ctx(lambda s: {"revision": 2}))
_rule("XAPI-VAL-106", f"{D103} 2.4.6.s3.table1.row6", "context.platform that is not a string is rejected with 400", ("XAPI-00090",), _ctx(lambda s: {"platform": ["web"]}))
_rule("XAPI-VAL-107", f"{D103} 2.4.6.s3.table1.row7", "context.language that is not an RFC 5646 tag is rejected with 400", ("XAPI-00091", "XAPI-00013"), _ctx(lambda s: {"language": "english please"}))
_rule("XAPI-VAL-108", f"{D103} 2.4.6.s3.table1.row8", "context.statement that is not a StatementRef is rejected with 400", ("XAPI-00092",),
      _ctx(lambda s: {"statement": {"objectType": "Activity", "id": activity(s)}}))
_rule("XAPI-VAL-109", f"{D103} 2.4.6.s3.table1.row4", "context.contextActivities that is not an object is rejected with 400", ("XAPI-00086",), _ctx(lambda s: {"contextActivities": [activity(s)]}))
_rule("XAPI-VAL-110", f"{D103} 2.4.6.2.s4.b1", "A contextActivities key outside parent/grouping/category/other is rejected with 400", ("XAPI-00093",),
      _ctx(lambda s: {"contextActivities": {"sibling": [{"id": activity(s, "sib")}]}}))
_rule("XAPI-VAL-111", f"{D103} 2.4.6.2.s4.b2", "A contextActivities value that is not an Activity is rejected with 400", ("XAPI-00094",),
      _ctx(lambda s: {"contextActivities": {"parent": [{"objectType": "Agent", "mbox": mbox(s)}]}}))
_rule("XAPI-VAL-112", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: a contextAgents entry without objectType 'contextAgent' is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": [{"agent": agent(s, "peer")}]}), only=(V2,))
_rule("XAPI-VAL-113", f"{X20} 4.2.2.5 contextGroups", "xAPI 2.0: a contextGroups entry whose group is an Agent is rejected with 400", (),
      _ctx(lambda s: {"contextGroups": [{"objectType": "contextGroup", "group": agent(s, "peer")}]}), only=(V2,))

_rule("XAPI-VAL-114", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: a contextAgents entry with an empty relevantTypes is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": [{"objectType": "contextAgent", "agent": agent(s, "peer"), "relevantTypes": []}]}), only=(V2,))
_rule("XAPI-VAL-115", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: a contextAgents relevantTypes entry that is not an IRI is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": [{"objectType": "contextAgent", "agent": agent(s, "peer"), "relevantTypes": ["abc"]}]}), only=(V2,))
_rule("XAPI-VAL-116", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: a contextAgents entry whose agent is not a valid Agent is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": [{"objectType": "contextAgent", "agent": {"key": "no identifier"}}]}), only=(V2,))
_rule("XAPI-VAL-117", f"{X20} 4.2.2.5 contextGroups", "xAPI 2.0: a contextGroups entry whose objectType is not 'contextGroup' is rejected with 400", (),
      _ctx(lambda s: {"contextGroups": [{"objectType": "Group", "group": {"objectType": "Group", "member": [agent(s, "m1")]}}]}), only=(V2,))
_rule("XAPI-VAL-118", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: contextAgents that is not an array is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": {"objectType": "contextAgent", "agent": agent(s, "peer")}}), only=(V2,))
_rule("XAPI-VAL-119", f"{D103} 2.4.6 (1.0.3 context properties)", "xAPI 1.0.3: context.contextAgents (a 2.0 property) is rejected with 400", (),
      _ctx(lambda s: {"contextAgents": [{"objectType": "contextAgent", "agent": agent(s, "peer")}]}), only=(V1,))

# --------------------------------------------------------------------------- timestamp, stored, authority, extensions, attachments

_rule("XAPI-VAL-120", f"{D103} 2.4.7; 4.5", "A timestamp that is not ISO 8601 is rejected with 400", ("XAPI-00022", "XAPI-00123"), _with("timestamp", "06/12/2026 10:00"))
_rule("XAPI-VAL-121", f"{D103} 2.4.8.s2", "A 'stored' that is not a timestamp is rejected with 400", ("XAPI-00023",), _with("stored", "yesterday"))
_rule("XAPI-VAL-122", f"{D103} 4.5", "A timestamp with the offset -00:00 is rejected with 400", ("XAPI-00123",), _with("timestamp", "2026-12-06T10:00:00.601-00:00"))
_rule("XAPI-VAL-134", f"{D103} 4.5", "A timestamp with the offset -0000 is rejected with 400", ("XAPI-00123",), _with("timestamp", "2026-12-06T10:00:00.601-0000"))
_rule("XAPI-VAL-135", f"{D103} 4.5", "A timestamp with the offset -00 is rejected with 400", ("XAPI-00123",), _with("timestamp", "2026-12-06T10:00:00.601-00"))
_rule("XAPI-VAL-136", f"{D103} 2.4.4.3.s8.b2; 4.5", "A SubStatement with an invalid timestamp is rejected with 400", ("XAPI-00066", "XAPI-00123"),
      _obj(lambda s: _substatement(s, timestamp="should fail")))
_rule("XAPI-VAL-123", f"{D103} 2.4.9.s3.b1", "An authority Group of more than two Agents is rejected with 400", ("XAPI-00098",),
      lambda s: statement(s, authority={"objectType": "Group", "member": [agent(s, "a1"), agent(s, "a2"), agent(s, "a3")]}))
_rule("XAPI-VAL-124", f"{D103} 2.4.s1.table1.row9", "An authority that is not an Agent or Group is rejected with 400", ("XAPI-00024",),
      lambda s: statement(s, authority={"objectType": "Activity", "id": activity(s)}))
_rule("XAPI-VAL-125", f"{D103} 4.1.s3.b1", "An extension key that is not an IRI is rejected with 400", ("XAPI-00118",), _res({"extensions": {"score-bonus": 1}}))
_rule("XAPI-VAL-126", f"{D103} 2.4.s1.table1.row11", "'attachments' that is not an array is rejected with 400", ("XAPI-00025",),
      _with("attachments", {"usageType": "http://conformance.tessera.example/usage"}))


def _att(**over: Any) -> dict[str, Any]:
    a = {"usageType": "http://conformance.tessera.example/usage/notes", "display": {"en-US": "notes"}, "contentType": "text/plain",
         "length": 5, "sha2": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "fileUrl": "http://conformance.tessera.example/notes.txt"}
    a.update(over)
    return {k: v for k, v in a.items() if v is not None}


_rule("XAPI-VAL-127", f"{D103} 2.4.11.s2.table1.row1", "An attachment usageType that is not an IRI is rejected with 400", ("XAPI-00107",),
      lambda s: statement(s, attachments=[_att(usageType="notes")]))
_rule("XAPI-VAL-128", f"{D103} 2.4.11.s2.table1.row2", "An attachment display that is not a language map is rejected with 400", ("XAPI-00106",),
      lambda s: statement(s, attachments=[_att(display="notes")]))
_rule("XAPI-VAL-129", f"{D103} 2.4.11.s2.table1.row5", "An attachment length that is not an integer is rejected with 400", ("XAPI-00102",),
      lambda s: statement(s, attachments=[_att(length="five")]))
_rule("XAPI-VAL-130", f"{D103} 2.4.11.s2.table1.row6", "An attachment sha2 that is not a string is rejected with 400", ("XAPI-00103",),
      lambda s: statement(s, attachments=[_att(sha2=12345)]))
_rule("XAPI-VAL-131", f"{D103} 2.4.11.s2.table1.row7", "An attachment fileUrl that is not an IRL is rejected with 400", ("XAPI-00104",),
      lambda s: statement(s, attachments=[_att(fileUrl="notes dot txt")]))
_rule("XAPI-VAL-132", f"{D103} 2.4.11.s2.table1.row4", "An attachment contentType that is not a media type is rejected with 400", ("XAPI-00105",),
      lambda s: statement(s, attachments=[_att(contentType="plain text")]))
_rule("XAPI-VAL-133", f"{D103} 2.3.2.s2.b1", "A voiding statement whose object is not a StatementRef is rejected with 400", ("XAPI-00017", "XAPI-00020"),
      lambda s: statement(s, verb={"id": VOIDED, "display": {"en-US": "voided"}}))


# --------------------------------------------------------------------------- acceptance

def _check(cid: str, req: str, desc: str, adl: tuple[str, ...] = (), required: bool = True, tags: tuple[str, ...] = ("storage",)) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return KIT.check(cid, req, desc, requirement_ids=adl, required=required, tags=tags)


@_check("XAPI-ACC-001", f"{D103} 2.4.1.s2.b1", "A statement without id is stored and the LRS answers the id it generated", ("XAPI-00026",))
def _generated_id(s: Session) -> None:
    st = statement(s)
    del st["id"]
    ids = store(s, st)
    try:
        uuid.UUID(ids[0])
    except ValueError:
        raise Fail(f"the generated id {ids[0]!r} is not a UUID") from None
    expect(get_one(s, ids[0]), 200, what="GET the statement by its generated id")


@_check("XAPI-ACC-002", f"{D103} 2.4.2.2", "A statement whose actor is an identified Group with members is accepted", ("XAPI-00037",))
def _group_actor(s: Session) -> None:
    accepted(s, statement(s, actor={"objectType": "Group", "name": "Team", "account": {"homePage": "http://conformance.tessera.example", "name": f"team-{s.state['run']}"},
                                    "member": [agent(s, "m1"), agent(s, "m2")]}))


@_check("XAPI-ACC-003", f"{D103} 2.4.4.2; 2.4.4.3", "Agents, Groups, StatementRefs and SubStatements are accepted as objects", ("XAPI-00046", "XAPI-00073"))
def _object_kinds(s: Session) -> None:
    objs = [
        {"objectType": "Agent", "mbox": mbox(s, "peer")},
        {"objectType": "Group", "member": [agent(s, "m1")]},
        {"objectType": "StatementRef", "id": str(uuid.uuid4())},
        _substatement(s),
    ]
    accepted(s, [statement(s, object=o) for o in objs])


@_check("XAPI-ACC-004", f"{D103} 4.1", "Extension values may be null, empty strings or empty objects", ("XAPI-00119", "XAPI-00120"))
def _extensions_null(s: Session) -> None:
    accepted(s, statement(s, result={"extensions": {f"{activity(s, 'ext')}/a": None, f"{activity(s, 'ext')}/b": "", f"{activity(s, 'ext')}/c": {}}}))


@_check("XAPI-ACC-005", f"{D103} 2.4.4.1 interaction activities", "A choice interaction activity with its components is accepted", ("XAPI-00049",))
def _interaction(s: Session) -> None:
    accepted(s, statement(s, object={"objectType": "Activity", "id": activity(s, "question"), "definition": {
        "type": "http://adlnet.gov/expapi/activities/cmi.interaction", "interactionType": "choice",
        "correctResponsesPattern": ["golf"], "choices": [{"id": "golf", "description": {"en-US": "Golf"}}, {"id": "tetris", "description": {"en-US": "Tetris"}}]}}))


@_check("XAPI-ACC-006", f"{D103} 2.4.8.s3.b2; 2.4.8", "A statement carrying 'stored' is accepted and the LRS sets stored itself", ("XAPI-00097", "XAPI-00023"))
def _stored_given(s: Session) -> None:
    ids = store(s, statement(s, stored="2001-01-01T00:00:00.000Z"))
    got = body_json(get_one(s, ids[0]))
    stored = got.get("stored")
    if not isinstance(stored, str):
        raise Fail("the returned statement has no 'stored'")
    if parse_ts(stored).year == 2001:
        raise Fail(f"'stored' is the client's value {stored!r}; the LRS sets it")


@_check("XAPI-ACC-007", f"{D103} 2.4.9.s3.b4", "The LRS fills 'authority' from the credentials when the statement has none", ("XAPI-00099",))
def _authority(s: Session) -> None:
    ids = store(s, statement(s))
    got = body_json(get_one(s, ids[0]))
    auth = got.get("authority")
    if not isinstance(auth, dict) or auth.get("objectType", "Agent") not in ("Agent", "Group"):
        raise Fail(f"the stored statement's authority is {auth!r}, not an Agent or Group")


@_check("XAPI-ACC-008", f"{D103} 2.4.6.2.s4.b3", "A single context activity is returned as an array", ("XAPI-00096",))
def _ctx_array(s: Session) -> None:
    ids = store(s, statement(s, context={"contextActivities": {"parent": {"id": activity(s, "parent")}}}))
    got = body_json(get_one(s, ids[0]))
    parent = ((got.get("context") or {}).get("contextActivities") or {}).get("parent")
    if not isinstance(parent, list) or not parent or parent[0].get("id") != activity(s, "parent"):
        raise Fail(f"contextActivities.parent came back as {parent!r}, not an array of the activity")


@_check("XAPI-ACC-009", f"{D103} 2.2.s4.b3", "Numbers are kept with at least 32-bit float precision", ("XAPI-00002",))
def _precision(s: Session) -> None:
    ids = store(s, statement(s, result={"score": {"scaled": 0.1234567, "raw": 1.234567, "min": 0, "max": 10}}))
    score = ((body_json(get_one(s, ids[0])).get("result") or {}).get("score")) or {}
    if abs(float(score.get("scaled", 0)) - 0.1234567) > 1e-7 or abs(float(score.get("raw", 0)) - 1.234567) > 1e-6:
        raise Fail(f"the stored score {score!r} lost precision")


@_check("XAPI-ACC-010", f"{D103} 2.4.10; {C103} 3.3", "A statement's version is kept as sent (1.0.0 accepted)", ("XAPI-00332", "XAPI-00330"))
def _version_kept(s: Session) -> None:
    ids = store(s, statement(s, version="1.0.0"), version=V1 if V1 in versions(s) else default_version(s))
    got = body_json(get_one(s, ids[0], V1 if V1 in versions(s) else None))
    if got.get("version") != "1.0.0":
        raise Fail(f"the statement sent with version 1.0.0 came back with version {got.get('version')!r}")


@_check("XAPI-ACC-011", f"{C103} 1.4.s1.b1", "Strings are UTF-8: a non-ASCII language map value comes back unchanged", ("XAPI-00015",))
def _utf8(s: Session) -> None:
    text = "Ünïcødé 学习 ✓"
    ids = store(s, statement(s, verb={"id": EXPERIENCED_UTF, "display": {"de-DE": text}}))
    got = body_json(get_one(s, ids[0], format="exact"))
    if (got.get("verb") or {}).get("display", {}).get("de-DE") != text:
        raise Fail(f"the display came back as {(got.get('verb') or {}).get('display')!r}")


EXPERIENCED_UTF = "http://adlnet.gov/expapi/verbs/experienced"


@_check("XAPI-ACC-012", f"{D103} 4.5", "Timestamps with a time zone offset (+02:00, and RFC 3339's +00:00) are accepted", ("XAPI-00123",))
def _ts_offset(s: Session) -> None:
    accepted(s, [statement(s, timestamp="2026-12-06T10:00:00.123+02:00"), statement(s, timestamp="2008-09-15T15:53:00.601+00:00")])


@_check("XAPI-ACC-013", f"{X20} 4.2.2.5 contextAgents", "xAPI 2.0: context.contextAgents and contextGroups are accepted", ())
def _ctx_agents(s: Session) -> None:
    accepted(s, statement(s, context={"contextAgents": [{"objectType": "contextAgent", "agent": agent(s, "peer"), "relevantTypes": [f"{activity(s, 'type')}"]}],
                                      "contextGroups": [{"objectType": "contextGroup", "group": {"objectType": "Group", "member": [agent(s, "m1")]}}]}), only=(V2,))


@_check("XAPI-ACC-014", f"{D103} 2.4.9.s3.b1", "An authority Group of exactly two Agents (OAuth three-legged) is accepted", ("XAPI-00098",))
def _authority_pair(s: Session) -> None:
    accepted(s, statement(s, authority={"objectType": "Group", "member": [
        {"account": {"homePage": "http://conformance.tessera.example", "name": "app"}}, agent(s, "user")]}))


# --------------------------------------------------------------------------- storage

@_check("XAPI-STO-001", f"{C103} 2.1.2.s1", "POST of one statement answers 200 with an array holding its id", ("XAPI-00146", "XAPI-00147"))
def _post_one(s: Session) -> None:
    st = statement(s)
    r = post_statements(s, st)
    expect(r, 200)
    if body_json(r) != [st["id"]]:
        raise Fail(f"POST /statements answered {excerpt(r)}, not [{st['id']!r}]")


@_check("XAPI-STO-002", f"{C103} 2.1.2.s1", "POST of a batch answers 200 with the ids in the order sent", ("XAPI-00146",))
def _post_batch(s: Session) -> None:
    sts = [statement(s) for _ in range(3)]
    r = post_statements(s, sts)
    expect(r, 200)
    if body_json(r) != [x["id"] for x in sts]:
        raise Fail(f"POST of 3 statements answered {excerpt(r)}, not their ids in order")


@_check("XAPI-STO-003", f"{C103} 2.1.1.s1", "PUT with statementId answers 204 No Content and the statement is stored", ("XAPI-00143",))
def _put(s: Session) -> None:
    st = statement(s)
    r = put_statement(s, st, st["id"])
    expect(r, 204)
    expect(get_one(s, st["id"]), 200, what="GET the PUT statement")


@_check("XAPI-STO-004", f"{C103} 2.1.1.s1.table1.row1", "PUT without statementId is rejected with 400", ("XAPI-00144", "XAPI-00145"))
def _put_no_id(s: Session) -> None:
    expect(put_statement(s, statement(s), None), 400)


@_check("XAPI-STO-005", f"{C103} 2.1.1", "PUT whose statementId differs from the statement's id is rejected with 400", ())
def _put_mismatch(s: Session) -> None:
    expect(put_statement(s, statement(s), str(uuid.uuid4())), 400)


@_check("XAPI-STO-006", f"{C103} 2.1.1.s2.b1", "PUT of a different statement under an existing id answers 409 Conflict", (), required=False)
def _put_conflict(s: Session) -> None:
    st = statement(s)
    store(s, st)
    other = {**st, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}}
    expect(put_statement(s, other, st["id"]), 409)


@_check("XAPI-STO-007", f"{C103} 2.1.2.s2.b1", "POST of a different statement under an existing id answers 409 Conflict", (), required=False)
def _post_conflict(s: Session) -> None:
    st = statement(s)
    store(s, st)
    expect(post_statements(s, [{**st, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}}]), 409)


@_check("XAPI-STO-008", f"{C103} 2.1.1.s2.b2", "A conflicting statement does not change the stored one", ("XAPI-00142",))
def _conflict_unchanged(s: Session) -> None:
    st = statement(s)
    store(s, st)
    put_statement(s, {**st, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}}, st["id"])
    got = body_json(get_one(s, st["id"]))
    if (got.get("verb") or {}).get("id") != st["verb"]["id"]:
        raise Fail(f"the stored statement's verb changed to {(got.get('verb') or {}).get('id')!r}")


@_check("XAPI-STO-009", f"{C103} 2.1.1.s2.b1", "PUT of the same statement again is not an error (204)", (), required=False)
def _put_again(s: Session) -> None:
    st = statement(s)
    expect(put_statement(s, st, st["id"]), 204, what="first PUT")
    expect(put_statement(s, st, st["id"]), 204, what="second PUT of the identical statement")


@_check("XAPI-STO-010", f"{C103} 3.2.s3.b9", "A batch with one invalid statement is rejected and none of it is stored", ("XAPI-00326", "XAPI-00182"))
def _batch_atomic(s: Session) -> None:
    good = statement(s)
    bad = statement(s, verb={"id": "not an iri"})
    expect(post_statements(s, [good, bad]), 400, what="POST of a batch with an invalid statement")
    expect(get_one(s, good["id"]), 404, what="GET of the batch's valid statement")


@_check("XAPI-STO-011", f"{D103} 2.1", "A body that is not JSON is rejected with 400", ("XAPI-00014",))
def _not_json(s: Session) -> None:
    r = s.post("statements", content=b"{not json", headers={"Content-Type": "application/json", "X-Experience-API-Version": default_version(s)})
    expect(r, 400)


@_check("XAPI-STO-012", f"{D103} 2.4.8; 2.4.9; 2.4.10", "A stored statement comes back with stored, authority and version set by the LRS", ("XAPI-00023", "XAPI-00099"))
def _lrs_props(s: Session) -> None:
    for v in versions(s):
        ids = store(s, statement(s), version=v)
        got = body_json(get_one(s, ids[0], v))
        missing = [k for k in ("stored", "authority", "version", "timestamp") if k not in got]
        if missing:
            raise Fail(f"xAPI {v}: the stored statement lacks {', '.join(missing)}")
        parse_ts(got["stored"])
        if not str(got["version"]).startswith(v[:3]):
            raise Fail(f"xAPI {v}: the stored statement's version is {got['version']!r}")


@_check("XAPI-STO-013", f"{C103} 2.1.3.s1", "GET of an unknown statementId answers 404", ())
def _unknown(s: Session) -> None:
    expect(get_one(s, str(uuid.uuid4())), 404)


@_check("XAPI-STO-014", f"{D103} 4.5.s1.b3", "A timestamp keeps at least millisecond precision", ("XAPI-00122",))
def _ms(s: Session) -> None:
    ids = store(s, statement(s, timestamp="2026-12-06T10:11:12.345Z"))
    got = body_json(get_one(s, ids[0]))
    ts = parse_ts(str(got.get("timestamp")))
    if ts.microsecond // 1000 != 345:
        raise Fail(f"the timestamp came back as {got.get('timestamp')!r}")


@_check("XAPI-STO-015", f"{X20} 4.2.4.3", "xAPI 2.0: a statement stored through 2.0 carries version 2.0.0", ())
def _v2_version(s: Session) -> None:
    if V2 not in versions(s):
        from ..kit import Skip
        raise Skip("the LRS does not speak 2.0.0")
    ids = store(s, statement(s), version=V2)
    got = body_json(get_one(s, ids[0], V2))
    if got.get("version") != V2:
        raise Fail(f"the statement's version is {got.get('version')!r}, not 2.0.0")
