"""xAPI 1.0.3 Data 2.2-2.4 and 4 (and the 2.0 differences): every malformed statement is a
400 whose message names the JSON path; well-formed ones from the spec's examples are stored.
Over real HTTP."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from tests.xapi_support import statement

pytest_plugins = ["tests.xapi_fixtures"]  # the lrs fixture

MBOX = {"mbox": "mailto:sally@example.com"}
ACCOUNT = {"account": {"homePage": "http://www.example.com", "name": "1625378"}}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid statement with ``value`` put at the dotted ``path`` (None deletes)."""
    s = statement(result={"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": True},
                  context={"registration": str(uuid.uuid4())})
    node: Any = s
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = copy.deepcopy(value)
    return s


_DELETE = object()

INVALID = [
    # Data 2.2.s4.b1: nulls, wrong types, wrong formats, unknown keys, wrong case
    ("actor.name", None, "statement.actor.name", "null"),
    ("result.success", "true", "statement.result.success", "boolean given as a string"),
    ("result.score.raw", "5", "statement.result.score.raw", "number given as a string"),
    ("id", "not-a-uuid", "statement.id", "id not a UUID"),
    ("extra", 1, "statement.extra", "unknown property"),
    ("Actor", MBOX, "statement.Actor", "key with the wrong case"),
    ("verb.id", "experienced", "statement.verb.id", "verb id without a scheme"),
    ("verb.id", "", "statement.verb.id", "empty IRI"),
    ("verb", _DELETE, "statement.verb", "verb missing"),
    ("object", _DELETE, "statement.object", "object missing"),
    # 2.4.2: agents and groups
    ("actor", {"mbox": "sally@example.com"}, "statement.actor.mbox", "mbox without mailto"),
    ("actor", {**MBOX, **ACCOUNT}, "statement.actor", "two IFIs"),
    ("actor", {"name": "nobody"}, "statement.actor", "no IFI"),
    ("actor", {"mbox_sha1sum": "xyz"}, "statement.actor.mbox_sha1sum", "bad sha1"),
    ("actor", {"account": {"homePage": "example.com", "name": "x"}}, "statement.actor.account.homePage", "homePage not an IRL"),
    ("actor", {"account": {"homePage": "http://example.com"}}, "statement.actor.account", "account without name"),
    ("actor", {"objectType": "agent", **MBOX}, "statement.actor", "objectType with wrong case"),
    ("actor", {"objectType": "Group"}, "statement.actor", "anonymous group without members"),
    ("actor", {"objectType": "Group", "member": [{"objectType": "Group", "mbox": "mailto:g@example.com"}]},
     "statement.actor.member[0]", "group inside a group"),
    # 2.4.3-2.4.4: verb display, objects
    ("verb.display", {"not a language tag!": "x"}, "statement.verb.display", "bad language tag"),
    ("verb.display", {"en-US": 1}, "statement.verb.display.en-US", "language map value not a string"),
    ("object", {"objectType": "Activity"}, "statement.object.id", "activity without id"),
    ("object", {"objectType": "activity", "id": "http://example.com/a"}, "statement.object.objectType", "objectType case"),
    ("object", {"objectType": "Agent"}, "statement.object", "agent object without IFI"),
    ("object", MBOX, "statement.object.mbox", "agent object without objectType is read as an Activity"),
    ("object", {"objectType": "StatementRef", "id": "nope"}, "statement.object.id", "StatementRef id not a UUID"),
    ("object", {"id": "http://example.com/a", "definition": {"interactionType": "essay"}},
     "statement.object.definition.interactionType", "unknown interactionType"),
    ("object", {"id": "http://example.com/a", "definition": {"interactionType": {"en-US": "choice"}}},
     "statement.object.definition.interactionType", "interactionType not a string"),
    ("object", {"id": "http://example.com/a", "definition": {"interactionType": "choice",
                "choices": [{"id": "a"}, {"id": "a"}]}}, "statement.object.definition.choices[1].id", "duplicate component id"),
    ("object", {"id": "http://example.com/a", "definition": {"moreInfo": "not a url"}},
     "statement.object.definition.moreInfo", "moreInfo not an IRL"),
    ("object", {"id": "http://example.com/a", "definition": {"extensions": {"not-an-iri": 1}}},
     "statement.object.definition.extensions", "extension key not an IRI"),
    # 2.4.4.3: SubStatements
    ("object", {"objectType": "SubStatement", "actor": MBOX, "verb": {"id": "http://example.com/v"},
                "object": {"objectType": "SubStatement", "actor": MBOX, "verb": {"id": "http://example.com/v"},
                           "object": {"id": "http://example.com/a"}}},
     "statement.object.object.objectType", "nested SubStatement"),
    ("object", {"objectType": "SubStatement", "id": str(uuid.uuid4()), "actor": MBOX, "verb": {"id": "http://example.com/v"},
                "object": {"id": "http://example.com/a"}}, "statement.object.id", "SubStatement with an id"),
    ("object", {"objectType": "SubStatement", "version": "1.0.0", "actor": MBOX, "verb": {"id": "http://example.com/v"},
                "object": {"id": "http://example.com/a"}}, "statement.object.version", "SubStatement with a version"),
    # 2.4.5: result and score
    ("result.score.scaled", 1.5, "statement.result.score.scaled", "scaled above 1"),
    ("result.score.scaled", -1.01, "statement.result.score.scaled", "scaled below -1"),
    ("result.score.raw", 11, "statement.result.score.raw", "raw above max"),
    ("result.score.raw", -1, "statement.result.score.raw", "raw below min"),
    ("result.score.min", 10, "statement.result.score.max", "min not below max"),
    ("result.duration", "1 hour", "statement.result.duration", "duration not ISO 8601"),
    ("result.duration", "PT", "statement.result.duration", "empty duration"),
    # 2.4.6: context
    ("context.registration", "abc", "statement.context.registration", "registration not a UUID"),
    # a UUID and a line break: SQLite stored it (its ids are read as hex, which skips whitespace), PostgreSQL failed (500)
    ("context.registration", str(uuid.UUID(int=7)) + "\n", "statement.context.registration", "registration with a line break"),
    ("id", str(uuid.UUID(int=8)) + "\n", "statement.id", "id with a line break"),
    ("verb.id", "http://adlnet.gov/expapi/verbs/experienced\n", "statement.verb.id", "IRI with a line break"),
    ("timestamp", "2026-12-07T01:02:03Z\n", "statement.timestamp", "timestamp with a line break"),
    ("actor.mbox", "mailto:kid@example.com\n", "statement.actor.mbox", "mbox with a line break"),
    ("context.contextActivities", {"parent": {"id": "http://example.com/p"}, "sibling": []},
     "statement.context.contextActivities.sibling", "unknown context activity type"),
    ("context.language", "english!", "statement.context.language", "language not RFC 5646"),
    ("context.team", MBOX, "statement.context.team.objectType", "team not a Group"),
    ("context.statement", {"objectType": "StatementRef", "id": "x"}, "statement.context.statement.id", "bad StatementRef"),
    # 2.4.7 / 4.5: timestamps
    ("timestamp", "yesterday", "statement.timestamp", "timestamp not ISO 8601"),
    ("timestamp", "2013-05-18T05:32:34.804-00:00", "statement.timestamp", "-00:00 offset"),
    ("timestamp", "2013-13-18T05:32:34Z", "statement.timestamp", "month 13"),
    # 2.4.9: authority (an Agent, or the anonymous Group of 3-legged OAuth's application and user)
    ("authority", {"objectType": "Group", "mbox": "mailto:group@example.com", "member": [MBOX, ACCOUNT]},
     "statement.authority", "identified Group as authority"),
    ("authority", {"objectType": "Group", "member": [MBOX, ACCOUNT, {"mbox": "mailto:third@example.com"}]},
     "statement.authority.member", "authority Group of three"),
    # 2.4.10: version
    ("version", "0.95", "statement.version", "version before 1.0"),
    ("version", "2.0.0", "statement.version", "2.0 version in a 1.0.3 request"),
    # 2.4.11: attachments
    ("attachments", [{"usageType": "http://example.com/u", "display": {"en-US": "x"}, "contentType": "text/plain",
                      "length": "12", "sha2": "a" * 64, "fileUrl": "http://example.com/f"}],
     "statement.attachments[0].length", "attachment length not an integer"),
    ("attachments", [{"usageType": "http://example.com/u", "display": {"en-US": "x"}, "contentType": "text/plain",
                      "length": 12, "fileUrl": "http://example.com/f"}], "statement.attachments[0].sha2", "attachment without sha2"),
]


