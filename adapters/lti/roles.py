"""LIS role vocabulary <-> Tessera's canonical roles (``mappings/lti-roles.yaml``).

LTI 1.3 core A.2 names roles with LIS URIs (context roles such as
``membership#Instructor``, institution roles such as ``institution/person#Student``) and
lets a platform send the short context role names too. The mapping is data, reviewed by
integrators, so it lives in the YAML file; this module loads it once and answers both ways:
``canonical_role`` for a URI a platform sent (Tessera as a tool), ``lis_roles`` for the URIs
Tessera sends (as a platform: the id_token roles claim, NRPS members).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.model import Role

ROLES_FILE = Path(__file__).resolve().parents[2] / "mappings" / "lti-roles.yaml"


@cache
def _role_map() -> dict[str, Any]:
    return yaml.safe_load(ROLES_FILE.read_text(encoding="utf-8"))


def lis_roles(role: str | None) -> list[str]:
    """The LIS role URIs Tessera sends for a canonical role (mappings/lti-roles.yaml)."""
    return list(_role_map()["from_canonical"].get(role or "", [])) if role else []


def canonical_role(uri: str) -> str:
    return _role_map()["to_canonical"].get(uri, "other")


def primary_role(roles: list[str]) -> Role:
    """The launch's role in its context: teacher before aide before learner (mappings/lti-roles.yaml)."""
    found = {canonical_role(r) for r in roles if isinstance(r, str)}
    for role in ("teacher", "aide", "administrator", "student", "guardian", "staff"):
        if role in found:
            return Role(role)
    return Role.other


__all__ = ["ROLES_FILE", "canonical_role", "lis_roles", "primary_role"]
