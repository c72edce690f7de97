"""Statement validation exactly as xAPI 1.0.3 Data 2.2-2.4 and 4 say, with the 2.0 (IEEE
9274.1.1) differences: ``context.contextAgents`` / ``contextGroups`` and RFC 3339 timestamps.

Hand-written checks over the parsed JSON (dicts from orjson) rather than a JSON Schema run
per statement: the ingest path must validate thousands of statements per second, and a
rejection must name its exact JSON path ("statement[3].actor.mbox: must be a mailto IRI").
The first problem found rejects the statement (Data 2.2.s4: the LRS MUST reject), and with
it the whole request (Communication 2.1.2: a batch is all or nothing).

Every function takes the value and the JSON path it sits at; paths are only formatted
into a message when something is wrong.

The ingest path validates every statement of every batch, and most of what a statement
holds repeats from one statement to the next (verb ids, activity ids, language tags): an
IRI or a language tag found valid once is remembered (``_Known``, a bounded set per
process), so the next occurrence costs a set lookup instead of a regular expression; so is
an activity definition found valid, as its JSON text (``_KNOWN_DEFINITIONS``). Only valid
values are remembered, so every rejection runs the full check and its message.

Over 600 lines because it is the specification's statement rules, one function per object
of Data 2.4, which are read and checked against the text best in one place.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from .http import V2, XapiError

VOIDED = "http://adlnet.gov/expapi/verbs/voided"

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+\Z")
_IRL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>\"{}|\\^`]+\Z")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}\Z")
_SHA2 = re.compile(r"^[0-9a-fA-F]{56}\Z|^[0-9a-fA-F]{64}\Z|^[0-9a-fA-F]{96}\Z|^[0-9a-fA-F]{128}\Z")
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+\Z")
# RFC 5646 language tag: the sequence of subtag lengths (Data 2.2.s4.b2), plus private use
_LANG = re.compile(
    r"^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?"
    r"|[xX](?:-[A-Za-z0-9]{1,8})+|[iI]-[A-Za-z]{2,8}(?:-[A-Za-z]{2,8})*)\Z"
)
# ISO 8601 combined date and time (Data 4.5); 2.0 also takes RFC 3339's space separator
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?([Zz]|[+-]\d{2}(?::?\d{2})?)?\Z"
)
# ISO 8601:2004 4.4.3.2 duration (Data 4.6), or the week form
_DURATION = re.compile(
    r"^P(?!\Z)(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?D)?(?:T(?=\d)(?:\d+(?:[.,]\d+)?H)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?S)?)?\Z"
    r"|^P\d+(?:[.,]\d+)?W\Z"
)
_VERSION = re.compile(r"^1\.0(\.\d+)?\Z")
_VERSION2 = re.compile(r"^(1|2)\.0(\.\d+)?\Z")

INTERACTION_TYPES = frozenset(
    {"true-false", "choice", "fill-in", "long-fill-in", "matching", "performance", "sequencing", "likert", "numeric", "other"}
)
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")
IFIS = ("mbox", "mbox_sha1sum", "openid", "account")

_STATEMENT_KEYS = frozenset(
    {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority", "version", "attachments"}
)
_SUBSTATEMENT_KEYS = frozenset({"objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"})
_AGENT_KEYS = frozenset({"objectType", "name", *IFIS})
_GROUP_KEYS = frozenset({"objectType", "name", "member", *IFIS})
_ACCOUNT_KEYS = frozenset({"homePage", "name"})
_VERB_KEYS = frozenset({"id", "display"})
_ACTIVITY_KEYS = frozenset({"objectType", "id", "definition"})
_DEFINITION_KEYS = frozenset(
    {"name", "description", "type", "moreInfo", "extensions", "interactionType", "correctResponsesPattern", *_COMPONENT_LISTS}
)
_COMPONENT_KEYS = frozenset({"id", "description"})
_REF_KEYS = frozenset({"objectType", "id"})
_RESULT_KEYS = frozenset({"score", "success", "completion", "response", "duration", "extensions"})
_SCORE_KEYS = frozenset({"scaled", "raw", "min", "max"})
_CONTEXT_KEYS = frozenset(
    {"registration", "instructor", "team", "contextActivities", "revision", "platform", "language", "statement", "extensions"}
)
_CONTEXT_KEYS_2 = _CONTEXT_KEYS | {"contextAgents", "contextGroups"}
_CONTEXT_ACTIVITY_KEYS = frozenset({"parent", "grouping", "category", "other"})
_CONTEXT_AGENT_KEYS = frozenset({"objectType", "agent", "relevantTypes"})
_CONTEXT_GROUP_KEYS = frozenset({"objectType", "group", "relevantTypes"})
_ATTACHMENT_KEYS = frozenset({"usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"})

SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"


class _Known(set[str]):
    """Strings a pattern accepted, at most ``limit`` of them (emptied when full: a workload
    of ever-new values costs one ``clear`` per ``limit`` values, and no memory beyond), each
    at most ``LONGEST`` characters: a longer value is checked every time, so the set holds a
    bounded number of bytes whatever clients send (a 10 MiB request may hold a thousand
    ever-new extension keys of 10 KB)."""

    LONGEST = 512

    def __init__(self, pattern: re.Pattern[str], limit: int = 50_000) -> None:
        super().__init__()
        self.pattern, self.limit = pattern, limit

    def check(self, value: str) -> bool:
        if value in self:
            return True
        if self.pattern.match(value) is None:
            return False
        if len(value) > self.LONGEST:
            return True
        if len(self) >= self.limit:
            self.clear()
        self.add(value)
        return True


_KNOWN_IRIS = _Known(_IRI)
_KNOWN_IRLS = _Known(_IRL)
_KNOWN_LANGS = _Known(_LANG, 2_000)
#: durations repeat too ("PT30S"), and their pattern is the slowest of these
_KNOWN_DURATIONS = _Known(_DURATION, 2_000)
#: activity definitions found valid, as their JSON text (``definition``): most statements repeat
#: a definition the LRS has seen (the same question's, in every learner's answer); a known one
#: costs one serialisation (about 1 us) instead of the full check (about 6 us on the ingest
#: benchmark's interaction definitions). Bounded: at most 5,000 texts of at most 2,048 bytes.
_KNOWN_DEFINITIONS: set[bytes] = set()
_DEFINITIONS_KEPT, _DEFINITION_LONGEST = 5_000, 2_048


def bad(path: str, message: str) -> XapiError:
    return XapiError(400, f"{path}: {message}")


# --------------------------------------------------------------------------- primitives

def _obj(value: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
    """An object with only ``allowed`` keys and no null values (Data 2.2.s4.b1)."""
    if type(value) is not dict:
        raise bad(path, "must be a JSON object")
    # the usual case in two C-level passes; the loop below finds the first offence in order
    if value.keys() <= allowed and None not in value.values():
        return value
    for k, v in value.items():
        if k not in allowed:
            raise bad(f"{path}.{k}", "is not a property the specification allows here")
        if v is None:
            raise bad(f"{path}.{k}", "must not be null")
    return value


def _str(value: Any, path: str) -> str:
    if type(value) is not str:
        raise bad(path, "must be a string")
    return value


def _bool(value: Any, path: str) -> None:
    if type(value) is not bool:
        raise bad(path, "must be true or false")


def _num(value: Any, path: str) -> float:
    if type(value) not in (int, float):
        raise bad(path, "must be a number")
    return value


def iri(value: Any, path: str) -> str:
    if type(value) is not str or not _KNOWN_IRIS.check(value):
        raise bad(path, "must be an absolute IRI (with a scheme)")
    return value


def irl(value: Any, path: str) -> str:
    if type(value) is not str or not _KNOWN_IRLS.check(value):
        raise bad(path, "must be an absolute IRL (scheme://...)")
    return value


def uuid_(value: Any, path: str) -> str:
    if type(value) is not str or not _UUID.match(value):
        raise bad(path, "must be a UUID (8-4-4-4-12 hex digits)")
    return value


def lang_tag(value: Any, path: str) -> str:
    if type(value) is not str or not _KNOWN_LANGS.check(value):
        raise bad(path, "must be an RFC 5646 language tag")
    return value


def language_map(value: Any, path: str) -> None:
    """Data 4.2: keys RFC 5646 language tags, values strings."""
    if type(value) is not dict:
        raise bad(path, "must be a language map (an object of language tag -> string)")
    for k, v in value.items():
        if not _KNOWN_LANGS.check(k):
            raise bad(f"{path}.{k}", "the key must be an RFC 5646 language tag")
        if type(v) is not str:
            raise bad(f"{path}.{k}", "must be a string")


def extensions(value: Any, path: str) -> None:
    """Data 4.1: keys are IRIs; values are anything (null included, and never validated)."""
    if type(value) is not dict:
        raise bad(path, "must be an object of IRI -> value")
    for k in value:
        if not _KNOWN_IRIS.check(k):
            raise bad(f"{path}.{k}", "an extension key must be an IRI")


def timestamp(value: Any, path: str, version: str) -> datetime:
    """Data 4.5: ISO 8601 date and time. A ``-00:00`` offset (RFC 3339's "unknown local
    offset") is refused; 2.0 also accepts RFC 3339's space separator and lower-case t/z."""
    if type(value) is not str:
        raise bad(path, "must be an ISO 8601 timestamp string")
    m = _TIMESTAMP.match(value)
    if m is None or (version != V2 and (" " in value or "t" in value or "z" in value)):
        raise bad(path, "must be an ISO 8601 timestamp, e.g. 2013-05-18T05:32:34.804Z")
    tz = m.group(8)
    if tz in ("-00:00", "-0000", "-00"):
        raise bad(path, "the offset -00:00 is not allowed; use Z or +00:00")
    try:
        return _to_datetime(m)
    except ValueError:
        raise bad(path, "is not a real date and time") from None


def _to_datetime(m: re.Match[str]) -> datetime:
    value = m.string
    if len(value) == 24 and value[23] == "Z" and value[19] == "." and value[10] == "T" and value[11:13] != "24" and value.isascii():
        # the usual form, 2013-05-18T05:32:34.804Z (the pattern matched it): the C parser
        # gives the same datetime, or the same ValueError for a date or time that is not real
        return datetime.fromisoformat(value)
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if tz is None or tz in ("Z", "z"):
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=UTC)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=zone).astimezone(UTC)


