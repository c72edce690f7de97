"""Regenerate demo-district.ndjson: a small, realistic, fully fictional district.

Run: python adapters/ndjson/samples/make_demo.py  (deterministic: same output every time)

The records name no tenant, so the file loads into any: ``tessera import ndjson
demo-district.ndjson --tenant T`` (``gateway.model.tenancy``).

One district, an elementary and a middle school, a school year with two semesters,
grade 4 and grade 7 mathematics and ELA sections, 8 teachers, 160 students with
guardians, a small mathematics framework with a hierarchy, prerequisites and a
four-level proficiency scale, alignments from quiz activities, and evidence.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from gateway.model import (
    AcademicSession,
    ActivityRef,
    Alignment,
    Competency,
    Course,
    Demographics,
    Enrollment,
    Evidence,
    Framework,
    Identifier,
    Org,
    OrgRole,
    Person,
    ProficiencyLevel,
    ProficiencyScale,
    Provenance,
    Relation,
    Score,
    Section,
)

TENANT, SIS, LMS = "demo", "sis", "lms"
rng = random.Random(20261125)
GIVEN = ["Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Ivy", "Mateo", "Aria", "Leo", "Nora", "Kai", "Lila", "Owen",
         "Ruby", "Eli", "Jade", "Finn", "Sofia", "Amir", "Hana", "Diego", "Priya", "Jonah", "Mila", "Tariq", "Lucia", "Omar"]
FAMILY = ["Alvarez", "Brooks", "Chen", "Dubois", "Eriksen", "Fofana", "Garcia", "Haddad", "Ibarra", "Jensen", "Kowalski",
          "Lindqvist", "Mensah", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Singh", "Tanaka", "Usman", "Varga"]


def ident(native: str) -> list[Identifier]:
    return [Identifier(system=SIS, kind="oneroster.sourcedId", value=native)]


def build() -> list:
    out: list = []
    district = Org(tenant=TENANT, source=SIS, native_id="org-district", name="Cedar Valley Unified School District",
                   type="district", code="CVUSD", identifiers=ident("org-district"))
    elem = Org(tenant=TENANT, source=SIS, native_id="org-elem", name="Juniper Elementary School", type="school",
               code="0412", parent_id=district.id, identifiers=ident("org-elem"))
    middle = Org(tenant=TENANT, source=SIS, native_id="org-middle", name="Larkspur Middle School", type="school",
                 code="0731", parent_id=district.id, identifiers=ident("org-middle"))
    out += [district, elem, middle]

    year = AcademicSession(tenant=TENANT, source=SIS, native_id="as-2026", title="2026-2027", type="school_year",
                           start_date=date(2026, 8, 17), end_date=date(2027, 6, 11), school_year=2027, org_id=district.id)
    fall = AcademicSession(tenant=TENANT, source=SIS, native_id="as-2026-s1", title="Fall 2026", type="semester",
                           start_date=date(2026, 8, 17), end_date=date(2027, 1, 15), school_year=2027, parent_id=year.id)
    spring = AcademicSession(tenant=TENANT, source=SIS, native_id="as-2026-s2", title="Spring 2027", type="semester",
                             start_date=date(2027, 1, 19), end_date=date(2027, 6, 11), school_year=2027, parent_id=year.id)
    out += [year, fall, spring]

    # --- framework ----------------------------------------------------------------------
    fw = Framework(tenant=TENANT, source="case", native_id="cvusd-math", title="Cedar Valley Mathematics Progressions",
                   creator="Cedar Valley USD Curriculum Office", version="2026.1", subjects=["Mathematics"], language="en",
                   adoption_status="Adopted", guid="6b1b4a4e-2a6c-4d55-9a0e-0f7d3c2b1a01",
                   uri="https://standards.example.org/cvusd/math")
    out.append(fw)
    items = [
        ("NBT", None, "Domain", "Number and Operations in Base Ten", ["04"]),
        ("NBT.1", "NBT", "Standard", "Recognize that a digit in one place represents ten times what it represents in the place to its right.", ["04"]),
        ("NBT.2", "NBT", "Standard", "Read, write and compare multi-digit whole numbers using base-ten numerals, names and expanded form.", ["04"]),
        ("NBT.4", "NBT", "Standard", "Fluently add and subtract multi-digit whole numbers using the standard algorithm.", ["04"]),
        ("NBT.5", "NBT", "Standard", "Multiply a whole number of up to four digits by a one-digit whole number.", ["04"]),
        ("NF", None, "Domain", "Number and Operations - Fractions", ["04"]),
        ("NF.1", "NF", "Standard", "Explain why a fraction a/b is equivalent to a fraction (n x a)/(n x b) using visual models.", ["04"]),
        ("NF.2", "NF", "Standard", "Compare two fractions with different numerators and different denominators.", ["04"]),
        ("NF.3", "NF", "Standard", "Understand a fraction a/b with a > 1 as a sum of fractions 1/b.", ["04"]),
        ("RP", None, "Domain", "Ratios and Proportional Relationships", ["07"]),
        ("RP.1", "RP", "Standard", "Compute unit rates associated with ratios of fractions.", ["07"]),
        ("RP.2", "RP", "Standard", "Recognize and represent proportional relationships between quantities.", ["07"]),
        ("RP.3", "RP", "Standard", "Use proportional relationships to solve multistep ratio and percent problems.", ["07"]),
        ("EE", None, "Domain", "Expressions and Equations", ["07"]),
        ("EE.1", "EE", "Standard", "Apply properties of operations to add, subtract, factor and expand linear expressions.", ["07"]),
        ("EE.4", "EE", "Standard", "Use variables to represent quantities and construct simple equations and inequalities.", ["07"]),
    ]
    comps: dict[str, Competency] = {}
    for i, (code, _parent, itype, text, grades) in enumerate(items):
        c = Competency(tenant=TENANT, source="case", native_id=f"cvusd-math-{code}", framework_id=fw.id, statement=text,
                       code=code, item_type=itype, education_levels=grades, language="en", list_enumeration=str(i + 1),
                       uri=f"https://standards.example.org/cvusd/math/{code}")
        comps[code] = c
        out.append(c)
    for code, parent, *_ in items:
        if parent:
            out.append(Relation(tenant=TENANT, source="case", native_id=f"child-{code}", type="is_child_of", framework_id=fw.id,
                                origin_id=comps[code].id, destination_id=comps[parent].id))
    for a, b in [("NBT.1", "NBT.2"), ("NBT.2", "NBT.4"), ("NBT.4", "NBT.5"), ("NF.1", "NF.2"), ("NF.2", "NF.3"),
                 ("NF.3", "RP.1"), ("RP.1", "RP.2"), ("RP.2", "RP.3"), ("EE.1", "EE.4")]:
        out.append(Relation(tenant=TENANT, source="case", native_id=f"precedes-{a}-{b}", type="precedes", framework_id=fw.id,
                            origin_id=comps[a].id, destination_id=comps[b].id))
    out.append(ProficiencyScale(
        tenant=TENANT, source="case", native_id="cvusd-4-level", title="Four-level proficiency", framework_id=fw.id,
        levels=[ProficiencyLevel(code="1", label="Beginning", rank=1, min_scaled=0.0),
                ProficiencyLevel(code="2", label="Developing", rank=2, min_scaled=0.5),
                ProficiencyLevel(code="3", label="Proficient", rank=3, min_scaled=0.75, mastery=True),
                ProficiencyLevel(code="4", label="Advanced", rank=4, min_scaled=0.9, mastery=True)],
    ))

    # --- courses, sections, people --------------------------------------------------------
    plan = [(elem, "04", "Mathematics", ["NBT", "NF"]), (elem, "04", "English Language Arts", []),
            (middle, "07", "Mathematics", ["RP", "EE"]), (middle, "07", "English Language Arts", [])]
    teachers, sections = [], []
    for n, (school, grade, subject, domains) in enumerate(plan):
        course = Course(tenant=TENANT, source=SIS, native_id=f"course-{grade}-{subject[:4].lower()}", title=f"Grade {int(grade)} {subject}",
                        code=f"{subject[:4].upper()}{grade}", org_id=school.id, session_id=year.id, grades=[grade], subjects=[subject],
                        competency_ids=[c.id for code, c in comps.items() if code.split(".")[0] in domains],
                        identifiers=ident(f"course-{grade}-{subject[:4].lower()}"))
        out.append(course)
        for s in range(2):
            t_native = f"t-{n}-{s}"
            teacher = Person(tenant=TENANT, source=SIS, native_id=t_native, given_name=rng.choice(GIVEN), family_name=rng.choice(FAMILY),
                             email=f"{t_native}@cvusd.example.org", username=t_native,
                             roles=[OrgRole(role="teacher", org_id=school.id, primary=True)], identifiers=ident(t_native))
            teachers.append(teacher)
            section = Section(tenant=TENANT, source=SIS, native_id=f"sec-{n}-{s}", title=f"{course.title} - Period {s + 1}",
                              code=f"{course.code}-{s + 1}", course_id=course.id, org_id=school.id, session_ids=[fall.id, spring.id],
                              periods=[str(s + 1)], grades=[grade], subjects=[subject], identifiers=ident(f"sec-{n}-{s}"))
            sections.append((section, teacher, school, grade, subject))
    out += teachers
    out += [s[0] for s in sections]

    students: dict[str, list[Person]] = {"04": [], "07": []}
    people: list[Person] = []
    for grade, school in (("04", elem), ("07", middle)):
        for k in range(80):
            native = f"s-{grade}-{k:03d}"
            guardian = Person(tenant=TENANT, source=SIS, native_id=f"g-{grade}-{k:03d}", given_name=rng.choice(GIVEN),
                              family_name=rng.choice(FAMILY), email=f"g-{grade}-{k:03d}@family.example.org",
                              roles=[OrgRole(role="guardian", org_id=school.id, primary=True)], identifiers=ident(f"g-{grade}-{k:03d}"))
            student = Person(
                tenant=TENANT, source=SIS, native_id=native, given_name=rng.choice(GIVEN), family_name=rng.choice(FAMILY),
                username=native, email=f"{native}@students.cvusd.example.org", grades=[grade],
                roles=[OrgRole(role="student", org_id=school.id, primary=True)], agent_ids=[guardian.id],
                identifiers=ident(native) + [Identifier(system=LMS, kind="lti.sub", value=f"lti-{native}")],
                demographics=Demographics(birth_date=date(2016 if grade == "04" else 2013, rng.randint(1, 12), rng.randint(1, 28)),
                                          sex=rng.choice(["female", "male"]), hispanic_or_latino=rng.random() < 0.3,
                                          groups=[g for g, p in (("ell", 0.12), ("iep", 0.1), ("frl", 0.35)) if rng.random() < p]),
            )
            people += [guardian, student]
            students[grade].append(student)
    out += people

    enrollments = []
    for section, teacher, school, grade, _subject in sections:
        enrollments.append(Enrollment(tenant=TENANT, source=SIS, native_id=f"enr-{section.native_id}-{teacher.native_id}",
                                      person_id=teacher.id, section_id=section.id, org_id=school.id, role="teacher", primary=True))
        half = students[grade][:40] if section.native_id.endswith("-0") else students[grade][40:]
        for st in half:
            enrollments.append(Enrollment(tenant=TENANT, source=SIS, native_id=f"enr-{section.native_id}-{st.native_id}",
                                          person_id=st.id, section_id=section.id, org_id=school.id, role="student",
                                          begin_date=date(2026, 8, 17)))
    out += enrollments

    # --- alignments and evidence ----------------------------------------------------------
    standards = [c for c in comps.values() if c.item_type == "Standard"]
    alignments = {}
    for c in standards:
        activity = f"https://lms.cvusd.example.org/quizzes/{c.code.lower()}"
        alignments[c.code] = Alignment(tenant=TENANT, source=LMS, native_id=f"align-{c.code}", target_system=LMS,
                                       target_kind="activity", target_id=activity, competency_id=c.id)
    out += alignments.values()
    start = datetime(2026, 9, 1, 14, 0, tzinfo=UTC)
    for grade, codes in (("04", ["NBT.1", "NBT.2", "NBT.4", "NBT.5", "NF.1", "NF.2"]), ("07", ["RP.1", "RP.2", "RP.3", "EE.1"])):
        for st in students[grade]:
            ability = rng.uniform(0.35, 0.95)
            for week, code in enumerate(codes):
                for attempt in range(rng.randint(1, 3)):
                    scaled = max(0.0, min(1.0, rng.gauss(ability + 0.05 * attempt, 0.12)))
                    raw = round(scaled * 20)
                    native = f"ev-{st.native_id}-{code}-{attempt}"
                    c = comps[code]
                    out.append(Evidence(
                        tenant=TENANT, source=LMS, native_id=native, learner_id=st.id, competency_id=c.id,
                        alignment_id=alignments[code].id,
                        activity=ActivityRef(system=LMS, id=alignments[code].target_id, title=f"{code} check-in quiz"),
                        evidence_kind="assessment", score=Score(raw=raw, min=0, max=20), success=raw >= 15, completion=True,
                        observed_at=start + timedelta(days=7 * week + 2 * attempt, minutes=rng.randint(0, 300)),
                        provenance=Provenance(standard="lti-ags", version="2.0", system=LMS, native_id=native,
                                              received_at=start + timedelta(days=7 * week + 2 * attempt, hours=6)),
                    ))
    return out


def main() -> None:
    """Each line without its ``tenant``: the file loads into any tenant (``gateway.model.tenancy``:
    the ids, those of tenant ``demo``, are labels its references use)."""
    path = Path(__file__).with_name("demo-district.ndjson")
    with path.open("wb") as fh:
        for rec in build():
            fh.write(orjson.dumps(rec.model_dump(mode="json", exclude_none=True, exclude={"tenant"})) + b"\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
