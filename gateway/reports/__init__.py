"""Reports for schools, districts and states: where learners stand, how they progress, how
much evidence arrives, and the course grades mastery maps to - counted by the database,
exported as CSV, NDJSON or JSON (``GET /v1/reports/{kind}``, ``tessera export report``).

Reports read the mastery engine's states (``gateway.mastery``); the engine knows nothing of
reports. The modules, in the order they build on each other:

- ``scope``: a report's parameters (``Scope``, ``parse_scope``), the report kinds and
  groupings, and ``BadReportRequest`` (400 naming the parameter).
- ``deidentify``: pseudonymous learners (HMAC-SHA256 with a salt from the environment) and
  small-cell suppression with complementary cells (``suppress``).
- ``formats``: the built ``Report`` and its CSV, NDJSON and JSON renderings (``FORMATS``).
- ``sources``: where the states come from (``StoredStates``: counted in SQL on the current
  states; ``AsOfStates``: re-derived by the engine as of a past date) and the grouped counts.
- ``population``: who is in a report (orgs, sections, grades, demographic groups from the
  roster) and which competencies it covers.
- ``progression``: progression statuses and their thresholds (mappings/report-thresholds.yaml).
- ``grades``: the bridge to traditional course grades (mappings/mastery-grades.yaml).
- ``builder``: ``Reports``, which builds every kind (distribution, progression,
  evidence-volume, states, grades) from the above.
- ``access``: who may read which report over the API, identified or de-identified.
- ``cli``: ``tessera export report`` (``register(export_app, console=..., open_store=...)``).

The public names most callers need are importable from here.
"""

from __future__ import annotations

from .builder import Reports
from .deidentify import DEFAULT_MIN_CELL, SUPPRESSED, Deidentify, salt_from_env, suppress
from .formats import FORMATS, Report, to_csv, to_json, to_ndjson
from .grades import GradeMapping, GradeRule, grade_report, load_grade_mapping
from .population import Population, resolve_population
from .progression import STATUSES, Thresholds, load_thresholds
from .scope import GROUP_BY, KINDS, BadReportRequest, Scope, parse_scope
from .sources import AsOfStates, StoredStates

__all__ = [
    "DEFAULT_MIN_CELL", "FORMATS", "GROUP_BY", "KINDS", "STATUSES", "SUPPRESSED", "AsOfStates", "BadReportRequest",
    "Deidentify", "GradeMapping", "GradeRule", "Population", "Report", "Reports", "Scope", "StoredStates", "Thresholds",
    "grade_report", "load_grade_mapping", "load_thresholds", "parse_scope", "resolve_population", "salt_from_env",
    "suppress", "to_csv", "to_json", "to_ndjson",
]