def duration(value: Any, path: str) -> None:
    if type(value) is not str or not _KNOWN_DURATIONS.check(value):
        raise bad(path, "must be an ISO 8601 duration, e.g. PT1H30M")


# --------------------------------------------------------------------------- actors

def _ifi(value: dict[str, Any], path: str) -> None:
    """Data 2.4.2.3: exactly one inverse functional identifier, each in its own format."""
    found = [k for k in IFIS if k in value]
    if len(found) != 1:
        raise bad(path, f"must have exactly one inverse functional identifier (mbox, mbox_sha1sum, openid, account); found {len(found)}")
    k = found[0]
    v = value[k]
    if k == "mbox":
        if type(v) is not str or not _MAILTO.match(v):
            raise bad(f"{path}.mbox", "must be a mailto IRI (mailto:name@example.com)")
    elif k == "mbox_sha1sum":
        if type(v) is not str or not _SHA1.match(v):
            raise bad(f"{path}.mbox_sha1sum", "must be the hex SHA-1 of a mailto IRI (40 hex digits)")
    elif k == "openid":
        iri(v, f"{path}.openid")
    else:
        acct = _obj(v, f"{path}.account", _ACCOUNT_KEYS)
        if "homePage" not in acct or "name" not in acct:
            raise bad(f"{path}.account", "must have homePage and name")
        irl(acct["homePage"], f"{path}.account.homePage")
        _str(acct["name"], f"{path}.account.name")


