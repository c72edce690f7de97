"""Who may read which report over the API, and de-identified or not.

- ``mastery.readonly``: every report, identified or (``deidentified=true``) not;
  grouping or filtering by a demographic in identified mode also needs
  ``roster-demographics.readonly`` (the counts would otherwise disclose them).
- ``reports.deidentified`` alone (a state education agency's pull): de-identified
  reports only; asking for ``deidentified=false`` is refused (403).

Learner pseudonyms are keyed with the server's ``TESSERA_REPORT_SALT`` environment
variable, which is never logged nor returned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..auth import Principal
from ..errors import ScopeError
from .deidentify import DEFAULT_MIN_CELL, Deidentify, salt_from_env
from .scope import PERSON_GROUPINGS, Scope, bad

SALT_ENV = "TESSERA_REPORT_SALT"
FULL, DEIDENTIFIED = "mastery.readonly", "reports.deidentified"
DEMOGRAPHIC = PERSON_GROUPINGS - {"grade"}


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad(name, "expected true or false")
    return value == "true"


def _min_cell(value: str | None) -> int:
    if value is None:
        return DEFAULT_MIN_CELL
    try:
        return int(value)
    except ValueError:
        raise bad("min_cell", "must be an integer of at least 1") from None


def deidentify_for(q: Mapping[str, str], principal: Principal, scope: Scope) -> Deidentify | None:
    """De-identified or not, from ``deidentified`` and ``min_cell`` and what the client may read."""
    asked = _flag("deidentified", q.get("deidentified"))
    if not principal.has(FULL):
        if asked is False:
            raise ScopeError(f"identified reports need the scope {FULL}; this client may read de-identified reports only",
                             required=[FULL])
        asked = True
    min_cell = _min_cell(q.get("min_cell"))
    if asked:
        return Deidentify(salt=salt_from_env(SALT_ENV) if os.environ.get(SALT_ENV) else None, min_cell=min_cell)
    if "min_cell" in q:
        raise bad("min_cell", "goes with deidentified=true")
    if (scope.group_by in DEMOGRAPHIC or scope.group) and not principal.has("roster-demographics.readonly"):
        raise ScopeError("identified reports by demographic group need roster-demographics.readonly "
                         "(or ask for deidentified=true)", required=["roster-demographics.readonly"])
    return None


__all__ = ["DEIDENTIFIED", "DEMOGRAPHIC", "FULL", "SALT_ENV", "deidentify_for"]
