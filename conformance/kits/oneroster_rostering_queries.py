"""Kit ``oneroster-rostering-1.2`` (``oneroster_rostering`` says what it covers), second part:
sorting, filtering, field selection, errors, auth and scopes, dateLastModified deltas and the
information model, with the helpers of ``oneroster_rostering_paths``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..kit import Fail, Session, Skip
from .oneroster_common import (
    CODE_MINORS,
    UNKNOWN_ID,
    body,
    code_minors,
    expect,
    hide,
    need,
    parse_datetime,
    request_token,
    status_info,
    uris,
    wire_time,
)
from .oneroster_rostering_paths import CORE, KIT, RB, _users_total, first, get, items, ref, roles_of, sid, total

# --- sorting -------------------------------------------------------------------------------

SORTING = f"{RB}: Sorting"


def _ordered(values: list[Any], desc: bool) -> bool:
    def ok(keyf: Callable[[Any], Any]) -> bool:
        keys = [keyf(v) for v in values]
        return all((a >= b) if desc else (a <= b) for a, b in zip(keys, keys[1:], strict=False))
    return ok(lambda v: str(v)) or ok(lambda v: str(v).casefold())


def _sort_check(n: int, coll: str, envelope: str, field: str, desc: bool) -> None:
    order = "desc" if desc else "asc"

    @KIT.check(f"OR-ROS-SORT-{n:03d}", SORTING, f"sort={field}&orderBy={order} on /{coll} answers the objects in {order}ending {field} order")
    def check(s: Session) -> None:
        _, objs = items(s, f"/{coll}", envelope, {"sort": field, "orderBy": order, "limit": 100})
        values = [o.get(field) for o in objs if o.get(field) is not None]
        if len(values) < 2:
            raise Skip(f"fewer than 2 {coll} with a {field}")
        if len(set(map(str, values))) < 2:
            raise Skip(f"every listed {field} is the same")
        if not _ordered(values, desc):
            raise Fail(f"{field} values are not in {order} order: {values[:10]}")


_sort_check(1, "users", "users", "familyName", False)
_sort_check(2, "users", "users", "familyName", True)
_sort_check(3, "orgs", "orgs", "sourcedId", False)
_sort_check(4, "classes", "classes", "title", True)


@KIT.check("OR-ROS-SORT-005", SORTING, "sort on a field the type does not have answers 400 with imsx_StatusInfo (invaliddata)")
def _sort_unknown(s: Session) -> None:
    status_info(get(s, "/users", {"sort": "noSuchField"}), 400, "invaliddata", "invalid_sort_field")


@KIT.check("OR-ROS-SORT-006", SORTING, "sort with a descending orderBy reverses the ascending order of distinct values")
def _sort_reverse(s: Session) -> None:
    _, asc = items(s, "/orgs", "orgs", {"sort": "sourcedId", "orderBy": "asc"})
    _, desc = items(s, "/orgs", "orgs", {"sort": "sourcedId", "orderBy": "desc"})
    if len(asc) < 2:
        raise Skip("fewer than 2 orgs")
    if [sid(o) for o in asc] != [sid(o) for o in reversed(desc)]:
        raise Fail("orderBy=desc is not the reverse of orderBy=asc on sourcedId")


# --- filtering -----------------------------------------------------------------------------

FILTERING = f"{RB}: Filtering"


def _user(s: Session) -> dict[str, Any]:
    _, objs = _users_total(s)
    for o in objs:
        if isinstance(o.get("familyName"), str) and isinstance(o.get("givenName"), str) and len(o["familyName"]) >= 3:
            return o
    raise Skip("no listed user has a givenName and a familyName of 3 characters or more")


def filtered(s: Session, coll: str, envelope: str, flt: str, **params: Any) -> tuple[int, list[dict[str, Any]]]:
    r, objs = items(s, f"/{coll}", envelope, {"filter": flt, "limit": 100, **params})
    return total(r), objs


@KIT.check("OR-ROS-FLT-001", FILTERING, "filter=sourcedId='X' answers exactly the object X")
def _flt_eq(s: Session) -> None:
    u = _user(s)
    n, objs = filtered(s, "users", "users", f"sourcedId='{sid(u)}'")
    if [o.get("sourcedId") for o in objs] != [sid(u)] or n != 1:
        raise Fail(f"filter=sourcedId='{sid(u)}' answered {[o.get('sourcedId') for o in objs][:10]} (X-Total-Count {n})")


@KIT.check("OR-ROS-FLT-002", FILTERING, "filter=type!='school' on /orgs answers no school, and fewer orgs than without the filter")
def _flt_ne(s: Session) -> None:
    r, all_orgs = items(s, "/orgs", "orgs", {"limit": 1000})
    if not any(o.get("type") == "school" for o in all_orgs):
        raise Skip("no school among the orgs")
    n, objs = filtered(s, "orgs", "orgs", "type!='school'")
    bad = [o.get("sourcedId") for o in objs if o.get("type") == "school"]
    if bad:
        raise Fail(f"type!='school' answered schools {bad[:5]}")
    if n >= total(r):
        raise Fail(f"type!='school' answered X-Total-Count {n}, as many as all orgs ({total(r)})")


def _modified(s: Session) -> tuple[int, str]:
    n, objs = _users_total(s)
    stamps = sorted(d for d in (parse_datetime(o.get("dateLastModified")) for o in objs) if d)
    need(stamps, "no listed user has a dateLastModified")
    return n, wire_time(stamps[len(stamps) // 2])


def _cmp_check(n: int, pred: str, other: str, test: Callable[[datetime, datetime], bool]) -> None:
    @KIT.check(f"OR-ROS-FLT-{n:03d}", FILTERING,
               f"filter=dateLastModified{pred}'T' answers only objects with dateLastModified {pred} T, and with {other} the two add up to the whole collection")
    def check(s: Session) -> None:
        all_n, stamp = _modified(s)
        t = parse_datetime(stamp)
        assert t is not None
        n1, objs = filtered(s, "users", "users", f"dateLastModified{pred}'{stamp}'")
        for o in objs:
            d = parse_datetime(o.get("dateLastModified"))
            if d is None or not test(d.replace(microsecond=d.microsecond // 1000 * 1000), t):
                raise Fail(f"{o.get('sourcedId')!r} has dateLastModified {o.get('dateLastModified')!r}, not {pred} {stamp}")
        n2, _ = filtered(s, "users", "users", f"dateLastModified{other}'{stamp}'")
        if n1 + n2 != all_n:
            raise Fail(f"{pred} gives {n1} users and {other} gives {n2}: together {n1 + n2}, not the {all_n} users")


_cmp_check(3, ">", "<=", lambda a, b: a > b)
_cmp_check(4, ">=", "<", lambda a, b: a >= b)
_cmp_check(5, "<", ">=", lambda a, b: a < b)
_cmp_check(6, "<=", ">", lambda a, b: a <= b)


@KIT.check("OR-ROS-FLT-007", FILTERING, "filter=familyName~'part' (contains) answers users whose familyName contains it, that user among them")
def _flt_contains(s: Session) -> None:
    u = _user(s)
    part = u["familyName"][1:-1]
    _, objs = filtered(s, "users", "users", f"familyName~'{part}'", limit=1000)
    if sid(u) not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"familyName~'{part}' does not answer {sid(u)!r} (familyName {u['familyName']!r})")
    bad = [o.get("familyName") for o in objs if part.casefold() not in str(o.get("familyName", "")).casefold()]
    if bad:
        raise Fail(f"familyName~'{part}' answered familyNames {bad[:5]}")


@KIT.check("OR-ROS-FLT-008", FILTERING, "filter=familyName='A' AND givenName='B' answers only users matching both, that user among them")
def _flt_and(s: Session) -> None:
    u = _user(s)
    _, objs = filtered(s, "users", "users", f"familyName='{u['familyName']}' AND givenName='{u['givenName']}'", limit=1000)
    if sid(u) not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"the AND filter does not answer {sid(u)!r}")
    bad = [o.get("sourcedId") for o in objs if o.get("familyName") != u["familyName"] or o.get("givenName") != u["givenName"]]
    if bad:
        raise Fail(f"the AND filter answered users matching one clause only: {bad[:5]}")


@KIT.check("OR-ROS-FLT-009", FILTERING, "filter=sourcedId='A' OR sourcedId='B' answers exactly A and B")
def _flt_or(s: Session) -> None:
    _, objs = items(s, "/orgs", "orgs", {"limit": 2})
    if len(objs) < 2:
        raise Skip("fewer than 2 orgs")
    a, b = sid(objs[0]), sid(objs[1])
    n, got = filtered(s, "orgs", "orgs", f"sourcedId='{a}' OR sourcedId='{b}'")
    if sorted(str(o.get("sourcedId")) for o in got) != sorted([a, b]) or n != 2:
        raise Fail(f"the OR filter answered {[o.get('sourcedId') for o in got][:10]} (X-Total-Count {n}), expected {a!r} and {b!r}")


@KIT.check("OR-ROS-FLT-010", FILTERING, "a quoted value holding spaces (filter=name='Some School') matches the org with that name")
def _flt_spaces(s: Session) -> None:
    _, objs = items(s, "/orgs", "orgs", {"limit": 100})
    org = next((o for o in objs if " " in str(o.get("name", "")) and "'" not in str(o.get("name"))), None)
    if org is None:
        raise Skip("no org name holds a space")
    _, got = filtered(s, "orgs", "orgs", f"name='{org['name']}'")
    if sid(org) not in {o.get("sourcedId") for o in got} or any(o.get("name") != org["name"] for o in got):
        raise Fail(f"name='{org['name']}' answered {[o.get('name') for o in got][:5]}")


@KIT.check("OR-ROS-FLT-011", FILTERING, "a filter on a field the type does not have answers 400 with codeMinor invalid_filter_field")
def _flt_unknown_field(s: Session) -> None:
    status_info(get(s, "/users", {"filter": "noSuchField='x'"}), 400, "invalid_filter_field")


@KIT.check("OR-ROS-FLT-012", FILTERING, "a filter that is not field<predicate>'value' (filter=familyName=Smith, unquoted) answers 400 invalid_filter_field")
def _flt_malformed(s: Session) -> None:
    status_info(get(s, "/users", {"filter": "familyName=Smith"}), 400, "invalid_filter_field", "invaliddata")


@KIT.check("OR-ROS-FLT-013", FILTERING, "filter=status='active' answers only active objects")
def _flt_status(s: Session) -> None:
    _, objs = filtered(s, "classes", "classes", "status='active'")
    bad = [o.get("sourcedId") for o in objs if o.get("status") != "active"]
    if bad:
        raise Fail(f"status='active' answered {bad[:5]}")


@KIT.check("OR-ROS-FLT-014", FILTERING, "a filter no object matches answers 200 with an empty list and X-Total-Count 0")
def _flt_none(s: Session) -> None:
    n, objs = filtered(s, "users", "users", f"sourcedId='{UNKNOWN_ID}'")
    if objs or n != 0:
        raise Fail(f"sourcedId='{UNKNOWN_ID}' answered {len(objs)} users, X-Total-Count {n}")


@KIT.check("OR-ROS-FLT-015", FILTERING, "filter=role='student' on /enrollments answers only student enrollments")
def _flt_role(s: Session) -> None:
    _, objs = filtered(s, "enrollments", "enrollments", "role='student'")
    need(objs, "no student enrollment")
    bad = [o.get("sourcedId") for o in objs if o.get("role") != "student"]
    if bad:
        raise Fail(f"role='student' answered enrollments {bad[:5]} of other roles")


@KIT.check("OR-ROS-FLT-016", FILTERING, "a dotted field (filter=class.sourcedId='X' on /enrollments) answers the enrollments of class X",
           required=False)
def _flt_dotted(s: Session) -> None:
    cls = need(ref(first(s, "/enrollments", "enrollments"), "class"), "the first enrollment names no class")
    _, objs = filtered(s, "enrollments", "enrollments", f"class.sourcedId='{cls}'")
    if not objs or any(ref(o, "class") != cls for o in objs):
        raise Fail(f"class.sourcedId='{cls}' answered {[ref(o, 'class') for o in objs][:5]}")


# --- field selection -----------------------------------------------------------------------

FIELDS = f"{RB}: Field Selection"


@KIT.check("OR-ROS-FLD-001", FIELDS, "fields=sourcedId,familyName answers objects holding those fields and no others")
def _fields(s: Session) -> None:
    _, objs = items(s, "/users", "users", {"fields": "sourcedId,familyName", "limit": 10})
    need(objs, "no users")
    extra = {k for o in objs for k in o} - {"sourcedId", "familyName"}
    if extra:
        raise Fail(f"fields=sourcedId,familyName answered other fields too: {sorted(extra)}")
    if any("sourcedId" not in o for o in objs):
        raise Fail("an object lacks the selected sourcedId")


@KIT.check("OR-ROS-FLD-002", FIELDS, "fields naming an unknown field answers 400 invalid_selection_field, or 200 without it (the binding allows ignoring it)")
def _fields_unknown(s: Session) -> None:
    r = get(s, "/users", {"fields": "sourcedId,noSuchField", "limit": 5})
    if r.status_code == 400:
        status_info(r, 400, "invalid_selection_field")
        return
    data = expect(r, 200)
    if any("noSuchField" in o for o in data.get("users", [])):
        raise Fail("the unknown field appears in the answer")


@KIT.check("OR-ROS-FLD-003", FIELDS, "fields works with filter and paging together (fields=sourcedId&filter=status='active'&limit=2)")
def _fields_combined(s: Session) -> None:
    _, objs = items(s, "/classes", "classes", {"fields": "sourcedId", "filter": "status='active'", "limit": 2})
    if len(objs) > 2 or any(set(o) != {"sourcedId"} for o in objs):
        raise Fail(f"answered {objs[:3]}")


# --- errors --------------------------------------------------------------------------------

ERRORS = f"{RB}: Status Codes and imsx_StatusInfo"


@KIT.check("OR-ROS-ERR-001", ERRORS, "GET /users/{unknown} answers 404 with imsx_StatusInfo (failure, error) and codeMinor unknownobject")
def _unknown_user(s: Session) -> None:
    status_info(get(s, f"/users/{UNKNOWN_ID}"), 404, "unknownobject")


@KIT.check("OR-ROS-ERR-002", ERRORS, "GET /classes/{unknown} answers 404 unknownobject")
def _unknown_class(s: Session) -> None:
    status_info(get(s, f"/classes/{UNKNOWN_ID}"), 404, "unknownobject")


@KIT.check("OR-ROS-ERR-003", ERRORS, "a nested path under an unknown object (/schools/{unknown}/classes) answers 404 unknownobject")
def _unknown_parent(s: Session) -> None:
    status_info(get(s, f"/schools/{UNKNOWN_ID}/classes"), 404, "unknownobject")


@KIT.check("OR-ROS-ERR-004", ERRORS, "an object of another subset (a teacher's sourcedId under /students/) answers 404 unknownobject")
def _wrong_subset(s: Session) -> None:
    teacher = first(s, "/teachers", "users")
    if "student" in roles_of(teacher):
        raise Skip("the first teacher is also a student")
    status_info(get(s, f"/students/{sid(teacher)}"), 404, "unknownobject")


@KIT.check("OR-ROS-ERR-005", ERRORS, "an error answer is application/json and its code minor is one of the binding's values")
def _error_shape(s: Session) -> None:
    r = get(s, "/users", {"limit": "abc"})
    if not r.headers.get("content-type", "").startswith("application/json"):
        raise Fail(f"the error's Content-Type is {r.headers.get('content-type')!r}")
    data = status_info(r, 400)
    bad = [m for m in code_minors(data) if m not in CODE_MINORS]
    if bad:
        raise Fail(f"codeMinor {bad} is not a OneRoster 1.2 value")
    if not isinstance(data.get("imsx_description"), str):
        raise Fail("no imsx_description")


# --- auth ----------------------------------------------------------------------------------

SECURITY = f"{RB}: Security (OAuth 2.0 bearer tokens and scopes)"


@KIT.check("OR-ROS-AUTH-001", SECURITY, "a request without a token answers 401")
def _no_token(s: Session) -> None:
    r = get(s, "/orgs", auth=None)
    if r.status_code != 401:
        raise Fail(f"GET /orgs without a token answered {r.status_code}, not 401")


@KIT.check("OR-ROS-AUTH-002", SECURITY, "the 401 is an imsx_StatusInfo with codeMinor unauthorisedrequest")
def _no_token_payload(s: Session) -> None:
    status_info(get(s, "/orgs", auth=None), 401, "unauthorisedrequest")


@KIT.check("OR-ROS-AUTH-003", SECURITY, "a request with a forged token answers 401")
def _bad_token(s: Session) -> None:
    r = get(s, "/orgs", auth=None, headers={"Authorization": "Bearer conformance.not-a-token.x"})
    if r.status_code != 401:
        raise Fail(f"a forged bearer token answered {r.status_code}, not 401")


@KIT.check("OR-ROS-AUTH-004", SECURITY, "a 401 carries a WWW-Authenticate: Bearer challenge (RFC 6750)", required=False)
def _challenge(s: Session) -> None:
    r = get(s, "/orgs", auth=None)
    if not r.headers.get("www-authenticate", "").lower().startswith("bearer"):
        raise Fail(f"WWW-Authenticate is {r.headers.get('www-authenticate')!r}")


def _core_token(s: Session) -> httpx.Response:
    """The token endpoint's answer to a request for roster-core.readonly alone (asked once)."""
    if "core_token" not in s.state:
        s.state["core_token"] = request_token(s, CORE)
    return s.state["core_token"]