def agent(value: Any, path: str) -> dict[str, Any]:
    """Data 2.4.2.1. (An Agent as a statement's object MUST say so, Data 2.4.4.2: ``object_``
    reads an object without ``objectType`` as an Activity, so it never gets here.)"""
    a = _obj(value, path, _AGENT_KEYS)
    ot = a.get("objectType")
    if ot is not None and ot != "Agent":
        raise bad(f"{path}.objectType", 'must be "Agent"')
    if "name" in a:
        _str(a["name"], f"{path}.name")
    _ifi(a, path)
    return a


def group(value: Any, path: str) -> dict[str, Any]:
    """Data 2.4.2.2: anonymous (members, no IFI) or identified (one IFI); members are Agents."""
    g = _obj(value, path, _GROUP_KEYS)
    if g.get("objectType") != "Group":
        raise bad(f"{path}.objectType", 'must be "Group"')
    if "name" in g:
        _str(g["name"], f"{path}.name")
    identified = any(k in g for k in IFIS)
    if identified:
        _ifi(g, path)
    elif "member" not in g:
        raise bad(path, "an anonymous Group must list its member Agents")
    if "member" in g:
        members = g["member"]
        if type(members) is not list or (not identified and not members):
            raise bad(f"{path}.member", "must be a non-empty array of Agents")
        for i, m in enumerate(members):
            agent(m, f"{path}.member[{i}]")
    return g


