"""OneRoster 1.1 / 1.2 CSV binding: manifest, headers, enumerations, references, bulk and
delta semantics, atomicity, export round trip, the wire <-> canonical mapping, CLI, demo.

Fixtures: ``tests/fixtures/oneroster/district-v1p2`` and ``district-v1p1``, small packages
laid out as the OneRoster 1.2 CSV Binding and 1.1 CSV Tables specify (see their README).
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.oneroster import DEMO_SOURCE, OneRosterAdapter
from adapters.oneroster.csv.export import export_package
from adapters.oneroster.csv.ingest import import_package, parse_package
from adapters.oneroster.mapping import to_canonical
from adapters.oneroster.to_wire import to_wire
from adapters.oneroster.vocab import WIRE_KINDS
from gateway.errors import MalformedInput, ValidationError
from gateway.model import Person, Status, record_id
from gateway.store import Store

FIX = Path(__file__).parent / "fixtures" / "oneroster"
T = "t1"
KINDS = list(WIRE_KINDS.values())


def package(tmp_path: Path, version: str = "v1p2", **edits: str | None) -> Path:
    """A copy of the fixture package; ``name=text`` replaces ``name.csv`` (None removes it)."""
    d = tmp_path / f"pkg-{version}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIX / f"district-{version}", d)
    for name, text in edits.items():
        p = d / f"{name}.csv"
        if text is None:
            p.unlink()
        else:
            p.write_text(text, encoding="utf-8", newline="")
    return d


def manifest(**files: str) -> str:
    rows = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.2"]
    rows += [f"file.{k},{v}" for k, v in files.items()]
    return "\n".join(rows) + "\n"


def snapshot(store: Store, tenant: str = T) -> dict[tuple[str, str, str], tuple[str, str]]:
    """Every rostering record as (kind, source, sourcedId) -> (status, content without store timestamps)."""
    out = {}
    for r in store.records.iter_records(tenant, KINDS):
        out[(r.KIND, r.source, r.native_id)] = (r.status.value, r.model_dump_json(exclude={"updated_at"}))
    return out


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | None, str | None, str]]:
    return [(e.location, e.field, e.message) for e in exc.value.errors]


# --------------------------------------------------------------------------- manifest and files


def test_missing_manifest_is_rejected(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path, manifest=None)
    with pytest.raises(MalformedInput, match="manifest.csv is missing"):
        import_package(store, d, tenant=T, source="sis")
    assert snapshot(store) == {}


def test_manifest_with_unknown_file_mode_and_unlisted_file_is_rejected(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path, manifest=manifest(orgs="bulk", users="sometimes", gradebooks="bulk"))
    with pytest.raises(MalformedInput) as exc:
        import_package(store, d, tenant=T, source="sis")
    errs = errors_of(exc)
    assert ("manifest.csv", "file.users", "'sometimes' is not bulk, delta or absent") in errs
    assert any(f == "file.gradebooks" for _, f, _ in errs)
    assert any(loc == "courses.csv" and "not listed in manifest.csv" in m for loc, _, m in errs)


def test_manifest_listing_a_missing_file_is_rejected(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path, courses=None)
    with pytest.raises(MalformedInput, match="invalid OneRoster package") as exc:
        import_package(store, d, tenant=T, source="sis")
    assert any(f == "file.courses" and "no courses.csv" in m for _, f, m in errors_of(exc))


def test_oneroster_version_must_be_1_1_or_1_2(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path, manifest=manifest(orgs="bulk").replace("oneroster.version,1.2", "oneroster.version,1.0"))
    with pytest.raises(MalformedInput) as exc:
        import_package(store, d, tenant=T, source="sis")
    assert any(f == "oneroster.version" for _, f, _ in errors_of(exc))


def test_bom_and_crlf_are_accepted(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path)
    for p in d.glob("*.csv"):
        text = p.read_text(encoding="utf-8")
        p.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    report = import_package(store, d, tenant=T, source="sis")
    assert report.result.created == 17
    org = store.records.get(T, "org", record_id(T, "org", "sis", "d1"))
    assert org.native_id == "d1" and org.name == "Maple District"  # no BOM glued to the first header or value


def test_zip_and_directory_import_alike(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(d.iterdir()):
            zf.write(p, f"export/{p.name}")  # files may sit in a folder inside the zip
    zipped = tmp_path / "pkg.zip"
    zipped.write_bytes(buf.getvalue())
    a, _ = parse_package(d, tenant=T, source="sis")
    b, _ = parse_package(zipped, tenant=T, source="sis")
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]


def test_not_a_zip_is_malformed(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"hello")
    with pytest.raises(MalformedInput, match="not a zip"):
        import_package(store, bad, tenant=T, source="sis")


# --------------------------------------------------------------------------- rows: every error, with file/row/column


def test_enrollment_with_unknown_user_is_reported_with_file_row_and_column(store: Store, tmp_path: Path) -> None:
    text = (FIX / "district-v1p2" / "enrollments.csv").read_text() + "e5,,,k1,s1,u-ghost,student,false,,\n"
    d = package(tmp_path, enrollments=text)
    with pytest.raises(ValidationError) as exc:  # tolerant by default: tests/test_oneroster_unresolved_refs.py
        import_package(store, d, tenant=T, source="sis", strict=True)
    (loc, field, msg), = errors_of(exc)
    assert (loc, field) == ("enrollments.csv row 6", "userSourcedId")
    assert "u-ghost" in msg
    assert snapshot(store) == {}


def test_reference_to_a_stored_record_is_accepted(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    d = package(tmp_path, manifest=manifest(enrollments="delta"),
                **{n: None for n in ("orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics")},
                enrollments="sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
                            "e9,active,2025-09-01T00:00:00Z,k2,s2,u1,student,false,,\n")
    report = import_package(store, d, tenant=T, source="sis")
    assert report.result.created == 1


def test_every_error_is_reported_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    users = (FIX / "district-v1p2" / "users.csv").read_text().replace("u2,,,true,ben", "u2,,,maybe,ben")
    roles = (FIX / "district-v1p2" / "roles.csv").read_text().replace("r1,,,u1,primary,student", "r1,,,u1,primary,studnt")
    sessions = (FIX / "district-v1p2" / "academicSessions.csv").read_text().replace("2025-08-15,2026-01-16", "2025-13-15,2026-01-16")
    orgs = (FIX / "district-v1p2" / "orgs.csv").read_text().replace("s1,,,Maple Elementary,school", "s1,,,Maple Elementary,academy")
    d = package(tmp_path, users=users, roles=roles, academicSessions=sessions, orgs=orgs)
    with pytest.raises(ValidationError) as exc:
        import_package(store, d, tenant=T, source="sis")
    got = {(loc, field) for loc, field, _ in errors_of(exc)}
    assert {("users.csv row 3", "enabledUser"), ("roles.csv row 2", "role"), ("academicSessions.csv row 3", "startDate"),
            ("orgs.csv row 3", "type")} <= got
    msg = {(loc, f): m for loc, f, m in errors_of(exc)}
    assert "'studnt' is not a OneRoster 1.2 role" in msg[("roles.csv row 2", "role")]
    assert snapshot(store) == {}


def test_invalid_enumeration_is_reported_with_the_allowed_values(store: Store, tmp_path: Path) -> None:
    text = (FIX / "district-v1p2" / "classes.csv").read_text().replace(",scheduled,Room 4", ",lecture,Room 4")
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, classes=text), tenant=T, source="sis")
    (loc, field, msg), = errors_of(exc)
    assert (loc, field) == ("classes.csv row 2", "classType") and "homeroom" in msg


def test_duplicate_sourced_id_is_reported(store: Store, tmp_path: Path) -> None:
    text = (FIX / "district-v1p2" / "courses.csv").read_text() + "c1,,,y2026,Again,X,05,s1,,\n"
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, courses=text), tenant=T, source="sis")
    (loc, field, msg), = errors_of(exc)
    assert (loc, field) == ("courses.csv row 4", "sourcedId") and "courses.csv row 2" in msg


def test_missing_required_column_and_unknown_column_are_reported(store: Store, tmp_path: Path) -> None:
    orgs = "sourcedId,status,dateLastModified,type,identifier,parentSourcedId,colour\nd1,,,district,,,blue\n"
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, orgs=orgs), tenant=T, source="sis", strict=True)
    errs = errors_of(exc)
    assert ("orgs.csv row 1", "name", "required column 'name' is missing") in errs
    assert any(loc == "orgs.csv row 1" and f == "colour" for loc, f, _ in errs)
    # tolerant (the default): the unknown column is kept, the missing required one still refused
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, orgs=orgs), tenant=T, source="sis")
    assert [e for e in errors_of(exc) if e[0] == "orgs.csv row 1"] == [("orgs.csv row 1", "name", "required column 'name' is missing")]


def test_an_unknown_column_is_kept_as_metadata_and_warned_once(store: Store, tmp_path: Path) -> None:
    orgs = (FIX / "district-v1p2" / "orgs.csv").read_text().splitlines()
    text = "\n".join([orgs[0] + ",colour", *(r + ",blue" for r in orgs[1:])]) + "\n"
    report = import_package(store, package(tmp_path, orgs=text), tenant=T, source="sis")
    assert report.deviations.counts == {"unknown-column": 1}
    (d,) = report.deviations.items
    assert (d.kind, d.location, d.field) == ("unknown-column", "orgs.csv row 1", "colour")
    district = store.records.get(T, "org", record_id(T, "org", "sis", "d1"))
    assert district.extensions["oneroster"]["metadata"]["colour"] == "blue"


def test_metadata_extension_columns_are_kept(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    ada = store.records.get(T, "person", record_id(T, "person", "sis", "u1"))
    assert ada.extensions["oneroster"]["metadata"] == {"district.house": "red"}
    assert ada.extensions["oneroster"]["pronouns"] == "she/her"


def test_wrong_number_of_fields_is_reported(store: Store, tmp_path: Path) -> None:
    text = (FIX / "district-v1p2" / "orgs.csv").read_text() + "s3,,,Short Row\n"
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, orgs=text), tenant=T, source="sis")
    assert errors_of(exc) == [("orgs.csv row 5", None, "expected 7 fields, found 4")]


# --------------------------------------------------------------------------- mapping of users, roles, demographics


def test_users_roles_and_demographics_map_to_people(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    tess = store.records.get(T, "person", record_id(T, "person", "sis", "u3"))
    assert isinstance(tess, Person)
    assert [(r.role.value, r.primary) for r in tess.roles] == [("teacher", True), ("teacher", False)]
    ada = store.records.get(T, "person", record_id(T, "person", "sis", "u1"))
    assert ada.demographics is not None and ada.demographics.races == ["white"] and ada.demographics.hispanic_or_latino is True
    assert ada.agent_ids == [record_id(T, "person", "sis", "u4")]
    assert ada.grades == ["05"]


def test_user_identifiers_follow_the_identity_rules(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    ada = record_id(T, "person", "sis", "u1")
    assert store.records.lookup(T, "sis", "oneroster.sourcedId", "u1", record_kind="person") == [("person", ada)]
    assert store.records.lookup(T, "sis", "email", "ada@maple.example.org") == [("person", ada)]
    assert store.records.lookup(T, "sis", "oneroster.userId.LDAP", "ada01") == [("person", ada)]
    assert store.records.lookup(T, "sis", "oneroster.identifier", "1001") == [("person", ada)]


def test_v1p1_package_imports_with_single_role_and_orgs(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path, "v1p1"), tenant=T, source="sis")
    assert report.version == "1.1" and report.result.created == 16
    tess = store.records.get(T, "person", record_id(T, "person", "sis", "u3"))
    assert [r.org_id for r in tess.roles] == [record_id(T, "org", "sis", "s1"), record_id(T, "org", "sis", "s2")]
    assert {r.role.value for r in tess.roles} == {"teacher"}


def test_v1p1_rejects_a_1p2_only_role(store: Store, tmp_path: Path) -> None:
    users = (FIX / "district-v1p1" / "users.csv").read_text().replace("s2,student,ben", "s2,districtAdministrator,ben")
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, "v1p1", users=users), tenant=T, source="sis")
    assert [(loc, f) for loc, f, _ in errors_of(exc)] == [("users.csv row 3", "role")]


# --------------------------------------------------------------------------- bulk and delta


def test_bulk_file_marks_absent_records_tobedeleted(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    enrollments = "\n".join((FIX / "district-v1p2" / "enrollments.csv").read_text().splitlines()[:3]) + "\n"  # e1, e2 only
    report = import_package(store, package(tmp_path, enrollments=enrollments), tenant=T, source="sis")
    assert report.deleted == {"enrollment": 2}
    states = {k[2]: v[0] for k, v in snapshot(store).items() if k[0] == "enrollment"}
    assert states == {"e1": "active", "e2": "active", "e3": "tobedeleted", "e4": "tobedeleted"}
    again = import_package(store, package(tmp_path, enrollments=enrollments), tenant=T, source="sis")
    assert again.deleted == {} and again.result.created == again.result.updated == 0


def test_bulk_file_leaves_other_sources_alone(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    import_package(store, package(tmp_path), tenant=T, source="sis2")
    enrollments = "\n".join((FIX / "district-v1p2" / "enrollments.csv").read_text().splitlines()[:2]) + "\n"
    import_package(store, package(tmp_path, enrollments=enrollments), tenant=T, source="sis")
    snap = snapshot(store)
    assert all(v[0] == "active" for k, v in snap.items() if k[1] == "sis2")
    assert [k[2] for k, v in snap.items() if v[0] == "tobedeleted"] and all(
        k[1] == "sis" for k, v in snap.items() if v[0] == "tobedeleted")


def test_delta_applies_status_and_date(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    empty = {n: None for n in ("orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics")}
    d = package(tmp_path, manifest=manifest(enrollments="delta"), **empty, enrollments=(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
        "e2,tobedeleted,2025-10-01T08:30:00.000Z,,,,,,,\n"
        "e1,active,2025-10-02T09:00:00.250Z,k1,s1,u1,student,false,2025-08-15,2025-12-19\n"))
    report = import_package(store, d, tenant=T, source="sis")
    assert report.deleted == {}  # delta never deletes by absence
    e1 = store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "e1"))
    e2 = store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "e2"))
    assert e2.status == Status.tobedeleted and e2.source_updated_at.isoformat() == "2025-10-01T08:30:00+00:00"
    assert e1.status == Status.active and str(e1.end_date) == "2025-12-19"
    assert e1.source_updated_at.isoformat() == "2025-10-02T09:00:00.250000+00:00"
    assert {k[2]: v[0] for k, v in snapshot(store).items() if k[0] == "enrollment"} == {
        "e1": "active", "e2": "tobedeleted", "e3": "active", "e4": "active"}


def test_delta_deletion_of_unknown_record_is_an_error_naming_the_row(store: Store, tmp_path: Path) -> None:
    empty = {n: None for n in ("orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics")}
    d = package(tmp_path, manifest=manifest(enrollments="delta"), **empty, enrollments=(
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
        "e-nobody,tobedeleted,2025-10-01T08:30:00.000Z,,,,,,,\n"))
    with pytest.raises(ValidationError) as exc:  # tolerant by default: tests/test_oneroster_unresolved_refs.py
        import_package(store, d, tenant=T, source="sis", strict=True)
    (loc, field, msg), = errors_of(exc)
    assert (loc, field) == ("enrollments.csv row 2", "status") and "e-nobody" in msg


def test_delta_roles_replace_a_stored_users_roles(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    empty = {n: None for n in ("orgs", "academicSessions", "courses", "classes", "users", "demographics", "enrollments")}
    d = package(tmp_path, manifest=manifest(roles="delta"), **empty, roles=(
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId\n"
        "r2,active,,u2,primary,aide,,,s2,\n"))
    import_package(store, d, tenant=T, source="sis")
    ben = store.records.get(T, "person", record_id(T, "person", "sis", "u2"))
    assert [r.role.value for r in ben.roles] == ["aide"]


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_export_reimports_to_identical_state(store: Store, tmp_path: Path, version: str) -> None:
    fixture = "v1p2" if version == "1.2" else "v1p1"
    import_package(store, package(tmp_path, fixture), tenant=T, source="sis")
    before = snapshot(store)
    buf = io.BytesIO()
    counts = export_package(store, buf, tenant=T, version=version, source="sis")
    assert counts["enrollments"] == 4
    report = import_package(store, buf.getvalue(), tenant=T, source="sis")
    assert report.result.created == report.result.updated == 0 and report.deleted == {}
    assert report.result.unchanged == len(before)
    assert snapshot(store) == before
    # and into an empty tenant: the same records
    import_package(store, buf.getvalue(), tenant="t2", source="sis")
    again = {k: v[0] for k, v in snapshot(store, "t2").items()}
    assert again == {k: v[0] for k, v in before.items()}


def test_export_writes_manifest_and_headers_of_the_version(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    buf = io.BytesIO()
    export_package(store, buf, tenant=T, version="1.1")
    with zipfile.ZipFile(buf) as zf:
        man = zf.read("manifest.csv").decode()
        users = zf.read("users.csv").decode().splitlines()
        assert "roles.csv" not in zf.namelist()
    assert "oneroster.version,1.1" in man and "file.users,bulk" in man and "file.results,absent" in man
    assert users[0].startswith("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username")


# --------------------------------------------------------------------------- the mapping (shared with REST)


def test_rest_objects_round_trip_through_the_canonical_model() -> None:
    objs = {
        "orgs": {"sourcedId": "o1", "status": "active", "dateLastModified": "2025-01-02T03:04:05.678Z", "name": "D",
                 "type": "local", "identifier": "X1", "metadata": {"a": 1}},
        "users": {"sourcedId": "u1", "status": "active", "dateLastModified": "2025-01-02T03:04:05.678Z", "enabledUser": True,
                  "givenName": "A", "familyName": "B", "username": "ab", "userIds": [{"type": "LDAP", "identifier": "x"}],
                  "roles": [{"roleType": "primary", "role": "siteAdministrator", "org": {"sourcedId": "o1", "type": "org"}}],
                  "email": "a@x.org", "pronouns": "they"},
    }
    recs = {}
    for t, o in objs.items():
        r = to_canonical(t, o, tenant=T, source="sis")
        recs[r.id] = r
    for t, o in objs.items():
        r = to_canonical(t, o, tenant=T, source="sis")
        wire = to_wire(r, sourced_id=lambda k, i: recs[i].native_id, use_source_date=True)
        assert to_canonical(t, wire, tenant=T, source="sis") == r
    user = next(r for r in recs.values() if r.KIND == "person")
    assert user.roles[0].role.value == "administrator"
    v11 = to_wire(user, version="1.1", sourced_id=lambda k, i: recs[i].native_id)
    assert v11["role"] == "administrator" and v11["orgs"][0]["sourcedId"] == "o1" and "roles" not in v11
    assert v11["enabledUser"] == "true"


def test_rest_validation_errors_use_oneroster_field_names() -> None:
    with pytest.raises(ValidationError) as exc:
        to_canonical("users", {"sourcedId": "u", "givenName": "A", "familyName": "B", "enabledUser": "true",
                               "email": "not an email", "roles": [{"roleType": "primary", "role": "student", "org": "o"}]},
                     tenant=T, source="sis", location="users/u")
    assert [(e.location, e.field) for e in exc.value.errors] == [("users/u", "email")]


def test_date_last_modified_is_iso8601_with_milliseconds_and_z() -> None:
    org = to_canonical("orgs", {"sourcedId": "o", "name": "O", "type": "school",
                                "dateLastModified": "2025-01-02T03:04:05+02:00"}, tenant=T, source="sis")
    assert to_wire(org, sourced_id=lambda k, i: None, use_source_date=True)["dateLastModified"] == "2025-01-02T01:04:05.000Z"


# --------------------------------------------------------------------------- adapter, CLI, demo


def test_adapter_is_registered_and_parses_a_zip() -> None:
    from adapters.base import discover

    adapter = discover().get("oneroster")
    assert isinstance(adapter, OneRosterAdapter)
    from adapters.oneroster import SAMPLES

    records = adapter.parse((SAMPLES / "birchwood-district-v1p2.zip").read_bytes(), tenant="demo", source="x")
    assert sum(1 for r in records if r.KIND == "enrollment") == 1200


def test_demo_district_loads_beside_the_ndjson_district_and_is_idempotent(store: Store) -> None:
    from adapters.ndjson import NdjsonAdapter

    NdjsonAdapter().load_demo(store, "demo")
    before = store.records.count("demo", "person")
    first = OneRosterAdapter().load_demo(store, "demo")
    assert first.created == 1619 + 388 and first.updated == 0  # rostering records + one evidence per gradebook result
    assert store.records.count("demo", "person") == before + 298
    again = OneRosterAdapter().load_demo(store, "demo")
    assert again.created == again.updated == 0
    sample = store.records.get("demo", "org", record_id("demo", "org", DEMO_SOURCE, "org-bw"))
    assert sample.name == "Birchwood Unified School District"


def test_samples_are_generated_deterministically(tmp_path: Path) -> None:
    import importlib.util

    from adapters.oneroster import SAMPLES

    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    mod.write_package(tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == (SAMPLES / "birchwood-district-v1p2.zip").read_bytes()


def test_cli_import_export_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import app, register_adapters
    from gateway.config import get_settings

    register_adapters()
    monkeypatch.setenv("TESSERA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        runner = CliRunner()

        def run(*args: str) -> str:
            result = runner.invoke(app, list(args), catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result.output

        run("migrate")
        out = run("import", "oneroster", str(package(tmp_path)), "--tenant", T, "--source", "sis")
        assert "17" in out and "OneRoster 1.2" in out
        run("export", "oneroster", "--tenant", T, "--version", "1.2", str(tmp_path / "out.zip"))
        out = run("import", "oneroster", str(tmp_path / "out.zip"), "--tenant", T, "--source", "sis")
        total = next(line for line in out.splitlines() if "total" in line)
        assert [c.strip() for c in total.strip("│ ").split("│")][1:] == ["0", "0", "17"]
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("obj", [
    {"sourcedId": "e1", "user": "u1", "class": {"sourcedId": "k1"}, "school": "s1", "role": "student"},
    {"sourcedId": "e2", "status": "tobedeleted", "dateLastModified": "2025-01-01T00:00:00.5Z", "user": "u1", "class": "k1",
     "school": "s1", "role": "teacher", "primary": "true", "beginDate": "2025-08-01", "endDate": "2026-06-01"},
])
def test_fast_enrollment_path_equals_validated_model(obj: dict) -> None:
    from adapters.oneroster.mapping import _enrollment_fast
    from gateway.model import Enrollment

    fast = _enrollment_fast(obj, T, "sis", "1.2")
    assert fast is not None
    slow = to_canonical("enrollments", {**obj, "metadata": {"x": "1"}}, tenant=T, source="sis")
    slow = Enrollment.model_validate({**slow.model_dump(), "extensions": {}})
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_dump_json(exclude_none=True) == slow.model_dump_json(exclude_none=True)


def test_streamed_enrollments_are_all_validated_before_anything_is_written(store: Store, tmp_path: Path) -> None:
    text = (FIX / "district-v1p2" / "enrollments.csv").read_text() + "e5,,,k1,s1,u-ghost,student,false,,\n"
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, enrollments=text), tenant=T, source="sis", stream=True, strict=True)
    assert [(loc, f) for loc, f, _ in errors_of(exc)] == [("enrollments.csv row 6", "userSourcedId")]
    assert snapshot(store) == {}
    report = import_package(store, package(tmp_path), tenant=T, source="sis", stream=True)
    assert report.result.created == 17 and report.result.counts["enrollment"].created == 4


def test_delta_user_deletion_needs_no_roles(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    empty = {n: None for n in ("orgs", "academicSessions", "courses", "classes", "roles", "demographics", "enrollments")}
    header = (FIX / "district-v1p2" / "users.csv").read_text().splitlines()[0]
    d = package(tmp_path, manifest=manifest(users="delta"), **empty,
                users=header + "\n" + "u2,tobedeleted,2025-11-01T00:00:00Z" + "," * (header.count(",") - 2) + "\n")
    import_package(store, d, tenant=T, source="sis")
    ben = store.records.get(T, "person", record_id(T, "person", "sis", "u2"))
    assert ben.status == Status.tobedeleted and [r.role.value for r in ben.roles] == ["student"]


def test_cli_import_of_a_bad_package_exits_non_zero_naming_file_row_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import app, register_adapters
    from gateway.config import get_settings
    from gateway.errors import TesseraError

    register_adapters()
    monkeypatch.setenv("TESSERA_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["migrate"]).exit_code == 0
        text = (FIX / "district-v1p2" / "enrollments.csv").read_text() + "e5,,,k1,s1,u1,wizard,false,,\n"  # not a role
        with pytest.raises(TesseraError) as exc:
            runner.invoke(app, ["import", "oneroster", str(package(tmp_path, enrollments=text)), "--tenant", T],
                          catch_exceptions=False)
        assert [(e.location, e.field) for e in exc.value.errors] == [("enrollments.csv row 6", "role")]
    finally:
        get_settings.cache_clear()


def test_a_streamed_import_is_still_one_transaction(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large packages are written batch by batch, and a failure in a late batch still
    rolls back every earlier one."""
    import adapters.oneroster.csv.ingest as ingest
    from gateway.store import write as write_mod

    monkeypatch.setattr(ingest, "STREAM_BATCH", 4)
    original = write_mod.RecordWriter._apply_kind

    def failing(self, conn, tenant, kind, *args, **kwargs):
        if kind == "enrollment":
            raise RuntimeError("disk full")
        return original(self, conn, tenant, kind, *args, **kwargs)

    monkeypatch.setattr(write_mod.RecordWriter, "_apply_kind", failing)
    with pytest.raises(RuntimeError):
        import_package(store, package(tmp_path), tenant=T, source="sis", stream=True)
    assert store.records.count(T, "org") == 0 and store.records.count(T, "person") == 0

    monkeypatch.setattr(write_mod.RecordWriter, "_apply_kind", original)
    report = import_package(store, package(tmp_path), tenant=T, source="sis", stream=True)
    assert report.atomic and report.streamed and report.result.created == 17