@KIT.check("OR-ROS-AUTH-005", SECURITY, "the token endpoint grants the 1.2 scope URI roster-core.readonly, and its token reads /orgs")
def _scope_uri(s: Session) -> None:
    r = _core_token(s)
    if r.status_code != 200:
        raise Fail(f"asking for {CORE[0]} answered {r.status_code}: {r.text[:200]!r}")
    tok = body(r).get("access_token")
    expect(get(s, "/orgs", auth=None, headers={"Authorization": f"Bearer {tok}"}), 200)


def _other_token(s: Session) -> str:
    """A token without any rostering scope (the gradebook read scope), or Skip."""
    if "other_token" not in s.state:
        r = request_token(s, uris("gradebook.readonly"))
        s.state["other_token"] = body(r).get("access_token") if r.status_code == 200 else None
    return need(s.state["other_token"], "the client cannot get a token without rostering scopes (gradebook.readonly) to test 403 with")


@KIT.check("OR-ROS-AUTH-006", SECURITY, "a token without roster-core.readonly (gradebook.readonly only) answers 403 with codeMinor forbidden")
def _wrong_scope(s: Session) -> None:
    status_info(get(s, "/users", auth=None, headers={"Authorization": f"Bearer {_other_token(s)}"}), 403, "forbidden")