def actor(value: Any, path: str) -> dict[str, Any]:
    if type(value) is dict and value.get("objectType") == "Group":
        return group(value, path)
    return agent(value, path)


# --------------------------------------------------------------------------- verb, object

def verb(value: Any, path: str) -> dict[str, Any]:
    """Data 2.4.3."""
    v = _obj(value, path, _VERB_KEYS)
    if "id" not in v:
        raise bad(f"{path}.id", "is required")
    iri(v["id"], f"{path}.id")
    if "display" in v:
        language_map(v["display"], f"{path}.display")
    return v


def activity(value: Any, path: str) -> dict[str, Any]:
    """Data 2.4.4.1."""
    a = _obj(value, path, _ACTIVITY_KEYS)
    if "objectType" in a and a["objectType"] != "Activity":
        raise bad(f"{path}.objectType", 'must be "Activity"')
    if "id" not in a:
        raise bad(f"{path}.id", "is required")
    iri(a["id"], f"{path}.id")
    if "definition" in a:
        definition(a["definition"], f"{path}.definition")
    return a


def _known_activity(a: Any) -> bool:
    """An Activity that is only an id found valid before (and perhaps ``"objectType": "Activity"``),
    as most context activities are: what ``activity`` accepts, told without building the paths
    its checks would name. Anything else gets ``activity`` (and its message)."""
    return (type(a) is dict and a.keys() <= _REF_KEYS and type(aid := a.get("id")) is str and aid in _KNOWN_IRIS
            and a.get("objectType", "Activity") == "Activity")


def definition(value: Any, path: str) -> None:
    """Data 2.4.4.1.s10: an Activity Definition (checked once per distinct text: ``_KNOWN_DEFINITIONS``)."""
    try:
        text = orjson.dumps(value) if type(value) is dict else None
    except orjson.JSONEncodeError:
        text = None
    if text is not None and text in _KNOWN_DEFINITIONS:
        return
    _definition(value, path)
    if text is not None and len(text) <= _DEFINITION_LONGEST:
        if len(_KNOWN_DEFINITIONS) >= _DEFINITIONS_KEPT:
            _KNOWN_DEFINITIONS.clear()
        _KNOWN_DEFINITIONS.add(text)


