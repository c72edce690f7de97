"""Kit ``oneroster-rostering-1.2``: a OneRoster 1.2 Rostering Service provider (REST/JSON binding).

The checks read only: every collection and single-object endpoint, every nested path, the
query parameters (pagination with ``limit``/``offset`` edge cases, ``X-Total-Count`` and
``Link``; ``sort``/``orderBy``; the filter grammar ``= != > >= < <= ~`` with ``AND``/``OR``
and quoting; ``fields``), error payloads (imsx_StatusInfo and its code minors), auth (401
without a token, 403 for a token without the rostering scopes, the 1.2 scope URIs) and
``dateLastModified`` deltas. Ids are discovered from the list endpoints: the kit needs no
particular data, only some (a check whose collection is empty is skipped, saying so).

``--option root=/ims/oneroster/rostering/v1p2`` is the service root under the base URL.
Over 600 lines because the kit is one table of checks (about a hundred), each short, and
splitting it by section would scatter the helpers they share.

Requirements name the section of the OneRoster 1.2 Rostering Service REST/JSON binding
("REST binding") or of the Rostering information model ("Info model") they enforce.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..kit import Fail, Kit, Session, Skip
from .oneroster_common import (
    CODE_MINORS,
    UNKNOWN_ID,
    authenticate,
    body,
    code_minors,
    expect,
    hide,
    make_client,
    need,
    parse_datetime,
    request_token,
    status_info,
    uris,
    wire_time,
)

KIT = Kit("oneroster-rostering-1.2", "OneRoster 1.2 Rostering Service provider", "OneRoster 1.2 Rostering REST/JSON binding",
          client=make_client)
KIT.writes = "nothing: this kit only reads"
ROOT = "/ims/oneroster/rostering/v1p2"
RB = "OneRoster 1.2 Rostering REST binding"
CORE = uris("roster-core.readonly")
FULL = uris("roster-core.readonly", "roster-demographics.readonly")


def setup(s: Session) -> None:
    authenticate(s, FULL, uris("roster.readonly"), CORE, None)


KIT.setup = setup


def root(s: Session) -> str:
    return s.target.options.get("root", ROOT).rstrip("/")


def get(s: Session, path: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return s.get(root(s) + path, params=params, **kw)


def items(s: Session, path: str, envelope: str, params: dict[str, Any] | None = None) -> tuple[httpx.Response, list[dict[str, Any]]]:
    r = get(s, path, params)
    data = expect(r, 200)
    if not isinstance(data, dict) or not isinstance(data.get(envelope), list):
        raise Fail(f"GET {path}: expected {{{envelope!r}: [...]}}, got {r.text[:200]!r}")
    objs = data[envelope]
    if not all(isinstance(o, dict) for o in objs):
        raise Fail(f"GET {path}: {envelope} holds something that is not an object")
    return r, objs


def total(r: httpx.Response) -> int:
    raw = r.headers.get("x-total-count")
    if raw is None:
        raise Fail(f"GET {r.request.url.path}: no X-Total-Count header")
    try:
        n = int(raw)
    except ValueError:
        raise Fail(f"X-Total-Count is not an integer: {raw!r}") from None
    if n < 0:
        raise Fail(f"X-Total-Count is negative: {n}")
    return n


def first(s: Session, path: str, envelope: str, key: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object of a collection (cached per path); Skip when the collection is empty."""
    cache = s.state.setdefault("first", {})
    k = (path, key, tuple(sorted((params or {}).items())))
    if k not in cache:
        _, objs = items(s, path, envelope, {"limit": 50, **(params or {})})
        cache[k] = objs
    objs = cache[k]
    need(objs, f"GET {path} lists no {envelope}: nothing to test with")
    return objs[0]


def sid(obj: dict[str, Any]) -> str:
    v = obj.get("sourcedId")
    if not isinstance(v, str) or not v:
        raise Fail(f"an object without a sourcedId: {obj!r:.200}")
    return v


def ref(obj: dict[str, Any], field: str) -> str | None:
    v = obj.get(field)
    return v.get("sourcedId") if isinstance(v, dict) else None


