"""Reports (gateway/reports, /v1/reports, tessera export report) on a small district
built from canonical records through store.apply, on both backends.

District D has schools S1 and S2; district D2 has school S3. Course C1 (S1) covers K1 and
K2, course C2 (S2) covers K3, course C3 (S3) covers K1. Section X1 (C1) has a term in the
past (2025-08-01 .. 2026-06-30); X2 (C2) and X3 (C3) have none.

S1: u0..u11 in X1; grades 05 (u0..u5) and 06 (u6..u11); u0..u3 in the "ell" group; even
    u's female, odd male.
S2: v0..v2 in X2; v3 is a student of S2 by role only (no enrollment, no states).
S3: w0 in X3.

States (applied directly, as the engine writes them, source "tessera.mastery"):
K1: u0..u3 Proficient (mastered), u4..u8 Developing, u9..u11 Beginning; w0 Proficient.
K2: u0..u7 Proficient (mastered), u8..u11 Developing.
K3: v0 Advanced (mastered), v1 Proficient (mastered), v2 Beginning.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import orjson
import pytest

from gateway.errors import ConfigError, NotFound
from gateway.model import (
    AcademicSession,
    Competency,
    Course,
    Demographics,
    Enrollment,
    Evidence,
    Framework,
    MasteryState,
    Org,
    OrgRole,
    Person,
    Provenance,
    Section,
)
from gateway.reports import (
    SUPPRESSED,
    BadReportRequest,
    Deidentify,
    Reports,
    Scope,
    Thresholds,
    parse_scope,
    resolve_population,
    salt_from_env,
    suppress,
    to_csv,
    to_ndjson,
)
from gateway.store import Store

from .conftest import Api, serve

LEVEL_VALUE = {"Beginning": 0.3, "Developing": 0.55, "Proficient": 0.8, "Advanced": 0.95}
MASTERED = {"Proficient", "Advanced"}
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class District:
    tenant: str
    ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def __getitem__(self, name: str) -> uuid.UUID:
        return self.ids[name]


def _org(tenant: str, native: str, type_: str, parent: Org | None = None) -> Org:
    return Org(tenant=tenant, source="sis", native_id=native, name=f"Org {native}", type=type_, parent_id=parent.id if parent else None)


def _person(tenant: str, native: str, school: Org, grade: str, demo: Demographics | None = None) -> Person:
    return Person(tenant=tenant, source="sis", native_id=native, given_name="Kim", family_name=f"Learner {native}",
                  roles=[OrgRole(role="student", org_id=school.id, primary=True)], grades=[grade], demographics=demo)


def state(tenant: str, learner: uuid.UUID, comp: uuid.UUID, level: str | None) -> MasteryState:
    return MasteryState(
        tenant=tenant, source="tessera.mastery", native_id=f"{learner}:{comp}", learner_id=learner, competency_id=comp,
        level=level, value=LEVEL_VALUE.get(level or ""), mastered=level in MASTERED, method="latest", evidence_count=1,
        computed_at=NOW,
    )


def evidence(tenant: str, native: str, learner: uuid.UUID, source: str, kind: str, at: datetime, voided: bool = False,
             competency: uuid.UUID | None = None, scaled: float = 0.8) -> Evidence:
    return Evidence(
        tenant=tenant, source=source, native_id=native, learner_id=learner, competency_id=competency, evidence_kind=kind,
        score={"scaled": scaled}, observed_at=at, voided=voided,
        provenance=Provenance(standard="xapi", system=source, native_id=native, received_at=at),
    )


def build(store: Store, tenant: str = "t1") -> District:
    d = District(tenant)
    D, D2 = _org(tenant, "D", "district"), _org(tenant, "D2", "district")
    S1, S2, S3 = _org(tenant, "S1", "school", D), _org(tenant, "S2", "school", D), _org(tenant, "S3", "school", D2)
    fw = Framework(tenant=tenant, source="case", native_id="fw", title="Math")
    K = {k: Competency(tenant=tenant, source="case", native_id=k, framework_id=fw.id, statement=f"Can {k}", code=k)
         for k in ("K1", "K2", "K3")}
    term = AcademicSession(tenant=tenant, source="sis", native_id="y25", title="2025-26", type="school_year",
                           start_date=date(2025, 8, 1), end_date=date(2026, 6, 30), school_year=2026)
    C1 = Course(tenant=tenant, source="sis", native_id="C1", title="Math 5", code="M5", org_id=S1.id,
                competency_ids=[K["K1"].id, K["K2"].id])
    C2 = Course(tenant=tenant, source="sis", native_id="C2", title="Math 6", code="M6", org_id=S2.id, competency_ids=[K["K3"].id])
    C3 = Course(tenant=tenant, source="sis", native_id="C3", title="Math 5", code="M5b", org_id=S3.id, competency_ids=[K["K1"].id])
    X1 = Section(tenant=tenant, source="sis", native_id="X1", title="Math 5 - Room 12", course_id=C1.id, org_id=S1.id, session_ids=[term.id])
    X2 = Section(tenant=tenant, source="sis", native_id="X2", title="Math 6 - Room 3", course_id=C2.id, org_id=S2.id)
    X3 = Section(tenant=tenant, source="sis", native_id="X3", title="Math 5 - Room 1", course_id=C3.id, org_id=S3.id)
    u = [_person(tenant, f"u{i}", S1, "05" if i < 6 else "06",
                 Demographics(sex="female" if i % 2 == 0 else "male", groups=["ell"] if i < 4 else [])) for i in range(12)]
    v = [_person(tenant, f"v{i}", S2, "06") for i in range(4)]
    w0 = _person(tenant, "w0", S3, "05")

    def enrol(p: Person, s: Section) -> Enrollment:
        return Enrollment(tenant=tenant, source="sis", native_id=f"{s.native_id}:{p.native_id}", person_id=p.id, section_id=s.id, role="student")

    teacher = Person(tenant=tenant, source="sis", native_id="teacher", given_name="Ada", family_name="Teacher",
                     roles=[OrgRole(role="teacher", org_id=S1.id, primary=True)])
    enrollments = [enrol(p, X1) for p in u] + [enrol(p, X2) for p in v[:3]] + [enrol(w0, X3)]
    enrollments.append(Enrollment(tenant=tenant, source="sis", native_id="X1:teacher", person_id=teacher.id, section_id=X1.id, role="teacher"))
    k1 = ["Proficient"] * 4 + ["Developing"] * 5 + ["Beginning"] * 3
    k2 = ["Proficient"] * 8 + ["Developing"] * 4
    states = [state(tenant, p.id, K["K1"].id, lv) for p, lv in zip(u, k1, strict=True)]
    states += [state(tenant, p.id, K["K2"].id, lv) for p, lv in zip(u, k2, strict=True)]
    states += [state(tenant, p.id, K["K3"].id, lv) for p, lv in zip(v[:3], ["Advanced", "Proficient", "Beginning"], strict=True)]
    states.append(state(tenant, w0.id, K["K1"].id, "Proficient"))
    store.records.apply(tenant, [D, D2, S1, S2, S3, fw, *K.values(), term, C1, C2, C3, X1, X2, X3, *u, *v, w0, teacher,
                                 *enrollments, *states])
    d.ids.update({"D": D.id, "D2": D2.id, "S1": S1.id, "S2": S2.id, "S3": S3.id, "fw": fw.id, "C1": C1.id, "C2": C2.id,
                  "X1": X1.id, "X2": X2.id, "X3": X3.id, "w0": w0.id, "term": term.id, "teacher": teacher.id,
                  **{k: c.id for k, c in K.items()}, **{f"u{i}": p.id for i, p in enumerate(u)},
                  **{f"v{i}": p.id for i, p in enumerate(v)}})
    return d


# --- helpers ---------------------------------------------------------------------------------------

SALT = b"a-salt-of-at-least-16-chars"


def cells(report) -> dict[tuple, object]:
    """(group, competency code, level) -> learners."""
    return {(r["group"], r["competency_code"], r["level"]): r["learners"] for r in report.rows}


def dist(store: Store, tenant: str = "t1", deid: Deidentify | None = None, **scope) -> dict[tuple, object]:
    return cells(Reports(store).distribution(tenant, Scope(**scope), deid))


@pytest.fixture
def d(store: Store) -> District:
    return build(store)


# --- suppression -----------------------------------------------------------------------------------


def test_a_small_cell_hides_a_complement_in_its_row_and_column():
    table = {("a", "x"): 3, ("a", "y"): 20, ("a", "z"): 15, ("b", "x"): 12, ("b", "y"): 30, ("b", "z"): 11}
    hidden, small = suppress(table, 10)
    # a/x is small; a/z is the smallest beside it in row a; b/x is the only one beside it in
    # column x; b/z then keeps column z from giving a/z back.
    assert hidden == {("a", "x"), ("a", "z"), ("b", "x"), ("b", "z")}
    assert small == set()
    # every row and column now holds zero or at least two suppressed cells
    for axis in (0, 1):
        per_line = Counter(k[axis] for k in hidden)
        assert all(n >= 2 for n in per_line.values())


def test_a_row_whose_total_is_below_n_is_hidden_whole_zeros_included():
    hidden, small = suppress({("g", "x"): 4, ("g", "y"): 0, ("h", "x"): 40, ("h", "y"): 50}, 10)
    assert small == {"g"}
    assert {("g", "x"), ("g", "y")} <= hidden
    # column x had one hidden non-zero cell beside a published one: that one goes too
    assert ("h", "x") in hidden


def test_zero_is_published_and_never_chosen_as_a_complement():
    hidden, _ = suppress({("a", "x"): 2, ("a", "y"): 0, ("a", "z"): 30}, 10)
    assert hidden == {("a", "x"), ("a", "z")}


def test_min_cell_below_one_is_refused_naming_the_parameter():
    with pytest.raises(BadReportRequest) as exc:
        Deidentify(salt=SALT, min_cell=0)
    assert exc.value.status == 400 and exc.value.errors[0].field == "min_cell"


def test_a_future_as_of_or_unknown_group_by_is_refused():
    with pytest.raises(BadReportRequest) as exc:
        Scope(as_of=datetime(2999, 1, 1, tzinfo=UTC))
    assert exc.value.errors[0].field == "as_of"
    with pytest.raises(BadReportRequest) as exc:
        Scope(group_by="shoe_size")
    assert exc.value.errors[0].field == "group_by"


def test_an_as_of_date_means_the_end_of_that_day_and_ids_are_checked():
    assert parse_scope(as_of="2026-03-01").as_of == datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_scope(as_of="2026-03-01T08:00:00Z").as_of == datetime(2026, 3, 1, 8, tzinfo=UTC)
    today = parse_scope(as_of=datetime.now(UTC).date().isoformat()).as_of  # today: until now, not the future
    assert today is not None and today <= datetime.now(UTC)
    with pytest.raises(BadReportRequest) as exc:
        parse_scope(org="x", competency=["nope"], as_of="soon")
    assert [e.field for e in exc.value.errors] == ["competency", "as_of", "org"]


def test_progression_status_follows_the_pace_thresholds():
    th = Thresholds(accelerating=1.25, on_track=0.9, short_term_support=0.6)
    assert th.status(0, 0, 1.0) == "no_expected_competencies"
    assert th.status(10, 10, 1.0) == "on_track"
    assert th.status(9, 10, 1.0) == "on_track"  # pace 0.9 is on track
    assert th.status(8, 10, 1.0) == "needs_short_term_support"
    assert th.status(6, 10, 1.0) == "needs_short_term_support"
    assert th.status(5, 10, 1.0) == "needs_intensive_support"
    assert th.status(5, 10, 0.4) == "accelerating"  # 0.5 mastered when 0.4 is due
    assert th.status(1, 10, 0.0) == "on_track"  # due share floored at min_expected_share 0.1
    with pytest.raises(ConfigError):
        Thresholds(accelerating=0.8, on_track=0.9)


def test_the_salt_comes_from_the_environment_and_is_never_echoed(monkeypatch):
    monkeypatch.delenv("REPORT_SALT", raising=False)
    with pytest.raises(ConfigError, match="REPORT_SALT"):
        salt_from_env("REPORT_SALT")
    monkeypatch.setenv("REPORT_SALT", "short-secret")
    with pytest.raises(ConfigError) as exc:
        salt_from_env("REPORT_SALT")
    assert "short-secret" not in str(exc.value)
    monkeypatch.setenv("REPORT_SALT", SALT.decode())
    assert salt_from_env("REPORT_SALT") == SALT
    assert SALT.decode() not in repr(Deidentify(salt=SALT))


# --- distribution ----------------------------------------------------------------------------------


def test_district_distribution_counts_the_learners_of_its_schools_only(d, store):
    got = dist(store, org=d["D"])
    assert got == {
        ("all", "K1", "Beginning"): 3, ("all", "K1", "Developing"): 5, ("all", "K1", "Proficient"): 4,
        ("all", "K2", "Developing"): 4, ("all", "K2", "Proficient"): 8,
        ("all", "K3", "Advanced"): 1, ("all", "K3", "Beginning"): 1, ("all", "K3", "Proficient"): 1,
    }
    # w0 (school S3 of district D2) is in the tenant-wide report only
    assert dist(store)[("all", "K1", "Proficient")] == 5
    assert dist(store, org=d["D2"]) == {("all", "K1", "Proficient"): 1}


def test_assessed_is_the_groups_learners_with_a_state_on_the_competency(d, store):
    rows = Reports(store).distribution("t1", Scope(org=d["D"])).rows
    assert {r["competency_code"]: r["assessed"] for r in rows} == {"K1": 12, "K2": 12, "K3": 3}


def test_a_school_counts_learners_named_by_their_roles_and_not_its_teachers(d, store):
    with store.engine.connect() as conn:
        pop = resolve_population(conn, "t1", Scope(org=d["S2"]))
        s1 = resolve_population(conn, "t1", Scope(org=d["S1"]))
    assert pop.learners == {d["v0"], d["v1"], d["v2"], d["v3"]}  # v3: by role, without enrollment
    assert d["teacher"] not in s1.learners and len(s1.learners) == 12


def test_grouping_by_school_grade_and_filtering_by_demographic_group(d, store):
    by_org = dist(store, org=d["D"], group_by="org")
    assert by_org[(str(d["S1"]), "K1", "Proficient")] == 4
    assert by_org[(str(d["S2"]), "K3", "Advanced")] == 1
    assert {g for g, _, _ in by_org} == {str(d["S1"]), str(d["S2"])}
    report = Reports(store).distribution("t1", Scope(org=d["D"], group_by="org"))
    assert {r["group_label"] for r in report.rows} == {"Org S1", "Org S2"}
    assert report.notes == ["a learner in several groups (org) is counted in each"]

    by_grade = dist(store, org=d["S1"], group_by="grade", competencies=(d["K1"],))
    assert by_grade == {
        ("05", "K1", "Beginning"): 0, ("05", "K1", "Developing"): 2, ("05", "K1", "Proficient"): 4,
        ("06", "K1", "Beginning"): 3, ("06", "K1", "Developing"): 3, ("06", "K1", "Proficient"): 0,
    }
    assert dist(store, group="ell") == {("all", "K1", "Proficient"): 4, ("all", "K2", "Proficient"): 4}
    assert dist(store, grade="06", org=d["D"], competencies=(d["K3"],)) == {
        ("all", "K3", "Advanced"): 1, ("all", "K3", "Beginning"): 1, ("all", "K3", "Proficient"): 1}
    by_sex = dist(store, section=d["X1"], group_by="sex", competencies=(d["K2"],))
    assert by_sex[("female", "K2", "Proficient")] == 4 and by_sex[("male", "K2", "Developing")] == 2


def test_a_section_counts_its_students_and_a_framework_its_competencies(d, store):
    assert dist(store, section=d["X1"]) == {k: v for k, v in dist(store, org=d["S1"]).items()}
    assert sum(v for (_, c, _), v in dist(store, framework=d["fw"]).items() if c == "K1") == 13


def test_unknown_ids_are_404_naming_the_parameter(d, store):
    other = build(store, "t2")
    for scope, param in [
        (Scope(org=uuid.uuid4()), "org"), (Scope(section=uuid.uuid4()), "section"),
        (Scope(competencies=(uuid.uuid4(),)), "competency"), (Scope(framework=uuid.uuid4()), "framework"),
        (Scope(org=other["D"]), "org"),  # another tenant's org is unknown here
    ]:
        with pytest.raises(NotFound) as exc:
            Reports(store).distribution("t1", scope)
        assert exc.value.errors[0].field == param


# --- de-identified -----------------------------------------------------------------------------------


def test_deidentified_distribution_suppresses_small_cells_and_their_complements(d, store):
    got = dist(store, deid=Deidentify(min_cell=5), org=d["D"])
    assert got[("all", "K1", "Developing")] == 5
    assert got[("all", "K1", "Proficient")] is SUPPRESSED and got[("all", "K1", "Beginning")] is SUPPRESSED
    # K2: Developing 4 is small, so Proficient 8 goes too, or 12 - 8 would give it back
    assert got[("all", "K2", "Developing")] is SUPPRESSED and got[("all", "K2", "Proficient")] is SUPPRESSED
    rows = Reports(store).distribution("t1", Scope(org=d["D"]), Deidentify(min_cell=5)).rows
    assessed = {r["competency_code"]: r["assessed"] for r in rows}
    assert assessed["K2"] == 12 and assessed["K3"] is SUPPRESSED  # 3 learners in all
    assert all("group_label" not in r for r in rows)


def test_deidentified_groups_are_suppressed_across_rows_and_columns(d, store):
    got = dist(store, deid=Deidentify(min_cell=3), org=d["S1"], group_by="grade", competencies=(d["K1"],))
    hidden = {k for k, v in got.items() if v is SUPPRESSED}
    # 05/Developing (2) is small; its row then loses 05/Proficient, its column 06/Developing,
    # and that row 06/Beginning; the zeros stay published
    assert hidden == {("05", "K1", "Developing"), ("05", "K1", "Proficient"), ("06", "K1", "Developing"), ("06", "K1", "Beginning")}
    assert got[("05", "K1", "Beginning")] == 0 and got[("06", "K1", "Proficient")] == 0


def test_pseudonyms_are_stable_for_one_salt_and_differ_for_another(d, store):
    def learners(salt: bytes) -> list[str]:
        rows = list(Reports(store).states("t1", Scope(section=d["X1"], competencies=(d["K1"],)), Deidentify(salt=salt)).rows)
        assert all(set(r) == {"learner", "competency_id", "competency_code", "level", "value", "mastered"} for r in rows)
        return [r["learner"] for r in rows]

    first, again, other = learners(SALT), learners(SALT), learners(b"another-salt-of-16-chars")
    assert len(first) == 12 and len(set(first)) == 12
    assert sorted(first) == sorted(again)
    assert not set(first) & set(other)
    assert not {str(d[f"u{i}"]) for i in range(12)} & set(first)
    with pytest.raises(ConfigError, match="salt"):
        Reports(store).states("t1", Scope(), Deidentify())


def test_csv_has_a_header_and_marks_suppressed_cells(d, store):
    report = Reports(store).distribution("t1", Scope(org=d["D"], competencies=(d["K2"],)), Deidentify(min_cell=5))
    lines = "".join(to_csv(report)).splitlines()
    assert lines[0] == "group_by,group,competency_id,competency_code,level,learners,assessed"
    assert lines[1:] == [f",all,{d['K2']},K2,Developing,*,12", f",all,{d['K2']},K2,Proficient,*,12"]
    ident = Reports(store).distribution("t1", Scope(org=d["D"], competencies=(d["K2"],)))
    assert "".join(to_csv(ident)).splitlines()[0] == "group_by,group,group_label,competency_id,competency_code,level,learners,assessed"
    nd = [orjson.loads(x) for x in b"".join(to_ndjson(Reports(store).distribution("t1", Scope(org=d["D"], competencies=(d["K2"],)), Deidentify(min_cell=5)))).splitlines()]
    assert [r["learners"] for r in nd] == [None, None]


# --- progression ------------------------------------------------------------------------------------


def test_progression_counts_each_status_per_school(d, store):
    reports = Reports(store, thresholds=Thresholds(accelerating=1.25, on_track=0.9, short_term_support=0.5))
    rows = reports.progression("t1", Scope(org=d["D"], group_by="org")).rows
    got = {(r["group_label"], r["status"]): r["learners"] for r in rows if r["learners"]}
    # X1's term is over, so all of K1 and K2 is due: u0..u3 have both (1.0), u4..u7 one (0.5),
    # u8..u11 none; X2 has no term (all due): v0, v1 mastered K3, v2 not; v3 has no course
    assert got == {
        ("Org S1", "on_track"): 4, ("Org S1", "needs_short_term_support"): 4, ("Org S1", "needs_intensive_support"): 4,
        ("Org S2", "on_track"): 2, ("Org S2", "needs_intensive_support"): 1, ("Org S2", "no_expected_competencies"): 1,
    }
    assert {r["group_learners"] for r in rows if r["group_label"] == "Org S1"} == {12}


def test_progression_as_of_compares_past_states_with_the_elapsed_term(d, store):
    calls = []
    as_of = datetime(2026, 1, 15, tzinfo=UTC)  # 167 of X1's 333 days: about half is due

    def fake(tenant, when, comps):
        calls.append((tenant, when, comps))
        return [(d["u0"], d["K1"], "Proficient", 0.8, True), (d["u0"], d["K2"], "Proficient", 0.8, True),
                (d["u1"], d["K1"], "Proficient", 0.8, True), (d["u2"], d["K1"], "Developing", 0.5, False)]

    reports = Reports(store, as_of=fake)
    rows = reports.progression("t1", Scope(section=d["X1"], as_of=as_of)).rows
    got = {r["status"]: r["learners"] for r in rows}
    assert got == {"accelerating": 1, "on_track": 1, "needs_short_term_support": 0, "needs_intensive_support": 10,
                   "no_expected_competencies": 0}
    assert calls and calls[0][:2] == ("t1", as_of)


def test_distribution_as_of_counts_the_states_the_engine_derives(d, store):
    def fake(tenant, when, comps):
        assert comps == [d["K1"]]
        return [(d["u0"], d["K1"], "Developing", 0.5, False), (d["u1"], d["K1"], "Developing", 0.5, False),
                (d["w0"], d["K1"], "Beginning", 0.2, False)]

    got = cells(Reports(store, as_of=fake).distribution("t1", Scope(org=d["D"], competencies=(d["K1"],), as_of=datetime(2026, 3, 1, tzinfo=UTC))))
    assert got == {("all", "K1", "Developing"): 2}


def test_as_of_groups_and_rows_come_from_one_pass_over_the_engines_rows(d, store):
    rows = [(d["u0"], d["K1"], "Developing", 0.5, False), (d["v0"], d["K3"], "Advanced", 0.95, True),
            (d["w0"], d["K1"], "Beginning", 0.2, False), (d["u1"], d["K2"], "Proficient", 0.8, True)]
    reports = Reports(store, as_of=lambda tenant, when, comps: iter(rows))
    when = datetime(2026, 3, 1, tzinfo=UTC)
    got = cells(reports.distribution("t1", Scope(org=d["D"], group_by="org", as_of=when)))
    assert got == {(str(d["S1"]), "K1", "Developing"): 1, (str(d["S1"]), "K2", "Proficient"): 1, (str(d["S2"]), "K3", "Advanced"): 1}
    states = list(reports.states("t1", Scope(section=d["X1"], as_of=when)).rows)
    assert [(r["learner_id"], r["competency_code"], r["mastered"]) for r in states] == [(d["u0"], "K1", False), (d["u1"], "K2", True)]


def test_as_of_through_the_real_engine(store):
    engine = pytest.importorskip("gateway.mastery.engine")
    assert hasattr(engine.MasteryEngine, "states_as_of")
    d = build(store, "t3")
    store.records.apply("t3", [
        evidence("t3", "e1", d["u0"], "lms", "assessment", datetime(2026, 2, 1, tzinfo=UTC), competency=d["K3"], scaled=0.9),
        evidence("t3", "e2", d["u1"], "lms", "assessment", datetime(2026, 5, 1, tzinfo=UTC), competency=d["K3"], scaled=0.9),
    ])

    def k3_learners(month: int) -> int:
        report = Reports(store).distribution("t3", Scope(org=d["S1"], competencies=(d["K3"],), as_of=datetime(2026, month, 15, tzinfo=UTC)))
        return sum(r["learners"] for r in report.rows)

    assert (k3_learners(1), k3_learners(3), k3_learners(6)) == (0, 1, 2)


# --- evidence volume ------------------------------------------------------------------------------


def test_evidence_volume_by_month_source_and_kind(d, store):
    oct_, sep = datetime(2026, 10, 3, 8, tzinfo=UTC), datetime(2026, 9, 30, 23, 59, tzinfo=UTC)
    store.records.apply("t1", [
        evidence("t1", "a1", d["u0"], "lms", "assessment", oct_), evidence("t1", "a2", d["u1"], "lms", "assessment", oct_),
        evidence("t1", "a3", d["u1"], "lms", "performance_task", sep),
        evidence("t1", "a4", d["v0"], "portfolio", "artifact", oct_),
        evidence("t1", "a5", d["u2"], "lms", "assessment", oct_, voided=True),
        evidence("t1", "a6", d["w0"], "lms", "assessment", oct_),
    ])
    rows = Reports(store).evidence_volume("t1", Scope(org=d["D"])).rows
    assert {(r["month"], r["source"], r["evidence_kind"]): r["items"] for r in rows} == {
        ("2026-10", "lms", "assessment"): 2, ("2026-09", "lms", "performance_task"): 1, ("2026-10", "portfolio", "artifact"): 1,
    }
    before = Reports(store).evidence_volume("t1", Scope(as_of=datetime(2026, 10, 1, tzinfo=UTC))).rows
    assert [(r["month"], r["items"]) for r in before] == [("2026-09", 1)]
    by_org = Reports(store).evidence_volume("t1", Scope(org=d["D"], group_by="org")).rows
    assert {(r["group_label"], r["source"]): r["items"] for r in by_org if r["month"] == "2026-10"} == {
        ("Org S1", "lms"): 2, ("Org S2", "portfolio"): 1}


# --- HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture
def report_api(store: Store):
    """The real app on a real port, with the reports router (included here until app.py does)."""
    from gateway.api import reports as reports_api
    from gateway.api.app import create_app
    from gateway.config import Settings

    settings = Settings(database_url=store.engine.url.render_as_string(hide_password=False))
    app = create_app(settings, store=store)
    if not any(getattr(r, "path", "").startswith("/v1/reports") for r in app.routes):
        app.include_router(reports_api.build_router(app.state.ctx))
    with serve(app) as base:
        yield Api(base, store, settings)


def test_reports_over_http_in_every_format(d, report_api):
    c = report_api.auth_client("t1", ["mastery.readonly"])
    params = {"org": str(d["D"]), "competency": str(d["K2"])}
    r = c.get("/v1/reports/distribution", params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["report"] == "distribution" and body["parameters"]["org"] == str(d["D"])
    assert [(i["level"], i["learners"]) for i in body["items"]] == [("Developing", 4), ("Proficient", 8)]
    r = c.get("/v1/reports/distribution", params={**params, "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "group_by,group,group_label,competency_id,competency_code,level,learners,assessed"
    r = c.get("/v1/reports/progression", params={"section": str(d["X1"]), "format": "ndjson"})
    assert r.headers["content-type"] == "application/x-ndjson"
    assert len(r.text.splitlines()) == 5
    assert report_api.client().get("/v1/reports/distribution").status_code == 401
    other = report_api.auth_client("t1", ["roster-core.readonly"])
    assert other.get("/v1/reports/distribution").status_code == 403


def test_bad_report_requests_name_the_parameter(d, report_api):
    c = report_api.auth_client("t1", ["mastery.readonly"])
    for params, status, param in [
        ({"org": str(uuid.uuid4())}, 404, "org"),
        ({"section": str(uuid.uuid4())}, 404, "section"),
        ({"competency": str(uuid.uuid4())}, 404, "competency"),
        ({"org": "not-a-uuid"}, 400, "org"),
        ({"deidentified": "true", "min_cell": "0"}, 400, "min_cell"),
        ({"deidentified": "true", "min_cell": "ten"}, 400, "min_cell"),
        ({"format": "xml"}, 400, "format"),
        ({"colour": "red"}, 400, "colour"),
        ({"as_of": "yesterday"}, 400, "as_of"),
        ({"group_by": "shoe_size"}, 400, "group_by"),
    ]:
        r = c.get("/v1/reports/distribution", params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == param, r.text
    assert c.get("/v1/reports/nonsense").status_code == 404
    other = build(report_api.store, "t2")
    r = c.get("/v1/reports/distribution", params={"org": str(other["D"])})  # another tenant's org
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "org"
    r = c.get("/v1/reports/grades")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "section"


def test_a_deidentified_only_client_gets_deidentified_reports(d, report_api, monkeypatch):
    c = report_api.auth_client("t1", ["reports.deidentified"])
    r = c.get("/v1/reports/distribution", params={"org": str(d["D"]), "min_cell": "5"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert all("group_label" not in i for i in items)
    assert {i["learners"] for i in items if i["competency_code"] == "K2"} == {None}
    assert r.json()["parameters"]["deidentified"] is True
    r = c.get("/v1/reports/distribution", params={"deidentified": "false"})
    assert r.status_code == 403
    monkeypatch.setenv("TESSERA_REPORT_SALT", SALT.decode())
    r = c.get("/v1/reports/states", params={"section": str(d["X1"]), "format": "csv"})
    lines = r.text.splitlines()
    assert lines[0] == "learner,competency_id,competency_code,level,value,mastered" and len(lines) == 25
    assert str(d["u0"]) not in r.text and "Learner" not in r.text


def test_identified_demographic_groups_need_the_demographics_scope(d, report_api):
    params = {"section": str(d["X1"]), "group_by": "sex"}
    assert report_api.auth_client("t1", ["mastery.readonly"]).get("/v1/reports/distribution", params=params).status_code == 403
    c = report_api.auth_client("t1", ["mastery.readonly", "roster-demographics.readonly"])
    r = c.get("/v1/reports/distribution", params=params)
    assert r.status_code == 200 and {i["group"] for i in r.json()["items"]} == {"female", "male"}


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def report_cli(cli):
    from gateway.cli import export_app
    from gateway.reports.cli import register
    from gateway.wiring import open_store

    if not any(cmd.name == "report" for cmd in export_app.registered_commands):
        register(export_app)
    cli("migrate")
    s = open_store(cli.url)
    d = build(s)
    s.dispose()
    return cli, d


def test_cli_exports_a_deidentified_csv(report_cli, tmp_path, monkeypatch):
    cli, d = report_cli
    monkeypatch.setenv("STATE_SALT", SALT.decode())
    out = tmp_path / "district.csv"
    cli("export", "report", "distribution", str(out), "--tenant", "t1", "--org", str(d["D"]), "--competency", str(d["K1"]),
        "--deidentified", "--salt-env", "STATE_SALT", "--min-cell", "5")
    lines = out.read_text().splitlines()
    assert lines == [
        "group_by,group,competency_id,competency_code,level,learners,assessed",
        f",all,{d['K1']},K1,Beginning,*,12", f",all,{d['K1']},K1,Developing,5,12", f",all,{d['K1']},K1,Proficient,*,12",
    ]
    states = tmp_path / "states.ndjson"
    cli("export", "report", "states", str(states), "--tenant", "t1", "--section", str(d["X1"]), "--deidentified", "--salt-env", "STATE_SALT")
    rows = [orjson.loads(x) for x in states.read_bytes().splitlines()]
    assert len(rows) == 24 and all(len(r["learner"]) == 64 for r in rows)
    assert SALT.decode() not in out.read_text() + states.read_text()


def test_cli_refuses_bad_parameters(report_cli, tmp_path, monkeypatch):
    cli, _ = report_cli
    out = str(tmp_path / "x.csv")
    with pytest.raises(BadReportRequest) as exc:
        cli("export", "report", "distribution", out, "--tenant", "t1", "--deidentified", "--min-cell", "0")
    assert exc.value.errors[0].field == "min_cell"
    monkeypatch.delenv("NO_SUCH_SALT", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_SALT"):
        cli("export", "report", "states", out, "--tenant", "t1", "--deidentified", "--salt-env", "NO_SUCH_SALT")
    with pytest.raises(NotFound) as nf:
        cli("export", "report", "distribution", out, "--tenant", "t1", "--org", str(uuid.uuid4()))
    assert nf.value.errors[0].field == "org"
    r = cli("export", "report", "distribution", str(tmp_path / "x.xml"), "--tenant", "t1", code=2)
    assert "--format" in r.output


def test_cli_progression_with_a_thresholds_file(report_cli, tmp_path):
    cli, d = report_cli
    th = tmp_path / "thresholds.yaml"
    th.write_text("version: 1\naccelerating: 1.25\non_track: 0.9\nshort_term_support: 0.5\nmin_expected_share: 0.1\n"
                  "expected_share_without_term: 1.0\n")
    out = tmp_path / "progression.ndjson"
    cli("export", "report", "progression", str(out), "--tenant", "t1", "--section", str(d["X1"]), "--thresholds", str(th))
    got = {r["status"]: r["learners"] for r in map(orjson.loads, out.read_bytes().splitlines())}
    assert got == {"accelerating": 0, "on_track": 4, "needs_short_term_support": 4, "needs_intensive_support": 4,
                   "no_expected_competencies": 0}
    th.write_text("accelerating: 0.5\non_track: 0.9\n")
    with pytest.raises(ConfigError, match="thresholds.yaml"):
        cli("export", "report", "progression", str(out), "--tenant", "t1", "--thresholds", str(th))
