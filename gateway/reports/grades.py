"""The bridge to traditional grades: a course letter grade or percentage from mastery.

Schools that move to competency-based learning usually keep a transcript with letter
grades for a while (colleges and state systems still ask for them). The grade is derived,
never entered: from the learner's states on the course's competencies
(``Course.competency_ids``), by a rule kept as data in ``mappings/mastery-grades.yaml`` -
the mean value as a percentage, or points per proficiency level - with letter bands on
the percentage, and overrides per course. Nothing here is stored: the grade follows the
states, so it can never disagree with them.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select

from .. import PROJECT_ROOT
from ..errors import ConfigError, ErrorDetail, NotFound
from ..store import Store
from ..store import tables as t
from .deidentify import Deidentify
from .formats import Report
from .population import Roster, resolve_population
from .scope import Scope, bad
from .sources import StateSource

GRADES = PROJECT_ROOT / "mappings" / "mastery-grades.yaml"


class StateSources(Protocol):
    """What ``grade_report`` needs of ``builder.Reports`` (which calls it: named by this
    protocol, so that the two modules do not import each other)."""

    store: Store

    def source(self, tenant: str, scope: Scope, competencies: Sequence[uuid.UUID] | None) -> StateSource: ...


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    letter: str = Field(min_length=1, max_length=16)
    min: float = Field(ge=0.0, le=100.0, description="lowest percentage that earns the letter")


class GradeRule(BaseModel):
    """How one course's grade follows from mastery (see mappings/mastery-grades.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    basis: Literal["value", "level"] = "value"
    missing: Literal["exclude", "zero"] = "exclude"
    min_assessed: int = Field(default=1, ge=0)
    decimals: int = Field(default=1, ge=0, le=6)
    letters: tuple[Band, ...] = Field(min_length=1)
    level_points: dict[str, float] = Field(default_factory=dict)
    max_points: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> GradeRule:
        mins = [b.min for b in self.letters]
        if any(b >= a for a, b in pairwise(mins)):
            raise ValueError(f"letters: bands must be listed highest first with falling min, got {mins}")
        if mins[-1] != 0:
            raise ValueError("letters: the last band must have min 0, so that every percentage gets a letter")
        if any(p < 0 for p in self.level_points.values()):
            raise ValueError("level_points: points must not be negative")
        if self.basis == "level":
            if not self.level_points:
                raise ValueError("level_points: basis 'level' needs the points of each level")
            if self.max_points is not None and self.max_points < max(self.level_points.values()):
                raise ValueError("max_points: must be at least the largest of level_points")
        return self

    def score(self, level: str | None, value: float | None) -> float | None:
        """A state's share (0..1) of full marks, or None when it has nothing to grade."""
        if self.basis == "value":
            return value
        if level is None or level not in self.level_points:
            return None
        return self.level_points[level] / (self.max_points or max(self.level_points.values()))

    def grade(self, states: Sequence[tuple[str | None, float | None]], expected: int) -> tuple[float | None, str | None, int]:
        """(percentage, letter, assessed) from the (level, value) of the course's states;
        no grade (None, None) while fewer than ``min_assessed`` competencies are assessed."""
        scores = [s for s in (self.score(lv, v) for lv, v in states) if s is not None]
        if len(scores) < max(self.min_assessed, 1):
            return None, None, len(scores)
        out_of = max(expected, len(scores)) if self.missing == "zero" else len(scores)
        pct = round(100 * sum(scores) / out_of, self.decimals)
        letter = next(b.letter for b in self.letters if pct >= b.min)
        return pct, letter, len(scores)


class GradeMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    default: GradeRule
    courses: dict[str, GradeRule] = Field(default_factory=dict, description="course code or id -> its rule")

    @model_validator(mode="before")
    @classmethod
    def _merge_overrides(cls, data: Any) -> Any:
        """A course entry changes only the keys it gives; the rest come from ``default``."""
        if isinstance(data, dict) and isinstance(data.get("default"), dict) and isinstance(data.get("courses"), dict):
            data = {**data, "courses": {k: {**data["default"], **(v or {})} for k, v in data["courses"].items()}}
        return data

    def for_course(self, course_id: uuid.UUID, code: str | None) -> GradeRule:
        return self.courses.get(str(course_id)) or (self.courses.get(code) if code else None) or self.default


def load_grade_mapping(path: Path | None = None) -> GradeMapping:
    """The mapping in ``path`` (default mappings/mastery-grades.yaml); ConfigError naming the
    bad key."""
    path = path or GRADES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    try:
        return GradeMapping.model_validate(data)
    except PydanticValidationError as exc:
        errors = [ErrorDetail(e["msg"], location=path.name, field=".".join(str(x) for x in e["loc"])) for e in exc.errors()]
        raise ConfigError(f"{path.name} is not a valid grade mapping", errors=errors) from None


@functools.cache
def default_grade_mapping() -> GradeMapping:
    return load_grade_mapping()


def grade_report(reports: StateSources, tenant: str, scope: Scope, deid: Deidentify | None = None,
                 mapping: GradeMapping | None = None) -> Report:
    """One row per learner of a section: the course grade their mastery maps to."""
    if scope.section is None:
        raise bad("section", "the grades report is per section: give the section id")
    if scope.group_by is not None:
        raise bad("group_by", "the grades report has a row per learner: it has no groups")
    mapping = mapping or default_grade_mapping()
    with reports.store.engine.connect() as conn:
        section = Roster(conn, tenant).section(scope.section)
        course_id = uuid.UUID(section["course_id"])
        data = conn.scalar(select(t.courses.c.data).where(t.courses.c.tenant == tenant, t.courses.c.id == course_id))
        if data is None:  # references are checked on write, so only a deleted course lands here
            raise NotFound(f"the course {course_id} of section {scope.section} is gone")
        course = orjson.loads(data)
        pop = resolve_population(conn, tenant, Scope(section=scope.section, grade=scope.grade, group=scope.group))
    comps = [uuid.UUID(c) for c in course.get("competency_ids", ())]
    if scope.competencies:
        comps = [c for c in comps if c in set(scope.competencies)]
    rule = mapping.for_course(course_id, course.get("code"))
    if deid is not None:
        deid.pseudonym(uuid.UUID(int=0))  # no salt: refuse before anything is computed
    states: dict[uuid.UUID, list[tuple[str | None, float | None, bool]]] = defaultdict(list)
    for learner, _, level, value, mastered in reports.source(tenant, scope, comps).states(pop.learners, comps):
        states[learner].append((level, value, mastered))
    who = "learner" if deid is not None else "learner_id"

    def rows() -> Iterator[dict[str, Any]]:
        for learner in sorted(pop.learners or ()):
            mine = states.get(learner, [])
            pct, letter, assessed = rule.grade([(lv, v) for lv, v, _ in mine], len(comps))
            yield {who: deid.pseudonym(learner) if deid else learner, "section_id": scope.section, "course_id": course_id,
                   "course_code": course.get("code"), "competencies": len(comps), "assessed": assessed,
                   "mastered": sum(1 for *_, m in mine if m), "percentage": pct, "letter": letter}

    columns = (who, "section_id", "course_id", "course_code", "competencies", "assessed", "mastered", "percentage", "letter")
    params = {"tenant": tenant, **scope.parameters(), "deidentified": deid is not None, "rule": rule.model_dump(mode="json")}
    return Report("grades", columns, rows(), params, [])


__all__ = ["GRADES", "Band", "GradeMapping", "GradeRule", "StateSources", "default_grade_mapping", "grade_report", "load_grade_mapping"]
