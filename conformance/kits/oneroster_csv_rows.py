"""Kit ``oneroster-csv-1.2`` (``oneroster_csv`` says what it covers), second part: headers and
rows, enumerations, references between files, bulk and delta rules and semantics, over the
package model of ``oneroster_csv_package``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from .oneroster_csv_package import (
    _B,
    BOOLEANS,
    COLUMNS,
    DATE_OR_TIME,
    DATES,
    ENUMS,
    GRADES,
    JOIN_FILES,
    LIST_REFS,
    NUMBERS,
    REFS,
    REQUIRED,
    ROLES,
    Package,
    _check,
    emit,
)

# --- headers and rows ----------------------------------------------------------------------


@_check("OR-CSV-HDR-001", "File headers", "every data file has a header row, even when it holds no data")
def _hdr_present(p: Package) -> None:
    for f in p.data():
        if not f.header:
            emit(p, f.name, 1, None, "the file is empty: no header row")


@_check("OR-CSV-HDR-002", "File headers", "each header is exactly the binding's column names, in its order (case-sensitive; join files may leave out sourcedId, status, dateLastModified and title)")
def _hdr_exact(p: Package) -> None:
    for f in p.data():
        want = COLUMNS[f.name]
        short = [c for c in want if c not in (*_B, "title")] if f.name in JOIN_FILES else want
        if f.header and f.header not in (want, short):
            missing = [c for c in want if c not in f.header]
            extra = [c for c in f.header if c not in want]
            detail = (f"missing {missing}" if missing else "") + (f" unknown {extra}" if extra else "")
            emit(p, f.name, 1, None, f"header differs from the binding's ({detail.strip() or 'order differs'})")


@_check("OR-CSV-HDR-003", "File headers", "no column name appears twice in a header")
def _hdr_dupes(p: Package) -> None:
    for f in p.data():
        seen: set[str] = set()
        for c in f.header:
            if c in seen:
                emit(p, f.name, 1, c, "column given twice")
            seen.add(c)


@_check("OR-CSV-ROW-001", "Data rows", "every row has as many fields as the header")
def _row_width(p: Package) -> None:
    for f in p.data():
        for i, row in enumerate(f.rows, 2):
            if len(row) != len(f.header):
                emit(p, f.name, i, None, f"{len(row)} fields, the header has {len(f.header)}")


@_check("OR-CSV-ROW-002", "Data rows", "every row has a sourcedId, unique in its file (join files aside)")
def _row_ids(p: Package) -> None:
    for f in p.data():
        if f.name in JOIN_FILES:
            continue
        seen: dict[str, int] = {}
        for i, r in f.records():
            sid = r.get("sourcedId", "")
            if not sid.strip():
                emit(p, f.name, i, "sourcedId", "sourcedId is blank")
            elif sid in seen:
                emit(p, f.name, i, "sourcedId", f"sourcedId {sid!r} repeats row {seen[sid]}")
            else:
                seen[sid] = i


@_check("OR-CSV-ROW-003", "Data rows", "every required field has a value")
def _row_required(p: Package) -> None:
    for f in p.data():
        req = [c for c in REQUIRED.get(f.name, []) if c in f.header]
        for i, r in f.records():
            for c in req:
                if not r.get(c, "").strip():
                    emit(p, f.name, i, c, "required field is blank")


@_check("OR-CSV-ROW-004", "Data rows", "status is blank, active or tobedeleted")
def _row_status(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            if r.get("status", "") not in ("", "active", "tobedeleted"):
                emit(p, f.name, i, "status", f"{r['status']!r} is not active or tobedeleted")


def _is_datetime(v: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", v):
        return False
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_date(v: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        return False
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


@_check("OR-CSV-ROW-005", "Data types: DateTime", "dateLastModified, when given, is an ISO 8601 UTC datetime (2026-01-31T12:00:00.000Z)")
def _row_dlm(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            v = r.get("dateLastModified", "")
            if v and not _is_datetime(v):
                emit(p, f.name, i, "dateLastModified", f"{v!r} is not an ISO 8601 datetime with a zone")


@_check("OR-CSV-ROW-006", "Data types: Date", "dates (startDate, endDate, beginDate, birthDate) are YYYY-MM-DD; assignDate, dueDate, scoreDate a date or datetime")
def _row_dates(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            for c in DATES | DATE_OR_TIME:
                v = r.get(c, "")
                if v and not (_is_date(v) or (c in DATE_OR_TIME and _is_datetime(v))):
                    emit(p, f.name, i, c, f"{v!r} is not a valid date")


@_check("OR-CSV-ROW-007", "Data types: Year", "schoolYear is a four-digit year")
def _row_year(p: Package) -> None:
    f = p.files.get("academicSessions")
    if f is None or f.error:
        return
    for i, r in f.records():
        v = r.get("schoolYear", "")
        if v and not re.fullmatch(r"\d{4}", v):
            emit(p, f.name, i, "schoolYear", f"{v!r} is not a four-digit year")


@_check("OR-CSV-ROW-008", "Data types: Boolean", "boolean fields are true or false (lower case)")
def _row_bool(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            for c in BOOLEANS & set(f.header):
                v = r.get(c, "")
                if v and v not in ("true", "false"):
                    emit(p, f.name, i, c, f"{v!r} is not true or false")


@_check("OR-CSV-ROW-009", "Data types: Float", "numeric fields (weight, score, resultValueMin/Max, scorePercentile) are numbers")
def _row_numbers(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            for c in NUMBERS & set(f.header):
                v = r.get(c, "")
                if v and not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", v):
                    emit(p, f.name, i, c, f"{v!r} is not a number")


@_check("OR-CSV-ROW-010", "Data rows", "no field has leading or trailing spaces", required=False)
def _row_spaces(p: Package) -> None:
    for f in p.data():
        for i, r in f.records():
            for c, v in r.items():
                if v != v.strip():
                    emit(p, f.name, i, c, f"{v!r} has leading or trailing spaces")


# --- enumerations --------------------------------------------------------------------------


def _enum_check(n: int, file: str, column: str) -> None:
    allowed = ENUMS[(file, column)]

    @_check(f"OR-CSV-ENUM-{n:03d}", f"Enumerations: {file}.{column}", f"{file}.{column} is one of {', '.join(sorted(allowed))}")
    def run(p: Package) -> None:
        f = p.files.get(file)
        if f is None or f.error:
            return
        for i, r in f.records():
            v = r.get(column, "")
            if v and v not in allowed and not v.startswith("ext:"):
                emit(p, file, i, column, f"{v!r} is not one of the binding's values")


for _n, (_f, _c) in enumerate(ENUMS, 1):
    _enum_check(_n, _f, _c)


@_check(f"OR-CSV-ENUM-{len(ENUMS) + 1:03d}", "Enumerations: grades", "grades (courses, classes, users) are CEDS grade levels", required=False)
def _grades(p: Package) -> None:
    for name in ("courses", "classes", "users"):
        f = p.files.get(name)
        if f is None or f.error:
            continue
        for i, r in f.records():
            for g in (x.strip() for x in r.get("grades", "").split(",") if x.strip()):
                if g not in GRADES:
                    emit(p, name, i, "grades", f"{g!r} is not a CEDS grade level")


@_check(f"OR-CSV-ENUM-{len(ENUMS) + 2:03d}", "Enumerations: resources.roles", "resources.roles lists role tokens")
def _resource_roles(p: Package) -> None:
    f = p.files.get("resources")
    if f is None or f.error:
        return
    for i, r in f.records():
        for role in (x.strip() for x in r.get("roles", "").split(",") if x.strip()):
            if role not in ROLES:
                emit(p, "resources", i, "roles", f"{role!r} is not a role")


# --- references ----------------------------------------------------------------------------


def _ref_check(n: int, files: tuple[str, ...], description: str) -> None:
    @_check(f"OR-CSV-REF-{n:03d}", "References between files", description)
    def run(p: Package) -> None:
        ids: dict[str, set[str]] = {}
        for (file, column), target in REFS.items():
            if file not in files:
                continue
            f = p.files.get(file)
            t = p.files.get(target)
            if f is None or f.error or t is None or t.error or p.mode(target) != "bulk":
                continue  # a delta or absent target may name what the consumer already holds
            known = ids.setdefault(target, p.ids(target))
            for i, r in f.records():
                raw = r.get(column, "")
                values = [v.strip() for v in raw.split(",")] if (file, column) in LIST_REFS else [raw.strip()]
                for v in values:
                    if v and v not in known:
                        emit(p, file, i, column, f"{v!r} is no sourcedId of {target}.csv")


_ref_check(1, ("orgs", "academicSessions"), "parentSourcedId of orgs and academic sessions names a row of the same file")
_ref_check(2, ("courses",), "courses name an org and a school year of the package")
_ref_check(3, ("classes",), "classes name a course, a school and terms of the package")
_ref_check(4, ("users",), "users' primaryOrg, agents and resources are rows of the package")
_ref_check(5, ("enrollments",), "enrollments name a class, a school and a user of the package")
_ref_check(6, ("roles", "userProfiles"), "roles and user profiles name users, orgs and profiles of the package")
_ref_check(7, ("demographics",), "every demographics row is a user's (its sourcedId is a user's)")
_ref_check(8, ("lineItems", "categories"), "line items name a class, a category and sessions of the package")
_ref_check(9, ("results",), "results name a line item, a student and a class of the package")
_ref_check(10, ("scoreScales", "lineItemScoreScales", "resultScoreScales"), "score scales and their join files name rows of the package")
_ref_check(11, ("classResources", "courseResources", "userResources"), "resource assignments name a class, course or user and a resource")
_ref_check(12, ("assessmentLineItems", "assessmentResults", "lineItemLearningObjectiveIds", "resultLearningObjectiveIds",
                "assessmentLineItemLearningObjectiveIds", "assessmentResultLearningObjectiveIds"),
           "assessment line items and results, and learning-objective joins, name rows of the package")


@_check("OR-CSV-REF-013", "References between files", "a class's school is an org of type school; a reference to an org names the right kind",
        required=False)
def _school_type(p: Package) -> None:
    orgs = p.files.get("orgs")
    if orgs is None or orgs.error:
        return
    types = {r.get("sourcedId"): r.get("type") for _, r in orgs.records()}
    for name in ("classes", "enrollments"):
        f = p.files.get(name)
        if f is None or f.error:
            continue
        for i, r in f.records():
            sid = r.get("schoolSourcedId", "")
            if sid in types and types[sid] != "school":
                emit(p, name, i, "schoolSourcedId", f"{sid!r} is an org of type {types[sid]!r}, not a school")


@_check("OR-CSV-REF-014", "References between files", "an enrollment's school is the school of its class", required=False)
def _enrollment_school(p: Package) -> None:
    classes, enr = p.files.get("classes"), p.files.get("enrollments")
    if classes is None or enr is None or classes.error or enr.error:
        return
    school = {r.get("sourcedId"): r.get("schoolSourcedId") for _, r in classes.records()}
    for i, r in enr.records():
        c = r.get("classSourcedId", "")
        if c in school and school[c] and r.get("schoolSourcedId") and school[c] != r.get("schoolSourcedId"):
            emit(p, "enrollments", i, "schoolSourcedId", f"{r.get('schoolSourcedId')!r}, but class {c!r} is at {school[c]!r}")


# --- bulk and delta ------------------------------------------------------------------------


@_check("OR-CSV-MODE-001", "Bulk and delta processing", "every row of a delta file has status and dateLastModified")
def _delta_fields(p: Package) -> None:
    for f in p.data():
        if p.mode(f.name) != "delta":
            continue
        for i, r in f.records():
            for c in ("status", "dateLastModified"):
                if not r.get(c, "").strip():
                    emit(p, f.name, i, c, f"{c} is required in a delta file")


@_check("OR-CSV-MODE-002", "Bulk and delta processing", "a bulk file holds no tobedeleted row (a bulk file is the whole state)",
        required=False)
def _bulk_deleted(p: Package) -> None:
    for f in p.data():
        if p.mode(f.name) != "bulk":
            continue
        for i, r in f.records():
            if r.get("status") == "tobedeleted":
                emit(p, f.name, i, "status", "tobedeleted in a bulk file")


@_check("OR-CSV-MODE-003", "Bulk and delta processing", "no dateLastModified lies in the future")
def _future(p: Package) -> None:
    limit = datetime.now(UTC) + timedelta(days=1)
    for f in p.data():
        for i, r in f.records():
            v = r.get("dateLastModified", "")
            if v and _is_datetime(v) and datetime.fromisoformat(v.replace("Z", "+00:00")) > limit:
                emit(p, f.name, i, "dateLastModified", f"{v} is in the future")


# --- semantics -----------------------------------------------------------------------------


def _range_check(id: str, file: str, lo: str, hi: str, description: str) -> None:
    @_check(id, "Semantics", description)
    def run(p: Package) -> None:
        f = p.files.get(file)
        if f is None or f.error:
            return
        for i, r in f.records():
            a, b = r.get(lo, "")[:10], r.get(hi, "")[:10]
            if _is_date(a) and _is_date(b) and a > b:
                emit(p, file, i, hi, f"{hi} {b} is before {lo} {a}")


_range_check("OR-CSV-SEM-001", "academicSessions", "startDate", "endDate", "an academic session's endDate is not before its startDate")
_range_check("OR-CSV-SEM-002", "enrollments", "beginDate", "endDate", "an enrollment's endDate is not before its beginDate")
_range_check("OR-CSV-SEM-003", "lineItems", "assignDate", "dueDate", "a line item's dueDate is not before its assignDate")
_range_check("OR-CSV-SEM-004", "roles", "beginDate", "endDate", "a role's endDate is not before its beginDate")


@_check("OR-CSV-SEM-005", "Semantics", "in a bulk package every user has at least one role in roles.csv")
def _user_roles(p: Package) -> None:
    users, roles = p.files.get("users"), p.files.get("roles")
    if users is None or roles is None or users.error or roles.error or p.mode("users") != "bulk" or p.mode("roles") != "bulk":
        return
    have = {r.get("userSourcedId") for _, r in roles.records()}
    for i, r in users.records():
        if r.get("sourcedId") and r.get("sourcedId") not in have:
            emit(p, "users", i, "sourcedId", f"user {r.get('sourcedId')!r} has no role in roles.csv")


@_check("OR-CSV-SEM-006", "Semantics", "a user has at most one primary role per org")
def _primary_roles(p: Package) -> None:
    roles = p.files.get("roles")
    if roles is None or roles.error:
        return
    seen: dict[tuple[str, str], int] = {}
    for i, r in roles.records():
        if r.get("roleType") != "primary":
            continue
        key = (r.get("userSourcedId", ""), r.get("orgSourcedId", ""))
        if key in seen:
            emit(p, "roles", i, "roleType", f"user {key[0]!r} has a second primary role at {key[1]!r} (row {seen[key]})")
        seen[key] = i


@_check("OR-CSV-SEM-007", "Semantics", "a result's score lies within its line item's resultValueMin..resultValueMax", required=False)
def _score_range(p: Package) -> None:
    items, results = p.files.get("lineItems"), p.files.get("results")
    if items is None or results is None or items.error or results.error:
        return
    bounds = {r.get("sourcedId"): (r.get("resultValueMin", ""), r.get("resultValueMax", "")) for _, r in items.records()}
    for i, r in results.records():
        lo, hi = bounds.get(r.get("lineItemSourcedId"), ("", ""))
        try:
            score = float(r.get("score", ""))
            if (lo and score < float(lo)) or (hi and score > float(hi)):
                emit(p, "results", i, "score", f"{score:g} is outside {lo}..{hi}")
        except ValueError:
            continue


@_check("OR-CSV-SEM-008", "Semantics", "scoreScaleValue is a list of {label:value} pairs")
def _score_scale_values(p: Package) -> None:
    f = p.files.get("scoreScales")
    if f is None or f.error:
        return
    for i, r in f.records():
        v = r.get("scoreScaleValue", "")
        if v and not re.fullmatch(r"\{[^{}:]+:[^{}]+\}(,\{[^{}:]+:[^{}]+\})*", v.replace(" ", "")):
            emit(p, "scoreScales", i, "scoreScaleValue", f"{v[:60]!r} is not {{label:value}},{{label:value}}...")

