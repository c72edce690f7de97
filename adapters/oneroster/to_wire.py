"""Canonical rostering records -> OneRoster 1.1 / 1.2 objects in the REST JSON shape (the
way back of ``mapping``; the REST provider and the bulk CSV export both go through here).

* ``dateLastModified`` is Tessera's ``updated_at`` (REST watermarks follow the gateway's clock)
  unless ``use_source_date`` asks for the source's ``source_updated_at`` (bulk CSV export, so a
  package re-imports unchanged).
* every field ``mapping.to_canonical`` kept in ``extensions["oneroster"]`` is put back: a round
  trip in one version is lossless.
* no credential goes out (``credentials``): a credential-like field kept in extensions by
  other means than ``mapping`` (a canonical NDJSON record, say) is left out; a caller
  entitled to the sealed ones gets them added by ``credentials.reveal``.
* references become GUIDRefs (``values.guid_ref``) of the referenced record's sourcedId. A
  reference the record holds unresolved (its target is not stored: ``gateway.store.unresolved``)
  is shown with the sourcedId it was sent with, and its field is listed in
  ``metadata["tessera.unresolved"]`` (docs/oneroster-references.md) until the target is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from gateway.errors import ValidationError
from gateway.model import AcademicSession, Course, Enrollment, Org, Person, Record, Section
from gateway.store.unresolved import held

from .credentials import clean_profiles, is_credential_name, scrub_metadata
from .values import format_datetime, guid_ref, normalize_version
from .vocab import KIND_COLLECTIONS, roles, vocabularies


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

    names = held(record)
    kept: set[int] = set()  # the GUIDRefs of references held unresolved (by object identity)

    def ref(k: str, rid: uuid.UUID | None) -> dict[str, str] | None:
        if rid is None:
            return None
        sid = sourced_id(k, rid)
        if sid:
            return guid_ref(k, sid)
        name = names.get(rid)
        if name is None or name[0] != k:
            return None
        got = guid_ref(k, name[1])  # held unresolved: the name it was sent with
        kept.add(id(got))
        return got

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
    _mark_unresolved(record, out, ext, kept, names, sourced_id)
    for k, v in ext.items():
        if not k.startswith("_") and out.get(k) is None and not is_credential_name(k):
            out[k] = v
    if isinstance(out.get("metadata"), dict):  # a record written by other means than the mapping: still no secret
        out["metadata"] = scrub_metadata(out["metadata"])
    if out.get("userProfiles"):
        out["userProfiles"] = clean_profiles(out["userProfiles"], lambda _f, _m: None)
    return {k: v for k, v in out.items() if v is not None}


#: the ``metadata`` key listing the fields whose references are held unresolved (docs/oneroster-references.md)
UNRESOLVED_METADATA = "tessera.unresolved"


def _mark_unresolved(record: Record, out: dict[str, Any], ext: dict[str, Any], kept: set[int],
                     names: dict[uuid.UUID, tuple[str, str]], sourced_id: Callable[[str, uuid.UUID], str | None]) -> None:
    """``metadata["tessera.unresolved"]``: the wire fields of ``out`` holding a reference to an
    object not stored (yet), in field order; only what Tessera computes here is shown under
    that key (a value sent under it is dropped)."""
    meta = ext.get("metadata")
    if isinstance(meta, dict) and UNRESOLVED_METADATA in meta:
        meta = {k: v for k, v in meta.items() if k != UNRESOLVED_METADATA}
        ext["metadata"] = meta or None
    if not names:
        return
    fields = []
    for key, v in out.items():
        if isinstance(v, dict) and id(v) in kept:
            fields.append(key)
        elif isinstance(v, list) and any(isinstance(x, dict) and (id(x) in kept or id(x.get("org")) in kept) for x in v):
            fields.append(key)
    primary = ext.get("primaryOrg")
    if isinstance(primary, dict):  # 1.2 users: kept as sent (no canonical twin), named in the held list
        for rid, (kind, native) in names.items():
            if kind == "org" and native == primary.get("sourcedId") and not sourced_id("org", rid):
                fields.append("primaryOrg")
                break
    if fields:
        ext["metadata"] = {**(ext.get("metadata") or {}), UNRESOLVED_METADATA: fields}


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
        ext.pop("userProfiles", None)  # a 1.2 object: 1.1 users have none
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


__all__ = ["to_wire"]
