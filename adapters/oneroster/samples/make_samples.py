"""Generate a deterministic OneRoster CSV district (the demo sample and the benchmark's input).

    python adapters/oneroster/samples/make_samples.py            # rewrites birchwood-district-v1p2.zip

The district, Birchwood Unified, is invented: a district org, ``schools`` schools, one
school year with two semesters, courses per school, classes per course, teachers,
students (with guardians for some, and demographics) and enrollments, and the gradebook of
its first few mathematics classes: line items tagged with Northwind State standards (CASE
identifiers from ``adapters/case/samples``, so ``tessera demo`` turns the results into
aligned evidence), a proficiency score scale and a few hundred results. Everything comes
from ``random.Random(seed)``, so the same arguments give byte-identical files. Rows are
written as they are generated (a million enrollments never sit in memory).
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE / "birchwood-district-v1p2.zip"

GIVEN = ["Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Isla", "Omar", "Lena", "Mateo", "Aria", "Kai", "Nora", "Ravi",
         "Sofia", "Jonah", "Amara", "Diego", "Hana", "Felix", "Priya", "Theo", "Yara", "Samuel", "Ines", "Caleb", "Mei",
         "Tariq", "Elena", "Luca"]
FAMILY = ["Garcia", "Nguyen", "Smith", "Okafor", "Patel", "Kim", "Johnson", "Silva", "Haddad", "Novak", "Chen",
          "Williams", "Mensah", "Rossi", "Kowalski", "Tanaka", "Brown", "Ibrahim", "Larsen", "Moreno"]
SUBJECTS = [("Mathematics", "mathematics", "02"), ("English Language Arts", "english", "01"), ("Science", "science", "03"),
            ("Social Studies", "social studies", "04"), ("Art", "art", "05"), ("Physical Education", "physical education", "08")]
RACES = ["americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander", "white"]

MANIFEST_FILES = ["academicSessions", "assessmentLineItems", "assessmentResults", "categories", "classes", "classResources",
                  "courses", "courseResources", "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems",
                  "lineItemScoreScales", "orgs", "resources", "results", "resultLearningObjectiveIds", "resultScoreScales",
                  "roles", "scoreScales", "userProfiles", "userResources", "users"]
WRITTEN = ["orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics", "enrollments", "categories",
           "scoreScales", "lineItems", "lineItemLearningObjectiveIds", "lineItemScoreScales", "results", "resources",
           "classResources"]
#: the bundled CASE demo framework whose standards the mathematics line items assess
CASE_FRAMEWORK = HERE.parents[1] / "case" / "samples" / "northwind-state-mathematics.json"
LEVELS = ["Beginning", "Developing", "Proficient", "Exceeding"]


def standards_by_grade() -> dict[str, list[str]]:
    """Northwind State grade code ("K", "1", ...) -> the CASE identifiers of its Standards, in file order."""
    doc = json.loads(CASE_FRAMEWORK.read_text(encoding="utf-8"))
    out: dict[str, list[str]] = {}
    for item in doc["CFItems"]:
        if item.get("CFItemType") == "Standard":
            out.setdefault(item["humanCodingScheme"].split(".")[2], []).append(item["identifier"])
    return out


def district(
    *,
    schools: int = 3,
    students: int = 240,
    teachers: int = 18,
    classes: int = 36,
    enrollments: int = 1200,
    guardians: int = 40,
    line_items: int = 4,
    graded_classes: int = 3,
    seed: int = 20260901,
) -> Iterator[tuple[str, list[str]]]:
    """(file name, row) pairs, file by file in dependency order, headers first."""
    rnd = random.Random(seed)
    base = ["sourcedId", "status", "dateLastModified"]

    yield "orgs", base + ["name", "type", "identifier", "parentSourcedId"]
    yield "orgs", ["org-bw", "", "", "Birchwood Unified School District", "district", "BUSD", ""]
    school_ids = [f"sch-{i:03d}" for i in range(schools)]
    kinds = ["Elementary School", "Middle School", "High School"]
    for i, s in enumerate(school_ids):
        yield "orgs", [s, "", "", f"{FAMILY[i % len(FAMILY)]} {kinds[i % 3]}" + (f" {i // 60 + 1}" if i >= 60 else ""),
                       "school", f"{1000 + i}", "org-bw"]

    yield "academicSessions", base + ["title", "type", "startDate", "endDate", "parentSourcedId", "schoolYear"]
    yield "academicSessions", ["as-2027", "", "", "2026-2027", "schoolYear", "2026-08-17", "2027-06-11", "", "2027"]
    yield "academicSessions", ["as-2027-s1", "", "", "Fall 2026", "semester", "2026-08-17", "2027-01-15", "as-2027", "2027"]
    yield "academicSessions", ["as-2027-s2", "", "", "Spring 2027", "semester", "2027-01-19", "2027-06-11", "as-2027", "2027"]

    def grade_of(school: int) -> list[str]:
        return [["KG", "01", "02", "03", "04", "05"], ["06", "07", "08"], ["09", "10", "11", "12"]][school % 3]

    yield "courses", base + ["schoolYearSourcedId", "title", "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"]
    courses: list[tuple[str, int, str, str]] = []  # (id, school, grade, subject)
    for si, s in enumerate(school_ids):
        for g in grade_of(si):
            for title, subject, code in SUBJECTS:
                cid = f"crs-{si:03d}-{g}-{code}"
                courses.append((cid, si, g, subject))
                yield "courses", [cid, "", "", "as-2027", f"{title} {g}", f"{code}{g}-{si:03d}", g, s, subject, ""]

    yield "classes", base + ["title", "grades", "courseSourcedId", "classCode", "classType", "location", "schoolSourcedId",
                             "termSourcedIds", "subjects", "subjectCodes", "periods"]
    class_rows: list[tuple[str, int, str]] = []  # (id, school, grade)
    roster_of: dict[int, list[str]] = {}  # graded class -> its students, for the gradebook
    for k in range(classes):
        cid, si, g, subject = courses[k % len(courses)]
        sec = k // len(courses) + 1
        term = "as-2027-s1" if k % 2 == 0 else "as-2027-s2"
        kid = f"cls-{k:06d}"
        class_rows.append((kid, si, g))
        if subject == "mathematics" and len(roster_of) < graded_classes:
            roster_of[k] = []
        yield "classes", [kid, "", "", f"{subject.title()} {g} section {sec}", g, cid, f"{cid}-{sec}", "scheduled",
                          f"Room {100 + k % 60}", school_ids[si], term, subject, "", str(1 + k % 7)]

    # users: teachers, students, guardians
    yield "users", base + ["enabledUser", "username", "userIds", "givenName", "familyName", "middleName", "identifier", "email",
                           "sms", "phone", "agentSourcedIds", "grades", "password", "userMasterIdentifier", "resourceSourcedIds",
                           "preferredGivenName", "preferredMiddleName", "preferredFamilyName", "primaryOrgSourcedId", "pronouns"]
    teacher_school = [t % schools for t in range(teachers)]
    for t in range(teachers):
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        uid = f"tch-{t:05d}"
        yield "users", [uid, "", "", "true", uid, f"{{LDAP:{uid}}}", given, family, "", f"T{100000 + t}",
                        f"{uid}@birchwood.example.org", "", "", "", "", "", "", "", "", "", "", school_ids[teacher_school[t]], ""]
    student_school = [s % schools for s in range(students)]
    student_grade: list[str] = []
    guardian_of: dict[int, str] = {}
    for g in range(guardians):
        guardian_of[(g * 7919) % max(students, 1)] = f"grd-{g:05d}"
    for s in range(students):
        given, family = rnd.choice(GIVEN), rnd.choice(FAMILY)
        grade = rnd.choice(grade_of(student_school[s]))
        student_grade.append(grade)
        uid = f"stu-{s:06d}"
        yield "users", [uid, "", "", "true", uid, "", given, family, rnd.choice(["", "", "J", "M"]), f"S{200000 + s}",
                        f"{uid}@students.birchwood.example.org", "", "", guardian_of.get(s, ""), grade, "", "", "", "", "", "",
                        school_ids[student_school[s]], ""]
    for g in range(guardians):
        uid = f"grd-{g:05d}"
        yield "users", [uid, "", "", "true", uid, "", rnd.choice(GIVEN), rnd.choice(FAMILY), "", "", f"{uid}@home.example.net",
                        "", "", "", "", "", "", "", "", "", "", "org-bw", ""]

    yield "roles", base + ["userSourcedId", "roleType", "role", "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"]
    for t in range(teachers):
        yield "roles", [f"rol-tch-{t:05d}", "", "", f"tch-{t:05d}", "primary", "teacher", "", "", school_ids[teacher_school[t]], ""]
    for s in range(students):
        yield "roles", [f"rol-stu-{s:06d}", "", "", f"stu-{s:06d}", "primary", "student", "", "", school_ids[student_school[s]], ""]
    for g in range(guardians):
        yield "roles", [f"rol-grd-{g:05d}", "", "", f"grd-{g:05d}", "primary", "guardian", "", "", "org-bw", ""]

    yield "demographics", base + ["birthDate", "sex", *RACES, "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity",
                                  "countryOfBirthCode", "stateOfBirthAbbreviation", "cityOfBirth", "publicSchoolResidenceStatus"]
    for s in range(students):
        grade = student_grade[s]
        age = 5 if grade == "KG" else int(grade) + 5
        race = rnd.randrange(len(RACES))
        yield "demographics", [f"stu-{s:06d}", "", "", f"{2026 - age}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                               rnd.choice(["female", "male"]), *("true" if i == race else "false" for i in range(len(RACES))),
                               "false", rnd.choice(["true", "false", "false"]), "US", "OR", "", ""]

    # enrollments: one teacher per class, then students spread over classes of their school
    yield "enrollments", base + ["classSourcedId", "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate", "endDate"]
    by_school: dict[int, list[int]] = {}
    for k, (_, si, _) in enumerate(class_rows):
        by_school.setdefault(si, []).append(k)
    teachers_of: dict[int, list[int]] = {}
    for t in range(teachers):
        teachers_of.setdefault(teacher_school[t], []).append(t)
    n = 0
    for k, (kid, si, _) in enumerate(class_rows):
        pool = teachers_of.get(si) or list(range(teachers))
        t = pool[k % len(pool)]
        yield "enrollments", [f"enr-{n:07d}", "", "", kid, school_ids[si], f"tch-{t:05d}", "teacher", "true", "", ""]
        n += 1
    remaining = max(enrollments - n, 0)
    per_student = remaining // max(students, 1)
    extra = remaining - per_student * students
    for s in range(students):
        si = student_school[s]
        pool = by_school.get(si) or list(range(len(class_rows)))
        want = per_student + (1 if s < extra else 0)
        start = (s * 31) % len(pool)
        for j in range(min(want, len(pool))):
            k = pool[(start + j) % len(pool)]
            yield "enrollments", [f"enr-{n:07d}", "", "", class_rows[k][0], school_ids[si], f"stu-{s:06d}", "student", "false", "", ""]
            if k in roster_of:
                roster_of[k].append(f"stu-{s:06d}")
            n += 1

    yield from gradebook(rnd, class_rows, roster_of, line_items=line_items)


def gradebook(rnd: random.Random, class_rows: list[tuple[str, int, str]], roster_of: dict[int, list[str]], *,
              line_items: int) -> Iterator[tuple[str, list[str]]]:
    """The graded (mathematics) classes' gradebook: two categories, a four-level proficiency
    scale per class, ``line_items`` line items per class each tagged with a Northwind State
    standard of the class's grade (a CASE identifier: results become aligned evidence), every
    enrolled student's result, and one resource per class."""
    base = ["sourcedId", "status", "dateLastModified"]
    maths = sorted(roster_of)
    standards = standards_by_grade() if maths and line_items else {}
    yield "categories", base + ["title", "weight"]
    yield "categories", ["cat-quiz", "", "", "Quizzes", "0.4"]
    yield "categories", ["cat-task", "", "", "Performance tasks", "0.6"]
    yield "scoreScales", base + ["title", "type", "courseSourcedId", "classSourcedId", "scoreScaleValue"]
    for k in maths:
        yield "scoreScales", [f"ss-{class_rows[k][0]}", "", "", "Proficiency (1-4)", "proficiency", "", class_rows[k][0],
                              ",".join(f"{{{lv}:{i + 1}}}" for i, lv in enumerate(LEVELS))]
    head = base + ["title", "description", "assignDate", "dueDate", "classSourcedId", "categorySourcedId", "gradingPeriodSourcedId",
                   "resultValueMin", "resultValueMax", "academicSessionSourcedId", "schoolSourcedId"]
    items: list[tuple[int, str, bool, str]] = []  # (class, line item, rubric?, standard)
    yield "lineItems", head
    for k in maths:
        kid, _, grade = class_rows[k]
        pool = standards.get("K" if grade == "KG" else grade.lstrip("0"), [])
        for j in range(line_items if pool else 0):
            rubric = j % 2 == 1
            lid = f"li-{kid}-{j + 1:02d}"
            items.append((k, lid, rubric, pool[(j * 5 + k) % len(pool)]))
            day = 1 + 7 * j
            yield "lineItems", [lid, "", "", f"{'Task' if rubric else 'Quiz'} {j + 1}", "", f"2026-09-{day:02d}",
                                f"2026-09-{day + 4:02d}", kid, "cat-task" if rubric else "cat-quiz", "",
                                "1" if rubric else "0", "4" if rubric else "20", "", ""]
    yield "lineItemLearningObjectiveIds", ["lineItemSourcedId", "source", "learningObjectiveId"]
    for _, lid, _, standard in items:
        yield "lineItemLearningObjectiveIds", [lid, "case", standard]
    yield "lineItemScoreScales", ["lineItemSourcedId", "scoreScaleSourcedId"]
    for k, lid, rubric, _ in items:
        if rubric:
            yield "lineItemScoreScales", [lid, f"ss-{class_rows[k][0]}"]
    yield "results", base + ["lineItemSourcedId", "studentSourcedId", "scoreStatus", "score", "scoreDate", "comment",
                             "classSourcedId", "textScore", "inProgress", "incomplete", "late", "missing"]
    for k, lid, rubric, _ in items:
        day = int(lid[-2:]) * 7 - 1
        for student in roster_of.get(k, []):
            score = str(rnd.choice([1, 2, 2, 3, 3, 3, 4])) if rubric else str(rnd.randint(8, 20))
            yield "results", [f"res-{lid[3:]}-{student}", "", "", lid, student, "fully graded", score, f"2026-09-{day:02d}",
                              "", class_rows[k][0], "", "", "", "", ""]
    yield "resources", base + ["vendorResourceId", "title", "roles", "importance", "vendorId", "applicationId"]
    yield "resources", ["rsc-fractions", "", "", "FRAC-101", "Fraction strips", "student,teacher", "primary", "birchwood-lms", ""]
    yield "classResources", base + ["title", "classSourcedId", "resourceSourcedId"]
    for k in maths:
        yield "classResources", [f"crs-{class_rows[k][0]}", "", "", "Fraction strips", class_rows[k][0], "rsc-fractions"]