@KIT.check("OR-ROS-AUTH-007", SECURITY, "a roster-core.readonly token reading /demographics answers 403 (needs roster-demographics.readonly)")
def _demographics_scope(s: Session) -> None:
    r = _core_token(s)
    if r.status_code != 200:
        raise Skip("no roster-core.readonly token")
    tok = body(r).get("access_token")
    status_info(get(s, "/demographics", auth=None, headers={"Authorization": f"Bearer {tok}"}), 403, "forbidden")


@KIT.check("OR-ROS-AUTH-008", SECURITY, "a token in the query string (access_token=...) is not accepted in place of the header", required=False)
def _token_in_query(s: Session) -> None:
    r = _core_token(s)
    tok = body(r).get("access_token") if r.status_code == 200 else None
    need(tok, "no token")
    r2 = get(s, "/orgs", {"access_token": tok}, auth=None)
    hide(s, tok)
    if r2.status_code == 200:
        raise Fail("a token in the query string was accepted")


# --- deltas --------------------------------------------------------------------------------

DELTA = f"{RB}: Filtering on dateLastModified (delta reads)"


@KIT.check("OR-ROS-DELTA-001", DELTA, "filter=dateLastModified>'(a day from now)' answers no object and X-Total-Count 0")
def _delta_future(s: Session) -> None:
    future = wire_time(datetime.now(UTC) + timedelta(days=1))
    n, objs = filtered(s, "enrollments", "enrollments", f"dateLastModified>'{future}'")
    if objs or n:
        raise Fail(f"{len(objs)} enrollments modified after {future} (X-Total-Count {n})")