def test_invalid_statement_is_400_naming_the_path(lrs) -> None:
    """Every case to one server (a server per case cost ~90 server starts per CI run; each
    rule has its own case, message and all, in test_xapi_validation_rules.py)."""
    c = lrs()
    wrong = []
    for path, value, where, why in INVALID:
        r = c.post("/statements", json=_with(path, value))
        if r.status_code != 400 or not r.json()["message"].startswith(where):
            wrong.append((why, r.status_code, r.text))
    assert wrong == []
    assert c.get("/statements").json()["statements"] == []  # and nothing of them was stored


def test_revision_and_platform_only_when_the_object_is_an_activity(lrs) -> None:
    c = lrs()
    s = statement(object={"objectType": "Agent", **MBOX}, context={"platform": "Example LMS"})
    r = c.post("/statements", json=s)
    assert r.status_code == 400 and "statement.context.platform" in r.json()["message"]
    s = statement(context={"platform": "Example LMS", "revision": "2"})
    assert c.post("/statements", json=s).status_code == 200


def test_authority_may_be_an_agent_or_the_oauth_group_of_two_agents(lrs) -> None:
    """Data 2.4.9.s3.b1: "an Agent, except in 3-legged OAuth, where it MUST be a Group with
    two Agents" (the application and the user)."""
    c = lrs()
    assert c.post("/statements", json=statement(authority={"objectType": "Agent", **ACCOUNT})).status_code == 200
    oauth = {"objectType": "Group", "member": [ACCOUNT, MBOX]}
    assert c.post("/statements", json=statement(authority=oauth)).status_code == 200


