"""OneRoster object types and vocabularies: the collection <-> canonical kind tables and the
wire <-> canonical token tables (roles, org types, session types, class types, sex) of
``mappings/oneroster-vocabularies.yaml`` (OneRoster 1.2 Rostering Information Model section 4,
1.1 section 4)."""

from __future__ import annotations

import functools
from typing import Any

import yaml

from gateway import PROJECT_ROOT
from gateway.errors import ConfigError

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



__all__ = ["GUID_TYPES", "KIND_COLLECTIONS", "MAPPINGS", "SINGULAR", "VERSIONS", "WIRE_KINDS", "Vocab", "roles", "vocabularies"]
