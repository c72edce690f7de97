"""Deviations real OneRoster producers emit (``tests/fixtures/realworld/oneroster/<slug>/``:
a small package in ``package/``, and a SOURCE.md naming where the deviation was reported): the tolerant default imports each with
the right warning (kind, place, count), ``--strict`` refuses it naming the place, and a
tolerant import followed by an export gives a package that passes a strict import (issue 15,
"must hold"), with one exception made explicit: a reference held unresolved is exported as
sent and reported by the export, and a strict import refuses exactly those (it cannot pass
without inventing data). The CLI's dry run (``tessera validate oneroster``, ``import --dry-run``)
reports the same without writing anything.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.oneroster.csv.export import export_package
from adapters.oneroster.csv.ingest import import_package, validate_package
from adapters.oneroster.vocab import WIRE_KINDS
from gateway.errors import ValidationError
from gateway.model import Status, record_id
from gateway.store import Store

REALWORLD = Path(__file__).parent / "fixtures" / "realworld" / "oneroster"
T = "rw"
KINDS = list(WIRE_KINDS.values())

#: slug -> the deviations a tolerant import reports: (kind, location, field), in order
CASES: dict[str, list[tuple[str, str, str | None]]] = {
    "enum-case-class-type": [("enum-case", "classes.csv row 2", "classType"), ("enum-case", "classes.csv row 3", "classType")],
    "enum-case-role": [("enum-case", "roles.csv row 2", "role"), ("enum-case", "roles.csv row 3", "role")],
    "legacy-inactive-status": [("legacy-value", "users.csv row 3", "status")],
    "boolean-uppercase-enabled-user": [("boolean-spelling", "users.csv row 2", "enabledUser"),
                                       ("boolean-spelling", "users.csv row 3", "enabledUser")],
    "boolean-one-zero-demographics": [("boolean-spelling", "demographics.csv row 2", f) for f in (
        "americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican", "nativeHawaiianOrOtherPacificIslander", "white",
        "demographicRaceTwoOrMoreRaces", "hispanicOrLatinoEthnicity")],
    "boolean-y-n-primary": [("boolean-spelling", "enrollments.csv row 2", "primary"), ("boolean-spelling", "enrollments.csv row 3", "primary")],
    "grade-without-leading-zero": [("grade-padding", "courses.csv row 2", "grades"), ("grade-padding", "classes.csv row 2", "grades"),
                                   ("grade-padding", "users.csv row 2", "grades")],
    "datetime-without-zone": [("date-without-zone", "orgs.csv row 2", "dateLastModified"),
                              ("date-without-zone", "orgs.csv row 3", "dateLastModified")],
    "date-only-date-last-modified": [("date-without-zone", "orgs.csv row 2", "dateLastModified"),
                                     ("date-without-zone", "orgs.csv row 3", "dateLastModified")],
    "header-lower-case": [("header-case", "orgs.csv row 1", "sourcedid"), ("header-case", "orgs.csv row 1", "datelastmodified"),
                          ("header-case", "orgs.csv row 1", "parentsourcedid")],
    "header-misspelled-naviance": [("header-spelling", "demographics.csv row 1", "sourceID"),
                                   ("header-spelling", "demographics.csv row 1", "demogrphicRaceTwoOrMoreRaces")],
    "header-date-modified-managebac": [("header-spelling", "demographics.csv row 1", "dateModified"),
                                       ("unknown-column", "demographics.csv row 1", "enabledUser")],
    "trailing-empty-columns": [("trailing-empty-columns", "orgs.csv row 1", None), ("trailing-empty-columns", "users.csv row 2", None),
                               ("trailing-empty-columns", "users.csv row 3", None)],
    "surrounding-whitespace": [("whitespace", "orgs.csv row 2", "name"), ("whitespace", "orgs.csv row 3", "name"),
                               ("whitespace", "orgs.csv row 3", "identifier"), ("whitespace", "users.csv row 2", "orgSourcedIds")],
    "duplicate-rows": [("duplicate-object", "users.csv row 4", "sourcedId"), ("duplicate-object", "enrollments.csv row 4", "sourcedId")],
}


def test_every_fixture_has_a_case_and_a_source() -> None:
    slugs = {p.name for p in REALWORLD.iterdir() if p.is_dir()}
    assert slugs == set(CASES) | {"utf8-bom"}
    assert len({kind for case in CASES.values() for kind, _, _ in case}) >= 10
    for slug in slugs:
        source = (REALWORLD / slug / "SOURCE.md").read_text()
        assert "http" in source or "issue 15" in source, slug


def pkg(slug: str) -> Path:
    return REALWORLD / slug / "package"


def version_of(slug: str) -> str:
    text = (REALWORLD / slug / "package" / "manifest.csv").read_text(encoding="utf-8-sig")
    return "1.2" if "oneroster.version,1.2" in text else "1.1"


def stored(store: Store, tenant: str) -> int:
    return sum(store.records.count(tenant, kind) for kind in KINDS)


@pytest.mark.parametrize("slug", sorted(CASES))
def test_tolerant_mode_imports_with_the_warning_and_strict_mode_refuses_it(store: Store, tmp_path: Path, slug: str) -> None:
    path = REALWORLD / slug / "package"
    expected = CASES[slug]
    # strict: refused, naming each place; nothing written
    with pytest.raises(ValidationError) as exc:
        import_package(store, path, tenant=T, source="sis", strict=True)
    places = {(e.location, e.field) for e in exc.value.errors}
    for _, loc, field in expected:
        assert (loc, field) in places or (field is None and any(p[0] == loc for p in places)), (loc, field, places)
    assert stored(store, T) == 0
    # tolerant: imported, each deviation listed with its place, counted per kind
    report = import_package(store, path, tenant=T, source="sis")
    devs = report.deviations
    assert [(d.kind, d.location, d.field) for d in devs.items] == expected
    counts: dict[str, int] = {}
    for kind, _, _ in expected:
        counts[kind] = counts.get(kind, 0) + 1
    assert devs.counts == counts and devs.total == len(expected)
    # the report's counts are what was stored
    assert report.result.created == report.records == stored(store, T)
    # must hold: what a tolerant import stored exports as a package that passes --strict (these
    # fixtures hold no unresolved reference: see test_an_export_of_held_references_...)
    out = io.BytesIO()
    export_package(store, out, tenant=T, version=version_of(slug), source="sis")
    again = import_package(store, out.getvalue(), tenant="rw2", source="sis", strict=True)
    assert not again.deviations and again.records == report.records


def test_strict_mode_keeps_the_messages_it_always_gave(store: Store) -> None:
    """A deviation refused before the tolerant mode existed is refused with the same words."""
    with pytest.raises(ValidationError) as exc:
        import_package(store, pkg("enum-case-class-type"), tenant=T, source="sis", strict=True)
    assert exc.value.errors[0].message.startswith("'Scheduled' is not a OneRoster class type; expected one of")
    with pytest.raises(ValidationError) as exc:
        import_package(store, pkg("duplicate-rows"), tenant=T, source="sis", strict=True)
    assert [e.message for e in exc.value.errors] == ["duplicate sourcedId 'u1' (first at users.csv row 2)",
                                                     "duplicate sourcedId 'e1' (first at enrollments.csv row 2)"]
    # one accepted without a word before is now an error worded as the warning is
    with pytest.raises(ValidationError) as exc:
        import_package(store, pkg("surrounding-whitespace"), tenant=T, source="sis", strict=True)
    assert exc.value.errors[0].message == "value of 'name' has surrounding spaces: stripped"


def test_a_bom_is_no_deviation(store: Store) -> None:
    """The binding says importers must ignore a UTF-8 byte-order mark: no warning, and strict accepts it."""
    report = import_package(store, pkg("utf8-bom"), tenant=T, source="sis", strict=True)
    assert report.records == 4 and not report.deviations
    assert not import_package(store, pkg("utf8-bom"), tenant=T, source="sis").deviations


def test_what_the_deviations_are_read_as(store: Store) -> None:
    import_package(store, pkg("legacy-inactive-status"), tenant=T, source="sis")
    tess = store.records.get(T, "person", record_id(T, "person", "sis", "u2"))
    assert tess.status == Status.tobedeleted  # OneRoster 1.1: 'inactive' is read as 'tobedeleted'
    import_package(store, pkg("grade-without-leading-zero"), tenant=T, source="sis")
    assert store.records.get(T, "person", record_id(T, "person", "sis", "u1")).grades == ["09"]
    import_package(store, pkg("datetime-without-zone"), tenant=T, source="sis")
    school = store.records.get(T, "org", record_id(T, "org", "sis", "s1"))
    assert school.source_updated_at is not None and school.source_updated_at.isoformat() == "2025-11-02T09:30:00.250000+00:00"
    import_package(store, pkg("header-date-modified-managebac"), tenant="t3", source="sis")
    ada = store.records.get("t3", "person", record_id("t3", "person", "sis", "u1"))
    assert ada.extensions["oneroster_demographics"]["metadata"] == {"enabledUser": "true"}


def test_a_different_row_under_one_sourced_id_is_refused_in_both_modes(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    shutil.copytree(pkg("duplicate-rows"), d)
    users = (d / "users.csv").read_text()
    (d / "users.csv").write_text(users.rstrip("\n").rsplit("\n", 1)[0] + "\nu1,,,true,s1,student,ada,,Ada,Lopes,,1001,,,,,05,\n")
    for strict in (True, False):
        with pytest.raises(ValidationError) as exc:
            import_package(store, d, tenant=T, source="sis", strict=strict)
        assert [(e.location, e.field) for e in exc.value.errors if "users.csv" in (e.location or "")] == [("users.csv row 4", "sourcedId")]
        assert "first at users.csv row 2" in str(exc.value)
    assert stored(store, T) == 0


def test_a_malformed_date_has_no_reading_in_either_mode(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    shutil.copytree(pkg("datetime-without-zone"), d)
    (d / "orgs.csv").write_text((d / "orgs.csv").read_text().replace("2025-11-01T08:00:00", "11/01/2025 8:00"))
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="sis", strict=True)
    assert [(e.location, e.field) for e in exc.value.errors] == [("orgs.csv row 2", "dateLastModified"),  # malformed
                                                                 ("orgs.csv row 3", "dateLastModified")]  # no zone
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="sis")
    assert [(e.location, e.field) for e in exc.value.errors] == [("orgs.csv row 2", "dateLastModified")]
    assert "'11/01/2025 8:00' is not an ISO 8601 date-time" in exc.value.errors[0].message


def test_a_streamed_import_reports_the_same_deviations(store: Store) -> None:
    """enrollments.csv read while written (and in a child process): the same warnings."""
    for reader in (False, True):
        report = import_package(store, pkg("boolean-y-n-primary"), tenant=f"s{int(reader)}", source="sis", stream=True,
                                reader_process=reader)
        assert [(d.kind, d.location) for d in report.deviations.items] == [
            ("boolean-spelling", "enrollments.csv row 2"), ("boolean-spelling", "enrollments.csv row 3")]
        assert report.reader_process == (reader and store.streams.can_fork())
        report = import_package(store, pkg("duplicate-rows"), tenant=f"d{int(reader)}", source="sis", stream=True,
                                reader_process=reader)
        assert report.deviations.counts == {"duplicate-object": 2}
        assert report.result.counts["enrollment"].created == 2


def test_validate_writes_nothing_and_reports_as_the_import_would(store: Store) -> None:
    v = validate_package(pkg("enum-case-class-type"), tenant=T, source="sis", store=store)
    assert v.valid and v.report is not None and v.report.rows["classes"] == 2 and stored(store, T) == 0
    body = v.as_dict()
    assert body["deviations"]["counts"] == {"enum-case": 2}
    assert body["deviations"]["warnings"][0] == {"kind": "enum-case", "message": "'Scheduled' is written 'scheduled' by the spec",
                                                 "location": "classes.csv row 2", "field": "classType"}
    strict = validate_package(pkg("enum-case-class-type"), tenant=T, source="sis", store=store, strict=True)
    assert not strict.valid and [(e.location, e.field) for e in strict.errors] == [("classes.csv row 2", "classType"),
                                                                                     ("classes.csv row 3", "classType")]
    assert strict.as_dict()["errors"][0]["location"] == "classes.csv row 2"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from gateway.cli import app, register_adapters
    from gateway.config import get_settings

    register_adapters()
    monkeypatch.setenv("TESSERA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    assert run("migrate")[0] == 0
    yield run
    get_settings.cache_clear()


def test_cli_validate_and_dry_run_print_the_report_and_write_nothing(cli) -> None:  # type: ignore[no-untyped-def]
    path = str(pkg("enum-case-class-type"))
    code, output = cli("validate", "oneroster", path, "--json")
    assert code == 0
    body = json.loads(output)
    assert body["valid"] and body["rows"]["classes"] == 2 and body["deviations"]["counts"] == {"enum-case": 2}
    code, output = cli("validate", "oneroster", path, "--strict", "--json")
    assert code == 1
    body = json.loads(output)
    assert not body["valid"] and {e["location"] for e in body["errors"]} == {"classes.csv row 2", "classes.csv row 3"}
    code, output = cli("validate", "oneroster", path)
    assert code == 0 and "enum-case" in output and "classes.csv row 2" in output and "nothing was written" in output
    code, output = cli("import", "oneroster", path, "--tenant", T, "--dry-run", "--json")
    assert code == 0 and json.loads(output)["records"] == 6
    # nothing was written: a real import creates every record
    code, output = cli("import", "oneroster", path, "--tenant", T, "--json")
    assert code == 0
    body = json.loads(output)
    assert body["result"]["created"] == body["records"] == 6 and body["deviations"]["counts"] == {"enum-case": 2}


def test_cli_import_prints_the_deviations_after_the_summary(cli) -> None:  # type: ignore[no-untyped-def]
    code, output = cli("import", "oneroster", str(pkg("surrounding-whitespace")), "--tenant", T)
    assert code == 0, output
    assert output.index("total") < output.index("normalised") < output.index("[whitespace] orgs.csv row 2")
    assert output.count("warning: [whitespace]") == 4


def test_a_value_under_a_nameless_column_is_refused_in_both_modes(store: Store, tmp_path: Path) -> None:
    """Empty nameless columns are a spreadsheet's; data under one has no column to go to."""
    d = tmp_path / "pkg"
    shutil.copytree(pkg("trailing-empty-columns"), d)
    (d / "orgs.csv").write_text((d / "orgs.csv").read_text().replace(",d1,,\n", ",d1,,x\n"))
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="sis", strict=True)
    assert ("orgs.csv row 1", "") in {(e.location, e.field) for e in exc.value.errors}  # the nameless column
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="sis")
    assert [(e.location, e.message) for e in exc.value.errors if "orgs.csv" in (e.location or "")] == [
        ("orgs.csv row 3", "expected 7 fields, found 9")]


