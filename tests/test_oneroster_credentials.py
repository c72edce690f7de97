"""OneRoster user passwords (issue 21 item 1) and 1.2 userProfiles.csv (issue 15 item 3).

A users.csv ``password`` and a userProfiles.csv ``password`` are never stored by default
(dropped and counted in the import report); ``keep_credentials="sealed"`` keeps them sealed
with the gateway's key, read back only under ``roster-credentials.readonly``; a filter or
sort on them is refused exactly as an unknown field, whatever the scopes. userProfiles.csv
imports onto the user's ``userProfiles`` and exports back.

The package is the tests' 1.2 fixture district (``fixtures/oneroster/district-v1p2``) with
a password on one user and a userProfiles.csv laid out as the OneRoster 1.2 CSV Binding's
userProfiles table (sourcedId, status, dateLastModified, userSourcedId, profileType,
vendorId, applicationId, description, credentialType, username, password); the binding gives
no example rows for this file, so the rows are ours.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.fernet import Fernet
from sqlalchemy import select, text, update

from adapters.oneroster.credentials import CredentialVault
from adapters.oneroster.csv.export import export_package
from adapters.oneroster.csv.ingest import import_package, parse_package
from adapters.oneroster.mapping import to_canonical
from adapters.oneroster.tables import credentials as credentials_t
from gateway.auth.sealed import ENV_KEY
from gateway.errors import ValidationError
from gateway.model import record_id
from gateway.store import Store
from gateway.wiring import default as default_wiring
from tests.conftest import Api

FIX = Path(__file__).parent / "fixtures" / "oneroster"
T = "t1"
V12 = "/ims/oneroster/rostering/v1p2"
V11 = "/ims/oneroster/v1p1"
CORE = ["roster-core.readonly"]
CREDS = ["roster-core.readonly", "roster-credentials.readonly"]
PASSWORD = "hunter2"
PROFILE_PASSWORD = "tulip-42"

PROFILES = (
    "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,description,credentialType,username,password\r\n"
    f"up1,active,2024-08-01T00:00:00.000Z,u1,reading,vendor-a,app-reader,Reading app account,username,ada.reader,{PROFILE_PASSWORD}\r\n"
    "up2,,,u3,math,vendor-b,,,username,tess.math,\r\n"
)


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sealing key from the environment (on PostgreSQL there is no database file to put a key file next to)."""
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())
    monkeypatch.delenv("TESSERA_ONEROSTER__KEEP_CREDENTIALS", raising=False)


def package(tmp_path: Path, version: str = "v1p2", *, profiles: str | None = PROFILES, mode: str = "bulk",
            password: str = PASSWORD, **edits: str) -> Path:
    """The fixture district with ``password`` on user u1 and (1.2) ``profiles`` as userProfiles.csv."""
    d = tmp_path / f"pkg-{version}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIX / f"district-{version}", d)
    users = list(csv.reader(io.StringIO((d / "users.csv").read_text(encoding="utf-8"))))
    col = users[0].index("password")
    users[1][col] = password
    _write(d / "users.csv", users)
    if profiles is not None:
        (d / "userProfiles.csv").write_text(profiles, encoding="utf-8", newline="")
        man = (d / "manifest.csv").read_text(encoding="utf-8").replace("file.users,", f"file.userProfiles,{mode}\nfile.users,")
        (d / "manifest.csv").write_text(man, encoding="utf-8", newline="")
    for name, body in edits.items():
        (d / f"{name}.csv").write_text(body, encoding="utf-8", newline="")
    return d


def _write(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8", newline="")


def everything_stored(store: Store) -> str:
    """Every row of every table (the gateway's and every adapter's), and the SQLite file itself."""
    parts: list[str] = []
    with store.engine.connect() as conn:
        for meta in default_wiring().migrations.all_metadata():
            for tbl in meta.sorted_tables:
                parts.extend(repr(tuple(r)) for r in conn.execute(select(tbl)))
    if store.engine.url.get_backend_name() == "sqlite":
        store.dispose()
        db = Path(str(store.engine.url.database))
        for f in (db, db.with_name(db.name + "-wal")):
            if f.exists():
                parts.append(f.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def person_id(sid: str) -> Any:
    return record_id(T, "person", "sis", sid)


# ------------------------------------------------------------------ never stored by default


def test_passwords_are_dropped_by_default_and_counted_per_file_and_column(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path), tenant=T, source="sis")
    assert report.dropped_credentials == {"users.csv password": 1, "userProfiles.csv password": 1}
    assert report.sealed_credentials == {}
    stored = everything_stored(store)
    assert PASSWORD not in stored and PROFILE_PASSWORD not in stored
    assert "ada.reader" in stored  # the profile itself is stored: only its secret is not
    assert CredentialVault(store.engine).count(T) == 0


def test_the_1p1_password_column_is_dropped_too(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path, "v1p1", profiles=None), tenant=T, source="sis")
    assert report.dropped_credentials == {"users.csv password": 1}
    assert PASSWORD not in everything_stored(store)