def _definition(value: Any, path: str) -> None:
    d = _obj(value, path, _DEFINITION_KEYS)
    for k in ("name", "description"):
        if k in d:
            language_map(d[k], f"{path}.{k}")
    if "type" in d:
        iri(d["type"], f"{path}.type")
    if "moreInfo" in d:
        irl(d["moreInfo"], f"{path}.moreInfo")
    if "extensions" in d:
        extensions(d["extensions"], f"{path}.extensions")
    itype = d.get("interactionType")
    if itype is not None and (type(itype) is not str or itype not in INTERACTION_TYPES):
        raise bad(f"{path}.interactionType", f"must be one of {', '.join(sorted(INTERACTION_TYPES))}")
    if "correctResponsesPattern" in d:
        if itype is None:
            raise bad(f"{path}.correctResponsesPattern", "needs an interactionType")
        crp = d["correctResponsesPattern"]
        if type(crp) is not list or any(type(x) is not str for x in crp):
            raise bad(f"{path}.correctResponsesPattern", "must be an array of strings")
    for k in _COMPONENT_LISTS:
        if k in d:
            if itype is None:
                raise bad(f"{path}.{k}", "needs an interactionType")
            _components(d[k], f"{path}.{k}")


def _components(value: Any, path: str) -> None:
    """Data 2.4.4.1.s15-16: interaction components, ids distinct."""
    if type(value) is not list:
        raise bad(path, "must be an array of interaction components")
    seen: set[str] = set()
    for i, c in enumerate(value):
        p = f"{path}[{i}]"
        c = _obj(c, p, _COMPONENT_KEYS)
        if "id" not in c:
            raise bad(f"{p}.id", "is required")
        cid = _str(c["id"], f"{p}.id")
        if cid in seen:
            raise bad(f"{p}.id", f"{cid!r} is used twice in this array")
        seen.add(cid)
        if "description" in c:
            language_map(c["description"], f"{p}.description")


def statement_ref(value: Any, path: str) -> dict[str, Any]:
    r = _obj(value, path, _REF_KEYS)
    if r.get("objectType") != "StatementRef":
        raise bad(f"{path}.objectType", 'must be "StatementRef"')
    if "id" not in r:
        raise bad(f"{path}.id", "is required")
    uuid_(r["id"], f"{path}.id")
    return r


def object_(value: Any, path: str, version: str, *, sub: bool) -> dict[str, Any]:
    """Data 2.4.4: Activity (default), Agent, Group, StatementRef or (not inside one)
    SubStatement."""
    if type(value) is not dict:
        raise bad(path, "must be a JSON object")
    ot = value.get("objectType", "Activity")
    if ot == "Activity":
        return activity(value, path)
    if ot == "Agent":
        return agent(value, path)
    if ot == "Group":
        return group(value, path)
    if ot == "StatementRef":
        return statement_ref(value, path)
    if ot == "SubStatement":
        if sub:
            raise bad(f"{path}.objectType", "a SubStatement cannot contain another SubStatement")
        return _statement_body(value, path, version, sub=True)
    raise bad(f"{path}.objectType", "must be Activity, Agent, Group, StatementRef or SubStatement")


# --------------------------------------------------------------------------- result, context

def result(value: Any, path: str) -> None:
    """Data 2.4.5."""
    r = _obj(value, path, _RESULT_KEYS)
    if "score" in r:
        score(r["score"], f"{path}.score")
    for k in ("success", "completion"):
        if k in r:
            _bool(r[k], f"{path}.{k}")
    if "response" in r:
        _str(r["response"], f"{path}.response")
    if "duration" in r:
        duration(r["duration"], f"{path}.duration")
    if "extensions" in r:
        extensions(r["extensions"], f"{path}.extensions")


def score(value: Any, path: str) -> None:
    """Data 2.4.5.1: -1 <= scaled <= 1; min <= raw <= max; min < max."""
    s = _obj(value, path, _SCORE_KEYS)
    for k, v in s.items():
        if type(v) not in (int, float):
            _num(v, f"{path}.{k}")
    if "scaled" in s and not -1 <= s["scaled"] <= 1:
        raise bad(f"{path}.scaled", "must be between -1 and 1")
    lo, hi, raw = s.get("min"), s.get("max"), s.get("raw")
    if lo is not None and hi is not None and not lo < hi:
        raise bad(f"{path}.max", "must be greater than min")
    if raw is not None and lo is not None and raw < lo:
        raise bad(f"{path}.raw", "must not be less than min")
    if raw is not None and hi is not None and raw > hi:
        raise bad(f"{path}.raw", "must not be greater than max")


