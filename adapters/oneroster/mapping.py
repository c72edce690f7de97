"""OneRoster 1.1 / 1.2 objects <-> canonical records.

One OneRoster object in its REST JSON shape (camelCase; GUIDRefs as
``{"sourcedId": ..., "type": ...}``, or plain sourcedId strings as the CSV binding gives
them) becomes one canonical record, and back. The CSV importer (``csv.importer``) and the
REST provider both go through here, so the two bindings map identically.

Spec choices (OneRoster 1.2 Rostering Information Model section 4, 1.1 section 4):

* ``native_id`` is the sourcedId; a reference is ``record_id(tenant, kind, source, sourcedId)``
  (OneRoster only promises sourcedIds unique per type; the canonical id includes the kind).
* ``dateLastModified`` is the source's clock and becomes ``source_updated_at``; on the way
  out ``dateLastModified`` is Tessera's ``updated_at`` (REST watermarks follow the gateway's
  clock) unless ``use_source_date`` asks for the source's (bulk CSV export, so a package
  re-imports unchanged).
* every field without a canonical twin (``metadata``, ``userMasterIdentifier``, pronouns,
  ``resources``, ``primaryOrg``...) is kept in ``extensions["oneroster"]`` and put back by
  ``to_wire``: a round trip in one version is lossless.
* 1.1 users have one ``role`` and ``orgs``; 1.2 users have ``roles[]`` with roleType
  primary/secondary. Both map onto ``Person.roles`` (OrgRole per org).
* vocabularies (roles, org types, session types, class types, sex) are in
  ``mappings/oneroster-vocabularies.yaml``.
* identity (DESIGN section 3): a user gets identifiers ``(source, "oneroster.sourcedId",
  sourcedId)``, ``(source, "oneroster.identifier", identifier)``,
  ``(source, "oneroster.userMasterIdentifier", ...)``, one ``(source, "oneroster.userId.<type>",
  identifier)`` per userIds entry and ``(source, "email", lower-cased email)``. Orgs,
  sessions, courses and classes get their ``oneroster.sourcedId`` (LTI's LIS claims name
  classes and people by it). Enrollments get none: nothing resolves an enrollment by an
  identifier (its sourcedId is its ``native_id``, which its id derives from and the store
  indexes), as an LTI enrollment has none, and a district's million enrollments would
  otherwise add a million rows to the identifier index, a tenth of a bulk import's work.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from gateway import PROJECT_ROOT
from gateway.errors import ConfigError, ErrorDetail, ValidationError
from gateway.model import (
    AcademicSession,
    Course,
    Demographics,
    Enrollment,
    Identifier,
    Org,
    Person,
    Record,
    Role,
    Section,
    Status,
    pydantic_errors,
    record_id,
)

VERSIONS = ("1.1", "1.2")

#: OneRoster collection / object type -> canonical kind.
WIRE_KINDS: dict[str, str] = {
    "orgs": "org",
    "academicSessions": "academic_session",
    "courses": "course",
    "classes": "section",
    "users": "person",
    "enrollments": "enrollment",
}
#: canonical kind -> OneRoster collection.
KIND_COLLECTIONS: dict[str, str] = {v: k for k, v in WIRE_KINDS.items()}
#: singular OneRoster type names (as in GUIDRef ``type``) accepted for ``obj_type`` too.
SINGULAR: dict[str, str] = {
    "org": "orgs",
    "academicSession": "academicSessions",
    "course": "courses",
    "class": "classes",
    "user": "users",
    "enrollment": "enrollments",
}
#: canonical kind -> GUIDRef ``type``.
GUID_TYPES: dict[str, str] = {
    "org": "org",
    "academic_session": "academicSession",
    "course": "course",
    "section": "class",
    "person": "user",
    "enrollment": "enrollment",
}

MAPPINGS = PROJECT_ROOT / "mappings" / "oneroster-vocabularies.yaml"

#: Fields every OneRoster base object has; handled for every type.
BASE_FIELDS = ("sourcedId", "status", "dateLastModified")

#: Per type: canonical field name -> OneRoster field name, for error messages.
FIELD_NAMES: dict[str, dict[str, str]] = {
    "orgs": {"name": "name", "type": "type", "code": "identifier", "parent_id": "parent"},
    "academicSessions": {
        "title": "title", "type": "type", "start_date": "startDate", "end_date": "endDate",
        "school_year": "schoolYear", "parent_id": "parent", "org_id": "org",
    },
    "courses": {
        "title": "title", "code": "courseCode", "org_id": "org", "session_id": "schoolYear",
        "grades": "grades", "subjects": "subjects", "subject_codes": "subjectCodes",
    },
    "classes": {
        "title": "title", "code": "classCode", "type": "classType", "course_id": "course", "org_id": "school",
        "session_ids": "terms", "location": "location", "periods": "periods", "grades": "grades", "subjects": "subjects",
    },
    "users": {
        "given_name": "givenName", "family_name": "familyName", "middle_name": "middleName",
        "preferred_name": "preferredFirstName", "username": "username", "email": "email", "phone": "phone",
        "sms": "sms", "enabled": "enabledUser", "roles": "roles", "grades": "grades", "agent_ids": "agents",
        "demographics": "demographics",
    },
    "enrollments": {
        "person_id": "user", "section_id": "class", "org_id": "school", "role": "role", "primary": "primary",
        "begin_date": "beginDate", "end_date": "endDate",
    },
}
COMMON_FIELD_NAMES = {
    "native_id": "sourcedId", "status": "status", "source_updated_at": "dateLastModified",
    "identifiers": "sourcedId", "extensions": "metadata",
}


# --------------------------------------------------------------------------- vocabularies


class Vocab:
    """One wire <-> canonical vocabulary."""

    def __init__(self, inbound: dict[str, str], outbound: dict[str, str]) -> None:
        self.inbound = dict(inbound)
        self.outbound = {v: k for k, v in inbound.items()}
        # when several wire tokens map to one canonical value the first listed wins,
        # unless "out" names one explicitly
        for k, v in reversed(list(inbound.items())):
            self.outbound[v] = k
        self.outbound.update(outbound)

    def to_canonical(self, token: str) -> str | None:
        return self.inbound.get(token)

    def to_wire(self, value: str) -> str:
        return self.outbound.get(value, value)

    @property
    def tokens(self) -> list[str]:
        return list(self.inbound)


@functools.cache
def vocabularies() -> dict[str, Any]:
    """The tables of ``mappings/oneroster-vocabularies.yaml``, loaded once."""
    data = yaml.safe_load(MAPPINGS.read_text(encoding="utf-8"))
    try:
        out: dict[str, Any] = {"roles": {}}
        for version in VERSIONS:
            table = data["roles"][version]
            out["roles"][version] = Vocab(table["in"], table.get("out") or {})
        for name in ("org_types", "session_types", "class_types", "sexes"):
            out[name] = Vocab(data[name]["in"], data[name].get("out") or {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{MAPPINGS.name}: missing or malformed table ({exc!r}); see the comments at its top") from None
    return out


def roles(version: str) -> Vocab:
    return vocabularies()["roles"]["1.1" if version.startswith("1.1") else "1.2"]


# --------------------------------------------------------------------------- small helpers


@functools.lru_cache(maxsize=64)
def normalize_version(version: str) -> str:
    v = str(version).strip().lower().lstrip("v").replace("p", ".")
    if v in ("1.1", "1.1.0"):
        return "1.1"
    if v in ("1.2", "1.2.0"):
        return "1.2"
    raise ValidationError(f"unsupported OneRoster version {version!r}; supported: 1.1, 1.2")


def collection_of(obj_type: str) -> str:
    if obj_type in WIRE_KINDS:
        return obj_type
    if obj_type in SINGULAR:
        return SINGULAR[obj_type]
    raise ValidationError(f"unknown OneRoster type {obj_type!r}; expected one of {sorted(WIRE_KINDS)}")


def format_datetime(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and ``Z`` (OneRoster 1.2 DateTime)."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    s = str(value).strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        # a bare date is a datetime at midnight UTC (seen in many SIS exports)
        try:
            d = date.fromisoformat(s)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time (e.g. 2024-08-01T12:00:00.000Z)") from None
        dt = datetime(d.year, d.month, d.day)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    s = str(value).strip()
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s == "true":
        return True
    if s == "false":
        return False
    raise ValueError(f"{value!r} is not a boolean (true or false)")


def ref_id(value: Any) -> str | None:
    """sourcedId of a GUIDRef given as ``{"sourcedId": ...}`` or a plain string."""
    if value is None:
        return None
    if isinstance(value, dict):
        sid = value.get("sourcedId")
        return str(sid) if sid not in (None, "") else None
    s = str(value).strip()
    return s or None


def ref_ids(value: Any) -> list[str]:
    """sourcedIds of a GUIDRef list (a JSON list, or a CSV comma-separated string)."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    out = []
    for v in value:
        s = ref_id(v)
        if s:
            out.append(s)
    return out


