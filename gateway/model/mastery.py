"""Mastery aggregate: how evidence becomes proficiency, and the computed result."""

from __future__ import annotations

import enum
import uuid
from typing import Literal

from pydantic import Field, model_validator

from .base import CanonicalModel, Record, Timestamp
from .evidence import EvidenceKind


class MasteryMethod(str, enum.Enum):
    latest = "latest"
    highest = "highest"
    mean = "mean"
    mode = "mode"
    decaying_average = "decaying_average"
    power_law = "power_law"
    n_of_m = "n_of_m"


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
    decay_weight: float | None = Field(default=None, ge=0.0, le=1.0, description="decaying_average: weight of the newest")
    n: int | None = Field(default=None, ge=1, description="n_of_m: how many at or above level")
    m: int | None = Field(default=None, ge=1, description="n_of_m: out of the last m")
    at_level: str | None = Field(default=None, description="n_of_m: the level to reach")
    min_evidence: int = Field(default=1, ge=1)
    kind_weights: dict[EvidenceKind, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> MasteryRule:
        if self.method is MasteryMethod.decaying_average and self.decay_weight is None:
            raise ValueError("decaying_average needs decay_weight (0..1)")
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
    evidence_id: uuid.UUID
    weight: float = Field(ge=0.0)


class MasteryState(Record):
    """Where one learner stands on one competency, and why."""

    kind: Literal["mastery_state"] = "mastery_state"
    learner_id: uuid.UUID
    competency_id: uuid.UUID
    level: str | None = None
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    method: MasteryMethod
    rule_id: uuid.UUID | None = None
    parameters: dict[str, float | int | str | None] = Field(default_factory=dict)
    contributions: list[Contribution] = Field(default_factory=list)
    evidence_count: int = Field(ge=0)
    first_at: Timestamp | None = None
    last_at: Timestamp | None = None
    computed_at: Timestamp