def write_package(target: Path, **kw: int) -> dict[str, int]:
    """Write a OneRoster 1.2 bulk package: a .zip (stored compression off: deflate) or a directory."""
    counts: dict[str, int] = {}
    as_zip = target.suffix == ".zip"
    if as_zip:
        zf = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    else:
        target.mkdir(parents=True, exist_ok=True)
    current = None
    fh = None
    writer = None

    def open_file(name: str) -> tuple[object, object]:
        if as_zip:
            info = zipfile.ZipInfo(f"{name}.csv", date_time=(2026, 9, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            raw = zf.open(info, "w")
            f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        else:
            f = (target / f"{name}.csv").open("w", encoding="utf-8", newline="")
        return f, csv.writer(f, lineterminator="\r\n")

    try:
        for name, row in district(**kw):
            if name != current:
                if fh is not None:
                    fh.close()  # type: ignore[attr-defined]
                fh, writer = open_file(name)
                current = name
                counts[name] = -1  # the header
            writer.writerow(row)  # type: ignore[attr-defined]
            counts[name] += 1
        if fh is not None:
            fh.close()  # type: ignore[attr-defined]
        fh, writer = open_file("manifest")
        writer.writerow(["propertyName", "value"])  # type: ignore[attr-defined]
        writer.writerow(["manifest.version", "1.0"])  # type: ignore[attr-defined]
        writer.writerow(["oneroster.version", "1.2"])  # type: ignore[attr-defined]
        for name in MANIFEST_FILES:
            writer.writerow([f"file.{name}", "bulk" if name in WRITTEN else "absent"])  # type: ignore[attr-defined]
        writer.writerow(["source.systemName", "Birchwood SIS (generated)"])  # type: ignore[attr-defined]
        writer.writerow(["source.systemCode", "birchwood"])  # type: ignore[attr-defined]
        fh.close()  # type: ignore[attr-defined]
    finally:
        if as_zip:
            zf.close()
    return counts


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO
    print(write_package(out))