def test_voiding_statement_object_must_be_a_statement_ref(lrs) -> None:
    r = lrs().post("/statements", json=statement(verb={"id": VOIDED}))
    assert r.status_code == 400 and "statement.object" in r.json()["message"]


def test_batch_errors_name_the_statement_index(lrs) -> None:
    r = lrs().post("/statements", json=[statement(), statement(), statement(actor={"mbox": "x"})])
    assert r.json()["message"].startswith("statement[2].actor.mbox")


def test_extension_values_are_never_validated(lrs) -> None:
    """Data 4.1.s3.b2: values may be anything, null included."""
    s = statement(result={"extensions": {"http://example.com/ext": None}},
                  context={"extensions": {"http://example.com/ext": {"any": ["thing", 1, None]}}})
    assert lrs().post("/statements", json=s).status_code == 200


SPEC_EXAMPLES = [
    # Data 2.4.2.4.s3 (account), 2.4.4.3.s9 (SubStatement), 2.4.5.s2-ish result, Group actor, interaction
    statement(actor={"objectType": "Agent", "name": "Andrew Downes", **ACCOUNT}),
    statement(actor={"objectType": "Group", "name": "Team PB", "mbox": "mailto:teampb@example.com",
                     "member": [{"name": "Andrew Downes", **ACCOUNT}, {"name": "Aaron Silvers", "openid": "http://aaron.openid.example.org"}]}),
    statement(actor={"objectType": "Group", "member": [MBOX, {"mbox_sha1sum": "ebd31e95054c018b10727ccffd2ef2ec3a016ee9"}]}),
    statement(object={"objectType": "SubStatement", "actor": {"objectType": "Agent", "mbox": "mailto:test@example.com"},
                      "verb": {"id": "http://example.com/visited", "display": {"en-US": "will visit"}},
                      "object": {"objectType": "Activity", "id": "http://example.com/website",
                                 "definition": {"name": {"en-US": "Some Awesome Website"}}}},
              verb={"id": "http://example.com/planned", "display": {"en-US": "planned"}}),
    statement(object={"id": "http://www.example.com/tincan/activities/cmi.interaction.choice", "definition": {
        "type": "http://adlnet.gov/expapi/activities/cmi.interaction", "interactionType": "choice",
        "correctResponsesPattern": ["golf[,]tetris"],
        "choices": [{"id": "golf", "description": {"en-US": "Golf Example"}}, {"id": "tetris", "description": {"en-US": "Tetris Example"}}]}}),
    statement(result={"completion": True, "success": True, "score": {"scaled": 0.95}, "duration": "P1DT2H3M4.5S"},
              timestamp="2013-05-18T05:32:34.804+00:00", context={"language": "zh-Hant-TW", "revision": "1", "platform": "x"}),
    statement(verb={"id": "http://adlnet.gov/expapi/verbs/attended", "display": {"en-GB": "attended", "en-US": "attended"}},
              context={"instructor": {"name": "Andrew Downes", **ACCOUNT},
                       "team": {"objectType": "Group", "name": "Team PB", "mbox": "mailto:teampb@example.com"},
                       "contextActivities": {"parent": [{"id": "http://www.example.com/meetings/series/267"}],
                                             "category": [{"id": "http://www.example.com/meetings/categories/teammeeting",
                                                           "definition": {"name": {"en": "team meeting"},
                                                                          "type": "http://example.com/expapi/activities/meetingcategory"}}]}}),
]


@pytest.mark.parametrize("s", SPEC_EXAMPLES)
def test_spec_examples_are_accepted(lrs, s: dict[str, Any]) -> None:
    r = lrs().post("/statements", json=s)
    assert r.status_code == 200, r.text
