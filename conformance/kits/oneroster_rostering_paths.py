"""Kit ``oneroster-rostering-1.2`` (``oneroster_rostering`` says what it covers), first part: ``KIT``, its
setup and shared helpers, and the checks of every collection, every nested path and pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from ..kit import Fail, Kit, Session, Skip
from .oneroster_common import (
    authenticate,
    expect,
    make_client,
    need,
    status_info,
    uris,
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