def str_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(v) for v in value]


def guid_ref(kind: str, sid: str) -> dict[str, str]:
    coll = KIND_COLLECTIONS.get(kind, kind)
    return {"href": f"/{coll}/{sid}", "sourcedId": sid, "type": GUID_TYPES.get(kind, kind)}


_CONTAINERS = (list, dict)  # a tuple: ``list | dict`` would build a union object per call


def _blank(v: Any) -> bool:
    # not ``v == []``: comparing every string of a 50,000-user file with a list and a dict
    # took a tenth of reading it
    return v is None or v == "" or (isinstance(v, _CONTAINERS) and not v)


class _Fields:
    """Reads fields of one wire object, recording which were used and every problem."""

    def __init__(self, obj: dict[str, Any], location: str | None) -> None:
        self.obj = obj
        self.used: set[str] = set(BASE_FIELDS)
        self.errors: list[ErrorDetail] = []
        self.location = location

    def get(self, name: str, *, required: bool = False) -> Any:
        self.used.add(name)
        v = self.obj.get(name)
        if _blank(v):
            if required:
                self.error(name, f"{name} is required")
            return None
        return v

    def error(self, name: str, message: str) -> None:
        self.errors.append(ErrorDetail(message, location=self.location, field=name))

    def convert(self, name: str, fn: Callable[[Any], Any], *, required: bool = False) -> Any:
        v = self.get(name, required=required)
        if v is None:
            return None
        try:
            return fn(v)
        except ValueError as exc:
            self.error(name, str(exc))
            return None

    def enum(self, name: str, vocab: Vocab, *, required: bool = False, what: str = "value") -> str | None:
        v = self.get(name, required=required)
        if v is None:
            return None
        out = vocab.to_canonical(str(v))
        if out is None:
            self.error(name, f"{v!r} is not a OneRoster {what}; expected one of {vocab.tokens}")
        return out

    def extras(self) -> dict[str, Any]:
        return {k: v for k, v in self.obj.items() if k not in self.used and not _blank(v)}


