"""Kit ``oneroster-gradebook-1.2``: a OneRoster 1.2 Gradebook Service provider (REST/JSON binding).

Reads every gradebook collection, then writes its own test objects (categories, score
scales, line items, results, assessment line items and results) whose sourcedIds start with
``conformance-<run>-``, reads them back through the single-object and nested paths, checks
that a repeated ``PUT`` is idempotent and that a changed one replaces, deletes them and
checks the deletion, and checks the scopes (``gradebook.readonly`` /
``gradebook.createput`` / ``gradebook.delete``). Teardown deletes whatever it created.

The checks run in order and share what they created (``state``): a line item check that
fails makes the result checks that need it skip, saying why. A class and a student are
discovered through the rostering service (``--option class=ID --option student=ID`` to
choose them); ``--option root=`` and ``--option rostering_root=`` are the service roots.

Over 600 lines because the checks depend on each other in order (what one writes the next
reads back): one module keeps that order readable top to bottom.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from ..kit import Fail, Kit, Session
from .oneroster_common import (
    UNKNOWN_ID,
    authenticate,
    body,
    expect,
    make_client,
    need,
    request_token,
    status_info,
    uris,
)

KIT = Kit("oneroster-gradebook-1.2", "OneRoster 1.2 Gradebook Service provider", "OneRoster 1.2 Gradebook REST/JSON binding",
          client=make_client)
KIT.writes = ("categories, score scales, line items, results, assessment line items and assessment results with sourcedIds "
              "'conformance-<run>-...' in one class, deleted again at the end")
ROOT = "/ims/oneroster/gradebook/v1p2"
ROSTERING = "/ims/oneroster/rostering/v1p2"
GB = "OneRoster 1.2 Gradebook REST binding"
SCOPES = uris("gradebook.readonly", "gradebook.createput", "gradebook.delete", "roster-core.readonly")


def root(s: Session) -> str:
    return s.target.options.get("root", ROOT).rstrip("/")


def setup(s: Session) -> None:
    authenticate(s, SCOPES, uris("gradebook.readonly", "gradebook.createput", "gradebook.delete", "roster.readonly"),
                 uris("gradebook.readonly", "gradebook.createput", "gradebook.delete"), None)
    s.state["run"] = f"conformance-{uuid.uuid4().hex[:8]}"
    s.state["created"] = []


def teardown(s: Session) -> None:
    for coll, sid in reversed(s.state.get("created", [])):
        s.delete(f"{root(s)}/{coll}/{sid}")


KIT.setup = setup
KIT.teardown = teardown


def url(s: Session, path: str) -> str:
    return root(s) + path


def new_id(s: Session, what: str) -> str:
    return f"{s.state['run']}-{what}"


def listing(s: Session, path: str, envelope: str, params: dict[str, Any] | None = None) -> tuple[httpx.Response, list[dict[str, Any]]]:
    r = s.get(url(s, path), params={"limit": 1000, **(params or {})})
    data = expect(r, 200)
    if not isinstance(data, dict) or not isinstance(data.get(envelope), list):
        raise Fail(f"GET {path}: expected {{{envelope!r}: [...]}}, got {r.text[:200]!r}")
    return r, data[envelope]


def x_total(r: httpx.Response) -> int:
    raw = r.headers.get("x-total-count")
    if raw is None or not raw.strip().isdigit():
        raise Fail(f"GET {r.request.url.path}: X-Total-Count is {raw!r}")
    return int(raw)


def roster_first(s: Session, path: str, envelope: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    base = s.target.options.get("rostering_root", ROSTERING).rstrip("/")
    r = s.get(base + path, params={"limit": 20, **(params or {})})
    if r.status_code != 200:
        return None
    objs = body(r).get(envelope) or []
    return objs[0] if objs else None


def class_and_student(s: Session) -> tuple[str, str]:
    """A class and a student enrolled in it (``--option class`` / ``student``, else discovered)."""
    if "class" not in s.state:
        o = s.target.options
        cls, student = o.get("class"), o.get("student")
        if not (cls and student):
            enr = roster_first(s, "/enrollments", "enrollments", {"filter": "role='student'"})
            if enr:
                cls = cls or (enr.get("class") or {}).get("sourcedId")
                student = student or (enr.get("user") or {}).get("sourcedId")
        if not (cls and student):  # no rostering service: the existing results name both
            _, res = listing(s, "/results", "results", {"limit": 1})
            if res:
                cls = cls or (res[0].get("class") or {}).get("sourcedId")
                student = student or (res[0].get("student") or {}).get("sourcedId")
        s.state["class"], s.state["student"] = cls, student
    return (need(s.state["class"], "no class found (give --option class=ID)"),
            need(s.state["student"], "no student found (give --option student=ID)"))


def put(s: Session, coll: str, single: str, sid: str, obj: dict[str, Any], **kw: Any) -> httpx.Response:
    r = s.put(url(s, f"/{coll}/{sid}"), json={single: {"sourcedId": sid, **obj}}, **kw)
    if r.status_code in (200, 201) and (coll, sid) not in s.state.setdefault("created", []):
        s.state["created"].append((coll, sid))
    return r


def get_one(s: Session, coll: str, single: str, sid: str) -> dict[str, Any]:
    data = expect(s.get(url(s, f"/{coll}/{sid}")), 200)
    obj = data.get(single) if isinstance(data, dict) else None
    if not isinstance(obj, dict) or obj.get("sourcedId") != sid:
        raise Fail(f"GET /{coll}/{sid}: expected {{{single!r}: {{sourcedId: {sid!r}, ...}}}}, got {str(data)[:200]!r}")
    return obj


def made(s: Session, key: str, what: str) -> str:
    """The sourcedId of a test object an earlier check created, or Skip."""
    return need(s.state.get(key), f"the {what} this check needs was not created (an earlier check failed)")


def ref_id(obj: dict[str, Any], field: str) -> str | None:
    v = obj.get(field)
    return v.get("sourcedId") if isinstance(v, dict) else None


# --- reads ---------------------------------------------------------------------------------

READS = [("categories", "getAllCategories"), ("lineItems", "getAllLineItems"), ("results", "getAllResults"),
         ("scoreScales", "getAllScoreScales"), ("assessmentLineItems", "getAllAssessmentLineItems"),
         ("assessmentResults", "getAllAssessmentResults")]


def _read_check(n: int, coll: str, op: str) -> None:
    @KIT.check(f"OR-GB-READ-{n:03d}", f"{GB}: {op}", f"GET /{coll} answers 200 with {{\"{coll}\": [...]}} and X-Total-Count")
    def check(s: Session) -> None:
        r, objs = listing(s, f"/{coll}", coll, {"limit": 50})
        if x_total(r) < len(objs):
            raise Fail(f"X-Total-Count {x_total(r)} below the {len(objs)} objects of the page")
        for o in objs:
            if not isinstance(o, dict) or not o.get("sourcedId") or o.get("status") not in ("active", "tobedeleted"):
                raise Fail(f"/{coll} holds an object without sourcedId or a valid status: {str(o)[:200]}")


for _i, (_coll, _op) in enumerate(READS, 1):
    _read_check(_i, _coll, _op)


# --- categories ----------------------------------------------------------------------------

WRITES = f"{GB}: PUT (create or replace by sourcedId)"


@KIT.check("OR-GB-CAT-001", f"{GB}: putCategory", "PUT /categories/{new id} creates the category (200 or 201)")
def _cat_create(s: Session) -> None:
    sid = new_id(s, "cat")
    expect(put(s, "categories", "category", sid, {"status": "active", "title": "Conformance category", "weight": 0.5}), 200, 201)
    s.state["category"] = sid


@KIT.check("OR-GB-CAT-002", f"{GB}: getCategory", "GET /categories/{id} answers the category as written (title, weight)")
def _cat_read(s: Session) -> None:
    sid = made(s, "category", "category")
    obj = get_one(s, "categories", "category", sid)
    if obj.get("title") != "Conformance category":
        raise Fail(f"title is {obj.get('title')!r}")
    if obj.get("weight") is not None and float(obj["weight"]) != 0.5:
        raise Fail(f"weight is {obj.get('weight')!r}")


@KIT.check("OR-GB-CAT-003", WRITES, "PUT of the same category again is idempotent: 200/201, one object, unchanged")
def _cat_idem(s: Session) -> None:
    sid = made(s, "category", "category")
    expect(put(s, "categories", "category", sid, {"status": "active", "title": "Conformance category", "weight": 0.5}), 200, 201)
    r, objs = listing(s, "/categories", "categories", {"filter": f"sourcedId='{sid}'"})
    if len(objs) != 1:
        raise Fail(f"{len(objs)} categories with sourcedId {sid!r} after a repeated PUT")
    if objs[0].get("title") != "Conformance category":
        raise Fail("the repeated PUT changed the category")


@KIT.check("OR-GB-CAT-004", WRITES, "PUT of a changed category replaces it: GET answers the new title")
def _cat_replace(s: Session) -> None:
    sid = made(s, "category", "category")
    expect(put(s, "categories", "category", sid, {"status": "active", "title": "Conformance category (renamed)", "weight": 0.5}), 200, 201)
    if get_one(s, "categories", "category", sid).get("title") != "Conformance category (renamed)":
        raise Fail("GET still answers the old title")


# --- score scales --------------------------------------------------------------------------

SSV = [{"itemValueLHS": "Beginning", "itemValueRHS": "1"}, {"itemValueLHS": "Proficient", "itemValueRHS": "3"}]


@KIT.check("OR-GB-SS-001", f"{GB}: putScoreScale", "PUT /scoreScales/{new id} creates a score scale of the class; GET answers its values")
def _ss_create(s: Session) -> None:
    cls, _ = class_and_student(s)
    sid = new_id(s, "ss")
    expect(put(s, "scoreScales", "scoreScale", sid, {"status": "active", "title": "Conformance scale", "type": "proficiency",
                                                      "class": {"sourcedId": cls, "type": "class"}, "scoreScaleValue": SSV}), 200, 201)
    s.state["scoreScale"] = sid
    obj = get_one(s, "scoreScales", "scoreScale", sid)
    got = [(v.get("itemValueLHS"), str(v.get("itemValueRHS"))) for v in obj.get("scoreScaleValue") or [] if isinstance(v, dict)]
    if got != [("Beginning", "1"), ("Proficient", "3")]:
        raise Fail(f"scoreScaleValue answered {got}")


@KIT.check("OR-GB-SS-002", f"{GB}: getScoreScalesForClass", "GET /classes/{class}/scoreScales lists the new score scale")
def _ss_class(s: Session) -> None:
    sid = made(s, "scoreScale", "score scale")
    _, objs = listing(s, f"/classes/{s.state['class']}/scoreScales", "scoreScales")
    if sid not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/classes/{s.state['class']}/scoreScales does not list {sid!r}")


# --- line items ----------------------------------------------------------------------------


def line_item(s: Session, title: str = "Conformance quiz") -> dict[str, Any]:
    cls, _ = class_and_student(s)
    return {"status": "active", "title": title, "description": "written by the conformance kit",
            "assignDate": "2026-01-05T00:00:00.000Z", "dueDate": "2026-01-09T00:00:00.000Z",
            "class": {"sourcedId": cls, "type": "class"}, "category": {"sourcedId": made(s, "category", "category"), "type": "category"},
            "resultValueMin": 0, "resultValueMax": 10}


@KIT.check("OR-GB-LI-001", f"{GB}: putLineItem", "PUT /lineItems/{new id} creates the line item (200 or 201)")
def _li_create(s: Session) -> None:
    sid = new_id(s, "li")
    expect(put(s, "lineItems", "lineItem", sid, line_item(s)), 200, 201)
    s.state["lineItem"] = sid


@KIT.check("OR-GB-LI-002", f"{GB}: getLineItem", "GET /lineItems/{id} answers the line item as written (title, class, category, resultValueMax)")
def _li_read(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    obj = get_one(s, "lineItems", "lineItem", sid)
    problems = []
    if obj.get("title") != "Conformance quiz":
        problems.append(f"title {obj.get('title')!r}")
    if ref_id(obj, "class") != s.state["class"]:
        problems.append(f"class {obj.get('class')!r}")
    if ref_id(obj, "category") != s.state["category"]:
        problems.append(f"category {obj.get('category')!r}")
    if obj.get("resultValueMax") is None or float(obj["resultValueMax"]) != 10:
        problems.append(f"resultValueMax {obj.get('resultValueMax')!r}")
    if problems:
        raise Fail("the line item reads back with " + ", ".join(problems))


@KIT.check("OR-GB-LI-003", WRITES, "PUT of the same line item again is idempotent: 200/201 and still one line item with that sourcedId")
def _li_idem(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    r0, _ = listing(s, "/lineItems", "lineItems", {"limit": 1})
    expect(put(s, "lineItems", "lineItem", sid, line_item(s)), 200, 201)
    r1, objs = listing(s, "/lineItems", "lineItems", {"filter": f"sourcedId='{sid}'"})
    if len(objs) != 1:
        raise Fail(f"{len(objs)} line items with sourcedId {sid!r} after a repeated PUT")
    r2, _ = listing(s, "/lineItems", "lineItems", {"limit": 1})
    if x_total(r2) != x_total(r0):
        raise Fail(f"the repeated PUT changed the number of line items from {x_total(r0)} to {x_total(r2)}")


@KIT.check("OR-GB-LI-004", WRITES, "PUT of a changed line item replaces it: GET answers the new title")
def _li_replace(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    expect(put(s, "lineItems", "lineItem", sid, line_item(s, "Conformance quiz (v2)")), 200, 201)
    if get_one(s, "lineItems", "lineItem", sid).get("title") != "Conformance quiz (v2)":
        raise Fail("GET still answers the old title")
    expect(put(s, "lineItems", "lineItem", sid, line_item(s)), 200, 201)


@KIT.check("OR-GB-LI-005", f"{GB}: getLineItemsForClass", "GET /classes/{class}/lineItems lists the new line item, and only that class's")
def _li_class(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    _, objs = listing(s, f"/classes/{s.state['class']}/lineItems", "lineItems")
    if sid not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/classes/{s.state['class']}/lineItems does not list {sid!r}")
    other = [o.get("sourcedId") for o in objs if ref_id(o, "class") not in (None, s.state["class"])]
    if other:
        raise Fail(f"it lists line items of other classes: {other[:5]}")


@KIT.check("OR-GB-LI-006", f"{GB}: putLineItem", "PUT of a line item without its required title answers 400 (imsx_StatusInfo)")
def _li_invalid(s: Session) -> None:
    obj = line_item(s)
    del obj["title"]
    status_info(put(s, "lineItems", "lineItem", new_id(s, "li-bad"), obj), 400, "invaliddata")


@KIT.check("OR-GB-LI-007", f"{GB}: putLineItem", "PUT of a line item whose class does not exist answers 4xx (imsx_StatusInfo), never 2xx")
def _li_unknown_class(s: Session) -> None:
    obj = {**line_item(s), "class": {"sourcedId": UNKNOWN_ID, "type": "class"}}
    status_info(put(s, "lineItems", "lineItem", new_id(s, "li-orphan"), obj), (400, 404, 422))


@KIT.check("OR-GB-LI-008", f"{GB}: filtering", "filter=sourcedId='<the new line item>' on /lineItems answers exactly it")
def _li_filter(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    r, objs = listing(s, "/lineItems", "lineItems", {"filter": f"sourcedId='{sid}'"})
    if [o.get("sourcedId") for o in objs] != [sid] or x_total(r) != 1:
        raise Fail(f"answered {[o.get('sourcedId') for o in objs][:5]} (X-Total-Count {x_total(r)})")


@KIT.check("OR-GB-LI-009", f"{GB}: getCategoriesForClass", "GET /classes/{class}/categories lists the category of the class's new line item")
def _cat_class(s: Session) -> None:
    made(s, "lineItem", "line item")
    _, objs = listing(s, f"/classes/{s.state['class']}/categories", "categories")
    if s.state["category"] not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/classes/{s.state['class']}/categories does not list {s.state['category']!r}")


def school_of_class(s: Session) -> str:
    """The school of the kit's class (through the rostering service), or Skip."""
    if "school" not in s.state:
        cls, _ = class_and_student(s)
        base = s.target.options.get("rostering_root", ROSTERING).rstrip("/")
        r = s.get(f"{base}/classes/{cls}")
        obj = (body(r) or {}).get("class") if r.status_code == 200 else None
        s.state["school"] = ref_id(obj, "school") if isinstance(obj, dict) else None
    return need(s.state["school"], "the class's school is unknown (the rostering service does not answer /classes/{id})")