def refs(obj: dict[str, Any], field: str) -> list[str]:
    v = obj.get(field)
    return [str(x.get("sourcedId")) for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def roles_of(user: dict[str, Any]) -> set[str]:
    out = {r.get("role") for r in user.get("roles") or [] if isinstance(r, dict)}
    if isinstance(user.get("role"), str):
        out.add(user["role"])
    return {x for x in out if x}


# --- collections ---------------------------------------------------------------------------

#: the binding's envelope of each single type's collection (/schools answers {"orgs": [...]})
ENVELOPE = {"org": "orgs", "academicSession": "academicSessions", "course": "courses", "class": "classes", "user": "users",
            "enrollment": "enrollments", "demographics": "demographics"}

COLLECTIONS: list[tuple[str, str, str, Callable[[dict[str, Any]], bool] | None, str]] = [
    ("orgs", "org", "getAllOrgs", None, ""),
    ("schools", "org", "getAllSchools", lambda o: o.get("type") == "school", "every org has type 'school'"),
    ("academicSessions", "academicSession", "getAllAcademicSessions", None, ""),
    ("terms", "academicSession", "getAllTerms", lambda o: o.get("type") == "term", "every session has type 'term'"),
    ("gradingPeriods", "academicSession", "getAllGradingPeriods", lambda o: o.get("type") == "gradingPeriod",
     "every session has type 'gradingPeriod'"),
    ("courses", "course", "getAllCourses", None, ""),
    ("classes", "class", "getAllClasses", None, ""),
    ("users", "user", "getAllUsers", None, ""),
    ("students", "user", "getAllStudents", lambda u: "student" in roles_of(u), "every user has the role 'student'"),
    ("teachers", "user", "getAllTeachers", lambda u: "teacher" in roles_of(u), "every user has the role 'teacher'"),
    ("enrollments", "enrollment", "getAllEnrollments", None, ""),
    ("demographics", "demographics", "getAllDemographics", None, ""),
]


def _collection_check(n: int, coll: str, single: str, op: str, keep: Callable[[dict[str, Any]], bool] | None, what: str) -> None:
    desc = f"GET /{coll} answers 200 with {{\"{coll}\": [...]}}, X-Total-Count, and objects with sourcedId, status, dateLastModified"
    if what:
        desc += f"; {what}"

    envelope = ENVELOPE[single]

    @KIT.check(f"OR-ROS-EP-{n:03d}", f"{RB}: {op}", desc.replace(f'"{coll}"', f'"{envelope}"'))
    def check(s: Session) -> None:
        r, objs = items(s, f"/{coll}", envelope, {"limit": 100})
        n_total = total(r)
        if n_total < len(objs):
            raise Fail(f"X-Total-Count {n_total} is less than the {len(objs)} objects of the page")
        if not r.headers.get("content-type", "").startswith("application/json"):
            raise Fail(f"Content-Type is {r.headers.get('content-type')!r}, not application/json")
        for o in objs:
            missing = [f for f in ("sourcedId", "status", "dateLastModified") if f not in o]
            if missing:
                raise Fail(f"{coll} object {o.get('sourcedId')!r} lacks {', '.join(missing)}")
            if keep is not None and not keep(o):
                raise Fail(f"/{coll} lists {o.get('sourcedId')!r}, which is not one: {what} is not true ({o!r:.200})")


def _single_check(n: int, coll: str, single: str) -> None:
    @KIT.check(f"OR-ROS-ONE-{n:03d}", f"{RB}: get{single[0].upper()}{single[1:]}",
               f"GET /{coll}/{{sourcedId}} of a listed object answers 200 with {{\"{single}\": {{...}}}} holding that sourcedId")
    def check(s: Session) -> None:
        want = sid(first(s, f"/{coll}", ENVELOPE[single]))
        r = get(s, f"/{coll}/{want}")
        data = expect(r, 200)
        obj = data.get(single) if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise Fail(f"GET /{coll}/{want}: expected {{{single!r}: {{...}}}}, got {r.text[:200]!r}")
        if obj.get("sourcedId") != want:
            raise Fail(f"GET /{coll}/{want} answered the object {obj.get('sourcedId')!r}")


for _i, (_coll, _single, _op, _keep, _what) in enumerate(COLLECTIONS, 1):
    _collection_check(_i, _coll, _single, _op, _keep, _what)
for _i, (_coll, _single, *_rest) in enumerate(COLLECTIONS, 1):
    _single_check(_i, _coll, _single)


# --- nested paths --------------------------------------------------------------------------


def _school(s: Session) -> str:
    """A school that has classes (else any school)."""
    cls = s.state.get("class_with_school")
    if cls is None:
        _, objs = items(s, "/classes", "classes", {"limit": 50})
        cls = next((c for c in objs if ref(c, "school")), None)
        s.state["class_with_school"] = cls
    if cls is not None:
        return ref(cls, "school")  # type: ignore[return-value]
    return sid(first(s, "/schools", "orgs"))


def _school_and_classes(s: Session) -> dict[str, str]:
    school = _school(s)
    _, objs = items(s, f"/schools/{school}/classes", "classes", {"limit": 10000})
    return {"school": school, "classes": " ".join(sid(o) for o in objs)}


def _class_of_school(s: Session) -> tuple[str, str]:
    school = _school(s)
    cls = s.state.get("class_with_school") or need(None, "no class names its school: nothing to test with")
    return school, sid(cls)


Nested = tuple[str, str, str, Callable[[Session], dict[str, str]], Callable[[dict[str, Any], dict[str, str]], bool], str]

NESTED: list[Nested] = [
    ("/schools/{school}/classes", "classes", "getClassesForSchool", lambda s: {"school": _school(s)},
     lambda o, a: ref(o, "school") == a["school"], "every class's school is that school"),
    ("/schools/{school}/courses", "courses", "getCoursesForSchool", lambda s: {"school": _school(s)},
     lambda o, a: ref(o, "org") == a["school"], "every course's org is that school"),
    ("/schools/{school}/enrollments", "enrollments", "getEnrollmentsForSchool", lambda s: _school_and_classes(s),
     lambda o, a: ref(o, "school") == a["school"] or ref(o, "class") in a["classes"].split(" "),
     "every enrollment is at that school or in one of its classes"),
    ("/schools/{school}/students", "users", "getStudentsForSchool", lambda s: {"school": _school(s)},
     lambda o, a: "student" in roles_of(o), "every user is a student"),
    ("/schools/{school}/teachers", "users", "getTeachersForSchool", lambda s: {"school": _school(s)},
     lambda o, a: "teacher" in roles_of(o), "every user is a teacher"),
    ("/schools/{school}/terms", "academicSessions", "getTermsForSchool", lambda s: {"school": _school(s)},
     lambda o, a: o.get("type") == "term", "every session is a term"),
    ("/schools/{school}/classes/{cls}/students", "users", "getStudentsForClassInSchool",
     lambda s: dict(zip(("school", "cls"), _class_of_school(s), strict=True)), lambda o, a: "student" in roles_of(o), "every user is a student"),
    ("/schools/{school}/classes/{cls}/teachers", "users", "getTeachersForClassInSchool",
     lambda s: dict(zip(("school", "cls"), _class_of_school(s), strict=True)), lambda o, a: "teacher" in roles_of(o), "every user is a teacher"),
    ("/classes/{cls}/students", "users", "getStudentsForClass", lambda s: {"cls": _class_of_school(s)[1]},
     lambda o, a: "student" in roles_of(o), "every user is a student"),
    ("/classes/{cls}/teachers", "users", "getTeachersForClass", lambda s: {"cls": _class_of_school(s)[1]},
     lambda o, a: "teacher" in roles_of(o), "every user is a teacher"),
    ("/courses/{course}/classes", "classes", "getClassesForCourse",
     lambda s: {"course": need(ref(first(s, "/classes", "classes"), "course"), "the first class names no course")},
     lambda o, a: ref(o, "course") == a["course"], "every class's course is that course"),
    ("/users/{user}/classes", "classes", "getClassesForUser",
     lambda s: {"user": need(ref(first(s, "/enrollments", "enrollments"), "user"), "the first enrollment names no user")},
     lambda o, a: True, ""),
    ("/students/{user}/classes", "classes", "getClassesForStudent",
     lambda s: {"user": need(ref(first(s, "/enrollments", "enrollments", params={"filter": "role='student'"}), "user"),
                             "no student enrollment")},
     lambda o, a: True, ""),
    ("/teachers/{user}/classes", "classes", "getClassesForTeacher",
     lambda s: {"user": need(ref(first(s, "/enrollments", "enrollments", params={"filter": "role='teacher'"}), "user"),
                             "no teacher enrollment")},
     lambda o, a: True, ""),
    ("/terms/{term}/classes", "classes", "getClassesForTerm", lambda s: {"term": sid(first(s, "/terms", "academicSessions"))},
     lambda o, a: a["term"] in refs(o, "terms"), "every class's terms include that term"),
    ("/terms/{term}/gradingPeriods", "academicSessions", "getGradingPeriodsForTerm",
     lambda s: {"term": sid(first(s, "/terms", "academicSessions"))},
     lambda o, a: o.get("type") == "gradingPeriod" and ref(o, "parent") == a["term"], "every session is a grading period of that term"),
    ("/schools/{school}/classes/{cls}/enrollments", "enrollments", "getEnrollmentsForClassInSchool",
     lambda s: dict(zip(("school", "cls"), _class_of_school(s), strict=True)), lambda o, a: ref(o, "class") == a["cls"],
     "every enrollment is in that class"),
]


def _nested_check(n: int, path: str, envelope: str, op: str, args: Callable[[Session], dict[str, str]],
                  keep: Callable[[dict[str, Any], dict[str, str]], bool], what: str) -> None:
    desc = f"GET {path} of a listed object answers 200 with {{\"{envelope}\": [...]}} and X-Total-Count" + (f"; {what}" if what else "")

    @KIT.check(f"OR-ROS-NEST-{n:03d}", f"{RB}: {op}", desc)
    def check(s: Session) -> None:
        a = args(s)
        real = path.format(**a)
        r, objs = items(s, real, envelope, {"limit": 100})
        total(r)
        for o in objs:
            if not keep(o, a):
                raise Fail(f"GET {real} lists {o.get('sourcedId')!r}: {what} is not true ({o!r:.200})")
        if path.startswith(("/users/", "/students/", "/teachers/")) and not objs:
            raise Fail(f"GET {real} lists no class, though an enrollment of {a['user']!r} exists")


for _i, _nest in enumerate(NESTED, 1):
    _nested_check(_i, *_nest)


@KIT.check("OR-ROS-NEST-018", f"{RB}: getClassesForUser", "GET /users/{id}/classes lists the class of the user's enrollment")
def _classes_of_user_include_enrollment(s: Session) -> None:
    enr = first(s, "/enrollments", "enrollments")
    user, cls = ref(enr, "user"), ref(enr, "class")
    if not user or not cls:
        raise Skip("the first enrollment names no user or class")
    _, objs = items(s, f"/users/{user}/classes", "classes", {"limit": 1000})
    if cls not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/users/{user}/classes does not list {cls!r}, the class of enrollment {enr.get('sourcedId')!r}")


@KIT.check("OR-ROS-NEST-019", f"{RB}: getStudentsForClass", "GET /classes/{id}/students lists the student of a student enrollment in that class")
def _students_of_class_include_enrollment(s: Session) -> None:
    enr = first(s, "/enrollments", "enrollments", params={"filter": "role='student'"})
    user, cls = ref(enr, "user"), ref(enr, "class")
    if not user or not cls:
        raise Skip("the student enrollment names no user or class")
    _, objs = items(s, f"/classes/{cls}/students", "users", {"limit": 1000})
    if user not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/classes/{cls}/students does not list {user!r} (enrollment {enr.get('sourcedId')!r})")


# --- pagination ----------------------------------------------------------------------------

PAGING = f"{RB}: Pagination"


def links(r: httpx.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in r.headers.get("link", "").split(","):
        if ";" not in part:
            continue
        url, _, params = part.partition(";")
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip() == "rel":
                out[v.strip().strip('"')] = url.strip().strip("<>")
    return out


def _users_total(s: Session) -> tuple[int, list[dict[str, Any]]]:
    if "users_all" not in s.state:
        r, objs = items(s, "/users", "users", {"limit": 5})
        s.state["users_all"] = (total(r), objs)
    return s.state["users_all"]


@KIT.check("OR-ROS-PAGE-001", PAGING, "limit=1 answers exactly one object, and X-Total-Count counts the whole collection")
def _limit_one(s: Session) -> None:
    n, _ = _users_total(s)
    if n < 2:
        raise Skip("fewer than 2 users")
    r, objs = items(s, "/users", "users", {"limit": 1})
    if len(objs) != 1:
        raise Fail(f"limit=1 answered {len(objs)} users")
    if total(r) != n:
        raise Fail(f"X-Total-Count is {total(r)} with limit=1 but {n} with limit=5")


@KIT.check("OR-ROS-PAGE-002", PAGING, "offset moves the page: limit=2&offset=1 answers objects 2 and 3 of limit=3&offset=0")
def _offset(s: Session) -> None:
    _, three = items(s, "/users", "users", {"limit": 3, "offset": 0})
    if len(three) < 3:
        raise Skip("fewer than 3 users")
    _, two = items(s, "/users", "users", {"limit": 2, "offset": 1})
    if [sid(o) for o in two] != [sid(o) for o in three[1:]]:
        raise Fail(f"limit=2&offset=1 answered {[o.get('sourcedId') for o in two]}, expected {[o.get('sourcedId') for o in three[1:]]}")


@KIT.check("OR-ROS-PAGE-003", PAGING, "walking /orgs with limit=2 visits X-Total-Count objects, each once")
def _walk(s: Session) -> None:
    r, objs = items(s, "/orgs", "orgs", {"limit": 2, "offset": 0})
    n = total(r)
    seen = [sid(o) for o in objs]
    offset = 2
    while offset < n and offset < 2000:
        _, page = items(s, "/orgs", "orgs", {"limit": 2, "offset": offset})
        if not page:
            break
        seen += [sid(o) for o in page]
        offset += 2
    if len(seen) != n or len(set(seen)) != n:
        raise Fail(f"X-Total-Count is {n}; the pages held {len(seen)} objects, {len(set(seen))} distinct")


@KIT.check("OR-ROS-PAGE-004", PAGING, "a page followed by others has a Link header with rel=\"next\", and following it answers the next page")
def _link_next(s: Session) -> None:
    n, _ = _users_total(s)
    if n < 3:
        raise Skip("fewer than 3 users")
    r, page1 = items(s, "/users", "users", {"limit": 2})
    nxt = links(r).get("next")
    if not nxt:
        raise Fail(f"no rel=\"next\" in the Link header {r.headers.get('link')!r}")
    r2 = s.get(nxt)
    data = expect(r2, 200)
    page2 = data.get("users") if isinstance(data, dict) else None
    if not isinstance(page2, list) or not page2:
        raise Fail(f"the next link {nxt} answered no users")
    if {sid(o) for o in page2} & {sid(o) for o in page1}:
        raise Fail("the next page repeats objects of the first")
    q = parse_qs(urlsplit(nxt).query)
    if q.get("offset") != ["2"]:
        raise Fail(f"the next link's offset is {q.get('offset')}, expected 2")


@KIT.check("OR-ROS-PAGE-005", PAGING, "the Link header names rel=\"first\" and rel=\"last\"; the last page is not empty and has no rel=\"next\"")
def _link_last(s: Session) -> None:
    n, _ = _users_total(s)
    need(n, "no users")
    r, _ = items(s, "/users", "users", {"limit": 2})
    rels = links(r)
    missing = [x for x in ("first", "last") if x not in rels]
    if missing:
        raise Fail(f"no rel={missing} in the Link header {r.headers.get('link')!r}")
    r2 = s.get(rels["last"])
    data = expect(r2, 200)
    if not (isinstance(data, dict) and data.get("users")):
        raise Fail(f"the last page {rels['last']} is empty")
    if "next" in links(r2):
        raise Fail("the last page has a rel=\"next\" link")


def _invalid(s: Session, params: dict[str, Any], what: str) -> None:
    r = get(s, "/users", params)
    if r.status_code != 400:
        raise Fail(f"{what}: expected 400 invaliddata, got {r.status_code}: {r.text[:200]!r}")
    status_info(r, 400, "invaliddata")


@KIT.check("OR-ROS-PAGE-006", PAGING, "limit=-1 answers 400 with imsx_StatusInfo codeMinor invaliddata")
def _limit_negative(s: Session) -> None:
    _invalid(s, {"limit": "-1"}, "limit=-1")


@KIT.check("OR-ROS-PAGE-007", PAGING, "limit=abc (not a number) answers 400 with codeMinor invaliddata")
def _limit_text(s: Session) -> None:
    _invalid(s, {"limit": "abc"}, "limit=abc")


@KIT.check("OR-ROS-PAGE-008", PAGING, "offset=-5 answers 400 with codeMinor invaliddata")
def _offset_negative(s: Session) -> None:
    _invalid(s, {"offset": "-5"}, "offset=-5")


@KIT.check("OR-ROS-PAGE-009", PAGING, "offset=x (not a number) answers 400 with codeMinor invaliddata")
def _offset_text(s: Session) -> None:
    _invalid(s, {"offset": "x"}, "offset=x")


@KIT.check("OR-ROS-PAGE-010", PAGING, "limit=0 is refused with 400 invaliddata, or answered 200 with a page no larger than the default (never 5xx)")
def _limit_zero(s: Session) -> None:
    r = get(s, "/users", {"limit": "0"})
    if r.status_code == 400:
        status_info(r, 400, "invaliddata")
        return
    data = expect(r, 200)
    if not isinstance(data, dict) or not isinstance(data.get("users"), list) or len(data["users"]) > 100:
        raise Fail(f"limit=0 answered 200 with {len(data.get('users') or []) if isinstance(data, dict) else '?'} users")


@KIT.check("OR-ROS-PAGE-011", PAGING, "a huge limit (1000000) answers 200; a page capped below X-Total-Count carries rel=\"next\"")
def _limit_huge(s: Session) -> None:
    r, objs = items(s, "/enrollments", "enrollments", {"limit": "1000000"})
    n = total(r)
    if len(objs) > n:
        raise Fail(f"{len(objs)} objects, X-Total-Count {n}")
    if len(objs) < n and "next" not in links(r):
        raise Fail(f"the page holds {len(objs)} of {n} enrollments and the Link header has no rel=\"next\"")


@KIT.check("OR-ROS-PAGE-012", PAGING, "a repeated limit (limit=1&limit=2) answers 200 with at most 2 objects, or 400 invaliddata (never 5xx)")
def _limit_repeated(s: Session) -> None:
    r = s.get(root(s) + "/users?limit=1&limit=2")
    if r.status_code == 400:
        status_info(r, 400, "invaliddata")
        return
    data = expect(r, 200)
    if not isinstance(data, dict) or not isinstance(data.get("users"), list) or len(data["users"]) > 2:
        raise Fail("limit=1&limit=2 answered more than 2 users")


@KIT.check("OR-ROS-PAGE-013", PAGING, "an offset past the end answers 200 with an empty list and the same X-Total-Count")
def _offset_past_end(s: Session) -> None:
    n, _ = _users_total(s)
    r, objs = items(s, "/users", "users", {"offset": n + 10})
    if objs:
        raise Fail(f"offset={n + 10} answered {len(objs)} users")
    if total(r) != n:
        raise Fail(f"X-Total-Count {total(r)} past the end, {n} on the first page")


@KIT.check("OR-ROS-PAGE-014", PAGING, "without limit, a page holds at most 100 objects (the binding's default limit)", required=False)
def _default_limit(s: Session) -> None:
    r, objs = items(s, "/enrollments", "enrollments")
    if len(objs) > 100:
        raise Fail(f"without limit the page holds {len(objs)} enrollments")


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
