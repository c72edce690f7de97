"""Aggregate mastery reports under grants: a state reads the reports of every district that
granted it ``reports``, side by side, each tagged with its district.

Only aggregate kinds exist under a grant (``distribution``, ``progression``,
``evidence-volume``): never a row per learner. Every report is built de-identified by
``gateway.reports`` itself, each district's table on its own, with small cells suppressed
(and complementary cells) exactly as a district's own de-identified reports are; a reader may
raise ``min_cell`` but never lower it below the default. A grant must also cover the kind of
records a report counts (``mastery_state`` for distribution and progression, ``evidence``
for evidence volume). Each district's report is written to its grant's access log (who,
which report, how many rows).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import ErrorDetail, NotFound, ScopeError, ValidationError
from ..reports import DEFAULT_MIN_CELL, Deidentify, Report, Reports, Scope
from .grants import GrantStore

SCOPE = "reports"
#: report kind -> the record kind a grant must cover for it
KINDS: dict[str, str] = {"distribution": "mastery_state", "progression": "mastery_state", "evidence-volume": "evidence"}


class GrantedReports:
    def __init__(self, reports: Reports, grants: GrantStore) -> None:
        self.reports, self.grants = reports, grants

    def build(self, reader: str, client_id: str, kind: str, scope: Scope, *, min_cell: int = DEFAULT_MIN_CELL,
              grant_id: uuid.UUID | None = None) -> Report:
        if kind not in KINDS:
            raise NotFound(f"no report {kind!r} under a grant; reports: {', '.join(KINDS)} (aggregates only)")
        if min_cell < DEFAULT_MIN_CELL:
            raise ValidationError("invalid report request", errors=[ErrorDetail(
                f"under a grant cells below {DEFAULT_MIN_CELL} are always suppressed; ask for {DEFAULT_MIN_CELL} or more",
                location="query", field="min_cell")])
        found = [g for g in self.grants.active_for(reader, SCOPE, grant_id=grant_id) if KINDS[kind] in g.kinds]
        if grant_id is not None and not found:
            raise ScopeError(f"grant {grant_id} is unknown, revoked, expired, does not allow {SCOPE} or does not cover "
                             f"{KINDS[kind]}", required=[SCOPE])
        deid = Deidentify(min_cell=min_cell)
        rows: list[dict[str, Any]] = []
        columns: tuple[str, ...] = ()
        notes: list[str] = []
        entries = []
        for g in sorted(found, key=lambda g: (g.grantor, str(g.id))):
            part = self.reports.build(kind, g.grantor, scope, deid)
            got = [{"tenant": g.grantor, "grant": str(g.id), **r} for r in part.rows]
            rows += got
            columns = ("tenant", "grant", *part.columns)
            notes = notes or list(part.notes)
            entries.append((g.id, f"report={kind} min_cell={min_cell}", len(got)))
        self.grants.log_many(entries, client_id=client_id, action="reports")
        if not columns:
            columns = ("tenant", "grant")
        params = {"kind": kind, "deidentified": True, "min_cell": min_cell, "districts": [g.grantor for g in found]}
        return Report(kind, columns, rows, params, notes)


__all__ = ["KINDS", "SCOPE", "GrantedReports"]
