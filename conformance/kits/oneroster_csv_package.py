"""Kit ``oneroster-csv-1.2`` (``oneroster_csv`` says what it covers), first part: ``KIT``, the package
model and column table every check reads, the import log, and the checks of the package and
its manifest."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..kit import Fail, Kit, Session, Skip

KIT = Kit("oneroster-csv-1.2", "OneRoster 1.2 CSV package (offline)", "OneRoster 1.2 CSV binding")
KIT.writes = "nothing: the package is read from disk (--option package=PATH), nothing is sent anywhere"
CB = "OneRoster 1.2 CSV binding"

_B = ["sourcedId", "status", "dateLastModified"]
#: file -> its columns, in the binding's order
COLUMNS: dict[str, list[str]] = {
    "academicSessions": [*_B, "title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"],
    "orgs": [*_B, "name", "type", "identifier", "parentSourcedId"],
    "courses": [*_B, "schoolYearSourcedId", "title", "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"],
    "classes": [*_B, "title", "grades", "courseSourcedId", "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds",
                "subjects", "subjectCodes", "periods"],
    "users": [*_B, "enabledUser", "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
              "agentSourcedIds", "grades", "password", "userMasterIdentifier", "resourceSourcedIds", "preferredGivenName",
              "preferredMiddleName", "preferredFamilyName", "primaryOrgSourcedId", "pronouns"],
    "enrollments": [*_B, "classSourcedId", "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"],
    "demographics": [*_B, "birthDate", "sex", "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
                     "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity",
                     "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth", "publicSchoolResidenceStatus"],
    "roles": [*_B, "userSourcedId", "roleType", "role", "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"],
    "userProfiles": [*_B, "userSourcedId", "profileType", "vendorId", "applicationId", "description", "credentialType", "username",
                     "password"],
    "categories": [*_B, "title", "weight"],
    "lineItems": [*_B, "title", "description", "assignDate", "dueDate", "classSourcedId", "categorySourcedId", "gradingPeriodSourcedId",
                  "resultValueMin", "resultValueMax", "academicSessionSourcedId", "schoolSourcedId"],
    "results": [*_B, "lineItemSourcedId", "studentSourcedId", "scoreStatus", "score", "scoreDate", "comment", "classSourcedId",
                "textScore", "inProgress", "incomplete", "late", "missing"],
    "resources": [*_B, "vendorResourceId", "title", "roles", "importance", "vendorId", "applicationId"],
    "classResources": [*_B, "title", "classSourcedId", "resourceSourcedId"],
    "courseResources": [*_B, "title", "courseSourcedId", "resourceSourcedId"],
    "userResources": [*_B, "title", "userSourcedId", "resourceSourcedId"],
    "scoreScales": [*_B, "title", "type", "courseSourcedId", "classSourcedId", "scoreScaleValue"],
    "assessmentLineItems": [*_B, "title", "description", "classSourcedId", "parentAssessmentLineItemSourcedId", "scoreScaleSourcedId",
                            "resultValueMin", "resultValueMax"],
    "assessmentResults": [*_B, "assessmentLineItemSourcedId", "studentSourcedId", "score", "textScore", "scoreDate",
                          "scoreScaleSourcedId", "scorePercentile", "scoreStatus", "comment", "inProgress", "incomplete", "late",
                          "missing"],
    "lineItemLearningObjectiveIds": [*_B, "lineItemSourcedId", "source", "learningObjectiveId"],
    "resultLearningObjectiveIds": [*_B, "resultSourcedId", "source", "learningObjectiveId", "score", "textScore"],
    "assessmentLineItemLearningObjectiveIds": [*_B, "assessmentLineItemSourcedId", "source", "learningObjectiveId"],
    "assessmentResultLearningObjectiveIds": [*_B, "assessmentResultSourcedId", "source", "learningObjectiveId", "score", "textScore"],
    "lineItemScoreScales": [*_B, "title", "lineItemSourcedId", "scoreScaleSourcedId"],
    "resultScoreScales": [*_B, "title", "resultSourcedId", "scoreScaleSourcedId"],
}
#: files whose rows are joins (their sourcedId may be blank)
JOIN_FILES = frozenset({"lineItemLearningObjectiveIds", "resultLearningObjectiveIds", "lineItemScoreScales", "resultScoreScales",
                        "assessmentLineItemLearningObjectiveIds", "assessmentResultLearningObjectiveIds"})
REQUIRED: dict[str, list[str]] = {
    "academicSessions": ["title", "type", "startDate", "endDate", "schoolYear"],
    "orgs": ["name", "type"],
    "courses": ["title", "orgSourcedId"],
    "classes": ["title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"],
    "users": ["enabledUser", "givenName", "familyName"],
    "enrollments": ["classSourcedId", "schoolSourcedId", "userSourcedId", "role"],
    "roles": ["userSourcedId", "roleType", "role", "orgSourcedId"],
    "userProfiles": ["userSourcedId", "profileType", "vendorId", "credentialType", "username"],
    "categories": ["title"],
    "lineItems": ["title", "assignDate", "dueDate", "classSourcedId", "categorySourcedId"],
    "results": ["lineItemSourcedId", "studentSourcedId", "scoreStatus", "scoreDate"],
    "resources": ["vendorResourceId"],
    "classResources": ["classSourcedId", "resourceSourcedId"],
    "courseResources": ["courseSourcedId", "resourceSourcedId"],
    "userResources": ["userSourcedId", "resourceSourcedId"],
    "scoreScales": ["title", "type", "classSourcedId", "scoreScaleValue"],
    "assessmentLineItems": ["title"],
    "assessmentResults": ["assessmentLineItemSourcedId", "studentSourcedId", "scoreDate", "scoreStatus"],
    "lineItemLearningObjectiveIds": ["lineItemSourcedId", "source", "learningObjectiveId"],
    "resultLearningObjectiveIds": ["resultSourcedId", "source", "learningObjectiveId"],
    "assessmentLineItemLearningObjectiveIds": ["assessmentLineItemSourcedId", "source", "learningObjectiveId"],
    "assessmentResultLearningObjectiveIds": ["assessmentResultSourcedId", "source", "learningObjectiveId"],
    "lineItemScoreScales": ["lineItemSourcedId", "scoreScaleSourcedId"],
    "resultScoreScales": ["resultSourcedId", "scoreScaleSourcedId"],
}
DATES = {"startDate", "endDate", "beginDate", "birthDate"}
DATE_OR_TIME = {"assignDate", "dueDate", "scoreDate"}
BOOLEANS = {"enabledUser", "primary", "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
            "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity",
            "inProgress", "incomplete", "late", "missing"}
NUMBERS = {"weight", "resultValueMin", "resultValueMax", "score", "scorePercentile"}
ROLES = {"aide", "counselor", "districtAdministrator", "guardian", "parent", "principal", "proctor", "relative", "siteAdministrator",
         "student", "systemAdministrator", "teacher"}
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("orgs", "type"): frozenset({"department", "school", "district", "local", "state", "national"}),
    ("academicSessions", "type"): frozenset({"gradingPeriod", "semester", "schoolYear", "term"}),
    ("classes", "classType"): frozenset({"homeroom", "scheduled"}),
    ("enrollments", "role"): frozenset({"administrator", "proctor", "student", "teacher"}),
    ("roles", "roleType"): frozenset({"primary", "secondary"}),
    ("roles", "role"): frozenset(ROLES),
    ("demographics", "sex"): frozenset({"male", "female", "unspecified", "other"}),
    ("results", "scoreStatus"): frozenset({"exempt", "fully graded", "not submitted", "partially graded", "submitted"}),
    ("assessmentResults", "scoreStatus"): frozenset({"exempt", "fully graded", "not submitted", "partially graded", "submitted"}),
    ("resources", "importance"): frozenset({"primary", "secondary"}),
}
GRADES = frozenset({"IT", "PR", "PK", "TK", "KG", *(f"{i:02d}" for i in range(1, 14)), "PS", "UG", "Other"})
#: (file, column) -> the file it names a row of (a list column: each element)
REFS: dict[tuple[str, str], str] = {
    ("academicSessions", "parentSourcedId"): "academicSessions", ("orgs", "parentSourcedId"): "orgs",
    ("courses", "schoolYearSourcedId"): "academicSessions", ("courses", "orgSourcedId"): "orgs",
    ("classes", "courseSourcedId"): "courses", ("classes", "schoolSourcedId"): "orgs", ("classes", "termSourcedIds"): "academicSessions",
    ("users", "agentSourcedIds"): "users", ("users", "primaryOrgSourcedId"): "orgs", ("users", "resourceSourcedIds"): "resources",
    ("enrollments", "classSourcedId"): "classes", ("enrollments", "schoolSourcedId"): "orgs", ("enrollments", "userSourcedId"): "users",
    ("demographics", "sourcedId"): "users",
    ("roles", "userSourcedId"): "users", ("roles", "orgSourcedId"): "orgs", ("roles", "userProfileSourcedId"): "userProfiles",
    ("userProfiles", "userSourcedId"): "users",
    ("lineItems", "classSourcedId"): "classes", ("lineItems", "categorySourcedId"): "categories",
    ("lineItems", "gradingPeriodSourcedId"): "academicSessions", ("lineItems", "academicSessionSourcedId"): "academicSessions",
    ("lineItems", "schoolSourcedId"): "orgs",
    ("results", "lineItemSourcedId"): "lineItems", ("results", "studentSourcedId"): "users", ("results", "classSourcedId"): "classes",
    ("scoreScales", "classSourcedId"): "classes", ("scoreScales", "courseSourcedId"): "courses",
    ("classResources", "classSourcedId"): "classes", ("classResources", "resourceSourcedId"): "resources",
    ("courseResources", "courseSourcedId"): "courses", ("courseResources", "resourceSourcedId"): "resources",
    ("userResources", "userSourcedId"): "users", ("userResources", "resourceSourcedId"): "resources",
    ("assessmentLineItems", "classSourcedId"): "classes", ("assessmentLineItems", "scoreScaleSourcedId"): "scoreScales",
    ("assessmentLineItems", "parentAssessmentLineItemSourcedId"): "assessmentLineItems",
    ("assessmentResults", "assessmentLineItemSourcedId"): "assessmentLineItems", ("assessmentResults", "studentSourcedId"): "users",
    ("assessmentResults", "scoreScaleSourcedId"): "scoreScales",
    ("lineItemLearningObjectiveIds", "lineItemSourcedId"): "lineItems", ("resultLearningObjectiveIds", "resultSourcedId"): "results",
    ("lineItemScoreScales", "lineItemSourcedId"): "lineItems", ("lineItemScoreScales", "scoreScaleSourcedId"): "scoreScales",
    ("resultScoreScales", "resultSourcedId"): "results", ("resultScoreScales", "scoreScaleSourcedId"): "scoreScales",
    ("assessmentLineItemLearningObjectiveIds", "assessmentLineItemSourcedId"): "assessmentLineItems",
    ("assessmentResultLearningObjectiveIds", "assessmentResultSourcedId"): "assessmentResults",
}
LIST_REFS = frozenset({("classes", "termSourcedIds"), ("users", "agentSourcedIds"), ("users", "resourceSourcedIds")})
MODES = ("absent", "bulk", "delta")


@dataclass
class CsvFile:
    name: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    error: str | None = None  # not readable as UTF-8 CSV
    bom: bool = False
    path: str = ""

    def records(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(row number, column -> value) of each data row (the header is row 1)."""
        for i, row in enumerate(self.rows, 2):
            yield i, dict(zip(self.header, row, strict=False))


