"""People aggregate: organisations and persons (DESIGN section 3).

Vocabularies here are Tessera's own. Adapters map each standard's terms onto them with
the tables in ``mappings/`` (e.g. OneRoster ``local`` orgs and LTI institution roles).
"""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from .base import CanonicalModel, Record


class OrgType(str, enum.Enum):
    national = "national"
    state = "state"
    district = "district"
    school = "school"
    department = "department"
    other = "other"


class Org(Record):
    """A state, district, school, department... Organisations nest through ``parent_id``."""

    kind: Literal["org"] = "org"
    name: str = Field(min_length=1, max_length=512)
    type: OrgType
    code: str | None = Field(default=None, max_length=255, description="local code, e.g. a school number")
    parent_id: uuid.UUID | None = None


class Role(str, enum.Enum):
    """A person's role in an organisation or a section."""

    student = "student"
    teacher = "teacher"
    guardian = "guardian"
    parent = "parent"
    relative = "relative"
    aide = "aide"
    proctor = "proctor"
    counselor = "counselor"
    administrator = "administrator"
    principal = "principal"
    district_administrator = "district_administrator"
    system_administrator = "system_administrator"
    staff = "staff"
    other = "other"


class OrgRole(CanonicalModel):
    role: Role
    org_id: uuid.UUID
    primary: bool = False
    begin_date: date | None = None
    end_date: date | None = None


class Sex(str, enum.Enum):
    female = "female"
    male = "male"
    other = "other"
    unspecified = "unspecified"


class Demographics(CanonicalModel):
    """Protected data used only for disaggregated reports; never logged."""

    birth_date: date | None = None
    sex: Sex | None = None
    races: list[str] = Field(default_factory=list, description="CEDS race codes, e.g. 'white', 'asian'")
    hispanic_or_latino: bool | None = None
    birth_country: str | None = None
    birth_state: str | None = None
    public_school_residence_status: str | None = None
    groups: list[str] = Field(
        default_factory=list,
        description="programme and support groups used in reports, e.g. 'ell', 'iep', 'frl'",
    )


class Person(Record):
    """Anyone the gateway knows: learners, teachers, guardians, staff."""

    kind: Literal["person"] = "person"
    given_name: str = Field(min_length=1, max_length=256)
    family_name: str = Field(min_length=1, max_length=256)
    middle_name: str | None = Field(default=None, max_length=256)
    preferred_name: str | None = Field(default=None, max_length=256)
    username: str | None = Field(default=None, max_length=256)
    # Deliberately loose: SIS exports carry addresses a strict RFC 5322 parser rejects,
    # and rejecting a whole roster for one odd address helps nobody.
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=64)
    sms: str | None = Field(default=None, max_length=64)
    enabled: bool = True
    roles: list[OrgRole] = Field(default_factory=list)
    grades: list[str] = Field(
        default_factory=list, description="CEDS grade-level codes: IT, PR, PK, TK, KG, 01..13, PS, UG, Other"
    )
    agent_ids: list[uuid.UUID] = Field(default_factory=list, description="guardians and relatives of a learner")
    demographics: Demographics | None = None

    @field_validator("grades")
    @classmethod
    def _grades(cls, v: list[str]) -> list[str]:
        allowed = CEDS_GRADES
        bad = [g for g in v if g not in allowed]
        if bad:
            raise ValueError(f"unknown grade code(s) {bad}; expected CEDS codes such as KG, 01..13")
        return v

    @property
    def primary_role(self) -> Role | None:
        for r in self.roles:
            if r.primary:
                return r.role
        return self.roles[0].role if self.roles else None


#: CEDS Entry Grade Level codes, the vocabulary OneRoster and Ed-Fi both use.
CEDS_GRADES = frozenset(
    ["IT", "PR", "PK", "TK", "KG", *(f"{n:02d}" for n in range(1, 14)), "PS", "UG", "Other"]
)