def test_credential_like_metadata_columns_are_dropped_like_passwords(store: Store, tmp_path: Path) -> None:
    d = package(tmp_path)
    users = list(csv.reader(io.StringIO((d / "users.csv").read_text(encoding="utf-8"))))
    users[0].append("metadata.pin")
    for i, row in enumerate(users[1:], start=1):
        row.append("8642" if i == 1 else "")
    _write(d / "users.csv", users)
    report = import_package(store, d, tenant=T, source="sis")
    assert report.dropped_credentials["users.csv metadata.pin"] == 1
    assert "8642" not in everything_stored(store)
    person = store.records.get(T, "person", person_id("u1"))
    assert person.extensions["oneroster"]["metadata"] == {"district.house": "red"}  # the other metadata stays


def test_a_dry_run_counts_what_an_import_would_drop(tmp_path: Path) -> None:
    records, report = parse_package(package(tmp_path), tenant=T, source="sis")
    assert report.dropped_credentials == {"users.csv password": 1, "userProfiles.csv password": 1}
    assert all(PASSWORD not in r.model_dump_json() and PROFILE_PASSWORD not in r.model_dump_json() for r in records)


def test_strict_mode_drops_them_too(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path), tenant=T, source="sis", strict=True)
    assert report.dropped_credentials == {"users.csv password": 1, "userProfiles.csv password": 1}
    assert PASSWORD not in everything_stored(store)


def test_a_rest_user_object_loses_every_credential_in_the_mapping() -> None:
    obj = {
        "sourcedId": "u9", "status": "active", "enabledUser": True, "givenName": "Ana", "familyName": "Ruiz", "password": PASSWORD,
        "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}],
        "metadata": {"pin": "1234", "house": "red"}, "initialPassword": "x-init-1",
        "userProfiles": [{"profileId": "p1", "profileType": "lms", "vendorId": "v", "credentials": [
            {"type": "username", "username": "ana", "password": PROFILE_PASSWORD}]}],
    }
    rec = to_canonical("users", obj, tenant=T, source="sis", version="1.2")
    dumped = rec.model_dump_json()
    for secret in (PASSWORD, PROFILE_PASSWORD, "1234", "x-init-1"):
        assert secret not in dumped
    ext = rec.extensions["oneroster"]
    assert ext["metadata"] == {"house": "red"}
    assert ext["userProfiles"] == [{"profileId": "p1", "profileType": "lms", "vendorId": "v",
                                    "credentials": [{"type": "username", "username": "ana"}]}]


def test_a_rest_user_profile_without_its_required_fields_is_an_error() -> None:
    obj = {"sourcedId": "u9", "enabledUser": True, "givenName": "Ana", "familyName": "Ruiz",
           "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}],
           "userProfiles": [{"profileId": "p1", "credentials": [{"type": "username"}]}]}
    with pytest.raises(ValidationError) as exc:
        to_canonical("users", obj, tenant=T, source="sis", version="1.2")
    fields = {e.field for e in exc.value.errors}
    assert {"userProfiles[0].profileType", "userProfiles[0].vendorId", "userProfiles[0].credentials[0].username"} <= fields


# ------------------------------------------------------------------ reads without the scope


def test_rest_and_canonical_reads_never_show_a_dropped_password(api: Api, tmp_path: Path) -> None:
    import_package(api.store, package(tmp_path), tenant=T, source="sis")
    c = api.auth_client(T, ["roster.readonly", "admin", "records.write"])
    for path in (f"{V12}/users/u1", f"{V11}/users/u1", f"{V12}/users", f"/v1/people/{person_id('u1')}"):
        r = c.get(path)
        assert r.status_code == 200, r.text
        assert PASSWORD not in r.text and PROFILE_PASSWORD not in r.text and '"password"' not in r.text