@dataclass
class Package:
    source: str
    files: dict[str, CsvFile] = field(default_factory=dict)
    #: other members (folders, non-CSV files)
    others: list[str] = field(default_factory=list)
    manifest: dict[str, str] = field(default_factory=dict)
    manifest_dupes: list[str] = field(default_factory=list)
    #: the findings of the check running now (``emit``)
    current: list[dict[str, Any]] = field(default_factory=list)

    def mode(self, name: str) -> str:
        return self.manifest.get(f"file.{name}", "absent")

    def data(self) -> list[CsvFile]:
        """The readable data files (the manifest aside) whose name the binding defines."""
        return [f for n, f in sorted(self.files.items()) if n in COLUMNS and f.error is None]

    def ids(self, name: str) -> set[str]:
        f = self.files.get(name)
        return {r.get("sourcedId", "") for _, r in f.records()} if f is not None and f.error is None else set()


def _read_csv(name: str, raw: bytes, path: str) -> CsvFile:
    f = CsvFile(name, path=path)
    if raw.startswith(b"\xef\xbb\xbf"):
        f.bom, raw = True, raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        f.error = f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})"
        return f
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        f.error = f"not a well-formed CSV file: {exc}"
        return f
    rows = [r for r in rows if r != []]
    if rows:
        f.header, f.rows = rows[0], rows[1:]
    return f