def test_spaces_around_a_column_name_are_a_deviation(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "pkg"
    shutil.copytree(pkg("utf8-bom"), d)
    text = (d / "orgs.csv").read_text(encoding="utf-8-sig").replace("sourcedId,status,", "sourcedId , status,")
    (d / "orgs.csv").write_text(text)
    report = import_package(store, d, tenant=T, source="sis")
    assert [(x.kind, x.location, x.field) for x in report.deviations.items] == [
        ("whitespace", "orgs.csv row 1", "sourcedId"), ("whitespace", "orgs.csv row 1", "status")]
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant="t9", source="sis", strict=True)
    assert [(e.location, e.field) for e in exc.value.errors] == [("orgs.csv row 1", "sourcedId"), ("orgs.csv row 1", "status")]


def test_a_column_beside_its_own_name_in_another_case_is_refused(store: Store, tmp_path: Path) -> None:
    """``SourcedId`` next to ``sourcedId`` is not a spelling of it (two readings): an error in both modes."""
    d = tmp_path / "pkg"
    shutil.copytree(pkg("utf8-bom"), d)
    lines = (d / "orgs.csv").read_text(encoding="utf-8-sig").splitlines()
    (d / "orgs.csv").write_text("\n".join([lines[0] + ",SourcedId", *(r + ",x" for r in lines[1:])]) + "\n")
    for strict in (True, False):
        with pytest.raises(ValidationError) as exc:
            import_package(store, d, tenant=T, source="sis", strict=strict)
        assert [(e.location, e.field) for e in exc.value.errors if e.location == "orgs.csv row 1"] == [("orgs.csv row 1", "SourcedId")]


