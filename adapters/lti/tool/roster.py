"""The canonical roster a platform's launch or membership stands for: Person, Section, Enrollment.

A valid resource link launch records the learner or teacher: the canonical Person
(identifier ``lti.sub`` under the platform's issuer, LTI core 5.1.2; joined to the OneRoster
person by the LIS ``person_sourcedid`` when the roster has it) and an Enrollment in the
section named by the LIS ``course_section_sourcedid`` (or, failing that, one made from the
context claim). An NRPS membership (``names_roles``) and an LTI 1.1 launch (``lti11``) make
the same records through the same functions.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from gateway.model import (
    Course,
    Enrollment,
    Identifier,
    Org,
    OrgType,
    Person,
    Record,
    Section,
    Status,
)

from ..claims import C_CONTEXT, C_LIS
from ..roles import primary_role
from .message_launch import Launch
from .platforms import Platform

if TYPE_CHECKING:
    from gateway.api.context import AppContext


def sub_system(platform: Platform) -> str:
    """The identifier system of a platform's ``sub`` values: its issuer (LTI core 5.1.2)."""
    return platform.issuer[:128]


def _names(claims: dict[str, Any], sub: str) -> tuple[str, str]:
    full = str(claims.get("name") or "").split()
    given = str(claims.get("given_name") or (full[0] if full else "") or "LTI")
    family = str(claims.get("family_name") or " ".join(full[1:]) or f"user {sub[:12]}")
    return given[:256], family[:256]


def launch_records(ctx: AppContext, launch: Launch) -> tuple[list[Record], uuid.UUID | None, uuid.UUID | None]:
    """The Person and Enrollment a resource link launch records, with the person's and the
    section's ids. An anonymous launch (no ``sub``, LTI core 5.3.6) records nothing."""
    p, claims, sub = launch.platform, launch.claims, launch.sub
    if not isinstance(sub, str) or not sub:
        return [], None, None
    lis = launch.claim(C_LIS)
    person, records = person_records(ctx, p, sub, claims, lis.get("person_sourcedid"))
    section, made = section_records(ctx, p, lis.get("course_section_sourcedid"), launch.claim(C_CONTEXT))
    records.extend(made)
    if section is not None:
        records.extend(enrollment_records(ctx, p, person, section, sub, launch.roles))
    return records, person.id, section.id if section is not None else None


def person_records(ctx: AppContext, p: Platform, sub: str, claims: dict[str, Any], sourcedid: Any) -> tuple[Person, list[Record]]:
    """The Person a platform's ``sub`` stands for, and what to write for it: the roster's own
    Person when the LIS ``person_sourcedid`` finds it (the sub becomes one more of its
    identifiers), else a Person of the platform's own."""
    sub_id = Identifier(system=sub_system(p), kind="lti.sub", value=sub)
    person = _joined(ctx, p.tenant, p.roster_system, "person", sourcedid)
    if isinstance(person, Person):
        return person, [] if sub_id in person.identifiers else [person.model_copy(update={"identifiers": [*person.identifiers, sub_id]})]
    given, family = _names(claims, sub)
    email = claims.get("email") if isinstance(claims.get("email"), str) and "@" in claims["email"] else None
    person = Person(
        tenant=p.tenant, source=sub_system(p), native_id=sub[:255], given_name=given, family_name=family, email=email,
        identifiers=[sub_id],
    )
    return person, [person]


def section_records(ctx: AppContext, p: Platform, sourcedid: Any, context: dict[str, Any]) -> tuple[Section | None, list[Record]]:
    """The Section of a launch or a membership: the roster's (LIS ``course_section_sourcedid``),
    else one made from the context claim, else none."""
    section = _joined(ctx, p.tenant, p.roster_system, "section", sourcedid)
    if isinstance(section, Section):
        return section, []
    if isinstance(context.get("id"), str) and context["id"]:
        return _context_section(p, context)
    return None, []


def enrollment_records(
    ctx: AppContext, p: Platform, person: Person, section: Section, sub: str, roles: list[str], *, active: bool = True
) -> list[Record]:
    """The platform's Enrollment of a person in a section; none when the roster (another
    source, e.g. the SIS through OneRoster) already enrolls them there: the roster is the
    authority on enrollments, the LMS only confirms them."""
    existing = ctx.store.records.page(p.tenant, "enrollment", limit=10, filters={"person_id": person.id, "section_id": section.id})
    if any(orjson.loads(d)["source"] != sub_system(p) for d in existing.items):
        return []
    return [Enrollment(
        tenant=p.tenant, source=sub_system(p), native_id=f"{section.id}:{sub}"[:255], person_id=person.id, section_id=section.id,
        role=primary_role(roles), status=Status.active if active else Status.tobedeleted,
    )]


def _joined(ctx: AppContext, tenant: str, system: str, kind: str, sourcedid: Any) -> Record | None:
    """The roster's record whose OneRoster sourcedId the LIS claim names (DESIGN 3)."""
    if not isinstance(sourcedid, str) or not sourcedid:
        return None
    found = ctx.store.records.lookup(tenant, system, "oneroster.sourcedId", sourcedid, record_kind=kind)
    return ctx.store.records.get(tenant, kind, found[0][1]) if found else None


def _context_section(p: Platform, context: dict[str, Any]) -> tuple[Section, list[Record]]:
    """A context the roster does not know: an Org for the platform, a Course and a Section."""
    system = sub_system(p)
    title = str(context.get("title") or context.get("label") or context["id"])[:512]
    org = Org(tenant=p.tenant, source=system, native_id="platform", name=p.name, type=OrgType.other)
    course = Course(tenant=p.tenant, source=system, native_id=context["id"][:255], title=title, code=context.get("label"), org_id=org.id)
    section = Section(tenant=p.tenant, source=system, native_id=context["id"][:255], title=title, course_id=course.id, org_id=org.id)
    return section, [org, course, section]


__all__ = ["enrollment_records", "launch_records", "person_records", "section_records", "sub_system"]