@KIT.check("OR-GB-LI-010", f"{GB}: getLineItemsForSchool", "GET /schools/{school}/lineItems lists the new line item of a class of that school")
def _li_school(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    school = school_of_class(s)
    _, objs = listing(s, f"/schools/{school}/lineItems", "lineItems")
    if sid not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/schools/{school}/lineItems does not list {sid!r}")


@KIT.check("OR-GB-SS-003", f"{GB}: getScoreScalesForSchool", "GET /schools/{school}/scoreScales lists the new score scale of a class of that school")
def _ss_school(s: Session) -> None:
    sid = made(s, "scoreScale", "score scale")
    school = school_of_class(s)
    _, objs = listing(s, f"/schools/{school}/scoreScales", "scoreScales")
    if sid not in {o.get("sourcedId") for o in objs}:
        raise Fail(f"/schools/{school}/scoreScales does not list {sid!r}")


# --- results -------------------------------------------------------------------------------


def result(s: Session, score: float = 7) -> dict[str, Any]:
    _, student = class_and_student(s)
    return {"status": "active", "lineItem": {"sourcedId": made(s, "lineItem", "line item"), "type": "lineItem"},
            "student": {"sourcedId": student, "type": "user"}, "class": {"sourcedId": s.state["class"], "type": "class"},
            "scoreStatus": "fully graded", "score": score, "scoreDate": "2026-01-10T00:00:00.000Z", "comment": "conformance"}


@KIT.check("OR-GB-RES-001", f"{GB}: putResult", "PUT /results/{new id} creates a result for a student of the class (200 or 201)")
def _res_create(s: Session) -> None:
    sid = new_id(s, "res")
    expect(put(s, "results", "result", sid, result(s)), 200, 201)
    s.state["result"] = sid


@KIT.check("OR-GB-RES-002", f"{GB}: getResult", "GET /results/{id} answers the result as written (lineItem, student, score, scoreStatus)")
def _res_read(s: Session) -> None:
    sid = made(s, "result", "result")
    obj = get_one(s, "results", "result", sid)
    if ref_id(obj, "lineItem") != s.state["lineItem"] or ref_id(obj, "student") != s.state["student"]:
        raise Fail(f"lineItem/student read back as {obj.get('lineItem')!r} / {obj.get('student')!r}")
    if obj.get("score") is None or float(obj["score"]) != 7:
        raise Fail(f"score read back as {obj.get('score')!r}")
    if str(obj.get("scoreStatus")).replace(" ", "").lower() != "fullygraded":
        raise Fail(f"scoreStatus read back as {obj.get('scoreStatus')!r}")


@KIT.check("OR-GB-RES-003", WRITES, "PUT of the same result again is idempotent: one result for the line item, score unchanged")
def _res_idem(s: Session) -> None:
    sid = made(s, "result", "result")
    expect(put(s, "results", "result", sid, result(s)), 200, 201)
    _, objs = listing(s, f"/lineItems/{s.state['lineItem']}/results", "results")
    mine = [o for o in objs if o.get("sourcedId") == sid]
    if len(mine) != 1 or len(objs) != 1:
        raise Fail(f"the line item has {len(objs)} results ({len(mine)} with sourcedId {sid!r}) after a repeated PUT")
    if float(mine[0].get("score", -1)) != 7:
        raise Fail(f"the score is {mine[0].get('score')!r} after a repeated PUT")


@KIT.check("OR-GB-RES-004", WRITES, "PUT of a changed result replaces it: GET answers the new score")
def _res_replace(s: Session) -> None:
    sid = made(s, "result", "result")
    expect(put(s, "results", "result", sid, result(s, 9)), 200, 201)
    got = get_one(s, "results", "result", sid).get("score")
    if got is None or float(got) != 9:
        raise Fail(f"GET answers score {got!r} after a PUT with 9")


def _nested_result(n: int, op: str, path: str) -> None:
    @KIT.check(f"OR-GB-RES-{n:03d}", f"{GB}: {op}", f"GET {path} lists the new result")
    def check(s: Session) -> None:
        sid = made(s, "result", "result")
        real = path.format(cls=s.state["class"], li=s.state["lineItem"], student=s.state["student"])
        _, objs = listing(s, real, "results")
        if sid not in {o.get("sourcedId") for o in objs}:
            raise Fail(f"GET {real} does not list {sid!r}")


_nested_result(5, "getResultsForLineItem", "/lineItems/{li}/results")
_nested_result(6, "getResultsForLineItemForClass", "/classes/{cls}/lineItems/{li}/results")
_nested_result(7, "getResultsForStudentForClass", "/classes/{cls}/students/{student}/results")
_nested_result(8, "getResultsForClass", "/classes/{cls}/results")


@KIT.check("OR-GB-RES-009", f"{GB}: putResult", "PUT of a result with a scoreStatus outside the vocabulary answers 400 (imsx_StatusInfo)")
def _res_bad_status(s: Session) -> None:
    status_info(put(s, "results", "result", new_id(s, "res-bad"), {**result(s), "scoreStatus": "brilliant"}), 400, "invaliddata")


@KIT.check("OR-GB-RES-010", f"{GB}: Pagination", "limit=1 on /results answers one result and an X-Total-Count of at least 1")
def _res_paging(s: Session) -> None:
    made(s, "result", "result")
    r, objs = listing(s, "/results", "results", {"limit": 1})
    if len(objs) != 1 or x_total(r) < 1:
        raise Fail(f"limit=1 answered {len(objs)} results, X-Total-Count {x_total(r)}")


# --- assessment line items and results -----------------------------------------------------


@KIT.check("OR-GB-ALI-001", f"{GB}: putAssessmentLineItem", "PUT /assessmentLineItems/{new id} creates it; GET answers its title")
def _ali(s: Session) -> None:
    cls, _ = class_and_student(s)
    sid = new_id(s, "ali")
    expect(put(s, "assessmentLineItems", "assessmentLineItem", sid,
               {"status": "active", "title": "Conformance assessment", "class": {"sourcedId": cls, "type": "class"},
                "resultValueMin": 0, "resultValueMax": 100}), 200, 201)
    s.state["assessmentLineItem"] = sid
    if get_one(s, "assessmentLineItems", "assessmentLineItem", sid).get("title") != "Conformance assessment":
        raise Fail("the assessment line item reads back with another title")


def assessment_result(s: Session, score: float = 80) -> dict[str, Any]:
    _, student = class_and_student(s)
    return {"status": "active", "assessmentLineItem": {"sourcedId": made(s, "assessmentLineItem", "assessment line item"),
                                                        "type": "assessmentLineItem"},
            "student": {"sourcedId": student, "type": "user"}, "score": score, "scoreDate": "2026-01-12T00:00:00.000Z",
            "scoreStatus": "fully graded"}


@KIT.check("OR-GB-AR-001", f"{GB}: putAssessmentResult", "PUT /assessmentResults/{new id} creates it; GET answers its score")
def _ar(s: Session) -> None:
    sid = new_id(s, "ar")
    expect(put(s, "assessmentResults", "assessmentResult", sid, assessment_result(s)), 200, 201)
    s.state["assessmentResult"] = sid
    got = get_one(s, "assessmentResults", "assessmentResult", sid).get("score")
    if got is None or float(got) != 80:
        raise Fail(f"score read back as {got!r}")


@KIT.check("OR-GB-AR-002", WRITES, "PUT of the same assessment result again is idempotent: one object with that sourcedId, same score")
def _ar_idem(s: Session) -> None:
    sid = made(s, "assessmentResult", "assessment result")
    expect(put(s, "assessmentResults", "assessmentResult", sid, assessment_result(s)), 200, 201)
    _, objs = listing(s, "/assessmentResults", "assessmentResults", {"filter": f"sourcedId='{sid}'"})
    if len(objs) != 1 or float(objs[0].get("score", -1)) != 80:
        raise Fail(f"{len(objs)} assessment results with sourcedId {sid!r} after a repeated PUT: {str(objs)[:200]}")


# --- POST (1.2) ----------------------------------------------------------------------------


@KIT.check("OR-GB-POST-001", f"{GB}: postLineItem", "POST /lineItems with a new sourcedId answers 201 with sourcedIdPairs; the line item reads back",
           required=False)
def _post_li(s: Session) -> None:
    sid = new_id(s, "li-post")
    r = s.post(url(s, "/lineItems"), json={"lineItem": {"sourcedId": sid, **line_item(s, "Conformance posted")}})
    data = expect(r, 201)
    s.state.setdefault("created", []).append(("lineItems", sid))
    pairs = data.get("sourcedIdPairs") if isinstance(data, dict) else None
    if not pairs:
        raise Fail(f"no sourcedIdPairs in {r.text[:200]!r}")
    allocated = (pairs[0] if isinstance(pairs, list) else pairs).get("allocatedSourcedId")
    get_one(s, "lineItems", "lineItem", allocated or sid)


@KIT.check("OR-GB-POST-002", f"{GB}: postResultsForLineItem", "POST /lineItems/{id}/results with a new result answers 201; the result reads back",
           required=False)
def _post_results(s: Session) -> None:
    li = made(s, "lineItem", "line item")
    sid = new_id(s, "res-post")
    obj = {**result(s, 5), "sourcedId": sid}
    r = s.post(url(s, f"/lineItems/{li}/results"), json={"results": [obj]})
    expect(r, 201)
    s.state.setdefault("created", []).append(("results", sid))
    if float(get_one(s, "results", "result", sid).get("score", -1)) != 5:
        raise Fail("the posted result reads back with another score")


# --- deletion ------------------------------------------------------------------------------

DELETES = f"{GB}: DELETE"


def _gone(s: Session, coll: str, single: str, sid: str) -> None:
    r = s.get(url(s, f"/{coll}/{sid}"))
    if r.status_code == 404:
        status_info(r, 404, "unknownobject")
        return
    data = expect(r, 200)
    status = (data.get(single) or {}).get("status") if isinstance(data, dict) else None
    if status != "tobedeleted":
        raise Fail(f"after DELETE, GET /{coll}/{sid} answers 200 with status {status!r} (expected 404 or tobedeleted)")


@KIT.check("OR-GB-DEL-001", DELETES, "DELETE /results/{id} answers 2xx; the result is then gone (404) or marked tobedeleted")
def _del_result(s: Session) -> None:
    sid = made(s, "result", "result")
    expect(s.delete(url(s, f"/results/{sid}")), 200, 204)
    _gone(s, "results", "result", sid)


@KIT.check("OR-GB-DEL-002", DELETES, "DELETE /assessmentResults/{id} answers 2xx; it is then gone or tobedeleted")
def _del_ar(s: Session) -> None:
    sid = made(s, "assessmentResult", "assessment result")
    expect(s.delete(url(s, f"/assessmentResults/{sid}")), 200, 204)
    _gone(s, "assessmentResults", "assessmentResult", sid)


@KIT.check("OR-GB-DEL-003", DELETES, "DELETE /lineItems/{id} answers 2xx; it is then gone or tobedeleted")
def _del_li(s: Session) -> None:
    sid = made(s, "lineItem", "line item")
    expect(s.delete(url(s, f"/lineItems/{sid}")), 200, 204)
    _gone(s, "lineItems", "lineItem", sid)


@KIT.check("OR-GB-DEL-004", DELETES, "DELETE of an unknown sourcedId answers 404 unknownobject")
def _del_unknown(s: Session) -> None:
    status_info(s.delete(url(s, f"/lineItems/{UNKNOWN_ID}")), 404, "unknownobject")


# --- errors and scopes ---------------------------------------------------------------------

ERRORS = f"{GB}: Status Codes and imsx_StatusInfo"
SECURITY = f"{GB}: Security (OAuth 2.0 scopes gradebook.readonly, gradebook.createput, gradebook.delete)"


@KIT.check("OR-GB-ERR-001", ERRORS, "GET /lineItems/{unknown} answers 404 unknownobject")
def _err_unknown(s: Session) -> None:
    status_info(s.get(url(s, f"/lineItems/{UNKNOWN_ID}")), 404, "unknownobject")


@KIT.check("OR-GB-ERR-002", ERRORS, "GET /classes/{unknown}/lineItems answers 404 unknownobject")
def _err_unknown_class(s: Session) -> None:
    status_info(s.get(url(s, f"/classes/{UNKNOWN_ID}/lineItems")), 404, "unknownobject")


@KIT.check("OR-GB-ERR-003", ERRORS, "PUT with a body that is not JSON answers 400 (imsx_StatusInfo)")
def _err_not_json(s: Session) -> None:
    r = s.put(url(s, f"/categories/{new_id(s, 'cat-bad')}"), content=b"this is not json", headers={"Content-Type": "application/json"})
    status_info(r, 400, "invaliddata")


@KIT.check("OR-GB-ERR-004", ERRORS, "GET /results/{unknown} answers 404 unknownobject")
def _err_unknown_result(s: Session) -> None:
    status_info(s.get(url(s, f"/results/{UNKNOWN_ID}")), 404, "unknownobject")


def _scoped(s: Session, *names: str) -> str:
    key = "token:" + " ".join(names)
    if key not in s.state:
        r = request_token(s, uris(*names))
        s.state[key] = body(r).get("access_token") if r.status_code == 200 else None
    return need(s.state[key], f"the client cannot get a token for {' '.join(names)} only")


@KIT.check("OR-GB-AUTH-001", SECURITY, "a request without a token answers 401 unauthorisedrequest")
def _auth_none(s: Session) -> None:
    status_info(s.get(url(s, "/lineItems"), auth=None), 401, "unauthorisedrequest")


@KIT.check("OR-GB-AUTH-002", SECURITY, "a gradebook.readonly token cannot PUT: 403 forbidden, and nothing is written")
def _auth_readonly_put(s: Session) -> None:
    tok = _scoped(s, "gradebook.readonly")
    sid = new_id(s, "cat-forbidden")
    r = s.put(url(s, f"/categories/{sid}"), json={"category": {"sourcedId": sid, "status": "active", "title": "x"}},
              auth=None, headers={"Authorization": f"Bearer {tok}"})
    if r.status_code in (200, 201):
        s.state.setdefault("created", []).append(("categories", sid))
    status_info(r, 403, "forbidden")
    if s.get(url(s, f"/categories/{sid}")).status_code != 404:
        raise Fail("the refused PUT wrote the category")


@KIT.check("OR-GB-AUTH-003", SECURITY, "a gradebook.createput token cannot DELETE: 403 forbidden")
def _auth_put_delete(s: Session) -> None:
    tok = _scoped(s, "gradebook.createput")
    sid = made(s, "category", "category")
    status_info(s.delete(url(s, f"/categories/{sid}"), auth=None, headers={"Authorization": f"Bearer {tok}"}), 403, "forbidden")


@KIT.check("OR-GB-AUTH-004", SECURITY, "a token without gradebook scopes (roster-core.readonly) cannot read /lineItems: 403 forbidden")
def _auth_roster_only(s: Session) -> None:
    tok = _scoped(s, "roster-core.readonly")
    status_info(s.get(url(s, "/lineItems"), auth=None, headers={"Authorization": f"Bearer {tok}"}), 403, "forbidden")


@KIT.check("OR-GB-AUTH-005", SECURITY, "a gradebook.readonly token reads /categories (200)")
def _auth_read(s: Session) -> None:
    tok = _scoped(s, "gradebook.readonly")
    expect(s.get(url(s, "/categories"), auth=None, headers={"Authorization": f"Bearer {tok}"}), 200)


@KIT.check("OR-GB-AUTH-006", SECURITY, "a forged token answers 401")
def _auth_forged(s: Session) -> None:
    r = s.get(url(s, "/results"), auth=None, headers={"Authorization": "Bearer conformance.forged.token"})
    if r.status_code != 401:
        raise Fail(f"a forged token answered {r.status_code}")


@KIT.check("OR-GB-DEL-005", DELETES, "DELETE /categories/{id} with gradebook.delete answers 2xx; the category is then gone or tobedeleted")
def _del_cat(s: Session) -> None:
    sid = made(s, "category", "category")
    expect(s.delete(url(s, f"/categories/{sid}")), 200, 204)
    _gone(s, "categories", "category", sid)


__all__ = ["KIT"]
