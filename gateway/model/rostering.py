"""Rostering aggregate: academic sessions, courses, sections and enrollments."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from .base import Record
from .people import Role


class SessionType(str, enum.Enum):
    school_year = "school_year"
    semester = "semester"
    term = "term"
    grading_period = "grading_period"


class AcademicSession(Record):
    kind: Literal["academic_session"] = "academic_session"
    title: str = Field(min_length=1, max_length=512)
    type: SessionType
    start_date: date
    end_date: date
    school_year: int = Field(ge=1900, le=2200)
    parent_id: uuid.UUID | None = None
    org_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _dates(self) -> AcademicSession:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self


class Course(Record):
    kind: Literal["course"] = "course"
    title: str = Field(min_length=1, max_length=512)
    code: str | None = Field(default=None, max_length=255)
    org_id: uuid.UUID
    session_id: uuid.UUID | None = None
    grades: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    subject_codes: list[str] = Field(default_factory=list, description="SCED codes")
    competency_ids: list[uuid.UUID] = Field(default_factory=list, description="competencies the course addresses")


class SectionType(str, enum.Enum):
    scheduled = "scheduled"
    homeroom = "homeroom"


class Section(Record):
    """A class: a course taught to a group of learners in given sessions."""

    kind: Literal["section"] = "section"
    title: str = Field(min_length=1, max_length=512)
    code: str | None = Field(default=None, max_length=255)
    type: SectionType = SectionType.scheduled
    course_id: uuid.UUID
    org_id: uuid.UUID
    session_ids: list[uuid.UUID] = Field(default_factory=list)
    location: str | None = Field(default=None, max_length=255)
    periods: list[str] = Field(default_factory=list)
    grades: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)


class Enrollment(Record):
    kind: Literal["enrollment"] = "enrollment"
    person_id: uuid.UUID
    section_id: uuid.UUID
    org_id: uuid.UUID | None = None
    role: Role
    primary: bool = False
    begin_date: date | None = None
    end_date: date | None = None

    @model_validator(mode="after")
    def _dates(self) -> Enrollment:
        if self.begin_date and self.end_date and self.end_date < self.begin_date:
            raise ValueError(f"end_date {self.end_date} is before begin_date {self.begin_date}")
        return self