def test_an_export_of_held_references_reports_them_and_a_strict_import_refuses_exactly_them(store: Store, tmp_path: Path) -> None:
    """The "must hold" and its one exception: a reference held unresolved (its target in
    neither the package nor the store, docs/oneroster-references.md) is exported as it was
    sent, since leaving it out would invent a gap and writing its target would invent a
    record. The export reports each one (``deviations``: file, row's sourcedId, column), and a
    strict import of the export refuses exactly those; every other deviation round-trips."""
    from tests.test_oneroster_gradebook_csv import FIX, GRADEBOOK, RESULTS
    from tests.test_oneroster_gradebook_csv import package as gradebook_package

    d = gradebook_package(tmp_path, {**GRADEBOOK, "results": RESULTS.replace("li1,u1", "li1,ghost")})
    (d / "courses.csv").unlink()  # the SIS does not send its courses
    manifest = (d / "manifest.csv").read_text(encoding="utf-8")
    (d / "manifest.csv").write_text(manifest.replace("file.courses,bulk", "file.courses,absent"), encoding="utf-8")
    assert (FIX / "courses.csv").exists()
    report = import_package(store, d, tenant=T, source="sis")
    assert report.deviations.counts == {"unresolved-reference": 3}  # courses c1, c2 and the student ghost
    out = io.BytesIO()
    from gateway.errors import Deviations

    held = Deviations()
    export_package(store, out, tenant=T, version="1.2", source="sis", deviations=held)
    written = {(d.location, d.field) for d in held.items}
    assert written == {("classes.csv sourcedId k1", "courseSourcedId"), ("classes.csv sourcedId k2", "courseSourcedId"),
                       ("results.csv sourcedId r1", "studentSourcedId")}
    assert held.counts == {"unresolved-reference": 3}
    # strict: refused, and for exactly those references
    with pytest.raises(ValidationError) as exc:
        import_package(store, out.getvalue(), tenant="rw2", source="sis", strict=True)
    refused = {(e.location.split(" row ")[0], e.field, e.message.split("'")[1]) for e in exc.value.errors}
    assert refused == {("classes.csv", "courseSourcedId", "c1"), ("classes.csv", "courseSourcedId", "c2"),
                       ("results.csv", "studentSourcedId", "ghost")}
    # tolerant: the export imports with the same held references, and nothing else to say
    again = import_package(store, out.getvalue(), tenant="rw2", source="sis")
    assert again.deviations.counts == {"unresolved-reference": 3} and again.records == report.records


def test_cli_export_warns_of_the_held_references_it_writes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "no-courses"
    shutil.copytree(pkg("enum-case-class-type"), d)
    (d / "courses.csv").unlink()
    manifest = (d / "manifest.csv").read_text(encoding="utf-8")
    (d / "manifest.csv").write_text(manifest.replace("file.courses,bulk", "file.courses,absent"), encoding="utf-8")
    code, output = cli("import", "oneroster", str(d), "--tenant", T)
    assert code == 0, output
    code, output = cli("export", "oneroster", str(tmp_path / "out.zip"), "--tenant", T)
    assert code == 0, output
    assert "a --strict import of it refuses exactly these" in output
    assert output.count("warning: [unresolved-reference] classes.csv sourcedId") == 2 and "courseSourcedId 'c1'" in output
