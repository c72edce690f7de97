"""Competencies aggregate: frameworks, competencies, relations, alignments, scales.

Competencies are CASE-native (DESIGN section 3): a competency keeps the globally unique
identifier (``guid``) and ``uri`` its framework publisher gave it, so evidence tagged
with either resolves. Crosswalks between frameworks are Relations of type
``exact_match_of`` / ``is_related_to``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from .base import CanonicalModel, Record, Timestamp

#: the identifier kinds that name a competency (or framework) by its CASE identity: its URI,
#: and its CASE identifier (a UUID, lower case); whatever standard refers to a competency
#: resolves these through the identifier index
CASE_IDENTIFIER_KINDS = ("case.uri", "case.identifier")


class Framework(Record):
    """A published set of competencies: a state's standards, the Common Core, a district's own."""

    kind: Literal["framework"] = "framework"
    title: str = Field(min_length=1, max_length=1024)
    guid: uuid.UUID | None = Field(default=None, description="the publisher's globally unique id")
    uri: str | None = Field(default=None, max_length=2048)
    creator: str | None = None
    publisher: str | None = None
    description: str | None = None
    version: str | None = None
    subjects: list[str] = Field(default_factory=list)
    language: str | None = Field(default=None, max_length=35)
    adoption_status: str | None = None
    status_start_date: date | None = None
    status_end_date: date | None = None
    license_uri: str | None = None
    official_source_url: str | None = None
    notes: str | None = None
    published_at: Timestamp | None = Field(default=None, description="the publisher's last change")


class Competency(Record):
    """One standard, skill or learning objective within a framework."""

    kind: Literal["competency"] = "competency"
    framework_id: uuid.UUID
    statement: str = Field(min_length=1, description="the full statement of the competency")
    short_statement: str | None = None
    code: str | None = Field(default=None, max_length=255, description="human-readable code, e.g. 'RL.3.1'")
    guid: uuid.UUID | None = None
    uri: str | None = Field(default=None, max_length=2048)
    item_type: str | None = Field(default=None, description="e.g. Domain, Cluster, Standard, Component")
    education_levels: list[str] = Field(default_factory=list)
    language: str | None = Field(default=None, max_length=35)
    concept_keywords: list[str] = Field(default_factory=list)
    alternative_label: str | None = None
    list_enumeration: str | None = None
    notes: str | None = None
    license_uri: str | None = None
    status_start_date: date | None = None
    status_end_date: date | None = None
    published_at: Timestamp | None = None
    deprecated: bool = False


class RelationType(str, enum.Enum):
    """How two competencies relate; the CASE association types in Tessera's spelling."""

    is_child_of = "is_child_of"
    is_part_of = "is_part_of"
    is_peer_of = "is_peer_of"
    exact_match_of = "exact_match_of"
    is_related_to = "is_related_to"
    precedes = "precedes"
    replaced_by = "replaced_by"
    exemplar = "exemplar"
    has_skill_level = "has_skill_level"


class Relation(Record):
    """A directed edge: ``origin`` <type> ``destination``.

    Either end may lie outside Tessera (CASE allows associations to point into other
    frameworks): then its ``*_id`` is null and ``*_uri`` / ``*_guid`` keep the reference.
    """

    kind: Literal["relation"] = "relation"
    type: RelationType
    framework_id: uuid.UUID | None = None
    origin_id: uuid.UUID | None = None
    origin_guid: uuid.UUID | None = None
    origin_uri: str | None = None
    destination_id: uuid.UUID | None = None
    destination_guid: uuid.UUID | None = None
    destination_uri: str | None = None
    sequence: int | None = None
    grouping: str | None = None
    published_at: Timestamp | None = None

    @model_validator(mode="after")
    def _ends(self) -> Relation:
        for end in ("origin", "destination"):
            if not any(getattr(self, f"{end}_{p}") for p in ("id", "guid", "uri")):
                raise ValueError(f"{end} needs at least one of {end}_id, {end}_guid, {end}_uri")
        return self


class TargetKind(str, enum.Enum):
    activity = "activity"
    line_item = "line_item"
    resource = "resource"
    objective = "objective"
    course = "course"


class Alignment(Record):
    """Joins a non-CASE target (an xAPI activity, an LTI line item, a OneRoster line item...)
    to a competency, so that evidence about the target counts for the competency."""

    kind: Literal["alignment"] = "alignment"
    target_system: str = Field(min_length=1, max_length=128)
    target_kind: TargetKind
    target_id: str = Field(min_length=1, max_length=2048)
    competency_id: uuid.UUID
    weight: float = Field(default=1.0, ge=0.0, le=1.0)


class ProficiencyLevel(CanonicalModel):
    """One level of a scale. ``min_scaled`` is the lowest scaled score (0..1) that reaches it."""

    code: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=256)
    rank: int = Field(ge=0, description="order of the level, lowest first")
    description: str | None = None
    min_scaled: float | None = Field(default=None, ge=0.0, le=1.0)
    mastery: bool = Field(default=False, description="reaching this level counts as mastered")


class ProficiencyScale(Record):
    kind: Literal["proficiency_scale"] = "proficiency_scale"
    title: str = Field(min_length=1, max_length=512)
    framework_id: uuid.UUID | None = None
    competency_id: uuid.UUID | None = None
    description: str | None = None
    levels: list[ProficiencyLevel] = Field(min_length=1)

    @model_validator(mode="after")
    def _levels(self) -> ProficiencyScale:
        codes = [lv.code for lv in self.levels]
        if len(set(codes)) != len(codes):
            raise ValueError(f"level codes must be unique, got {codes}")
        ranks = [lv.rank for lv in self.levels]
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"level ranks must be unique, got {ranks}")
        ordered = sorted(self.levels, key=lambda lv: lv.rank)
        thresholds = [lv.min_scaled for lv in ordered if lv.min_scaled is not None]
        if thresholds and len(thresholds) != len(ordered):
            raise ValueError("either every level has min_scaled or none does")
        if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise ValueError(
                "min_scaled thresholds overlap: they must rise strictly with rank "
                f"({[(lv.code, lv.min_scaled) for lv in ordered]})"
            )
        return self

    def level_for(self, scaled: float) -> ProficiencyLevel | None:
        """The highest level whose threshold ``scaled`` reaches."""
        reached = [lv for lv in self.levels if lv.min_scaled is not None and scaled >= lv.min_scaled]
        return max(reached, key=lambda lv: lv.rank) if reached else None
