"""Progression metrics: a learner's status (accelerating, on track, needs short-term or
intensive support) from the share of their courses' competencies mastered against the
elapsed share of their sections' terms; the thresholds are data, in
mappings/report-thresholds.yaml.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import Connection, select

from .. import PROJECT_ROOT
from ..errors import ConfigError
from ..store import tables as t
from .population import active_rows

STATUSES = ("accelerating", "on_track", "needs_short_term_support", "needs_intensive_support", "no_expected_competencies")
THRESHOLDS = PROJECT_ROOT / "mappings" / "report-thresholds.yaml"


@dataclass(frozen=True)
class Thresholds:
    """Progression status thresholds on the pace (see mappings/report-thresholds.yaml)."""

    accelerating: float = 1.25
    on_track: float = 0.9
    short_term_support: float = 0.6
    min_expected_share: float = 0.1
    expected_share_without_term: float = 1.0

    def __post_init__(self) -> None:
        if not self.accelerating > self.on_track > self.short_term_support >= 0:
            raise ConfigError("progression thresholds must fall strictly: accelerating > on_track > short_term_support >= 0")
        if not 0 < self.min_expected_share <= 1:
            raise ConfigError("min_expected_share must be in (0, 1]")
        if not 0 <= self.expected_share_without_term <= 1:
            raise ConfigError("expected_share_without_term must be in [0, 1]")

    def status(self, mastered: int, expected: int, expected_share: float) -> str:
        if expected == 0:
            return "no_expected_competencies"
        pace = (mastered / expected) / max(expected_share, self.min_expected_share)
        if pace >= self.accelerating:
            return "accelerating"
        if pace >= self.on_track:
            return "on_track"
        if pace >= self.short_term_support:
            return "needs_short_term_support"
        return "needs_intensive_support"


def load_thresholds(path: Path | None = None) -> Thresholds:
    path = path or THRESHOLDS
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data.pop("version", None)
        return Thresholds(**{k: float(v) for k, v in data.items()})
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise ConfigError(f"{path.name}: {exc}; see the comments at its top") from None


@functools.cache
def default_thresholds() -> Thresholds:
    return load_thresholds()


@dataclass
class CoursePlan:
    """What ``course_plan`` reads for one report."""

    #: section -> (course, elapsed share of its term at the report date)
    sections: dict[uuid.UUID, tuple[uuid.UUID, float]]
    #: course -> its competencies
    competencies: dict[uuid.UUID, list[uuid.UUID]]


def course_plan(conn: Connection, tenant: str, section_ids: set[uuid.UUID], at: datetime, th: Thresholds) -> CoursePlan:
    """Courses and term dates of the given sections, read from their JSON (few per report)."""

    def docs(tbl: Any, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        ordered = sorted(ids)
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for i in range(0, len(ordered), 500):
            q = select(tbl.c.id, tbl.c.data).where(active_rows(tbl, tenant), tbl.c.id.in_(ordered[i : i + 500]))
            out.update((rid, orjson.loads(d)) for rid, d in conn.execute(q))
        return out

    secs = docs(t.sections, section_ids)
    courses = docs(t.courses, {uuid.UUID(s["course_id"]) for s in secs.values()})
    sessions = docs(t.academic_sessions, {uuid.UUID(x) for s in secs.values() for x in s.get("session_ids", ())})
    day = at.date()
    plan = CoursePlan({}, {cid: [uuid.UUID(c) for c in doc.get("competency_ids", ())] for cid, doc in courses.items()})
    for sid, s in secs.items():
        terms = [sessions[uuid.UUID(x)] for x in s.get("session_ids", ()) if uuid.UUID(x) in sessions]
        elapsed = th.expected_share_without_term
        if terms:
            start = min(date.fromisoformat(x["start_date"]) for x in terms)
            end = max(date.fromisoformat(x["end_date"]) for x in terms)
            span = (end - start).days
            elapsed = 1.0 if span <= 0 else min(1.0, max(0.0, (day - start).days / span))
        plan.sections[sid] = (uuid.UUID(s["course_id"]), elapsed)
    return plan


__all__ = ["STATUSES", "THRESHOLDS", "Thresholds", "course_plan", "default_thresholds", "load_thresholds"]
