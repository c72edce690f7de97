"""Every rule of adapters/xapi/validation.py, one case each, named after the spec's text:
xAPI 1.0.3 Data (section numbers as in xAPI-Data.md) and the 2.0 (IEEE 9274.1.1) differences.

Each refused case asserts the whole message, path and reason ("statement.actor.mbox: must
be a mailto IRI ..."): a rule removed lets the statement through, or lets a later rule (or a
TypeError) answer instead, and either way the case fails. ``scripts/mutate_xapi_validation.py``
removes each rule in turn (each ``raise``, and each ``or``-ed condition guarding one) and runs
this file against every mutant: none survives. The accepted cases pin the other side of the
rules whose edge matters (2.0's timestamps, an identified Group without members).

The same rules over HTTP, with the LRS's 400 answer: test_xapi_data_validation.py.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from adapters.xapi.http import V1, V2, XapiError
from adapters.xapi.validation import agent_key, statements
from tests.xapi_support import statement

MBOX = {"mbox": "mailto:sally@example.com"}
ACCOUNT = {"account": {"homePage": "http://www.example.com", "name": "1625378"}}
ACTIVITY = {"id": "http://example.com/activities/solo-hang-gliding"}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
UUID = "fd41c918-b88b-4b20-a0a5-a4c32391aaa0"
SHA2 = "672fa5fa658017f1b72d65036f13379c6ab05d4ab3b6664908d8acf0b6a0c634"  # Data 2.4.11's example
ATTACHMENT = {"usageType": "http://adlnet.gov/expapi/attachments/signature", "display": {"en-US": "Signature"},
              "contentType": "application/octet-stream", "length": 4235, "sha2": SHA2, "fileUrl": "http://example.com/f"}
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
DELETE = object()


def _with(path: str, value: Any) -> dict[str, Any]:
    """Data 2.4.s2's example statement, with a result and a context, and ``value`` put at the
    dotted ``path`` (``DELETE`` removes it)."""
    s = statement(result={"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": True},
                  context={"registration": UUID})
    node: Any = s
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = copy.deepcopy(value)
    return s


def _definition(**d: Any) -> dict[str, Any]:
    return {**ACTIVITY, "definition": d}


def _sub(**over: Any) -> dict[str, Any]:
    return {"objectType": "SubStatement", "actor": MBOX, "verb": {"id": "http://example.com/visited"}, "object": ACTIVITY, **over}


def _ctx_agent(**over: Any) -> dict[str, Any]:
    return {"objectType": "contextAgent", "agent": MBOX, **over}


IFI_COUNT = "must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid, account); found"
INTERACTION_TYPES = "must be one of choice, fill-in, likert, long-fill-in, matching, numeric, other, performance, sequencing, true-false"

#: (name, path, value, version, the whole message). The body is ``_with(path, value)``, or
#: ``value`` itself when ``path`` is None.
REFUSED: list[tuple[str, str | None, Any, str, str]] = [
    # Data 2.2.s4.b1: "an LRS MUST reject ... statements with ... null values, wrong data types, unknown properties"
    ("a statement that is not a JSON object", None, ["not", "a", "statement"], V1, "statement[0]: must be a JSON object"),
    ("a property the specification does not define", "extra", 1, V1,
     "statement.extra: is not a property the specification allows here"),
    ("a property with a null value", "actor.name", None, V1, "statement.actor.name: must not be null"),
    ("a string property given a number", "actor.name", 5, V1, "statement.actor.name: must be a string"),
    ("a boolean given as a string", "result.success", "true", V1, "statement.result.success: must be true or false"),
    ("a number given as a string", "result.score.raw", "5", V1, "statement.result.score.raw: must be a number"),
    # Communication 2.1.2: a batch is an array of one or more statements
    ("an empty array of statements", None, [], V1, "the request body is an empty array of statements"),
    # Data 2.4.s1: actor, verb and object are required
    ("a statement without an actor", "actor", DELETE, V1, "statement.actor: is required"),
    ("a statement without a verb", "verb", DELETE, V1, "statement.verb: is required"),
    ("a statement without an object", "object", DELETE, V1, "statement.object: is required"),
    # Data 2.4.1: id is a UUID
    ("an id that is not a UUID", "id", "not-a-uuid", V1, "statement.id: must be a UUID (8-4-4-4-12 hex digits)"),
    ("an id that is not a string", "id", 12345, V1, "statement.id: must be a UUID (8-4-4-4-12 hex digits)"),
    # Data 2.4.2.1 / 2.4.2.3: agents and their inverse functional identifiers
    ("an actor that is not an object", "actor", "mailto:sally@example.com", V1, "statement.actor: must be a JSON object"),
    ("an Agent's objectType in the wrong case", "actor", {"objectType": "agent", **MBOX}, V1,
     'statement.actor.objectType: must be "Agent"'),
    ("an Agent without an inverse functional identifier", "actor", {"name": "Sally"}, V1, f"statement.actor: {IFI_COUNT} 0"),
    ("an Agent with two inverse functional identifiers", "actor", {**MBOX, **ACCOUNT}, V1, f"statement.actor: {IFI_COUNT} 2"),
    ("mbox that is not a mailto IRI", "actor", {"mbox": "sally@example.com"}, V1,
     "statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)"),
    ("mbox that is not a string", "actor", {"mbox": 7}, V1, "statement.actor.mbox: must be a mailto IRI (mailto:name@example.com)"),
    ("mbox_sha1sum that is not a hex SHA-1", "actor", {"mbox_sha1sum": "xyz"}, V1,
     "statement.actor.mbox_sha1sum: must be the hex SHA-1 of a mailto IRI (40 hex digits)"),
    ("mbox_sha1sum that is not a string", "actor", {"mbox_sha1sum": 7}, V1,
     "statement.actor.mbox_sha1sum: must be the hex SHA-1 of a mailto IRI (40 hex digits)"),
    ("openid that is not an IRI", "actor", {"openid": "aaron"}, V1, "statement.actor.openid: must be an absolute IRI (with a scheme)"),
    ("an account without a name", "actor", {"account": {"homePage": "http://www.example.com"}}, V1,
     "statement.actor.account: must have homePage and name"),
    ("an account without a homePage", "actor", {"account": {"name": "1625378"}}, V1,
     "statement.actor.account: must have homePage and name"),
    ("an account homePage that is not an IRL", "actor", {"account": {"homePage": "example.com", "name": "x"}}, V1,
     "statement.actor.account.homePage: must be an absolute IRL (scheme://...)"),
    ("an account homePage that is not a string", "actor", {"account": {"homePage": 7, "name": "x"}}, V1,
     "statement.actor.account.homePage: must be an absolute IRL (scheme://...)"),
    # Data 2.4.2.2: groups
    ("a Group whose objectType is not Group", "context.team", MBOX, V1, 'statement.context.team.objectType: must be "Group"'),
    ("an anonymous Group without members", "actor", {"objectType": "Group"}, V1,
     "statement.actor: an anonymous Group must list its member Agents"),
    ("an anonymous Group with an empty member list", "actor", {"objectType": "Group", "member": []}, V1,
     "statement.actor.member: must be a non-empty array of Agents"),
    ("a Group member list that is not an array", "actor", {"objectType": "Group", "member": MBOX}, V1,
     "statement.actor.member: must be a non-empty array of Agents"),
    ("a Group inside a Group", "actor", {"objectType": "Group", "member": [{"objectType": "Group", "mbox": "mailto:g@example.com"}]},
     V1, 'statement.actor.member[0].objectType: must be "Agent"'),
    # Data 2.4.3: verb
    ("a verb without an id", "verb", {"display": {"en-US": "experienced"}}, V1, "statement.verb.id: is required"),
    ("a verb id without a scheme", "verb.id", "experienced", V1, "statement.verb.id: must be an absolute IRI (with a scheme)"),
    ("a verb id that is not a string", "verb.id", 7, V1, "statement.verb.id: must be an absolute IRI (with a scheme)"),
    # Data 4.2: language maps
    ("a display that is not a language map", "verb.display", "experienced", V1,
     "statement.verb.display: must be a language map (an object of language tag -> string)"),
    ("a language map key that is not an RFC 5646 tag", "verb.display", {"not a tag!": "x"}, V1,
     "statement.verb.display.not a tag!: the key must be an RFC 5646 language tag"),
    ("a language map value that is not a string", "verb.display", {"en-US": 1}, V1, "statement.verb.display.en-US: must be a string"),
    # Data 2.4.4: objects
    ("an object that is not a JSON object", "object", "http://example.com/a", V1, "statement.object: must be a JSON object"),
    ("an object with an unknown objectType", "object", {"objectType": "activity", **ACTIVITY}, V1,
     "statement.object.objectType: must be Activity, Agent, Group, StatementRef or SubStatement"),
    ("an Activity without an id", "object", {"objectType": "Activity"}, V1, "statement.object.id: is required"),
    ("an Activity objectType in the wrong case", "context.contextActivities", {"parent": [{"objectType": "activity", **ACTIVITY}]},
     V1, 'statement.context.contextActivities.parent[0].objectType: must be "Activity"'),
    ("an Agent as object without an inverse functional identifier", "object", {"objectType": "Agent"}, V1,
     f"statement.object: {IFI_COUNT} 0"),
    ("an Agent as object without objectType is read as an Activity", "object", MBOX, V1,
     "statement.object.mbox: is not a property the specification allows here"),
    # Data 2.4.4.1: activity definitions and interactions
    ("a definition type that is not an IRI", "object", _definition(type="cmi.interaction"), V1,
     "statement.object.definition.type: must be an absolute IRI (with a scheme)"),
    ("a moreInfo that is not an IRL", "object", _definition(moreInfo="not a url"), V1,
     "statement.object.definition.moreInfo: must be an absolute IRL (scheme://...)"),
    ("an interactionType the specification does not define", "object", _definition(interactionType="essay"), V1,
     f"statement.object.definition.interactionType: {INTERACTION_TYPES}"),
    ("an interactionType that is not a string", "object", _definition(interactionType={"en-US": "choice"}), V1,
     f"statement.object.definition.interactionType: {INTERACTION_TYPES}"),
    ("correctResponsesPattern without interactionType", "object", _definition(type=INTERACTION, correctResponsesPattern=["true"]), V1,
     "statement.object.definition.correctResponsesPattern: needs an interactionType"),
    ("correctResponsesPattern that is not an array", "object", _definition(interactionType="choice", correctResponsesPattern="golf"),
     V1, "statement.object.definition.correctResponsesPattern: must be an array of strings"),
    ("correctResponsesPattern with a number", "object", _definition(interactionType="numeric", correctResponsesPattern=[4]), V1,
     "statement.object.definition.correctResponsesPattern: must be an array of strings"),
    ("interaction components without interactionType", "object", _definition(choices=[{"id": "golf"}]), V1,
     "statement.object.definition.choices: needs an interactionType"),
    ("interaction components that are not an array", "object", _definition(interactionType="choice", choices={"id": "golf"}), V1,
     "statement.object.definition.choices: must be an array of interaction components"),
    ("an interaction component without an id", "object",
     _definition(interactionType="likert", scale=[{"description": {"en-US": "Likert 0"}}]), V1,
     "statement.object.definition.scale[0].id: is required"),
    ("interaction component ids that are not distinct", "object", _definition(interactionType="choice", choices=[{"id": "a"}, {"id": "a"}]),
     V1, "statement.object.definition.choices[1].id: 'a' is used twice in this array"),
    # Data 4.1: extensions
    ("extensions that are not an object", "result.extensions", ["http://example.com/ext"], V1,
     "statement.result.extensions: must be an object of IRI -> value"),
    ("an extension key that is not an IRI", "context.extensions", {"not-an-iri": 1}, V1,
     "statement.context.extensions.not-an-iri: an extension key must be an IRI"),
    # Data 2.4.4.3: SubStatements
    ("a SubStatement inside a SubStatement", "object", _sub(object=_sub()), V1,
     "statement.object.object.objectType: a SubStatement cannot contain another SubStatement"),
    ("a SubStatement with an id", "object", _sub(id=UUID), V1, "statement.object.id: is not a property the specification allows here"),
    # Data 2.4.4.4 / 2.4.6: statement references
    ("a StatementRef without an id", "context.statement", {"objectType": "StatementRef"}, V1, "statement.context.statement.id: is required"),
    ("a StatementRef id that is not a UUID", "object", {"objectType": "StatementRef", "id": "nope"}, V1,
     "statement.object.id: must be a UUID (8-4-4-4-12 hex digits)"),
    ("a context statement whose objectType is not StatementRef", "context.statement", {"objectType": "Statement", "id": UUID}, V1,
     'statement.context.statement.objectType: must be "StatementRef"'),
    # Data 2.4.5.1: score
    ("scaled above 1", "result.score.scaled", 1.5, V1, "statement.result.score.scaled: must be between -1 and 1"),
    ("scaled below -1", "result.score.scaled", -1.01, V1, "statement.result.score.scaled: must be between -1 and 1"),
    ("raw below min", "result.score.raw", -1, V1, "statement.result.score.raw: must not be less than min"),
    ("raw above max", "result.score.raw", 11, V1, "statement.result.score.raw: must not be greater than max"),
    ("min not below max", "result.score.min", 10, V1, "statement.result.score.max: must be greater than min"),
    # Data 4.6: durations
    ("a duration that is not ISO 8601", "result.duration", "1 hour", V1, "statement.result.duration: must be an ISO 8601 duration, e.g. PT1H30M"),
    ("a duration that is not a string", "result.duration", 3600, V1, "statement.result.duration: must be an ISO 8601 duration, e.g. PT1H30M"),
    # Data 2.4.6: context
    ("a registration that is not a UUID", "context.registration", "abc", V1,
     "statement.context.registration: must be a UUID (8-4-4-4-12 hex digits)"),
    ("a context language that is not an RFC 5646 tag", "context.language", "english!", V1,
     "statement.context.language: must be an RFC 5646 language tag"),
    ("a context language that is not a string", "context.language", 7, V1, "statement.context.language: must be an RFC 5646 language tag"),
    ("platform when the object is not an Activity", "object", {"objectType": "Agent", **MBOX}, V1, None),  # context set below
    # 2.0 Data 2.4.6: contextAgents and contextGroups ("a collection of 1 or more Relevant Type(s)")
    ("contextAgents that are not an array", "context.contextAgents", _ctx_agent(), V2,
     "statement.context.contextAgents: must be an array of contextAgent objects"),
    ("a contextAgent whose objectType is not contextAgent", "context.contextAgents", [_ctx_agent(objectType="Agent")], V2,
     'statement.context.contextAgents[0].objectType: must be "contextAgent"'),
    ("a contextAgent without an agent", "context.contextAgents", [{"objectType": "contextAgent"}], V2,
     "statement.context.contextAgents[0].agent: is required"),
    ("a contextGroup without a group", "context.contextGroups", [{"objectType": "contextGroup"}], V2,
     "statement.context.contextGroups[0].group: is required"),
    ("empty relevantTypes", "context.contextAgents", [_ctx_agent(relevantTypes=[])], V2,
     "statement.context.contextAgents[0].relevantTypes: must be a non-empty array of IRIs"),
    ("relevantTypes that are not an array", "context.contextAgents", [_ctx_agent(relevantTypes="http://example.com/rt")], V2,
     "statement.context.contextAgents[0].relevantTypes: must be a non-empty array of IRIs"),
    ("a relevantType that is not an IRI", "context.contextAgents", [_ctx_agent(relevantTypes=["instructor"])], V2,
     "statement.context.contextAgents[0].relevantTypes[0]: must be an absolute IRI (with a scheme)"),
    ("contextAgents in a 1.0.3 statement", "context.contextAgents", [_ctx_agent()], V1,
     "statement.context.contextAgents: is not a property the specification allows here"),
    # Data 4.5: timestamps
    ("a timestamp that is not a string", "timestamp", 1368854754, V1, "statement.timestamp: must be an ISO 8601 timestamp string"),
    ("a timestamp that is not ISO 8601", "timestamp", "yesterday", V1,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a date without a time", "timestamp", "2013-05-18", V1,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a 2.0 timestamp that is not RFC 3339", "timestamp", "18/05/2013 05:32", V2,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a 1.0.3 timestamp with a space separator", "timestamp", "2013-05-18 05:32:34Z", V1,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a 1.0.3 timestamp with a lower-case t", "timestamp", "2013-05-18t05:32:34Z", V1,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a 1.0.3 timestamp with a lower-case z", "timestamp", "2013-05-18T05:32:34z", V1,
     "statement.timestamp: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    ("a timestamp offset of -00:00", "timestamp", "2013-05-18T05:32:34.804-00:00", V1,
     "statement.timestamp: the offset -00:00 is not allowed; use Z or +00:00"),
    ("a timestamp that is not a real date", "timestamp", "2013-02-30T05:32:34Z", V1, "statement.timestamp: is not a real date and time"),
    ("a stored that is not ISO 8601", "stored", "today", V1, "statement.stored: must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z"),
    # Data 2.4.9: authority
    ("an identified Group as authority", "authority", {"objectType": "Group", "mbox": "mailto:g@example.com", "member": [MBOX, ACCOUNT]},
     V1, "statement.authority: an authority Group (3-legged OAuth) is anonymous: the application and the user, no identifier of its own"),
    ("an authority Group of three", "authority", {"objectType": "Group", "member": [MBOX, ACCOUNT, {"mbox": "mailto:t@example.com"}]},
     V1, "statement.authority.member: an OAuth authority Group must have exactly two members"),
    # Data 2.4.10: version
    ("a version before 1.0", "version", "0.95", V1, "statement.version: must be an xAPI version this LRS accepts (1.0.x)"),
    ("a version that is not a string", "version", 1.0, V1, "statement.version: must be an xAPI version this LRS accepts (1.0.x)"),
    ("a 2.0 version in a 1.0.3 request", "version", "2.0.0", V1, "statement.version: must be an xAPI version this LRS accepts (1.0.x)"),
    ("a version 3.0 in a 2.0 request", "version", "3.0.0", V2, "statement.version: must be an xAPI version this LRS accepts (1.0.x or 2.0.x)"),
    # Data 2.3.2: voiding
    ("a voiding statement whose object is not a StatementRef", "verb", {"id": VOIDED}, V1,
     "statement.object: a voiding statement's object must be a StatementRef (Data 2.3.2)"),
    # Data 2.4.11: attachments
    ("attachments that are not an array", "attachments", ATTACHMENT, V1, "statement.attachments: must be an array of attachment objects"),
    ("an attachment without usageType", "attachments", [{**ATTACHMENT, "usageType": DELETE}], V1, "statement.attachments[0].usageType: is required"),
    ("an attachment without display", "attachments", [{**ATTACHMENT, "display": DELETE}], V1, "statement.attachments[0].display: is required"),
    ("an attachment without contentType", "attachments", [{**ATTACHMENT, "contentType": DELETE}], V1,
     "statement.attachments[0].contentType: is required"),
    ("an attachment without length", "attachments", [{**ATTACHMENT, "length": DELETE}], V1, "statement.attachments[0].length: is required"),
    ("an attachment without sha2", "attachments", [{**ATTACHMENT, "sha2": DELETE}], V1, "statement.attachments[0].sha2: is required"),
    ("an attachment usageType that is not an IRI", "attachments", [{**ATTACHMENT, "usageType": "signature"}], V1,
     "statement.attachments[0].usageType: must be an absolute IRI (with a scheme)"),
    ("an attachment contentType that is not an Internet Media Type", "attachments", [{**ATTACHMENT, "contentType": "text"}], V1,
     "statement.attachments[0].contentType: must be an Internet Media Type"),
    ("an attachment contentType that is not a string", "attachments", [{**ATTACHMENT, "contentType": 7}], V1,
     "statement.attachments[0].contentType: must be a string"),
    ("an attachment length that is negative", "attachments", [{**ATTACHMENT, "length": -1}], V1,
     "statement.attachments[0].length: must be a non-negative integer"),
    ("an attachment length that is not an integer", "attachments", [{**ATTACHMENT, "length": 12.5}], V1,
     "statement.attachments[0].length: must be a non-negative integer"),
    ("an attachment length given as a string", "attachments", [{**ATTACHMENT, "length": "12"}], V1,
     "statement.attachments[0].length: must be a non-negative integer"),
    ("an attachment sha2 that is not a hex SHA-2", "attachments", [{**ATTACHMENT, "sha2": "a" * 63}], V1,
     "statement.attachments[0].sha2: must be a hex SHA-2 digest"),
    ("an attachment sha2 that is not a string", "attachments", [{**ATTACHMENT, "sha2": 7}], V1,
     "statement.attachments[0].sha2: must be a hex SHA-2 digest"),
    ("an attachment fileUrl that is not an IRL", "attachments", [{**ATTACHMENT, "fileUrl": "f.txt"}], V1,
     "statement.attachments[0].fileUrl: must be an absolute IRL (scheme://...)"),
]


def _body(path: str | None, value: Any, name: str) -> Any:
    if name == "platform when the object is not an Activity":  # Data 2.4.6.s4: revision and platform only with an Activity
        return statement(object={"objectType": "Agent", **MBOX}, context={"platform": "Example LMS"})
    if path is None:
        return [value] if name == "a statement that is not a JSON object" else value
    if path == "attachments" and isinstance(value, list):
        value = [{k: v for k, v in a.items() if v is not DELETE} for a in value]
    return _with(path, value)


EXPECTED = {"platform when the object is not an Activity":
            "statement.context.platform: is only allowed when the statement's object is an Activity"}


@pytest.mark.parametrize(("name", "path", "value", "version", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_the_lrs_rejects(name: str, path: str | None, value: Any, version: str, message: str | None) -> None:
    with pytest.raises(XapiError) as exc:
        statements(_body(path, value, name), version)
    assert exc.value.status == 400
    assert exc.value.detail == (message or EXPECTED[name])


ACCEPTED: list[tuple[str, str, Any, str]] = [
    # 2.0 Data 4.5: RFC 3339 timestamps
    ("a 2.0 timestamp with a space separator", "timestamp", "2013-05-18 05:32:34Z", V2),
    ("a 2.0 timestamp with a lower-case t and z", "timestamp", "2013-05-18t05:32:34z", V2),
    ("a 2.0 version in a 2.0 request", "version", "2.0.0", V2),
    ("an identified Group with an empty member list", "actor", {"objectType": "Group", **MBOX, "member": []}, V1),
    ("a contextAgent with relevantTypes", "context.contextAgents",
     [_ctx_agent(relevantTypes=["https://w3id.org/xapi/cmi5/context/categories/moveon"])], V2),
    ("an interaction with its correctResponsesPattern and components", "object",
     _definition(type=INTERACTION, interactionType="choice", correctResponsesPattern=["golf[,]tetris"],
                 choices=[{"id": "golf", "description": {"en-US": "Golf Example"}}, {"id": "tetris"}]), V1),
    ("extension values of any kind, null included", "result.extensions", {"http://example.com/ext": None}, V1),
    ("a single context activity, stored as an array of one", "context.contextActivities", {"parent": ACTIVITY}, V1),
]


@pytest.mark.parametrize(("name", "path", "value", "version"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_the_lrs_accepts(name: str, path: str, value: Any, version: str) -> None:
    (s,) = statements(_with(path, value), version)
    if path == "context.contextActivities":
        assert s["context"]["contextActivities"]["parent"] == [ACTIVITY]


def test_an_agent_without_an_inverse_functional_identifier_has_no_key() -> None:
    with pytest.raises(XapiError) as exc:
        agent_key({"objectType": "Agent", "name": "Sally"})
    assert (exc.value.status, exc.value.detail) == (400, "the agent has no inverse functional identifier")
    assert agent_key({"objectType": "Agent", **MBOX}) == "mbox:mailto:sally@example.com"


def test_every_refused_case_is_otherwise_a_valid_statement() -> None:
    """The base the cases change is valid in both versions, so each case fails for its own reason."""
    for version in (V1, V2):
        assert len(statements(_with("id", str(uuid.uuid4())), version)) == 1