# --------------------------------------------------------------------------- wire -> canonical


#: a million enrollments name the same few thousand classes and users: referenced ids are cached.
ref_record_id = functools.lru_cache(maxsize=1 << 17)(record_id)


def to_canonical(
    obj_type: str,
    obj: dict[str, Any],
    *,
    tenant: str,
    source: str,
    version: str = "1.2",
    location: str | None = None,
) -> Record:
    """One OneRoster object (REST JSON shape; CSV strings accepted) -> one canonical record.

    Raises ``ValidationError`` listing every problem with the OneRoster field name."""
    version = normalize_version(version)
    coll = collection_of(obj_type)
    if coll == "enrollments":
        fast = _enrollment_fast(obj, tenant, source, version)
        if fast is not None:
            return fast
    kind = WIRE_KINDS[coll]
    f = _Fields(obj, location)
    sid = ref_id(obj.get("sourcedId"))
    if not sid:
        f.error("sourcedId", "sourcedId is required")
        sid = "?"
    status = obj.get("status") or "active"
    if status not in ("active", "tobedeleted"):
        f.error("status", f"{status!r} is not a OneRoster status; expected active or tobedeleted")
        status = "active"
    modified = f.convert("dateLastModified", parse_datetime)

    def ref(k: str, s: str | None) -> uuid.UUID | None:
        return ref_record_id(tenant, k, source, s) if s else None

    fields: dict[str, Any] = {}
    identifiers = [Identifier(system=source, kind="oneroster.sourcedId", value=sid)] if coll != "enrollments" else []
    ext_keep: dict[str, Any] = {}

    if coll == "orgs":
        fields["name"] = f.get("name", required=True)
        fields["type"] = f.enum("type", vocabularies()["org_types"], required=True, what="org type")
        fields["code"] = f.get("identifier")
        fields["parent_id"] = ref("org", ref_id(f.get("parent")))
        f.used.add("children")  # derived from the children's parent; never stored twice
        if fields["code"]:
            identifiers.append(Identifier(system=source, kind="oneroster.identifier", value=str(fields["code"])))
    elif coll == "academicSessions":
        fields["title"] = f.get("title", required=True)
        fields["type"] = f.enum("type", vocabularies()["session_types"], required=True, what="session type")
        fields["start_date"] = f.convert("startDate", parse_date, required=True)
        fields["end_date"] = f.convert("endDate", parse_date, required=True)
        fields["school_year"] = f.convert("schoolYear", _year, required=True)
        fields["parent_id"] = ref("academic_session", ref_id(f.get("parent")))
        fields["org_id"] = ref("org", ref_id(f.get("org")))
        f.used.add("children")
    elif coll == "courses":
        fields["title"] = f.get("title", required=True)
        fields["code"] = f.get("courseCode")
        fields["org_id"] = ref("org", ref_id(f.get("org", required=True)))
        fields["session_id"] = ref("academic_session", ref_id(f.get("schoolYear")))
        fields["grades"] = str_list(f.get("grades"))
        fields["subjects"] = str_list(f.get("subjects"))
        fields["subject_codes"] = str_list(f.get("subjectCodes"))
    elif coll == "classes":
        fields["title"] = f.get("title", required=True)
        fields["code"] = f.get("classCode")
        fields["type"] = f.enum("classType", vocabularies()["class_types"], what="class type") or "scheduled"
        if f.get("classType") is None:
            ext_keep["_noClassType"] = True
        fields["course_id"] = ref("course", ref_id(f.get("course", required=True)))
        fields["org_id"] = ref("org", ref_id(f.get("school", required=True)))
        fields["session_ids"] = [ref("academic_session", s) for s in ref_ids(f.get("terms", required=True))]
        fields["location"] = f.get("location")
        fields["periods"] = str_list(f.get("periods"))
        fields["grades"] = str_list(f.get("grades"))
        fields["subjects"] = str_list(f.get("subjects"))
        subject_codes = str_list(f.get("subjectCodes"))
        if subject_codes:
            ext_keep["subjectCodes"] = subject_codes
    elif coll == "users":
        _user_fields(f, fields, identifiers, ext_keep, tenant=tenant, source=source, version=version, ref=ref)
    elif coll == "enrollments":
        fields["person_id"] = ref("person", ref_id(f.get("user", required=True)))
        fields["section_id"] = ref("section", ref_id(f.get("class", required=True)))
        fields["org_id"] = ref("org", ref_id(f.get("school", required=True)))
        fields["role"] = f.enum("role", roles(version), required=True, what=f"{version} role")
        fields["primary"] = f.convert("primary", parse_bool) or False
        fields["begin_date"] = f.convert("beginDate", parse_date)
        fields["end_date"] = f.convert("endDate", parse_date)

    extras = f.extras()
    extras.update(ext_keep)
    if f.errors:
        raise ValidationError(f"invalid OneRoster {coll[:-1] if coll != 'classes' else 'class'}", errors=f.errors)
    cls = {"org": Org, "academic_session": AcademicSession, "course": Course, "section": Section,
           "person": Person, "enrollment": Enrollment}[kind]
    data = {k: v for k, v in fields.items() if v is not None}
    try:
        return cls(
            tenant=tenant,
            source=source,
            native_id=sid,
            identifiers=identifiers,
            status=status,
            source_updated_at=modified,
            extensions={"oneroster": extras} if extras else {},
            **data,
        )
    except PydanticValidationError as exc:
        names = {**COMMON_FIELD_NAMES, **FIELD_NAMES[coll]}
        errors = []
        for e in pydantic_errors(exc, location):
            field = e.field
            if field:
                head, sep, tail = field.partition(".")
                head_base, bracket, rest = head.partition("[")
                wire = names.get(head_base, head_base)
                field = wire + (bracket + rest if bracket else "") + (sep + tail if sep else "")
            errors.append(ErrorDetail(e.message, location=e.location, field=field))
        raise ValidationError(f"invalid OneRoster {coll}", errors=errors) from None


