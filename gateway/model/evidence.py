"""Evidence aggregate: what a learner has shown, from any source (DESIGN section 3).

Evidence is append-only. A correction is new evidence whose ``supersedes`` link the
store turns into ``superseded_by`` on the old item; a retraction sets ``voided``. The
store refuses any other change to stored evidence (see ``gateway.store``).
"""

from __future__ import annotations

import enum
import uuid
from typing import Literal

from pydantic import Field, model_validator

from .base import CanonicalModel, Record, Timestamp


class EvidenceKind(str, enum.Enum):
    assessment = "assessment"
    performance_task = "performance_task"
    observation = "observation"
    self_assessment = "self_assessment"
    artifact = "artifact"
    completion = "completion"


class ActivityRef(CanonicalModel):
    """The thing the learner did, in its own system's terms (an xAPI activity IRI, an LTI
    resource link, a OneRoster line item sourcedId...)."""

    system: str = Field(min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=2048)
    title: str | None = Field(default=None, max_length=1024)


class Score(CanonicalModel):
    """A score as given (``raw`` between ``min`` and ``max``) and ``scaled`` to 0..1."""

    raw: float | None = None
    min: float | None = None
    max: float | None = None
    scaled: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _bounds(self) -> Score:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.raw is not None:
            if self.min is not None and self.raw < self.min:
                raise ValueError(f"raw {self.raw} is below min {self.min}")
            if self.max is not None and self.raw > self.max:
                raise ValueError(f"raw {self.raw} is above max {self.max}")
        raw, lo, hi = self.raw, self.min, self.max
        if self.scaled is None and raw is not None and lo is not None and hi is not None and hi > lo:
            self.scaled = (raw - lo) / (hi - lo)
        return self


class Provenance(CanonicalModel):
    """Where a piece of evidence came from, precisely enough to find the original."""

    standard: str = Field(min_length=1, description="e.g. 'xapi', 'oneroster', 'lti-ags', 'lti11-outcomes'")
    version: str | None = None
    system: str = Field(min_length=1, description="the connection or system that sent it")
    native_id: str = Field(min_length=1)
    payload_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    received_at: Timestamp


class Evidence(Record):
    kind: Literal["evidence"] = "evidence"
    learner_id: uuid.UUID
    competency_id: uuid.UUID | None = Field(default=None, description="null until an alignment resolves it")
    alignment_id: uuid.UUID | None = None
    activity: ActivityRef | None = None
    evidence_kind: EvidenceKind = EvidenceKind.assessment
    score: Score | None = None
    level: str | None = Field(default=None, description="a proficiency level code when the source gave one")
    success: bool | None = None
    completion: bool | None = None
    observed_at: Timestamp
    recorded_at: Timestamp | None = Field(default=None, description="set by the store on first write")
    assessor: str | None = Field(default=None, description="who judged it: a person id, a tool, 'self'")
    artifacts: list[str] = Field(default_factory=list, description="URLs of the work itself (e-portfolio)")
    provenance: Provenance
    voided: bool = False
    supersedes: uuid.UUID | None = Field(default=None, description="the evidence this one corrects")
    superseded_by: uuid.UUID | None = None