@KIT.check("OR-ROS-DELTA-002", DELTA, "filter=dateLastModified>'1970-01-01T00:00:00Z' answers the whole collection")
def _delta_epoch(s: Session) -> None:
    r, _ = items(s, "/classes", "classes", {"limit": 1})
    n, _ = filtered(s, "classes", "classes", "dateLastModified>'1970-01-01T00:00:00Z'")
    if n != total(r):
        raise Fail(f"{n} classes modified since 1970, {total(r)} classes")


@KIT.check("OR-ROS-DELTA-003", DELTA, "a date-only value (filter=dateLastModified>='2000-01-01') is accepted")
def _delta_date(s: Session) -> None:
    expect(get(s, "/orgs", {"filter": "dateLastModified>='2000-01-01'"}), 200)


@KIT.check("OR-ROS-DELTA-004", DELTA, "a dateLastModified filter value that is no date answers 400 (invalid_filter_field or invaliddata)")
def _delta_bad(s: Session) -> None:
    status_info(get(s, "/orgs", {"filter": "dateLastModified>'yesterday'"}), 400, "invalid_filter_field", "invaliddata")


@KIT.check("OR-ROS-DELTA-005", DELTA, "tobedeleted objects stay readable to delta consumers: filter=status='tobedeleted' answers 200")
def _delta_deleted(s: Session) -> None:
    _, objs = filtered(s, "users", "users", "status='tobedeleted'")
    if any(o.get("status") != "tobedeleted" for o in objs):
        raise Fail("status='tobedeleted' answered other statuses")