_ENROLLMENT_KEYS = frozenset(
    ["sourcedId", "status", "dateLastModified", "user", "class", "school", "role", "primary", "beginDate", "endDate"]
)
_STATUS = {"active": Status.active, "tobedeleted": Status.tobedeleted, None: Status.active}


def _enrollment_fast(obj: dict[str, Any], tenant: str, source: str, version: str) -> Enrollment | None:
    """The common, valid enrollment, built without pydantic's validation (a bulk file has
    a million of them). Checks exactly what validation would; returns None for anything
    unusual (extra fields, a bad value...), and the generic path then reports it."""
    if not obj.keys() <= _ENROLLMENT_KEYS:
        return None
    sid = obj.get("sourcedId")
    if not isinstance(sid, str) or not 0 < len(sid) <= 255:
        return None
    status = _STATUS.get(obj.get("status"))
    user, klass, school = ref_id(obj.get("user")), ref_id(obj.get("class")), ref_id(obj.get("school"))
    role = roles(version).to_canonical(str(obj.get("role")))
    if status is None or not user or not klass or not school or role is None:
        return None
    try:
        primary = parse_bool(obj["primary"]) if obj.get("primary") not in (None, "") else False
        begin = parse_date(obj["beginDate"]) if obj.get("beginDate") else None
        end = parse_date(obj["endDate"]) if obj.get("endDate") else None
        modified = parse_datetime(obj["dateLastModified"]) if obj.get("dateLastModified") else None
    except ValueError:
        return None
    if begin and end and end < begin:
        return None
    return enrollment_record(tenant, source, sid, status, modified, ref_record_id(tenant, "person", source, user),
                             ref_record_id(tenant, "section", source, klass), ref_record_id(tenant, "org", source, school),
                             _ROLES[role], primary, begin, end)


