"""CASE 1.0 members <-> canonical fields (DESIGN section 3).

Which CASE member of a CFDocument, CFItem or CFAssociation maps onto which canonical field of
a Framework, Competency or Relation, and how its value converts each way. A member that has no
canonical field, or whose value the canonical field cannot reproduce exactly, is also kept in
``extensions["case"]`` (``split_members``), so the emitter rebuilds the original member for
member (``join_members``); a kept value is only used while it still maps to the canonical value.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from gateway.model import RelationType

from .formats import parse_datetime

#: Identifier system for CASE identifiers and URIs. CASE identifiers are globally unique
#: (1EdTech CASE 1.0 Information Model: UUID), so they live in one namespace, "case",
#: whichever connection brought the framework in.
ID_SYSTEM = "case"

#: CASE associationType <-> canonical RelationType (CASE 1.0 Information Model, CFAssociation)
ASSOCIATION_TYPES: dict[str, RelationType] = {
    "isChildOf": RelationType.is_child_of,
    "isPeerOf": RelationType.is_peer_of,
    "isPartOf": RelationType.is_part_of,
    "exactMatchOf": RelationType.exact_match_of,
    "precedes": RelationType.precedes,
    "isRelatedTo": RelationType.is_related_to,
    "replacedBy": RelationType.replaced_by,
    "exemplar": RelationType.exemplar,
    "hasSkillLevel": RelationType.has_skill_level,
}
RELATION_TO_CASE = {v.value: k for k, v in ASSOCIATION_TYPES.items()}

#: The CFDefinitions members (CASE 1.0 Information Model, CFDefinition); kept as given, no canonical record.
DEFINITION_KINDS = ("CFConcepts", "CFSubjects", "CFLicenses", "CFItemTypes", "CFAssociationGroupings")

# kind: how a CASE member's value becomes the canonical field's value (to_canonical) and
# back (_from_c). A value that does not come back identical is also kept in extensions["case"].


def to_canonical(kind: str, v: Any) -> Any:
    if v is None:
        return [] if kind == "list" else None
    if kind == "uuid":
        return v.lower()  # the schema checked the 8-4-4-4-12 form; pydantic makes the UUID (in Rust)
    if kind == "date":
        return date.fromisoformat(v[:10])
    if kind == "datetime":
        return parse_datetime(v)
    if kind == "list":
        return list(v) if isinstance(v, list) else [p.strip() for p in str(v).split(",") if p.strip()]
    if kind == "link":
        return v.get("uri") if isinstance(v, dict) else None
    return v


def _from_c(kind: str, v: Any) -> Any:
    if v is None or (kind == "list" and not v):
        return None
    if kind == "uuid":
        return str(v)
    if kind in ("date", "datetime"):
        return v.isoformat()
    if kind == "link":
        return None  # a LinkURI needs a title and an identifier the canonical field does not hold
    if kind == "list":
        return list(v)
    return v


def _load_c(kind: str, v: Any) -> Any:
    """A canonical field as stored (JSON) -> the Python value to_canonical produces."""
    if v is None:
        return [] if kind == "list" else None
    if kind == "uuid":
        return str(v).lower()
    if kind == "date":
        return date.fromisoformat(v)
    if kind == "datetime":
        return parse_datetime(v)
    return v


# CASE member -> (canonical field, kind). Order = the order members are emitted in.
DOCUMENT_FIELDS: dict[str, tuple[str, str]] = {
    "identifier": ("guid", "uuid"),
    "uri": ("uri", "str"),
    "creator": ("creator", "str"),
    "title": ("title", "str"),
    "lastChangeDateTime": ("published_at", "datetime"),
    "officialSourceURL": ("official_source_url", "str"),
    "publisher": ("publisher", "str"),
    "description": ("description", "str"),
    "subject": ("subjects", "list"),
    "language": ("language", "str"),
    "version": ("version", "str"),
    "adoptionStatus": ("adoption_status", "str"),
    "statusStartDate": ("status_start_date", "date"),
    "statusEndDate": ("status_end_date", "date"),
    "licenseURI": ("license_uri", "link"),
    "notes": ("notes", "str"),
}
ITEM_FIELDS: dict[str, tuple[str, str]] = {
    "identifier": ("guid", "uuid"),
    "fullStatement": ("statement", "str"),
    "alternativeLabel": ("alternative_label", "str"),
    "CFItemType": ("item_type", "str"),
    "uri": ("uri", "str"),
    "humanCodingScheme": ("code", "str"),
    "listEnumeration": ("list_enumeration", "str"),
    "abbreviatedStatement": ("short_statement", "str"),
    "conceptKeywords": ("concept_keywords", "list"),
    "notes": ("notes", "str"),
    "language": ("language", "str"),
    "educationLevel": ("education_levels", "list"),
    "licenseURI": ("license_uri", "link"),
    "statusStartDate": ("status_start_date", "date"),
    "statusEndDate": ("status_end_date", "date"),
    "lastChangeDateTime": ("published_at", "datetime"),
}
#: Members some providers use in place of the CASE name (OpenSALT's early "educationalLevel").
ITEM_ALIASES = {"educationalLevel": "educationLevel"}
ASSOCIATION_FIELDS: dict[str, tuple[str, str]] = {
    "sequenceNumber": ("sequence", "int"),
    "lastChangeDateTime": ("published_at", "datetime"),
}
CANONICAL_TO_CASE = {
    "framework": {c: k for k, (c, _) in DOCUMENT_FIELDS.items()},
    "competency": {c: k for k, (c, _) in ITEM_FIELDS.items()},
    "relation": {"sequence": "sequenceNumber", "published_at": "lastChangeDateTime", "type": "associationType",
                 "origin_uri": "originNodeURI", "destination_uri": "destinationNodeURI", "grouping": "CFAssociationGroupingURI"},
}


def split_members(raw: dict[str, Any], spec: dict[str, tuple[str, str]], canon: dict[str, Any], kept: dict[str, Any]) -> None:
    """CASE members -> canonical fields (in ``canon``) and the members kept for round trips."""
    for k, v in raw.items():
        f = spec.get(k)
        if f is None:
            kept[k] = v
            continue
        name, kind = f
        cv = to_canonical(kind, v)
        canon[name] = cv
        if is_lossy(kind, v, cv):
            kept[k] = v


def is_lossy(kind: str, raw: Any, canonical: Any) -> bool:
    """Would the canonical value, as stored, not give back ``raw``? Date-times always keep the
    publisher's spelling (the store writes UTC as "Z", CASE providers mostly "+00:00")."""
    return raw is None or kind == "datetime" or _from_c(kind, canonical) != raw