# --- data model ----------------------------------------------------------------------------

MODEL = "OneRoster 1.2 Rostering information model"


def _model_check(n: int, coll: str, envelope: str, what: str, test: Callable[[dict[str, Any]], str | None]) -> None:
    @KIT.check(f"OR-ROS-DM-{n:03d}", f"{MODEL}: {what.split(':')[0]}", f"/{coll}: {what}")
    def check(s: Session) -> None:
        _, objs = items(s, f"/{coll}", envelope, {"limit": 100})
        need(objs, f"no {coll}")
        for o in objs:
            problem = test(o)
            if problem:
                raise Fail(f"{coll} {o.get('sourcedId')!r}: {problem}")


def _base(o: dict[str, Any]) -> str | None:
    if o.get("status") not in ("active", "tobedeleted"):
        return f"status {o.get('status')!r} is not active or tobedeleted"
    if parse_datetime(o.get("dateLastModified")) is None:
        return f"dateLastModified {o.get('dateLastModified')!r} is not an ISO 8601 datetime with a zone"
    return None


def _missing(o: dict[str, Any], *fields: str) -> str | None:
    gone = [f for f in fields if o.get(f) in (None, "", [])]
    return f"lacks required {', '.join(gone)}" if gone else None


def _guidref(o: dict[str, Any], *fields: str) -> str | None:
    for f in fields:
        v = o.get(f)
        for g in (v if isinstance(v, list) else [v]):
            if g is None:
                continue
            if not isinstance(g, dict) or not all(isinstance(g.get(k), str) and g.get(k) for k in ("href", "sourcedId", "type")):
                return f"{f} is not a GUIDRef with href, sourcedId and type: {g!r}"
    return None