def context(value: Any, path: str, version: str, *, object_is_activity: bool) -> None:
    """Data 2.4.6, and 2.0's contextAgents / contextGroups."""
    c = _obj(value, path, _CONTEXT_KEYS_2 if version == V2 else _CONTEXT_KEYS)
    if "registration" in c:
        uuid_(c["registration"], f"{path}.registration")
    if "instructor" in c:
        actor(c["instructor"], f"{path}.instructor")
    if "team" in c:
        group(c["team"], f"{path}.team")
    if "contextActivities" in c:
        ca = _obj(c["contextActivities"], f"{path}.contextActivities", _CONTEXT_ACTIVITY_KEYS)
        for k, v in ca.items():
            if type(v) is list:
                for i, a in enumerate(v):
                    if not _known_activity(a):
                        activity(a, f"{path}.contextActivities.{k}[{i}]")
            else:
                # Data 2.4.6.2: a single Activity is stored (and returned) as an array of one
                ca[k] = [activity(v, f"{path}.contextActivities.{k}")]
    for k in ("revision", "platform"):
        if k in c:
            _str(c[k], f"{path}.{k}")
            if not object_is_activity:
                raise bad(f"{path}.{k}", "is only allowed when the statement's object is an Activity")
    if "language" in c:
        lang_tag(c["language"], f"{path}.language")
    if "statement" in c:
        statement_ref(c["statement"], f"{path}.statement")
    if "extensions" in c:
        extensions(c["extensions"], f"{path}.extensions")
    if "contextAgents" in c:
        _context_members(c["contextAgents"], f"{path}.contextAgents", "contextAgent", "agent", _CONTEXT_AGENT_KEYS)
    if "contextGroups" in c:
        _context_members(c["contextGroups"], f"{path}.contextGroups", "contextGroup", "group", _CONTEXT_GROUP_KEYS)


def _context_members(value: Any, path: str, object_type: str, key: str, allowed: frozenset[str]) -> None:
    """2.0 Data 2.4.6: [{objectType: contextAgent|contextGroup, agent|group, relevantTypes?}]."""
    if type(value) is not list:
        raise bad(path, f"must be an array of {object_type} objects")
    for i, m in enumerate(value):
        p = f"{path}[{i}]"
        m = _obj(m, p, allowed)
        if m.get("objectType") != object_type:
            raise bad(f"{p}.objectType", f'must be "{object_type}"')
        if key not in m:
            raise bad(f"{p}.{key}", "is required")
        if key == "agent":
            agent(m[key], f"{p}.agent")
        else:
            group(m[key], f"{p}.group")
        if "relevantTypes" in m:
            rt = m["relevantTypes"]
            if type(rt) is not list or not rt:
                raise bad(f"{p}.relevantTypes", "must be a non-empty array of IRIs")
            for j, t in enumerate(rt):
                iri(t, f"{p}.relevantTypes[{j}]")


def attachments(value: Any, path: str) -> None:
    """Data 2.4.11."""
    if type(value) is not list:
        raise bad(path, "must be an array of attachment objects")
    for i, a in enumerate(value):
        p = f"{path}[{i}]"
        a = _obj(a, p, _ATTACHMENT_KEYS)
        for k in ("usageType", "display", "contentType", "length", "sha2"):
            if k not in a:
                raise bad(f"{p}.{k}", "is required")
        iri(a["usageType"], f"{p}.usageType")
        language_map(a["display"], f"{p}.display")
        if "description" in a:
            language_map(a["description"], f"{p}.description")
        ctype = _str(a["contentType"], f"{p}.contentType")
        if "/" not in ctype:
            raise bad(f"{p}.contentType", "must be an Internet Media Type")
        if type(a["length"]) is not int or a["length"] < 0:
            raise bad(f"{p}.length", "must be a non-negative integer")
        if type(a["sha2"]) is not str or not _SHA2.match(a["sha2"]):
            raise bad(f"{p}.sha2", "must be a hex SHA-2 digest")
        if "fileUrl" in a:
            irl(a["fileUrl"], f"{p}.fileUrl")