def enrollment_record(tenant: str, source: str, sid: str, status: Status, modified: datetime | None, person_id: uuid.UUID,
                      section_id: uuid.UUID, org_id: uuid.UUID, role: Role, primary: bool, begin: date | None,
                      end: date | None) -> Enrollment:
    """The Enrollment of values already checked as its validation would check them (see
    ``_enrollment_fast``; the CSV import's row fast path, ``csv.fast_rows.EnrollmentRows``),
    built without pydantic's validation."""
    return _enrollment({
        "kind": "enrollment",
        "id": record_id(tenant, "enrollment", source, sid),
        "tenant": tenant,
        "source": source,
        "native_id": sid,
        "identifiers": [],  # see the module docstring (identity)
        "status": status,
        "updated_at": None,
        "source_updated_at": modified,
        "extensions": {},
        "person_id": person_id,
        "section_id": section_id,
        "org_id": org_id,
        "role": role,
        "primary": primary,
        "begin_date": begin,
        "end_date": end,
    })


_ROLES = {r.value: r for r in Role}
_ENROLLMENT_FIELDS = ["kind", "id", "tenant", "source", "native_id", "identifiers", "status", "updated_at", "source_updated_at",
                      "extensions", "person_id", "section_id", "org_id", "role", "primary", "begin_date", "end_date"]


#: ``Enrollment.trusted_dict`` takes every field in the class's order (the record's JSON is
#: written in that order: ``gateway.store.streams``); should the class change, pydantic builds it
_enrollment: Callable[[dict[str, Any]], Enrollment] = (
    Enrollment.trusted_dict if list(Enrollment.model_fields) == _ENROLLMENT_FIELDS
    else lambda values: Enrollment.model_construct(**values)
)


def _year(v: Any) -> int:
    try:
        return int(str(v).strip())
    except ValueError:
        raise ValueError(f"{v!r} is not a year (e.g. 2025)") from None


