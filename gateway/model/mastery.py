"""Mastery aggregate: how evidence becomes proficiency, the computed result, and the
learning plans teachers set with their learners."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from .base import CanonicalModel, Record, Timestamp
from .evidence import EvidenceKind


class MasteryMethod(str, enum.Enum):
    latest = "latest"
    highest = "highest"
    mean = "mean"
    mode = "mode"
    #: recursive: d1 = s1, dk = w * sk + (1 - w) * d(k-1) (docs/mastery.md)
    decaying_average = "decaying_average"
    #: the newest counts w, the mean of all before it 1 - w (``decaying_average`` before 0007)
    weighted_average = "weighted_average"
    power_law = "power_law"
    n_of_m = "n_of_m"
    #: a parent competency's state, from its children's (computed, never a rule's method)
    rollup = "rollup"


class MasteryRule(Record):
    """How to compute mastery for a tenant, a framework or one competency.

    The most specific rule wins: competency, then framework, then tenant default.
    """

    kind: Literal["mastery_rule"] = "mastery_rule"
    name: str = Field(min_length=1, max_length=256)
    method: MasteryMethod
    framework_id: uuid.UUID | None = None
    competency_id: uuid.UUID | None = None
    scale_id: uuid.UUID | None = None
    decay_weight: float | None = Field(default=None, ge=0.0, le=1.0, description="decaying_average, weighted_average: weight of the newest score (0..1)")
    n: int | None = Field(default=None, ge=1, description="n_of_m: how many at or above level")
    m: int | None = Field(default=None, ge=1, description="n_of_m: out of the last m")
    at_level: str | None = Field(default=None, description="n_of_m: the level to reach")
    min_evidence: int = Field(default=1, ge=1)
    kind_weights: dict[EvidenceKind, float] = Field(default_factory=dict)
    rollup_share: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of a parent's children that must be mastered for the parent to be"
    )
    updated_by: str | None = Field(
        default=None, max_length=256,
        description="who made the rule's latest change (create, replace, delete): 'client:<client id>' for the API, "
                    "'cli:<user>' for the command line; the change log's row for that change names this version",
    )

    @model_validator(mode="after")
    def _params(self) -> MasteryRule:
        if self.method is MasteryMethod.rollup:
            raise ValueError("rollup is how parents are computed, not a rule's method")
        if self.framework_id is not None and self.competency_id is not None:
            raise ValueError("a rule applies to a framework or to one competency, not both")
        if self.method in (MasteryMethod.decaying_average, MasteryMethod.weighted_average) and self.decay_weight is None:
            raise ValueError(f"{self.method.value} needs decay_weight (0..1)")
        if self.method is MasteryMethod.n_of_m:
            if self.n is None or self.m is None or self.at_level is None:
                raise ValueError("n_of_m needs n, m and at_level")
            if self.n > self.m:
                raise ValueError(f"n ({self.n}) cannot exceed m ({self.m})")
        for k, w in self.kind_weights.items():
            if w < 0:
                raise ValueError(f"kind weight for {k.value} must not be negative")
        return self


class Contribution(CanonicalModel):
    """One input of a state and how much it counted: an evidence item, or (for a rollup)
    a child competency's state. ``weight`` is its share of the result (the shares sum to 1)."""

    evidence_id: uuid.UUID | None = None
    competency_id: uuid.UUID | None = Field(default=None, description="rollups: the child; else set when the evidence is an equivalent's")
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    weight: float = Field(ge=0.0)


class MasteryState(Record):
    """Where one learner stands on one competency, and why."""

    kind: Literal["mastery_state"] = "mastery_state"
    learner_id: uuid.UUID
    competency_id: uuid.UUID
    level: str | None = Field(default=None, description="null while there is too little evidence")
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    mastered: bool = False
    method: MasteryMethod
    rule_id: uuid.UUID | None = None
    parameters: dict[str, float | int | str | None] = Field(default_factory=dict)
    contributions: list[Contribution] = Field(default_factory=list)
    evidence_count: int = Field(ge=0)
    first_at: Timestamp | None = None
    last_at: Timestamp | None = None
    computed_at: Timestamp


class PlanStatus(str, enum.Enum):
    draft = "draft"
    active = "active"
    completed = "completed"
    archived = "archived"


class TargetStatus(str, enum.Enum):
    planned = "planned"
    in_progress = "in_progress"
    met = "met"
    dropped = "dropped"


class PlanTarget(CanonicalModel):
    competency_id: uuid.UUID
    target_date: date | None = None
    status: TargetStatus = TargetStatus.planned
    note: str | None = Field(default=None, max_length=2048)


class LearningPlan(Record):
    """A personalized learning plan: what a learner aims to master, by when, and along
    which pathway (an ordered list of competencies) - set by a teacher with the learner."""

    kind: Literal["learning_plan"] = "learning_plan"
    learner_id: uuid.UUID
    title: str = Field(min_length=1, max_length=512)
    plan_status: PlanStatus = Field(default=PlanStatus.active, description="the plan's own state; `status` stays the record's")
    targets: list[PlanTarget] = Field(min_length=1)
    pathway: list[uuid.UUID] = Field(default_factory=list, description="competencies in the order chosen to work on them")
    author: str | None = Field(default=None, max_length=256, description="who set the plan: a person id or a name")
    notes: str | None = Field(default=None, max_length=8192)

    @model_validator(mode="after")
    def _targets(self) -> LearningPlan:
        ids = [t.competency_id for t in self.targets]
        if len(set(ids)) != len(ids):
            raise ValueError("each competency may be a target only once")
        return self