def load(path: str) -> Package:
    p = Path(path)
    pkg = Package(str(p))
    members: list[tuple[str, bytes]] = []
    if p.is_dir():
        members = [(c.name, c.read_bytes()) for c in sorted(p.iterdir()) if c.is_file()]
        pkg.others += [c.name + "/" for c in sorted(p.iterdir()) if c.is_dir()]
    else:
        try:
            with zipfile.ZipFile(p) as z:
                for info in z.infolist():
                    if info.is_dir():
                        pkg.others.append(info.filename)
                        continue
                    members.append((info.filename, z.read(info)))
        except (zipfile.BadZipFile, OSError) as exc:
            raise Fail(f"the package {path} is not a readable zip file or directory: {exc}") from None
    for member, raw in members:
        base = member.rsplit("/", 1)[-1]
        if "/" in member or not base.endswith(".csv"):
            pkg.others.append(member)
            if not base.endswith(".csv"):
                continue
        name = base[:-4]
        pkg.files.setdefault(name, _read_csv(name, raw, member))
    man = pkg.files.pop("manifest", None)
    if man is not None and man.error is None:
        for _, r in man.records():
            key, value = r.get("propertyName", ""), r.get("value", "")
            if key in pkg.manifest:
                pkg.manifest_dupes.append(key)
            pkg.manifest[key] = value.strip()
        pkg.files["manifest"] = man  # kept for the manifest checks (data() leaves it out)
    return pkg


