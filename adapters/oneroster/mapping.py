"""OneRoster 1.1 / 1.2 objects -> canonical records.

One OneRoster object in its REST JSON shape (camelCase; GUIDRefs as
``{"sourcedId": ..., "type": ...}``, or plain sourcedId strings as the CSV binding gives
them) becomes one canonical record; ``to_wire`` is the way back, ``demographics`` the
demographics objects, ``vocab`` the type and token tables, ``values`` the small parse and
format helpers. The CSV importer (``csv.importer``), the REST client and the REST provider
all go through these, so the bindings map identically.

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
* user passwords and every other credential-like field (``credentials``) are never part of
  a record: ``password``, ``metadata.pin``, ``userProfiles[].credentials[].password`` are
  left out here; 1.2 ``userProfiles`` are kept in ``extensions["oneroster"]`` without them.
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
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from gateway.errors import ErrorDetail, ValidationError
from gateway.model import (
    AcademicSession,
    Course,
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

from .credentials import clean_profiles, is_credential_name, scrub_metadata
from .values import (
    Fields,
    blank,
    collection_of,
    normalize_version,
    parse_bool,
    parse_date,
    parse_datetime,
    ref_id,
    ref_ids,
    str_list,
)
from .vocab import WIRE_KINDS, roles, vocabularies

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



def scrub_extras(extras: dict[str, Any]) -> dict[str, Any]:
    """Kept fields without any credential (``credentials``): a password is never stored in a record."""
    for k in [k for k in extras if is_credential_name(k)]:
        del extras[k]
    if "metadata" in extras:
        meta = scrub_metadata(extras["metadata"])
        if meta is None:
            del extras["metadata"]
        else:
            extras["metadata"] = meta
    return extras


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
    f = Fields(obj, location)
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

    extras = scrub_extras(f.extras())
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
    f: Fields,
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
            extra = {k: v for k, v in r.items() if k not in ("role", "roleType", "org", "beginDate", "endDate", "userProfile") and not blank(v)}
            if extra:
                ext.setdefault("_roleExtras", {})[str(i)] = extra
            org_roles.append(item)
        if any(p for p in profiles):
            ext["_roleUserProfiles"] = profiles
    fields["roles"] = org_roles
    # 1.2 userProfiles: kept (extensions) without their credentials' passwords (``credentials``)
    profiles = clean_profiles(f.get("userProfiles"), f.error)
    if profiles:
        ext["userProfiles"] = profiles
    # identity: DESIGN section 3
    f.used.update(("identifier", "userMasterIdentifier", "userIds"))
    for key, kind in (("identifier", "oneroster.identifier"), ("userMasterIdentifier", "oneroster.userMasterIdentifier")):
        v = f.obj.get(key)
        if not blank(v):
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


__all__ = ["COMMON_FIELD_NAMES", "FIELD_NAMES", "enrollment_record", "ref_record_id", "to_canonical"]
