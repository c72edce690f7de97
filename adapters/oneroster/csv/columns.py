"""The rostering files of the OneRoster CSV binding: their columns, the order they are read
in, what their references name, and a data row as its REST-shaped object.

OneRoster 1.1 CSV Tables section 2.x, 1.2 CSV Binding section 5.x. Each column is (CSV
column, REST field, conversion, required); the gradebook and resources files
(``gradebook.csv_files``) join them, read with the same header and row checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..gradebook.csv_files import CSV_COLUMNS
from ..vocab import WIRE_KINDS
from .cells import LIST, REF, REFS, S

_BASE = [("sourcedId", "sourcedId", S, True), ("status", "status", S, False), ("dateLastModified", "dateLastModified", S, False)]

COLUMNS: dict[str, dict[str, list[tuple[str, str, str, bool]]]] = {
    "1.1": {
        "academicSessions": _BASE + [
            ("title", "title", S, True), ("type", "type", S, True), ("startDate", "startDate", S, True),
            ("endDate", "endDate", S, True), ("parentSourcedId", "parent", REF, False), ("schoolYear", "schoolYear", S, True),
        ],
        "orgs": _BASE + [
            ("name", "name", S, True), ("type", "type", S, True), ("identifier", "identifier", S, False),
            ("parentSourcedId", "parent", REF, False),
        ],
        "courses": _BASE + [
            ("schoolYearSourcedId", "schoolYear", REF, False), ("title", "title", S, True), ("courseCode", "courseCode", S, False),
            ("grades", "grades", LIST, False), ("orgSourcedId", "org", REF, True), ("subjects", "subjects", LIST, False),
            ("subjectCodes", "subjectCodes", LIST, False),
        ],
        "classes": _BASE + [
            ("title", "title", S, True), ("grades", "grades", LIST, False), ("courseSourcedId", "course", REF, True),
            ("classCode", "classCode", S, False), ("classType", "classType", S, True), ("location", "location", S, False),
            ("schoolSourcedId", "school", REF, True), ("termSourcedIds", "terms", REFS, True), ("subjects", "subjects", LIST, False),
            ("subjectCodes", "subjectCodes", LIST, False), ("periods", "periods", LIST, False),
        ],
        "users": _BASE + [
            ("enabledUser", "enabledUser", S, True), ("orgSourcedIds", "orgs", REFS, True), ("role", "role", S, True),
            ("username", "username", S, True), ("userIds", "userIds", S, False), ("givenName", "givenName", S, True),
            ("familyName", "familyName", S, True), ("middleName", "middleName", S, False), ("identifier", "identifier", S, False),
            ("email", "email", S, False), ("sms", "sms", S, False), ("phone", "phone", S, False),
            ("agentSourcedIds", "agents", REFS, False), ("grades", "grades", LIST, False), ("password", "password", S, False),
        ],
        "enrollments": _BASE + [
            ("classSourcedId", "class", REF, True), ("schoolSourcedId", "school", REF, True), ("userSourcedId", "user", REF, True),
            ("role", "role", S, True), ("primary", "primary", S, False), ("beginDate", "beginDate", S, False),
            ("endDate", "endDate", S, False),
        ],
        "demographics": _BASE + [
            ("birthDate", "birthDate", S, False), ("sex", "sex", S, False),
            ("americanIndianOrAlaskaNative", "americanIndianOrAlaskaNative", S, False), ("asian", "asian", S, False),
            ("blackOrAfricanAmerican", "blackOrAfricanAmerican", S, False),
            ("nativeHawaiianOrOtherPacificIslander", "nativeHawaiianOrOtherPacificIslander", S, False), ("white", "white", S, False),
            ("demographicRaceTwoOrMoreRaces", "demographicRaceTwoOrMoreRaces", S, False),
            ("hispanicOrLatinoEthnicity", "hispanicOrLatinoEthnicity", S, False), ("countryOfBirthCode", "countryOfBirthCode", S, False),
            ("stateOfBirthAbbreviation", "stateOfBirthAbbreviation", S, False), ("cityOfBirth", "cityOfBirth", S, False),
            ("publicSchoolResidenceStatus", "publicSchoolResidenceStatus", S, False),
        ],
    },
}
_v12 = {k: list(v) for k, v in COLUMNS["1.1"].items()}
# 1.2 users.csv: no role/orgSourcedIds (they moved to roles.csv), new identity and preferred-name columns.
_v12["users"] = [c for c in _v12["users"] if c[0] not in ("orgSourcedIds", "role")] + [
    ("userMasterIdentifier", "userMasterIdentifier", S, False), ("resourceSourcedIds", "resources", REFS, False),
    ("preferredGivenName", "preferredFirstName", S, False), ("preferredMiddleName", "preferredMiddleName", S, False),
    ("preferredFamilyName", "preferredLastName", S, False), ("primaryOrgSourcedId", "primaryOrg", REF, False),
    ("pronouns", "pronouns", S, False),
]
_v12["users"] = [(c, f, t, r if c != "username" else False) for c, f, t, r in _v12["users"]]
_v12["roles"] = _BASE + [
    ("userSourcedId", "user", REF, True), ("roleType", "roleType", S, True), ("role", "role", S, True),
    ("beginDate", "beginDate", S, False), ("endDate", "endDate", S, False), ("orgSourcedId", "org", REF, True),
    ("userProfileSourcedId", "userProfile", S, False),
]
# 1.2 userProfiles.csv (CSV Binding 1.2 section 5.x): one row per profile and credential of a
# user; ``userProfiles`` turns a row into the REST user's ``userProfiles[]`` item
_v12["userProfiles"] = _BASE + [
    ("userSourcedId", "user", REF, True), ("profileType", "profileType", S, True), ("vendorId", "vendorId", S, True),
    ("applicationId", "applicationId", S, False), ("description", "description", S, False),
    ("credentialType", "credentialType", S, True), ("username", "username", S, True), ("password", "password", S, False),
]
COLUMNS["1.2"] = _v12
# the gradebook and resources files (``gradebook``), read with the same header and row checks
for _version, _files in CSV_COLUMNS.items():
    COLUMNS[_version].update(_files)

#: Reading order: every reference points to a file read earlier (or the same file).
ORDER = ["orgs", "academicSessions", "courses", "classes", "users", "userProfiles", "roles", "demographics", "enrollments"]
#: GUIDRef REST field -> referenced canonical kind, per file.
REF_KINDS: dict[str, dict[str, str]] = {
    "orgs": {"parent": "org"},
    "academicSessions": {"parent": "academic_session"},
    "courses": {"schoolYear": "academic_session", "org": "org"},
    "classes": {"course": "course", "school": "org", "terms": "academic_session"},
    "users": {"orgs": "org", "agents": "person", "primaryOrg": "org"},
    "userProfiles": {},  # its user is checked when the profile is put on it (``profiles.UserProfiles.apply``)
    "roles": {"user": "person", "org": "org"},
    "demographics": {},
    "enrollments": {"class": "section", "school": "org", "user": "person"},
}
FILE_OF_KIND = {v: k for k, v in WIRE_KINDS.items()}


def row_object(cols: list[tuple[str, str, str]], row: list[str], padded: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One CSV row as its REST-shaped object: empty cells left out, GUIDRefs as
    ``{"sourcedId": ...}``, lists split on commas, ``metadata.*`` columns in ``metadata``.
    Surrounding spaces are stripped, and ``padded(column)`` told of each column that had
    them (a deviation: ``tolerance``)."""
    obj: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for (c, f, t), raw in zip(cols, row, strict=True):
        v = raw.strip()
        if v is not raw and v != raw and padded is not None:  # identity first: a str unchanged is itself
            padded(c)
        if not v:
            continue
        if t == S:
            obj[f] = v
        elif t == REF:
            obj[f] = {"sourcedId": v}
        elif t == REFS:
            obj[f] = [{"sourcedId": p.strip()} for p in v.split(",") if p.strip()]
            if padded is not None and " " in v and any(p != p.strip() for p in v.split(",")):
                padded(c)  # "t1, t2": spaces around a list item
        elif t == LIST:
            obj[f] = [p.strip() for p in v.split(",") if p.strip()]
            if padded is not None and " " in v and any(p != p.strip() for p in v.split(",")):
                padded(c)
        else:
            meta[f[9:]] = v
    if meta:
        obj["metadata"] = meta
    return obj