def join_members(doc: dict[str, Any], spec: dict[str, tuple[str, str]], kept: dict[str, Any], out: dict[str, Any],
          skip: frozenset[str] = frozenset()) -> None:
    """Canonical fields (as stored, JSON) + kept members -> CASE members; a kept value is used
    only while it still maps to the canonical value. A stored canonical value is already in
    CASE's form (UUIDs lower case, ISO 8601 dates and date-times), except a link's URI."""
    for k, (name, kind) in spec.items():
        v = doc.get(name)
        if k in kept:
            try:
                same = to_canonical(kind, kept[k]) == _load_c(kind, v)
            except (ValueError, TypeError, AttributeError):
                same = False
            if same:
                out[k] = kept[k]
                continue
        if v is None or v == [] or kind == "link" or k in skip:
            continue
        out[k] = v
    for k, v in kept.items():
        if k not in out and k not in spec:
            out[k] = v



__all__ = [
    "ASSOCIATION_FIELDS", "ASSOCIATION_TYPES", "CANONICAL_TO_CASE", "DEFINITION_KINDS", "DOCUMENT_FIELDS", "ID_SYSTEM",
    "ITEM_ALIASES", "ITEM_FIELDS", "RELATION_TO_CASE", "is_lossy", "join_members", "split_members", "to_canonical",
]