# --- the log -------------------------------------------------------------------------------


def _where(f: dict[str, Any]) -> str:
    parts = [f"{f['file']}.csv" if f["file"] else "package"]
    if f["row"]:
        parts.append(f"row {f['row']}")
    if f["column"]:
        parts.append(f"column {f['column']}")
    return ", ".join(parts) + ": "


def pkg(s: Session) -> Package:
    return s.state["pkg"]


def setup(s: Session) -> None:
    path = s.target.options.get("package")
    if not path:
        raise Fail("this kit needs --option package=PATH (a OneRoster CSV zip, or a directory of its CSV files)")
    if not Path(path).exists():
        raise Fail(f"no package at {path}")
    s.state["pkg"] = load(path)
    s.state["log"] = []


def teardown(s: Session) -> None:
    """Write the consumer's import log: each file imported or rejected, with every reason."""
    p: Package = s.state["pkg"]
    log: list[dict[str, Any]] = s.state.get("log", [])
    by_file: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        by_file.setdefault(entry["file"] or "(package)", []).append(entry)
    files: list[dict[str, Any]] = []
    for name in sorted(set(p.files) | {k for k in by_file if k != "(package)"}):
        entries = by_file.get(name, [])
        errors = [e for e in entries if e["severity"] == "error"]
        mode = "manifest" if name == "manifest" else p.mode(name)
        csv_file = p.files.get(name)
        files.append({"file": f"{name}.csv", "mode": mode, "rows": len(csv_file.rows) if csv_file else 0,
                      "outcome": "rejected" if errors else "imported", "errors": len(errors),
                      "warnings": len(entries) - len(errors), "reasons": entries})
    report: dict[str, Any] = {"package": p.source, "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "package_errors": by_file.get("(package)", []), "files": files}
    out_dir = s.state.get("report_dir")
    if out_dir is None:
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "csv-import-log.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    lines = [f"OneRoster 1.2 CSV import log: {p.source} ({report['checked_at']})", ""]
    for e in report["package_errors"]:
        lines.append(f"package: {e['severity']}: [{e['check']}] {e['message']}")
    for entry in files:
        lines.append(f"{entry['file']}: {entry['outcome'].upper()} ({entry['mode']}, {entry['rows']} rows, {entry['errors']} errors, "
                     f"{entry['warnings']} warnings)")
        for e in entry["reasons"]:
            where = ", ".join(x for x in (f"row {e['row']}" if e["row"] else "", f"column {e['column']}" if e["column"] else "") if x)
            lines.append(f"  {e['severity']}: [{e['check']}] {where + ': ' if where else ''}{e['message']}")
    (out_dir / "csv-import-log.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    s.state["artifacts"] += [str(out_dir / "csv-import-log.json"), str(out_dir / "csv-import-log.txt")]


KIT.setup = setup
KIT.teardown = teardown


def emit(p: Package, file: str, row: int | None, column: str | None, message: str) -> None:
    """Record one finding of the running check (an error; a warning for an optional check)."""
    if len(p.current) < 10000:
        p.current.append({"file": file, "row": row, "column": column, "message": message})


def _check(id: str, requirement: str, description: str, *, required: bool = True) -> Callable[[Callable[[Package], None]], None]:
    def add(fn: Callable[[Package], None]) -> None:
        def run(s: Session) -> None:
            p = pkg(s)
            p.current = []
            fn(p)
            found, p.current = p.current, []
            s.state.setdefault("log", []).extend({**f, "check": id, "severity": "error" if required else "warning"} for f in found)
            if found:
                head = "; ".join(_where(f) + f["message"] for f in found[:5])
                more = f" (and {len(found) - 5} more: see csv-import-log)" if len(found) > 5 else ""
                raise Fail(f"{len(found)} finding(s): {head}{more}")

        KIT.check(id, f"{CB}: {requirement}", description, required=required)(run)

    return add


# --- package -------------------------------------------------------------------------------


@_check("OR-CSV-PKG-001", "Package", "the package holds its files at the root (no folders, nothing but .csv files)")
def _root(p: Package) -> None:
    for m in p.others:
        emit(p, "", None, None, f"{m!r} is not a CSV file at the root of the package")


@_check("OR-CSV-PKG-002", "Character encoding", "every file is UTF-8 and well-formed CSV (RFC 4180 quoting)")
def _utf8(p: Package) -> None:
    for name, f in sorted(p.files.items()):
        if f.error:
            emit(p, name, None, None, f.error)


@_check("OR-CSV-PKG-003", "Character encoding", "no file starts with a UTF-8 byte order mark", required=False)
def _bom(p: Package) -> None:
    for name, f in sorted(p.files.items()):
        if f.bom:
            emit(p, name, 1, None, "starts with a UTF-8 byte order mark")


@_check("OR-CSV-PKG-004", "Package", "every CSV file's name is a file of the 1.2 binding (case-sensitive)")
def _names(p: Package) -> None:
    for name in sorted(p.files):
        if name != "manifest" and name not in COLUMNS:
            close = next((c for c in COLUMNS if c.lower() == name.lower()), None)
            emit(p, name, None, None, f"{name}.csv is not a OneRoster 1.2 file" + (f" (did you mean {close}.csv?)" if close else ""))


# --- manifest ------------------------------------------------------------------------------


def _need_manifest(p: Package) -> None:
    if "manifest" not in p.files or p.files["manifest"].error:
        raise Skip("no readable manifest.csv (OR-CSV-MAN-001)")


@_check("OR-CSV-MAN-001", "Manifest", "manifest.csv is present")
def _man_present(p: Package) -> None:
    if "manifest" not in p.files:
        emit(p, "manifest", None, None, "the package has no manifest.csv")


@_check("OR-CSV-MAN-002", "Manifest", "manifest.csv's header is propertyName,value")
def _man_header(p: Package) -> None:
    _need_manifest(p)
    h = p.files["manifest"].header
    if h != ["propertyName", "value"]:
        emit(p, "manifest", 1, None, f"header is {','.join(h)!r}, not 'propertyName,value'")


@_check("OR-CSV-MAN-003", "Manifest", "manifest.version is 1.0")
def _man_version(p: Package) -> None:
    _need_manifest(p)
    if p.manifest.get("manifest.version") != "1.0":
        emit(p, "manifest", None, "value", f"manifest.version is {p.manifest.get('manifest.version')!r}, not '1.0'")


@_check("OR-CSV-MAN-004", "Manifest", "oneroster.version is 1.2")
def _or_version(p: Package) -> None:
    _need_manifest(p)
    if p.manifest.get("oneroster.version") != "1.2":
        emit(p, "manifest", None, "value", f"oneroster.version is {p.manifest.get('oneroster.version')!r}, not '1.2'")


@_check("OR-CSV-MAN-005", "Manifest", "every file.<name> names a 1.2 file and is absent, bulk or delta")
def _man_modes(p: Package) -> None:
    _need_manifest(p)
    for i, r in p.files["manifest"].records():
        key, value = r.get("propertyName", ""), r.get("value", "").strip()
        if not key.startswith("file."):
            continue
        if key[5:] not in COLUMNS:
            emit(p, "manifest", i, "propertyName", f"{key} names no OneRoster 1.2 file")
        if value not in MODES:
            emit(p, "manifest", i, "value", f"{key} is {value!r}, not absent, bulk or delta")


@_check("OR-CSV-MAN-006", "Manifest", "every file the manifest declares bulk or delta is in the package")
def _man_declared(p: Package) -> None:
    _need_manifest(p)
    for key, value in sorted(p.manifest.items()):
        if key.startswith("file.") and value in ("bulk", "delta") and key[5:] not in p.files:
            emit(p, "manifest", None, None, f"{key} is {value} but the package has no {key[5:]}.csv")


@_check("OR-CSV-MAN-007", "Manifest", "every data file in the package is declared bulk or delta in the manifest")
def _man_undeclared(p: Package) -> None:
    _need_manifest(p)
    for name in sorted(p.files):
        if name != "manifest" and name in COLUMNS and p.mode(name) not in ("bulk", "delta"):
            emit(p, name, None, None, f"{name}.csv is in the package but the manifest says file.{name}={p.manifest.get('file.' + name, '(missing)')}")


@_check("OR-CSV-MAN-008", "Manifest", "the manifest names every 1.2 file (file.<name>, absent when not supplied)", required=False)
def _man_complete(p: Package) -> None:
    _need_manifest(p)
    missing = [n for n in COLUMNS if n not in JOIN_FILES and f"file.{n}" not in p.manifest]
    if missing:
        emit(p, "manifest", None, None, f"no file.<name> entry for {', '.join(missing)}")


@_check("OR-CSV-MAN-009", "Manifest", "no manifest property is given twice")
def _man_dupes(p: Package) -> None:
    _need_manifest(p)
    for key in p.manifest_dupes:
        emit(p, "manifest", None, "propertyName", f"{key} is given more than once")


@_check("OR-CSV-MAN-010", "Manifest", "source.systemName names the system that produced the package", required=False)
def _man_source(p: Package) -> None:
    _need_manifest(p)
    if not p.manifest.get("source.systemName"):
        emit(p, "manifest", None, None, "no source.systemName")


__all__ = ["COLUMNS", "KIT", "Package", "load"]