def _user_fields(
    f: _Fields,
    fields: dict[str, Any],
    identifiers: list[Identifier],
    ext: dict[str, Any],
    *,
    tenant: str,
    source: str,
    version: str,
    ref: Callable[[str, str | None], uuid.UUID | None],
) -> None:
    fields["given_name"] = f.get("givenName", required=True)
    fields["family_name"] = f.get("familyName", required=True)
    fields["middle_name"] = f.get("middleName")
    fields["preferred_name"] = f.get("preferredFirstName") if version == "1.2" else None
    if version == "1.2" and fields["preferred_name"] is None and f.obj.get("preferredGivenName"):
        fields["preferred_name"] = f.get("preferredGivenName")  # the CSV binding's column name
        ext["_preferredGivenName"] = True
    fields["username"] = f.get("username", required=version == "1.1")
    fields["email"] = f.get("email")
    fields["phone"] = f.get("phone")
    fields["sms"] = f.get("sms")
    enabled = f.convert("enabledUser", parse_bool, required=True)
    fields["enabled"] = True if enabled is None else enabled
    fields["grades"] = str_list(f.get("grades"))
    fields["agent_ids"] = [ref("person", s) for s in ref_ids(f.get("agents"))]
    rv = roles(version)
    org_roles: list[dict[str, Any]] = []
    if version == "1.1":
        role = f.enum("role", rv, required=True, what="1.1 role")
        for i, org in enumerate(ref_ids(f.get("orgs", required=True))):
            org_roles.append({"role": role, "org_id": ref("org", org), "primary": i == 0})
    else:
        wire_roles = f.get("roles", required=True) or []
        profiles: list[Any] = []
        for i, r in enumerate(wire_roles):
            if not isinstance(r, dict):
                f.error(f"roles[{i}]", "expected an object with roleType, role and org")
                continue
            token = r.get("role")
            role = rv.to_canonical(str(token)) if token else None
            if role is None:
                f.error(f"roles[{i}].role", f"{token!r} is not a OneRoster 1.2 role; expected one of {rv.tokens}")
            rt = r.get("roleType")
            if rt not in ("primary", "secondary"):
                f.error(f"roles[{i}].roleType", f"{rt!r} is not a roleType; expected primary or secondary")
            org = ref_id(r.get("org"))
            if not org:
                f.error(f"roles[{i}].org", "org is required")
            item: dict[str, Any] = {"role": role, "org_id": ref("org", org), "primary": rt == "primary"}
            try:
                if r.get("beginDate"):
                    item["begin_date"] = parse_date(r["beginDate"])
                if r.get("endDate"):
                    item["end_date"] = parse_date(r["endDate"])
            except ValueError as exc:
                f.error(f"roles[{i}]", str(exc))
            profiles.append(r.get("userProfile"))
            extra = {k: v for k, v in r.items() if k not in ("role", "roleType", "org", "beginDate", "endDate", "userProfile") and not _blank(v)}
            if extra:
                ext.setdefault("_roleExtras", {})[str(i)] = extra
            org_roles.append(item)
        if any(p for p in profiles):
            ext["_roleUserProfiles"] = profiles
    fields["roles"] = org_roles
    # identity: DESIGN section 3
    f.used.update(("identifier", "userMasterIdentifier", "userIds"))
    for key, kind in (("identifier", "oneroster.identifier"), ("userMasterIdentifier", "oneroster.userMasterIdentifier")):
        v = f.obj.get(key)
        if not _blank(v):
            identifiers.append(Identifier(system=source, kind=kind, value=str(v)))
    user_ids = f.obj.get("userIds")
    if isinstance(user_ids, str):
        # CSV binding: "{type:identifier}" items, comma separated (1.1 and 1.2 section 2.x)
        parsed = []
        for part in ref_ids(user_ids):
            p = part.strip().strip("{}")
            t, sep, ident = p.partition(":")
            if not sep or not t or not ident:
                f.error("userIds", f"{part!r} is not a {{type:identifier}} pair")
                continue
            parsed.append({"type": t, "identifier": ident})
        user_ids = parsed
    for u in user_ids or []:
        if isinstance(u, dict) and u.get("type") and u.get("identifier"):
            identifiers.append(Identifier(system=source, kind=f"oneroster.userId.{u['type']}"[:64], value=str(u["identifier"])))
    if fields["email"]:
        identifiers.append(Identifier(system=source, kind="email", value=str(fields["email"]).lower()))


def demographics_to_canonical(obj: dict[str, Any], *, location: str | None = None) -> Demographics:
    """A OneRoster ``demographics`` object (keyed by the user's sourcedId) -> ``Demographics``.

    Race flags (americanIndianOrAlaskaNative, asian, blackOrAfricanAmerican,
    nativeHawaiianOrOtherPacificIslander, white, demographicRaceTwoOrMoreRaces) become race
    codes; hispanicOrLatinoEthnicity a boolean."""
    f = _Fields(obj, location)
    out: dict[str, Any] = {}
    out["birth_date"] = f.convert("birthDate", parse_date)
    out["sex"] = f.enum("sex", vocabularies()["sexes"], what="sex")
    races = []
    for wire, code in RACE_FLAGS.items():
        v = f.convert(wire, parse_bool)
        if v:
            races.append(code)
    out["races"] = races
    out["hispanic_or_latino"] = f.convert("hispanicOrLatinoEthnicity", parse_bool)
    out["birth_country"] = f.get("countryOfBirthCode")
    out["birth_state"] = f.get("stateOfBirthAbbreviation")
    out["public_school_residence_status"] = f.get("publicSchoolResidenceStatus")
    f.used.add("cityOfBirth")  # no canonical field; kept by the caller in extensions
    if f.errors:
        raise ValidationError("invalid OneRoster demographics", errors=f.errors)
    return Demographics(**{k: v for k, v in out.items() if v is not None})