# ------------------------------------------------------------------ sealed on request


def sealed_import(store: Store, tmp_path: Path, **kw: Any) -> Any:
    return import_package(store, package(tmp_path, **kw), tenant=T, source="sis", keep_credentials="sealed")


def test_sealed_passwords_are_kept_but_never_in_clear_in_the_database(store: Store, tmp_path: Path) -> None:
    report = sealed_import(store, tmp_path)
    assert report.sealed_credentials == {"users.csv password": 1, "userProfiles.csv password": 1}
    assert report.dropped_credentials == {}
    stored = everything_stored(store)
    assert PASSWORD not in stored and PROFILE_PASSWORD not in stored
    vault = CredentialVault(store.engine)
    assert vault.count(T) == 2
    assert vault.read(T, [person_id("u1")]) == {person_id("u1"): {"password": PASSWORD, "userProfiles/up1/0": PROFILE_PASSWORD}}


def test_the_setting_turns_sealing_on_for_every_import(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_ONEROSTER__KEEP_CREDENTIALS", "sealed")
    report = import_package(store, package(tmp_path), tenant=T, source="sis")
    assert report.sealed_credentials == {"users.csv password": 1, "userProfiles.csv password": 1}
    assert import_package(store, package(tmp_path), tenant=T, source="sis", keep_credentials="drop").sealed_credentials == {}


def test_a_sealed_value_moved_to_another_row_does_not_open(store: Store, tmp_path: Path) -> None:
    sealed_import(store, tmp_path)
    c = credentials_t.c
    with store.engine.begin() as conn:
        value = conn.scalar(select(c.secret_sealed).where(c.person_id == person_id("u1"), c.slot == "password"))
        conn.execute(update(credentials_t).where(c.person_id == person_id("u1"), c.slot == "userProfiles/up1/0")
                     .values(secret_sealed=value))
    assert CredentialVault(store.engine).read(T, [person_id("u1")]) == {person_id("u1"): {"password": PASSWORD}}


def test_a_later_import_without_the_password_or_in_drop_mode_forgets_it(store: Store, tmp_path: Path) -> None:
    sealed_import(store, tmp_path)
    import_package(store, package(tmp_path, password=""), tenant=T, source="sis", keep_credentials="sealed")
    assert CredentialVault(store.engine).read(T, [person_id("u1")]) == {person_id("u1"): {"userProfiles/up1/0": PROFILE_PASSWORD}}
    import_package(store, package(tmp_path), tenant=T, source="sis")  # drop mode: what is stored is stale, it goes
    assert CredentialVault(store.engine).count(T) == 0


def test_a_user_going_tobedeleted_loses_its_sealed_credentials(store: Store, tmp_path: Path) -> None:
    sealed_import(store, tmp_path)
    d = package(tmp_path, profiles=None, mode="delta")
    (d / "manifest.csv").write_text("propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.users,delta\n",
                                    encoding="utf-8")
    for name in ("orgs", "academicSessions", "courses", "classes", "roles", "demographics", "enrollments"):
        (d / f"{name}.csv").unlink()
    (d / "users.csv").write_text("sourcedId,status,dateLastModified,enabledUser,givenName,familyName\r\n"
                                 "u1,tobedeleted,2025-01-01T00:00:00Z,true,Ada,Lopez\r\n", encoding="utf-8", newline="")
    import_package(store, d, tenant=T, source="sis", keep_credentials="sealed")
    assert CredentialVault(store.engine).read(T, [person_id("u1")]) == {}


def _minor(r: httpx.Response) -> str:
    return r.json()["imsx_CodeMinor"]["imsx_codeMinorField"][0]["imsx_codeMinorFieldValue"]


def test_only_the_credentials_scope_reads_sealed_passwords(api: Api, tmp_path: Path) -> None:
    sealed_import(api.store, tmp_path)
    entitled = api.auth_client(T, CREDS)
    for path in (f"{V12}/users/u1", f"{V12}/students/u1", f"{V11}/users/u1"):
        u = entitled.get(path).json()["user"]
        assert u["password"] == PASSWORD, path
    u = entitled.get(f"{V12}/users/u1").json()["user"]
    assert u["userProfiles"][0]["credentials"] == [{"type": "username", "username": "ada.reader", "password": PROFILE_PASSWORD}]
    listed = {x["sourcedId"]: x for x in entitled.get(f"{V12}/users").json()["users"]}
    assert listed["u1"]["password"] == PASSWORD and "password" not in listed["u2"]
    picked = entitled.get(f"{V12}/users", params={"fields": "sourcedId,password", "filter": "sourcedId='u1'"}).json()["users"]
    assert picked == [{"sourcedId": "u1", "password": PASSWORD}]
    # every other scope, the broadest OneRoster one and the tenant's admin included: never
    other = api.auth_client(T, ["roster.readonly", "roster-demographics.readonly", "admin", "records.write"])
    for path in (f"{V12}/users/u1", f"{V12}/users", f"{V11}/users/u1", f"/v1/people/{person_id('u1')}", "/v1/people"):
        r = other.get(path)
        assert r.status_code == 200, r.text
        assert PASSWORD not in r.text and PROFILE_PASSWORD not in r.text, path
    assert other.get(f"{V12}/users/u1").json()["user"]["userProfiles"][0]["credentials"] == [
        {"type": "username", "username": "ada.reader"}]


def test_a_uri_form_of_the_roster_scopes_does_not_grant_credentials(api: Api, tmp_path: Path) -> None:
    sealed_import(api.store, tmp_path)
    c = api.auth_client(T, ["https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly"])
    r = c.get(f"{V12}/users/u1")
    assert r.status_code == 200 and PASSWORD not in r.text


@pytest.mark.parametrize("scopes", [CORE, CREDS], ids=["core", "credentials-scope"])
@pytest.mark.parametrize(("secret_filter", "field"), [
    ("password~'hunt'", "password"), ("password>'h'", "password"), ("password<'i'", "password"),
    ("password='hunter2'", "password"), ("userProfiles.credentials.password~'tulip'", "userProfiles.credentials.password"),
    ("metadata.pin='1'", "metadata.pin"), ("givenName='Ada' AND password~'h'", "password"),
])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused while the filter is parsed, before any SQL: the sealed import and the listings run on both backends in the tests below
def test_a_filter_on_a_credential_is_refused_exactly_as_an_unknown_field(api: Api, tmp_path: Path, scopes: list[str],
                                                                         secret_filter: str, field: str) -> None:
    sealed_import(api.store, tmp_path)
    c = api.auth_client(T, scopes)
    unknown = secret_filter.replace(field, "nosuchfield")
    got, other = c.get(f"{V12}/users", params={"filter": secret_filter}), c.get(f"{V12}/users", params={"filter": unknown})
    assert got.status_code == other.status_code == 400
    assert _minor(got) == _minor(other) == "invalid_filter_field"
    assert got.json()["imsx_description"].replace(field, "nosuchfield") == other.json()["imsx_description"]
    assert PASSWORD not in got.text


@pytest.mark.parametrize("scopes", [CORE, CREDS], ids=["core", "credentials-scope"])
@pytest.mark.parametrize("secret_sort", ["password", "userProfiles.credentials.password", "metadata.pin"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: refused while the sort is parsed, before any SQL: the listings run on both backends in the tests below
def test_a_sort_on_a_credential_is_refused_exactly_as_an_unknown_field(api: Api, tmp_path: Path, scopes: list[str],
                                                                       secret_sort: str) -> None:
    sealed_import(api.store, tmp_path)
    c = api.auth_client(T, scopes)
    got, other = c.get(f"{V12}/users", params={"sort": secret_sort}), c.get(f"{V12}/users", params={"sort": "nosuchfield"})
    assert got.status_code == other.status_code == 400
    assert _minor(got) == _minor(other)
    assert got.json()["imsx_description"].replace(secret_sort, "nosuchfield") == other.json()["imsx_description"]


def test_entitled_listings_filter_and_sort_without_the_secrets(api: Api, tmp_path: Path) -> None:
    """Filtering and sorting run before the secrets are added: a sort on the whole
    userProfiles list orders by what every reader sees."""
    sealed_import(api.store, tmp_path)
    core = api.auth_client(T, CORE).get(f"{V12}/users", params={"sort": "userProfiles"}).json()["users"]
    entitled = api.auth_client(T, CREDS).get(f"{V12}/users", params={"sort": "userProfiles"}).json()["users"]
    assert [u["sourcedId"] for u in core] == [u["sourcedId"] for u in entitled]


# ------------------------------------------------------------------ userProfiles.csv


def test_user_profiles_become_the_users_rest_user_profiles(api: Api, tmp_path: Path) -> None:
    report = import_package(api.store, package(tmp_path), tenant=T, source="sis")
    assert report.rows["userProfiles"] == 2
    u1 = api.auth_client(T, CORE).get(f"{V12}/users/u1").json()["user"]
    assert u1["userProfiles"] == [{"profileId": "up1", "profileType": "reading", "vendorId": "vendor-a", "applicationId": "app-reader",
                                   "description": "Reading app account", "credentials": [{"type": "username", "username": "ada.reader"}]}]
    u3 = api.auth_client(T, CORE).get(f"{V12}/users/u3").json()["user"]
    assert u3["userProfiles"] == [{"profileId": "up2", "profileType": "math", "vendorId": "vendor-b",
                                   "credentials": [{"type": "username", "username": "tess.math"}]}]
    assert "userProfiles" not in api.auth_client(T, CORE).get(f"{V11}/users/u1").json()["user"]  # a 1.2 object


def _member(zip_bytes: bytes, name: str) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        return list(csv.reader(io.StringIO(zf.read(name).decode("utf-8"))))


def _export(store: Store, **kw: Any) -> bytes:
    buf = io.BytesIO()
    export_package(store, buf, tenant=T, version="1.2", **kw)
    return buf.getvalue()


def test_user_profiles_round_trip_without_passwords_by_default(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    out = _export(store)
    rows = _member(out, "userProfiles.csv")
    expected = list(csv.reader(io.StringIO(PROFILES)))
    expected[1][-1] = ""  # the password was never stored
    assert rows == expected
    assert ["file.userProfiles", "bulk"] in _member(out, "manifest.csv")
    users = _member(out, "users.csv")
    assert all(r[users[0].index("password")] == "" for r in users[1:])
    # and the exported package imports back to the same profiles
    again = tmp_path / "again.zip"
    again.write_bytes(out)
    before = store.records.get(T, "person", person_id("u1")).extensions
    import_package(store, again, tenant=T, source="sis")
    assert store.records.get(T, "person", person_id("u1")).extensions == before


def test_sealed_passwords_are_exported_only_when_asked(store: Store, tmp_path: Path) -> None:
    sealed_import(store, tmp_path)
    plain = _export(store)
    assert PASSWORD.encode() not in plain and PROFILE_PASSWORD.encode() not in plain
    full = _export(store, credentials=True)
    assert _member(full, "userProfiles.csv") == list(csv.reader(io.StringIO(PROFILES)))
    users = _member(full, "users.csv")
    u1 = next(r for r in users[1:] if r[0] == "u1")
    assert u1[users[0].index("password")] == PASSWORD
    # a round trip in sealed mode keeps them
    again = tmp_path / "again.zip"
    again.write_bytes(full)
    import_package(store, again, tenant=T, source="sis", keep_credentials="sealed")
    assert CredentialVault(store.engine).read(T, [person_id("u1")]) == {person_id("u1"): {"password": PASSWORD, "userProfiles/up1/0": PROFILE_PASSWORD}}


def test_a_package_without_user_profiles_keeps_the_stored_ones(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    import_package(store, package(tmp_path, profiles=None), tenant=T, source="sis")
    ext = store.records.get(T, "person", person_id("u1")).extensions["oneroster"]
    assert [p["profileId"] for p in ext["userProfiles"]] == ["up1"]


def test_a_bulk_user_profiles_file_replaces_every_profile_of_the_source(store: Store, tmp_path: Path) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    only_u1 = "\r\n".join(PROFILES.split("\r\n")[:2]) + "\r\n"
    import_package(store, package(tmp_path, profiles=only_u1), tenant=T, source="sis")
    assert "userProfiles" not in store.records.get(T, "person", person_id("u3")).extensions.get("oneroster", {})
    assert store.records.get(T, "person", person_id("u1")).extensions["oneroster"]["userProfiles"][0]["profileId"] == "up1"


def test_a_delta_user_profiles_file_adds_and_removes_single_profiles(store: Store, tmp_path: Path) -> None:
    sealed_import(store, tmp_path)
    d = tmp_path / "delta"
    d.mkdir()
    (d / "manifest.csv").write_text("propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.userProfiles,delta\n",
                                    encoding="utf-8")
    (d / "userProfiles.csv").write_text(
        "sourcedId,status,dateLastModified,userSourcedId,profileType,vendorId,applicationId,description,credentialType,username,password\r\n"
        "up1,tobedeleted,2025-01-01T00:00:00.000Z,u1,,,,,,,\r\n"
        "up3,active,2025-01-01T00:00:00.000Z,u3,science,vendor-c,,,username,tess.sci,\r\n", encoding="utf-8", newline="")
    import_package(store, d, tenant=T, source="sis", keep_credentials="sealed")
    assert "userProfiles" not in store.records.get(T, "person", person_id("u1")).extensions.get("oneroster", {})
    u3 = store.records.get(T, "person", person_id("u3")).extensions["oneroster"]["userProfiles"]
    assert [p["profileId"] for p in u3] == ["up2", "up3"]
    assert CredentialVault(store.engine).read(T, [person_id("u1")]) == {person_id("u1"): {"password": PASSWORD}}


def test_user_profile_rows_are_checked_with_file_row_and_column(store: Store, tmp_path: Path) -> None:
    bad = (PROFILES.split("\r\n")[0] + "\r\n"
           "up1,,,u1,reading,,,,username,ada.reader,\r\n"
           "up1,,,u3,math,vendor-b,,,username,tess.math,\r\n"
           "up9,,,nobody,math,vendor-b,,,username,who,\r\n"
           "up8,,not-a-date,u3,math,vendor-b,,,,tess,\r\n")
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, profiles=bad), tenant=T, source="sis", strict=True)
    errs = {(e.location, e.field) for e in exc.value.errors}
    assert ("userProfiles.csv row 2", "vendorId") in errs
    assert ("userProfiles.csv row 3", "sourcedId") in errs
    assert ("userProfiles.csv row 4", "userSourcedId") in errs
    assert ("userProfiles.csv row 5", "dateLastModified") in errs
    assert ("userProfiles.csv row 5", "credentialType") in errs
    assert store.records.count(T, "person") == 0


def test_every_1p2_csv_file_is_read_and_written() -> None:
    from adapters.oneroster.csv.cells import KNOWN_FILES
    from adapters.oneroster.csv.columns import COLUMNS
    from adapters.oneroster.csv.export import EXPORT_ORDER

    for version, files in KNOWN_FILES.items():
        assert set(files) <= set(COLUMNS[version]), version
        assert set(files) <= set(EXPORT_ORDER), version


def test_cli_import_says_what_it_dropped(cli: Any, tmp_path: Path) -> None:
    cli("migrate")
    out = cli("import", "oneroster", str(package(tmp_path)), "--tenant", T).output
    assert "users.csv password: 1 row(s)" in out and "userProfiles.csv password: 1 row(s)" in out and "dropped" in out
    out = cli("import", "oneroster", str(package(tmp_path)), "--tenant", T, "--keep-credentials", "sealed").output
    assert "users.csv password: 1 row(s)" in out and "kept sealed" in out
    target = tmp_path / "out.zip"
    cli("export", "oneroster", str(target), "--tenant", T, "--credentials")
    assert any(r[-1] == PROFILE_PASSWORD for r in _member(target.read_bytes(), "userProfiles.csv"))
    with __import__("sqlalchemy").create_engine(cli.url).connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM oneroster_credentials")) == 2


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_rest_pull_drops_passwords_and_keeps_user_profiles(store: Store, respx_mock: respx.MockRouter) -> None:
    from tests.test_oneroster_client import Provider, client, roster, wire_user

    data = roster(2)
    data["users"][0] = wire_user("u0", password=PASSWORD, userProfiles=[
        {"profileId": "p1", "profileType": "lms", "vendorId": "v1",
         "credentials": [{"type": "username", "username": "ada", "password": PROFILE_PASSWORD}]}])
    Provider(respx_mock, data)
    with client() as c:
        summary = c.pull(store, tenant=T, source="sis")
    assert summary.dropped_credentials == {"users password": 1, "users userProfiles.credentials.password": 1}
    stored = everything_stored(store)
    assert PASSWORD not in stored and PROFILE_PASSWORD not in stored
    ext = store.records.get(T, "person", person_id("u0")).extensions["oneroster"]
    assert ext["userProfiles"] == [{"profileId": "p1", "profileType": "lms", "vendorId": "v1",
                                    "credentials": [{"type": "username", "username": "ada"}]}]


def test_a_password_put_into_extensions_by_other_means_is_never_served(api: Api) -> None:
    """A canonical record written through the batch API (not the OneRoster mapping) that carries a
    password in its OneRoster extensions: the REST provider still leaves it out."""
    from tests import factories as f

    school = f.org("s1", tenant=T)
    p = f.person("u1", school, T)
    p = p.model_copy(update={"extensions": {"oneroster": {"password": PASSWORD, "metadata": {"pin": "8642", "house": "red"},
                                                          "userProfiles": [{"profileId": "p1", "profileType": "x", "vendorId": "v",
                                                                            "credentials": [{"type": "u", "username": "a",
                                                                                             "password": PROFILE_PASSWORD}]}]}}})
    api.store.records.apply(T, [school, p])
    u = api.auth_client(T, CREDS).get(f"{V12}/users/u1").json()["user"]
    assert u["metadata"] == {"house": "red"} and "password" not in u
    assert u["userProfiles"][0]["credentials"] == [{"type": "u", "username": "a"}]


def test_a_profile_with_two_credentials_exports_as_two_rows() -> None:
    """The CSV binding holds one credential a row: a REST profile with two gets a second row
    whose sourcedId is ``<profileId>.1``; sealed passwords go to their own row."""
    from adapters.oneroster.csv.export import profile_rows

    rec = to_canonical("users", {
        "sourcedId": "u9", "enabledUser": True, "givenName": "Ana", "familyName": "Ruiz",
        "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}],
        "userProfiles": [{"profileId": "p1", "profileType": "lms", "vendorId": "v", "credentials": [
            {"type": "username", "username": "ana"}, {"type": "email", "username": "ana@example.org"}]}]},
        tenant=T, source="sis", version="1.2")
    rows = list(profile_rows(rec, {"userProfiles/p1/1": "s3cret"}))
    assert [(r["sourcedId"], r["credentialType"], r["username"], r["password"]) for r in rows] == [
        ("p1", "username", "ana", None), ("p1.1", "email", "ana@example.org", "s3cret")]


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_rest_pull_forgets_the_sealed_credentials_of_the_users_it_reads(store: Store, respx_mock: respx.MockRouter,
                                                                          tmp_path: Path) -> None:
    from tests.test_oneroster_client import Provider, client, roster, wire_user

    sealed_import(store, tmp_path)
    assert CredentialVault(store.engine).count(T) == 2
    data = roster(0)
    data["orgs"] = [{"sourcedId": "d1", "status": "active", "name": "D", "type": "district"}]
    data["users"] = [wire_user("u1", password="a-new-one")]
    data["enrollments"] = []
    Provider(respx_mock, data)
    with client() as c:
        c.pull(store, tenant=T, source="sis", since="2020-01-01T00:00:00Z")
    assert CredentialVault(store.engine).count(T) == 0
    assert "a-new-one" not in everything_stored(store)


def test_a_profile_of_a_user_in_neither_the_package_nor_the_store_is_not_kept_and_says_so(store: Store, tmp_path: Path) -> None:
    """No user is invented to hold it: tolerant, an orphan-row warning at the row; strict, an error there."""
    ghost = PROFILES + "up9,,,u-ghost,math,vendor-b,,,username,ghost.math,\r\n"
    report = import_package(store, package(tmp_path, profiles=ghost), tenant=T, source="sis")
    assert report.deviations.counts.get("orphan-row") == 1
    (warning,) = [d for d in report.deviations.items if d.kind == "orphan-row"]
    assert (warning.location, warning.field) == ("userProfiles.csv row 4", "userSourcedId") and "u-ghost" in warning.message
    assert "unresolved-reference" not in report.deviations.counts
    assert "ghost.math" not in everything_stored(store)
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, profiles=ghost), tenant=T, source="sis", strict=True)
    assert [(e.location, e.field) for e in exc.value.errors] == [("userProfiles.csv row 4", "userSourcedId")]