# --------------------------------------------------------------------------- statements

def _statement_body(s: Any, path: str, version: str, *, sub: bool) -> dict[str, Any]:
    s = _obj(s, path, _SUBSTATEMENT_KEYS if sub else _STATEMENT_KEYS)
    for k in ("actor", "verb", "object"):
        if k not in s:
            raise bad(f"{path}.{k}", "is required")
    actor(s["actor"], f"{path}.actor")
    verb(s["verb"], f"{path}.verb")
    obj = object_(s["object"], f"{path}.object", version, sub=sub)
    if "result" in s:
        result(s["result"], f"{path}.result")
    if "context" in s:
        context(s["context"], f"{path}.context", version, object_is_activity=obj.get("objectType", "Activity") == "Activity")
    if "timestamp" in s:
        timestamp(s["timestamp"], f"{path}.timestamp", version)
    if "attachments" in s:
        attachments(s["attachments"], f"{path}.attachments")
    return s


def statement(s: Any, path: str, version: str) -> dict[str, Any]:
    """Data 2.4: one statement as a client sends it."""
    s = _statement_body(s, path, version, sub=False)
    if "id" in s:
        uuid_(s["id"], f"{path}.id")
    if "stored" in s:
        timestamp(s["stored"], f"{path}.stored", version)
    if "authority" in s:
        _authority(s["authority"], f"{path}.authority")
    if "version" in s:
        pattern = _VERSION2 if version == V2 else _VERSION
        if type(s["version"]) is not str or not pattern.match(s["version"]):
            raise bad(f"{path}.version", "must be an xAPI version this LRS accepts (1.0.x" + (" or 2.0.x)" if version == V2 else ")"))
    if s["verb"]["id"] == VOIDED and s["object"].get("objectType") != "StatementRef":
        raise bad(f"{path}.object", "a voiding statement's object must be a StatementRef (Data 2.3.2)")
    return s


def _authority(value: Any, path: str) -> None:
    """Data 2.4.9.s3.b1: an Agent, or (3-legged OAuth) a Group of exactly two Agents that
    "represent an application and user together". Such a Group stands for nothing but its
    two members, so it is anonymous: a Group with an inverse functional identifier is a
    third identity and is refused (the spec leaves this implicit; SQL LRS's xapi-schema reads
    it the same way)."""
    a = actor(value, path)
    if a.get("objectType") != "Group":
        return
    if any(k in a for k in IFIS):
        raise bad(path, "an authority Group (3-legged OAuth) is anonymous: the application and the user, no identifier of its own")
    if len(a["member"]) != 2:
        raise bad(f"{path}.member", "an OAuth authority Group must have exactly two members")


def statements(data: Any, version: str) -> list[dict[str, Any]]:
    """A request body: one statement or an array of them -> the list, validated."""
    if type(data) is list:
        if not data:
            raise XapiError(400, "the request body is an empty array of statements")
        return [statement(s, f"statement[{i}]", version) for i, s in enumerate(data)]
    return [statement(data, "statement", version)]


# --------------------------------------------------------------------------- agents as keys

def agent_key(a: dict[str, Any]) -> str:
    """The canonical text of an Agent's or identified Group's inverse functional identifier:
    "mbox:mailto:a@b.c", "mbox_sha1sum:<hex>", "openid:<uri>", "account:<homePage>|<name>"."""
    if "mbox" in a:
        return "mbox:" + a["mbox"]
    if "mbox_sha1sum" in a:
        return "mbox_sha1sum:" + a["mbox_sha1sum"].lower()
    if "openid" in a:
        return "openid:" + a["openid"]
    acct = a.get("account")
    if acct:
        return f"account:{acct['homePage']}|{acct['name']}"
    raise XapiError(400, "the agent has no inverse functional identifier")


__all__ = ["IFIS", "SIGNATURE_USAGE", "VOIDED", "agent_key", "statement", "statements", "timestamp"]