RACE_FLAGS = {
    "americanIndianOrAlaskaNative": "american_indian_or_alaska_native",
    "asian": "asian",
    "blackOrAfricanAmerican": "black_or_african_american",
    "nativeHawaiianOrOtherPacificIslander": "native_hawaiian_or_other_pacific_islander",
    "white": "white",
    "demographicRaceTwoOrMoreRaces": "two_or_more_races",
}


def demographics_to_wire(person: Person, *, version: str = "1.2") -> dict[str, Any] | None:
    """``Person.demographics`` -> a OneRoster demographics object (sourcedId = the user's)."""
    d = person.demographics
    if d is None:
        return None
    sexes = vocabularies()["sexes"]
    ext = dict(person.extensions.get("oneroster_demographics") or {})
    out: dict[str, Any] = {
        "sourcedId": person.native_id,
        "status": ext.pop("status", None),
        "dateLastModified": ext.pop("dateLastModified", None),
        "birthDate": d.birth_date.isoformat() if d.birth_date else None,
        "sex": sexes.to_wire(d.sex.value) if d.sex else None,
    }
    for wire, code in RACE_FLAGS.items():
        out[wire] = "true" if code in d.races else "false"
    if d.hispanic_or_latino is not None:
        out["hispanicOrLatinoEthnicity"] = "true" if d.hispanic_or_latino else "false"
    out["countryOfBirthCode"] = d.birth_country
    out["stateOfBirthAbbreviation"] = d.birth_state
    out["publicSchoolResidenceStatus"] = d.public_school_residence_status
    ext.pop("status", None)
    for k, v in ext.items():
        out.setdefault(k, v)
        if out[k] is None:
            out[k] = v
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------- canonical -> wire


def to_wire(
    record: Record,
    *,
    version: str = "1.2",
    sourced_id: Callable[[str, uuid.UUID], str | None],
    use_source_date: bool = False,
) -> dict[str, Any]:
    """One canonical record -> one OneRoster object in the REST JSON shape of ``version``.

    ``sourced_id(kind, id)`` gives the sourcedId of a referenced record (its native_id), or
    None when unknown (the reference is then left out). GUIDRef ``href`` is relative to the
    rostering base path (``/orgs/{sourcedId}``)."""
    version = normalize_version(version)
    kind = record.KIND
    if kind not in KIND_COLLECTIONS:
        raise ValidationError(f"record kind {kind!r} has no OneRoster rostering type")
    ext = dict(record.extensions.get("oneroster") or {})
    when = record.source_updated_at if use_source_date else (record.updated_at or record.source_updated_at)
    out: dict[str, Any] = {
        "sourcedId": record.native_id,
        "status": record.status.value,
        "dateLastModified": format_datetime(when),
    }

    def ref(k: str, rid: uuid.UUID | None) -> dict[str, str] | None:
        if rid is None:
            return None
        sid = sourced_id(k, rid)
        return guid_ref(k, sid) if sid else None

    def refs(k: str, rids: list[uuid.UUID]) -> list[dict[str, str]]:
        return [r for r in (ref(k, x) for x in rids) if r]

    if isinstance(record, Org):
        out["name"] = record.name
        out["type"] = vocabularies()["org_types"].to_wire(record.type.value)
        out["identifier"] = record.code
        out["parent"] = ref("org", record.parent_id)
    elif isinstance(record, AcademicSession):
        out["title"] = record.title
        out["type"] = vocabularies()["session_types"].to_wire(record.type.value)
        out["startDate"] = record.start_date.isoformat()
        out["endDate"] = record.end_date.isoformat()
        out["parent"] = ref("academic_session", record.parent_id)
        out["schoolYear"] = str(record.school_year)
        if version == "1.2":
            out["org"] = ref("org", record.org_id)
    elif isinstance(record, Course):
        out["title"] = record.title
        out["schoolYear"] = ref("academic_session", record.session_id)
        out["courseCode"] = record.code
        out["grades"] = list(record.grades) or None
        out["subjects"] = list(record.subjects) or None
        out["org"] = ref("org", record.org_id)
        out["subjectCodes"] = list(record.subject_codes) or None
    elif isinstance(record, Section):
        out["title"] = record.title
        out["classCode"] = record.code
        if not ext.pop("_noClassType", False):
            out["classType"] = vocabularies()["class_types"].to_wire(record.type.value)
        out["location"] = record.location
        out["grades"] = list(record.grades) or None
        out["subjects"] = list(record.subjects) or None
        out["course"] = ref("course", record.course_id)
        out["school"] = ref("org", record.org_id)
        out["terms"] = refs("academic_session", record.session_ids)
        out["periods"] = list(record.periods) or None
    elif isinstance(record, Person):
        _user_wire(record, out, ext, version=version, ref=ref, refs=refs)
    elif isinstance(record, Enrollment):
        out["user"] = ref("person", record.person_id)
        out["class"] = ref("section", record.section_id)
        out["school"] = ref("org", record.org_id)
        out["role"] = roles(version).to_wire(record.role.value)
        out["primary"] = record.primary if version == "1.2" else ("true" if record.primary else "false")
        out["beginDate"] = record.begin_date.isoformat() if record.begin_date else None
        out["endDate"] = record.end_date.isoformat() if record.end_date else None
    for k, v in ext.items():
        if not k.startswith("_") and out.get(k) is None:
            out[k] = v
    return {k: v for k, v in out.items() if v is not None}