ORG_TYPES = {"department", "school", "district", "local", "state", "national"}
SESSION_TYPES = {"gradingPeriod", "semester", "schoolYear", "term"}
ROLES = {"administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher", "districtAdministrator",
         "principal", "siteAdministrator", "systemAdministrator"}

_model_check(1, "users", "users", "base: status and dateLastModified (DateTime with zone) on every object", _base)
_model_check(2, "users", "users", "User: required enabledUser, givenName, familyName, roles",
             lambda o: _missing(o, "givenName", "familyName", "roles") or (None if isinstance(o.get("enabledUser"), bool) else "enabledUser is not a boolean"))
_model_check(3, "users", "users", "User: every role's role is a 1.2 role token and roleType primary|secondary",
             lambda o: next((f"role {r!r}" for r in o.get("roles") or [] if not isinstance(r, dict) or r.get("role") not in ROLES
                             or r.get("roleType") not in ("primary", "secondary")), None))
_model_check(4, "orgs", "orgs", "Org: required name, and type one of the OrgType tokens",
             lambda o: _missing(o, "name") or (None if o.get("type") in ORG_TYPES else f"type {o.get('type')!r}"))
_model_check(5, "academicSessions", "academicSessions", "AcademicSession: required title, startDate, endDate, type, schoolYear",
             lambda o: _missing(o, "title", "startDate", "endDate", "type", "schoolYear")
             or (None if o.get("type") in SESSION_TYPES else f"type {o.get('type')!r}"))
_model_check(6, "classes", "classes", "Class: required title, course, school, terms (GUIDRefs), classType homeroom|scheduled",
             lambda o: _missing(o, "title", "course", "school", "terms") or _guidref(o, "course", "school", "terms")
             or (None if o.get("classType") in ("homeroom", "scheduled") else f"classType {o.get('classType')!r}"))
_model_check(7, "enrollments", "enrollments", "Enrollment: required user, class, school (GUIDRefs) and a role",
             lambda o: _missing(o, "user", "class", "school", "role") or _guidref(o, "user", "class", "school")
             or (None if o.get("role") in ROLES else f"role {o.get('role')!r}"))
_model_check(8, "courses", "courses", "Course: required title and org (GUIDRef)", lambda o: _missing(o, "title", "org") or _guidref(o, "org"))


__all__ = ["KIT"]
