"""The bridge from mastery to traditional course grades (gateway/reports/grades.py): the rules
of mappings/mastery-grades.yaml, the per-section grades report on both backends, over HTTP
and from the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gateway.errors import ConfigError, NotFound
from gateway.reports import BadReportRequest, Deidentify, Reports, Scope, to_csv
from gateway.reports.grades import (
    GRADES,
    GradeMapping,
    GradeRule,
    grade_report,
    load_grade_mapping,
)
from gateway.store import Store

from .test_mastery_reports import SALT, District, build, report_api, report_cli  # noqa: F401 (fixtures)

LETTERS = [{"letter": "A", "min": 90}, {"letter": "B", "min": 80}, {"letter": "C", "min": 70}, {"letter": "D", "min": 60},
           {"letter": "F", "min": 0}]


def rule(**kw) -> GradeRule:
    return GradeRule.model_validate({"letters": LETTERS, **kw})


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "grades.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# --- rules --------------------------------------------------------------------------------------


def test_mean_value_gives_the_percentage_and_the_band_the_letter():
    assert rule().grade([("Proficient", 0.8), ("Developing", 0.55)], 2) == (67.5, "D", 2)
    assert rule().grade([("Proficient", 0.9), ("Advanced", 0.9)], 2) == (90.0, "A", 2)  # a band's min is inclusive
    assert rule().grade([("Advanced", 1.0), (None, None)], 2) == (100.0, "A", 1)  # nothing to grade: left out


def test_level_points_over_the_top_level():
    r = rule(basis="level", level_points={"Beginning": 1, "Developing": 2, "Proficient": 3, "Advanced": 4})
    assert r.grade([("Proficient", 0.1), ("Developing", 0.99)], 2) == (62.5, "D", 2)  # values are ignored
    assert r.grade([("Unknown", 0.9), ("Advanced", 0.2)], 2) == (100.0, "A", 1)


def test_missing_competencies_count_as_zero_when_configured():
    assert rule(missing="zero").grade([("Proficient", 0.8), ("Proficient", 0.8)], 4) == (40.0, "F", 2)
    assert rule(missing="exclude").grade([("Proficient", 0.8), ("Proficient", 0.8)], 4) == (80.0, "B", 2)


def test_too_few_assessed_competencies_give_no_grade_rather_than_an_f():
    assert rule(min_assessed=2).grade([("Proficient", 0.8)], 3) == (None, None, 1)
    assert rule().grade([], 3) == (None, None, 0)


def test_the_bundled_mapping_is_valid_and_a_course_override_changes_only_its_keys(tmp_path):
    default = load_grade_mapping(GRADES)
    assert default.default.basis == "value" and [b.letter for b in default.default.letters] == ["A", "B", "C", "D", "F"]
    doc = yaml.safe_load(GRADES.read_text())
    doc["courses"] = {"M5": {"basis": "level", "missing": "zero"}}
    mapping = load_grade_mapping(write(tmp_path, doc))
    m5 = mapping.for_course(uuid.uuid4(), "M5")
    assert (m5.basis, m5.missing, m5.letters) == ("level", "zero", default.default.letters)
    assert mapping.for_course(uuid.uuid4(), "M6") == mapping.default


@pytest.mark.parametrize("change, field", [
    ({"letters": [{"letter": "A", "min": 50}, {"letter": "B", "min": 60}, {"letter": "F", "min": 0}]}, "default"),
    ({"letters": [{"letter": "A", "min": 90}, {"letter": "B", "min": 10}]}, "default"),
    ({"letters": [{"letter": "A", "min": 190}, {"letter": "F", "min": 0}]}, "default.letters.0.min"),
    ({"basis": "level", "level_points": {}}, "default"),
    ({"basis": "stars"}, "default.basis"),
    ({"curve": 5}, "default.curve"),
])
def test_an_impossible_mapping_is_refused_naming_the_key(tmp_path, change, field):
    doc = yaml.safe_load(GRADES.read_text())
    doc["default"].update(change)
    with pytest.raises(ConfigError) as exc:
        load_grade_mapping(write(tmp_path, doc))
    assert exc.value.errors[0].field == field, exc.value.errors


def test_a_bad_course_override_names_the_course(tmp_path):
    doc = yaml.safe_load(GRADES.read_text())
    doc["courses"] = {"M5": {"missing": "sometimes"}}
    with pytest.raises(ConfigError) as exc:
        load_grade_mapping(write(tmp_path, doc))
    assert exc.value.errors[0].field == "courses.M5.missing"


# --- the report --------------------------------------------------------------------------------


@pytest.fixture
def d(store: Store) -> District:
    return build(store)


def test_section_grades_follow_the_course_competencies(d: District, store: Store):
    rows = {r["learner_id"]: r for r in grade_report(Reports(store), "t1", Scope(section=d["X1"])).rows}
    assert len(rows) == 12 and d["teacher"] not in rows
    # K1 and K2: u0 Proficient/Proficient, u4 Developing/Proficient, u9 Beginning/Developing
    assert {k: rows[d["u0"]][k] for k in ("competencies", "assessed", "mastered", "percentage", "letter")} == {
        "competencies": 2, "assessed": 2, "mastered": 2, "percentage": 80.0, "letter": "B"}
    assert (rows[d["u4"]]["percentage"], rows[d["u4"]]["letter"], rows[d["u4"]]["mastered"]) == (67.5, "D", 1)
    assert (rows[d["u9"]]["percentage"], rows[d["u9"]]["letter"]) == (42.5, "F")
    assert rows[d["u0"]]["course_code"] == "M5" and rows[d["u0"]]["course_id"] == d["C1"]


def test_a_course_override_by_code_is_applied(d: District, store: Store):
    base = load_grade_mapping(GRADES).model_dump()
    mapping = GradeMapping.model_validate({**base, "courses": {"M5": {"basis": "level"}}})
    rows = {r["learner_id"]: r for r in grade_report(Reports(store), "t1", Scope(section=d["X1"]), mapping=mapping).rows}
    assert (rows[d["u4"]]["percentage"], rows[d["u4"]]["letter"]) == (62.5, "D")  # (2 + 3) / 2 of 4 points


def test_grades_as_of_a_past_date_use_the_engines_states(d: District, store: Store):
    def fake(tenant, when, comps):
        assert set(comps) == {d["K1"], d["K2"]}
        return [(d["u0"], d["K1"], "Developing", 0.6, False)]

    rows = list(grade_report(Reports(store, as_of=fake), "t1", Scope(section=d["X1"], as_of=datetime(2026, 2, 1, tzinfo=UTC))).rows)
    graded = [(r["learner_id"], r["percentage"], r["letter"]) for r in rows if r["letter"]]
    assert graded == [(d["u0"], 60.0, "D")]


def test_deidentified_grades_carry_pseudonyms_and_a_csv_header(d: District, store: Store):
    report = grade_report(Reports(store), "t1", Scope(section=d["X2"]), Deidentify(salt=SALT))
    lines = "".join(to_csv(report)).splitlines()
    assert lines[0] == "learner,section_id,course_id,course_code,competencies,assessed,mastered,percentage,letter"
    assert len(lines) == 4 and not any(str(d[f"v{i}"]) in "".join(lines) for i in range(3))


def test_the_grades_report_needs_a_known_section(d: District, store: Store):
    with pytest.raises(BadReportRequest) as exc:
        grade_report(Reports(store), "t1", Scope())
    assert exc.value.errors[0].field == "section"
    with pytest.raises(NotFound) as nf:
        grade_report(Reports(store), "t1", Scope(section=uuid.uuid4()))
    assert nf.value.errors[0].field == "section"


def test_grades_over_http(d: District, report_api):  # noqa: F811
    c = report_api.auth_client("t1", ["mastery.readonly"])
    r = c.get("/v1/reports/grades", params={"section": str(d["X1"]), "format": "csv"})
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert lines[0] == "learner_id,section_id,course_id,course_code,competencies,assessed,mastered,percentage,letter"
    assert f"{d['u0']},{d['X1']},{d['C1']},M5,2,2,2,80.0,B" in lines
    r = c.get("/v1/reports/grades", params={"section": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "section"


def test_grades_from_the_cli_with_a_mapping_file(report_cli, tmp_path):  # noqa: F811
    cli, d = report_cli
    doc = yaml.safe_load(GRADES.read_text())
    doc["default"]["basis"] = "level"
    out = tmp_path / "grades.json"
    cli("export", "report", "grades", str(out), "--tenant", "t1", "--section", str(d["X1"]), "--mapping", str(write(tmp_path, doc)))
    import orjson

    body = orjson.loads(out.read_bytes())
    assert body["parameters"]["rule"]["basis"] == "level"
    letters = sorted(i["letter"] for i in body["items"])
    # u0..u3: 3+3 of 4 = 75 C; u4..u7: 2+3 = 62.5 D; u8: 2+2 = 50 F; u9..u11: 1+2 = 37.5 F
    assert letters == ["C"] * 4 + ["D"] * 4 + ["F"] * 4
