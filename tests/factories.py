"""Small builders for canonical records used across tests."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.model import (
    Competency,
    Course,
    Enrollment,
    Evidence,
    Framework,
    Identifier,
    Org,
    OrgRole,
    Person,
    Provenance,
    Score,
    Section,
)

T = "t1"


def org(native: str = "o1", tenant: str = T, **kw) -> Org:
    return Org(tenant=tenant, source="sis", native_id=native, name=kw.pop("name", f"School {native}"), type=kw.pop("type", "school"), **kw)


def person(native: str, school: Org, tenant: str = T, role: str = "student", **kw) -> Person:
    return Person(
        tenant=tenant, source="sis", native_id=native, given_name=kw.pop("given_name", "Ada"), family_name=kw.pop("family_name", f"Lovelace {native}"),
        roles=[OrgRole(role=role, org_id=school.id, primary=True)],
        identifiers=kw.pop("identifiers", [Identifier(system="sis", kind="oneroster.sourcedId", value=native)]), **kw,
    )


def course(native: str, school: Org, tenant: str = T) -> Course:
    return Course(tenant=tenant, source="sis", native_id=native, title=f"Course {native}", org_id=school.id)


def section(native: str, crs: Course, school: Org, tenant: str = T) -> Section:
    return Section(tenant=tenant, source="sis", native_id=native, title=f"Section {native}", course_id=crs.id, org_id=school.id)


def enrollment(p: Person, s: Section, tenant: str = T, role: str = "student") -> Enrollment:
    return Enrollment(tenant=tenant, source="sis", native_id=f"{s.native_id}:{p.native_id}", person_id=p.id, section_id=s.id, role=role)


def framework(native: str = "fw", tenant: str = T) -> Framework:
    return Framework(tenant=tenant, source="case", native_id=native, title=f"Framework {native}")


def competency(native: str, fw: Framework, tenant: str = T, **kw) -> Competency:
    return Competency(tenant=tenant, source="case", native_id=native, framework_id=fw.id, statement=kw.pop("statement", f"Can do {native}"), code=kw.pop("code", native), **kw)


def evidence(native: str, learner: Person, comp: Competency | None = None, tenant: str = T, raw: float = 8, **kw) -> Evidence:
    at = kw.pop("observed_at", datetime(2026, 10, 1, 12, 0, tzinfo=UTC))
    return Evidence(
        tenant=tenant, source="lms", native_id=native, learner_id=learner.id, competency_id=comp.id if comp else None,
        score=Score(raw=raw, min=0, max=10), observed_at=at,
        provenance=Provenance(standard="xapi", version="1.0.3", system="lms", native_id=native, received_at=at), **kw,
    )


def roster(n_people: int = 3, tenant: str = T) -> list:
    """An org, a course, a section, ``n_people`` students and their enrollments."""
    school = org(tenant=tenant)
    crs = course("c1", school, tenant)
    sec = section("s1", crs, school, tenant)
    people = [person(f"u{i}", school, tenant) for i in range(n_people)]
    return [school, crs, sec, *people, *(enrollment(p, sec, tenant) for p in people)]