def _user_wire(
    p: Person,
    out: dict[str, Any],
    ext: dict[str, Any],
    *,
    version: str,
    ref: Callable[[str, uuid.UUID | None], dict[str, str] | None],
    refs: Callable[[str, list[uuid.UUID]], list[dict[str, str]]],
) -> None:
    rv = roles(version)
    out["username"] = p.username
    ids = []
    for ident in p.identifiers:
        if ident.kind.startswith("oneroster.userId."):
            ids.append({"type": ident.kind[len("oneroster.userId."):], "identifier": ident.value})
    out["userIds"] = ids or None
    out["enabledUser"] = p.enabled if version == "1.2" else ("true" if p.enabled else "false")
    out["givenName"] = p.given_name
    out["familyName"] = p.family_name
    out["middleName"] = p.middle_name
    for ident in p.identifiers:
        if ident.kind == "oneroster.identifier":
            out["identifier"] = ident.value
        elif ident.kind == "oneroster.userMasterIdentifier" and version == "1.2":
            out["userMasterIdentifier"] = ident.value
    out["email"] = p.email
    out["sms"] = p.sms
    out["phone"] = p.phone
    out["agents"] = refs("person", p.agent_ids) or None
    out["grades"] = list(p.grades) or None
    if version == "1.1":
        primary = p.primary_role
        out["role"] = rv.to_wire(primary.value) if primary else None
        seen: list[uuid.UUID] = []
        for r in p.roles:
            if r.org_id not in seen:
                seen.append(r.org_id)
        out["orgs"] = refs("org", seen)
    else:
        if p.preferred_name is not None:
            if ext.pop("_preferredGivenName", False):
                out["preferredGivenName"] = p.preferred_name
            else:
                out["preferredFirstName"] = p.preferred_name
        profiles = ext.pop("_roleUserProfiles", None) or []
        extras = ext.pop("_roleExtras", None) or {}
        wire_roles = []
        for i, r in enumerate(p.roles):
            item: dict[str, Any] = {"roleType": "primary" if r.primary else "secondary", "role": rv.to_wire(r.role.value)}
            org = ref("org", r.org_id)
            if org:
                item["org"] = org
            if i < len(profiles) and profiles[i]:
                item["userProfile"] = profiles[i]
            if r.begin_date:
                item["beginDate"] = r.begin_date.isoformat()
            if r.end_date:
                item["endDate"] = r.end_date.isoformat()
            item.update(extras.get(str(i), {}))
            wire_roles.append(item)
        out["roles"] = wire_roles
    ext.pop("_preferredGivenName", None)
    ext.pop("_roleUserProfiles", None)
    ext.pop("_roleExtras", None)


__all__ = [
    "GUID_TYPES", "KIND_COLLECTIONS", "RACE_FLAGS", "VERSIONS", "WIRE_KINDS", "Vocab", "collection_of",
    "demographics_to_canonical", "demographics_to_wire", "format_datetime", "guid_ref", "normalize_version",
    "parse_bool", "parse_date", "parse_datetime", "ref_id", "ref_ids", "roles", "to_canonical", "to_wire",
    "vocabularies",
]
