"""OneRoster CSV packages: the limits checked before and while reading (issue 21 item 2), member
paths and ambiguous packages, and the package-level deviations (issue 15 item 1): file names
in another letter case, a package in one folder, and the manifest's empty values, letter
case, spaces and repeated rows (tolerated by default and reported, refused in strict mode).

The bombs are built here: small ones against tiny limits set through the settings'
environment variables (``TESSERA_ONEROSTER__*``), and one real 1 GiB member without a line
break, imported in a subprocess whose peak memory is measured.

No HTTP endpoint takes a CSV package (imports are ``tessera import oneroster`` and the
adapter's ``parse``/``import_package``), so there is no imsx_StatusInfo shape to test here.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from adapters.oneroster.csv.ingest import import_package, parse_package
from adapters.oneroster.csv.limits import PackageTooLarge, split_lines, zip_directory
from adapters.oneroster.csv.package import Package, read_manifest
from adapters.oneroster.settings import OneRosterSettings
from gateway.errors import MalformedInput, ValidationError
from gateway.store import Store

FIX = Path(__file__).parent / "fixtures" / "oneroster" / "district-v1p2"
ROOT = Path(__file__).resolve().parent.parent
T = "t1"
ENV = "TESSERA_ONEROSTER__"


def files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(FIX.iterdir())}


def zipped(tmp_path: Path, members: dict[str, bytes], name: str = "pkg.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return path


def folder(tmp_path: Path, members: dict[str, bytes], name: str = "pkg") -> Path:
    d = tmp_path / name
    d.mkdir()
    for n, data in members.items():
        (d / n).write_bytes(data)
    return d


def detail(exc: pytest.ExceptionInfo[Exception]) -> list[tuple[str | None, str | None, str]]:
    return [(e.location, e.field, e.message) for e in exc.value.errors]  # type: ignore[attr-defined]


def empty(store: Store) -> bool:
    return not list(store.records.iter_records(T, ["org", "person", "enrollment"]))


def lines_of(name: str) -> int:
    return files()[name].count(b"\n")


def with_users_row(extra: str) -> dict[str, bytes]:
    """The fixture with one more users.csv row whose last column holds ``extra``."""
    out = files()
    out["users.csv"] += f"u9,,,true,zed,,Zed,Ng,,1009,,,,,05,,,,,,,s1,,{extra}\n".encode()
    out["roles.csv"] += b"r9,,,u9,primary,student,,,s1,\n"
    return out


# --------------------------------------------------------------------------- limits, each with its message


def test_the_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = OneRosterSettings()
    assert (s.max_uncompressed_bytes, s.max_compression_ratio, s.max_members, s.max_line_length) == (20 << 30, 100, 1000, 1 << 20)
    monkeypatch.setenv(f"{ENV}MAX_LINE_LENGTH", "4096")
    monkeypatch.setenv(f"{ENV}MAX_MEMBERS", "50")
    pkg = Package(FIX)
    assert (pkg.limits.max_line_length, pkg.limits.max_members) == (4096, 50)


def test_a_line_over_the_limit_names_file_line_and_setting(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV}MAX_LINE_LENGTH", "1000")
    path = zipped(tmp_path, with_users_row("x" * 1200))
    with pytest.raises(PackageTooLarge) as exc:
        import_package(store, path, tenant=T, source="sis")
    [(loc, field, msg)] = detail(exc)
    assert loc == f"users.csv line {lines_of('users.csv') + 1}" and field == "max_line_length"
    assert "longer than the limit of 1,000 characters" in msg and f"{ENV}MAX_LINE_LENGTH" in msg
    assert exc.value.status == 413
    assert empty(store)


def test_a_line_at_the_limit_is_read_one_more_is_not(tmp_path: Path) -> None:
    for size, ok in ((200, True), (201, False)):
        d = folder(tmp_path, {"manifest.csv": b"propertyName,value\n", "x.csv": b"a,b\r\n" + b"y" * size + b"\r\nlast"},
                   name=f"p{size}")
        pkg = Package(d, limits=OneRosterSettings(max_line_length=200))
        with pkg.open_text("x.csv") as fh:
            if ok:
                assert list(fh) == ["a,b\r\n", "y" * 200 + "\r\n", "last"]
            else:
                with pytest.raises(PackageTooLarge, match="a line too long") as exc:
                    list(fh)
                assert detail(exc)[0][0] == "x.csv line 2"


def test_a_file_without_a_line_break_is_refused_after_the_limit_not_read_whole(tmp_path: Path) -> None:
    members = files()
    members["users.csv"] = b"sourcedId," + b"a" * (4 << 20)  # 4 MiB, no line break
    path = zipped(tmp_path, members)
    read: list[int] = []
    pkg = Package(path, limits=OneRosterSettings(max_line_length=1000, max_compression_ratio=1e9))
    with pytest.raises(PackageTooLarge) as exc, pkg.open_text("users.csv", read.append) as fh:
        next(fh.reader())
    assert detail(exc)[0][:2] == ("users.csv line 1", "max_line_length")
    assert sum(read) < 256 << 10  # a block or two, not 4 MiB


def test_a_record_over_the_limit_across_quoted_line_breaks(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each line is short, but a quoted field holds thousands of line breaks: one record."""
    monkeypatch.setenv(f"{ENV}MAX_LINE_LENGTH", "1000")
    path = zipped(tmp_path, with_users_row('"' + "x\n" * 50_000 + '"'))
    with pytest.raises(PackageTooLarge) as exc:
        import_package(store, path, tenant=T, source="sis")
    [(loc, field, msg)] = detail(exc)
    assert loc == f"users.csv line {lines_of('users.csv') + 1}" and field == "max_line_length"
    assert "a record from this line on" in msg
    assert empty(store)


def test_a_record_with_quoted_line_breaks_within_the_limit_imports(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV}MAX_LINE_LENGTH", "1000")
    path = zipped(tmp_path, with_users_row('"red\nand\nblue"'))
    report = import_package(store, path, tenant=T, source="sis")
    assert report.rows["users"] == files()["users.csv"].count(b"\n")  # the header is not a row; u9 is


def test_a_csv_error_names_its_line(tmp_path: Path) -> None:
    big = b"a,b\n1,2\n" + b'"' + b"z" * (200 << 10) + b'"\n'  # one field over csv's own 128 KiB
    d = folder(tmp_path, {"manifest.csv": b"propertyName,value\n", "x.csv": big})
    with Package(d).open_text("x.csv") as fh, pytest.raises(Exception, match="line 3: field larger than field limit"):
        list(fh.reader())


def test_total_uncompressed_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = sum(len(b) for b in files().values())
    monkeypatch.setenv(f"{ENV}MAX_UNCOMPRESSED_BYTES", str(total - 1))
    for path in (zipped(tmp_path, files()), FIX):
        read: list[int] = []
        with pytest.raises(PackageTooLarge) as exc:
            parse_package(path, tenant=T, source="sis", progress=lambda _f, n, read=read: read.append(n))  # type: ignore[misc]
        [(loc, field, msg)] = detail(exc)
        assert (loc, field) == (path.name, "max_uncompressed_bytes")
        assert f"holds {total:,} bytes uncompressed, more than the limit of {total - 1:,}" in msg and f"{ENV}MAX_UNCOMPRESSED_BYTES" in msg
        assert read == []  # refused unread
    monkeypatch.setenv(f"{ENV}MAX_UNCOMPRESSED_BYTES", str(total))
    parse_package(FIX, tenant=T, source="sis")


def test_compression_ratio_per_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = files()
    members["users.csv"] = members["users.csv"] + b"\n" * (3 << 20)  # 3 MiB of blank lines: ~1000:1
    path = zipped(tmp_path, members)
    with pytest.raises(PackageTooLarge) as exc:
        parse_package(path, tenant=T, source="sis")
    [(loc, field, msg)] = detail(exc)
    assert (loc, field) == ("users.csv", "max_compression_ratio")
    assert "more than the limit of 100:1 (a zip bomb's mark)" in msg and f"{ENV}MAX_COMPRESSION_RATIO" in msg
    monkeypatch.setenv(f"{ENV}MAX_COMPRESSION_RATIO", "100000")  # raised: read (blank lines are skipped)
    records, _ = parse_package(path, tenant=T, source="sis")
    assert records


def test_small_members_are_not_judged_by_their_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV}MAX_COMPRESSION_RATIO", "1.5")  # every fixture file compresses better than that
    records, _ = parse_package(zipped(tmp_path, files()), tenant=T, source="sis")
    assert records


def test_member_count_from_the_end_record_before_the_directory_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = files() | {f".junk{i}": b"" for i in range(30)}  # hidden: ignored, but counted
    path = zipped(tmp_path, members)
    monkeypatch.setenv(f"{ENV}MAX_MEMBERS", "20")

    def no_directory(*_a: object, **_k: object) -> None:
        raise AssertionError("zipfile read the directory")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", no_directory)
    with pytest.raises(PackageTooLarge) as exc:
        Package(path)
    [(loc, field, msg)] = detail(exc)
    assert (loc, field) == ("pkg.zip", "max_members") and f"holds {len(members)} entries, more than the limit of 20" in msg
    assert f"{ENV}MAX_MEMBERS" in msg


def test_member_count_of_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = folder(tmp_path, files() | {f"extra{i}.txt": b"" for i in range(30)})
    monkeypatch.setenv(f"{ENV}MAX_MEMBERS", "20")
    with pytest.raises(PackageTooLarge, match="more than 20 entries"):
        Package(d)


def test_zip64_entry_count(tmp_path: Path) -> None:
    """More than 65,535 entries: the count is in the zip64 end record."""
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(70_000):
            zf.writestr(f"{i}", b"")
    with open(path, "rb") as fh:
        assert zip_directory(fh)[0] == 70_000  # type: ignore[index]
    with pytest.raises(PackageTooLarge, match="holds 70,000 entries, more than the limit of 1,000"):
        Package(path)


def test_a_zip_header_that_lies_about_a_size_is_a_damaged_member(store: Store, tmp_path: Path) -> None:
    members = files()
    path = tmp_path / "lie.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    raw = bytearray(path.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # the first directory entry
    while True:  # the directory entry of users.csv: its uncompressed size says 100 bytes
        name_len = struct.unpack_from("<H", raw, cd + 28)[0]
        if raw[cd + 46: cd + 46 + name_len] == b"users.csv":
            struct.pack_into("<L", raw, cd + 24, 100)
            break
        cd = raw.index(b"PK\x01\x02", cd + 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(MalformedInput) as exc:
        import_package(store, path, tenant=T, source="sis")
    assert exc.value.detail == "users.csv is damaged in the zip" and "CRC" in detail(exc)[0][2]
    assert empty(store)


def test_a_file_growing_while_read_is_refused_at_its_declared_size(tmp_path: Path) -> None:
    d = folder(tmp_path, files())
    pkg = Package(d)
    with open(d / "users.csv", "ab") as fh:
        fh.write(b"u9,,,true,zed,,Zed,Ng,,1009,,,,,05,,,,,,,s1,,\n" * 2000)
    with pytest.raises(PackageTooLarge) as exc, pkg.open_text("users.csv") as text:
        list(text)
    assert "gives more than the" in detail(exc)[0][2] and detail(exc)[0][1] == "max_uncompressed_bytes"


def test_the_enrollment_reader_process_keeps_the_limits(tmp_path: Path) -> None:
    """A streamed import reads enrollments.csv in a child process, which opens the package
    again (``Package.reopen``): with the same limits object, not the environment's."""
    pkg = Package(FIX, limits=OneRosterSettings(max_line_length=100), strict=True)
    again = pkg.reopen()
    assert again.limits is pkg.limits and again.deviations.strict and again.deviations is not pkg.deviations


def test_a_long_line_in_enrollments_read_by_the_child_process(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not store.streams.can_fork():
        pytest.skip("this store cannot fork a reader process")
    monkeypatch.setenv(f"{ENV}MAX_LINE_LENGTH", "400")  # users.csv's header is 305
    members = files()
    members["enrollments.csv"] += b"e99,,,k1,s1,u1,student,false,2025-08-15," + b"z" * 500 + b"\n"
    with pytest.raises(PackageTooLarge) as exc:
        import_package(store, zipped(tmp_path, members), tenant=T, source="sis", stream=True, reader_process=True)
    assert detail(exc)[0][0] == f"enrollments.csv line {lines_of('enrollments.csv') + 1}"
    assert empty(store)


# --------------------------------------------------------------------------- paths and ambiguity


@pytest.mark.parametrize("bad", ["../../users.csv", "export/../../users.csv", "/etc/users.csv", "C:/x/users.csv",
                                 "..\\..\\users.csv"])
def test_member_paths_that_escape_are_refused(tmp_path: Path, bad: str) -> None:
    members = files()
    members[bad] = members.pop("users.csv")
    with pytest.raises(MalformedInput) as exc:
        Package(zipped(tmp_path, members))
    [(loc, _, msg)] = detail(exc)
    assert loc == "pkg.zip" and repr(bad) in msg and ("absolute" in msg or "'..'" in msg)


def test_two_files_of_one_name_in_different_folders_are_ambiguous(tmp_path: Path) -> None:
    members = {f"a/{n}": b for n, b in files().items()} | {"b/users.csv": files()["users.csv"]}
    for strict in (False, True):
        with pytest.raises(MalformedInput) as exc:
            Package(zipped(tmp_path, members, name=f"amb{strict}.zip"), strict=strict)
        assert any("names one file twice ('a/users.csv' and 'b/users.csv')" in m for _, _, m in detail(exc))


def test_two_files_differing_only_in_case_are_ambiguous_in_both_modes(tmp_path: Path) -> None:
    for strict in (False, True):
        for make in (zipped, folder):
            members = files() | {"Users.csv": files()["users.csv"]}
            with pytest.raises(MalformedInput) as exc:
                Package(make(tmp_path, members, f"case{strict}{make.__name__}"), strict=strict)
            [(_, _, msg)] = detail(exc)
            assert "names one file twice" in msg and "Users.csv" in msg and "users.csv" in msg


def test_a_name_twice_in_one_zip_is_ambiguous(tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in files().items():
            zf.writestr(n, data)
        with pytest.warns(UserWarning):  # zipfile's "Duplicate name"
            zf.writestr("users.csv", b"sourcedId\n")
    with pytest.raises(MalformedInput, match="names one file twice"):
        Package(path)


def test_files_spread_over_several_folders_are_refused(tmp_path: Path) -> None:
    members = {(f"a/{n}" if n < "m" else f"b/{n}"): b for n, b in files().items()}
    with pytest.raises(MalformedInput) as exc:
        Package(zipped(tmp_path, members))
    assert "several folders ('a/', 'b/')" in detail(exc)[0][2]


def test_one_top_folder_is_read_with_a_warning_and_refused_in_strict_mode(tmp_path: Path) -> None:
    path = zipped(tmp_path, {f"export/{n}": b for n, b in files().items()} | {"__MACOSX/export/._users.csv": b"\0\5",
                                                                              "export/.DS_Store": b"x"})
    pkg = Package(path)
    assert pkg.members["users.csv"] == "export/users.csv"
    read_manifest(pkg)
    assert pkg.deviations.counts == {"package-folder": 1}
    assert pkg.deviations.items[0].message.startswith("the files are in the folder 'export/' inside the zip")
    records, _ = parse_package(path, tenant=T, source="sis")
    assert records
    strict = Package(path, strict=True)
    with pytest.raises(MalformedInput) as exc:
        read_manifest(strict)
    assert [m for _, _, m in detail(exc)] == ["the files are in the folder 'export/' inside the zip; the CSV binding puts them at its root"]


def test_symbolic_links_out_of_a_directory_package_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(files()["users.csv"])
    d = folder(tmp_path, {n: b for n, b in files().items() if n != "users.csv"})
    (d / "users.csv").symlink_to(outside)
    with pytest.raises(MalformedInput) as exc:
        Package(d)
    [(loc, _, msg)] = detail(exc)
    assert loc == "users.csv" and "symbolic link" in msg and "outside the package's folder" in msg
    (d / "users.csv").unlink()
    (d / "real").mkdir()
    (d / "real" / "u.csv").write_bytes(files()["users.csv"])
    (d / "users.csv").symlink_to(d / "real" / "u.csv")  # inside: read
    records, _ = parse_package(d, tenant=T, source="sis")
    assert any(r.KIND == "person" for r in records)


def test_a_symbolic_link_to_a_device_is_refused(tmp_path: Path) -> None:
    d = folder(tmp_path, {n: b for n, b in files().items() if n != "users.csv"})
    (d / "users.csv").symlink_to("/dev/zero")
    with pytest.raises(MalformedInput, match="outside the package's folder"):
        Package(d)


# --------------------------------------------------------------------------- package deviations (issue 15 item 1)


def test_file_names_in_another_case_are_read_with_a_warning(store: Store, tmp_path: Path) -> None:
    members = files()
    members["Users.csv"] = members.pop("users.csv")
    members["ACADEMICSESSIONS.CSV"] = members.pop("academicSessions.csv")
    members["Manifest.csv"] = members.pop("manifest.csv")
    path = zipped(tmp_path, members)
    pkg = Package(path)
    assert {"users.csv", "academicSessions.csv", "manifest.csv"} <= set(pkg.members)
    read_manifest(pkg)
    assert pkg.deviations.counts == {"file-name-case": 3}
    assert {(d.location, d.message) for d in pkg.deviations.items} >= {
        ("Users.csv", "Users.csv is named users.csv by the CSV binding: read as users.csv")}
    report = import_package(store, path, tenant=T, source="sis")
    assert report.rows["users"] > 0
    assert report.deviations.counts == {"file-name-case": 3}  # the import's own report says so
    with pytest.raises(MalformedInput):
        import_package(store, path, tenant=T, source="sis", strict=True)
    with pytest.raises(MalformedInput) as exc:
        read_manifest(Package(path, strict=True))
    msgs = [m for _, _, m in detail(exc)]
    assert sorted(msgs[:3]) == [f"{a} is named {b} by the CSV binding: read as {b}" for a, b in
                        (("ACADEMICSESSIONS.CSV", "academicSessions.csv"), ("Manifest.csv", "manifest.csv"), ("Users.csv", "users.csv"))]


def test_a_1p2_file_name_in_another_case(tmp_path: Path) -> None:
    d = folder(tmp_path, files() | {"userprofiles.csv": b"sourcedId\n"})
    pkg = Package(d)
    assert pkg.members["userProfiles.csv"].endswith("userprofiles.csv")
    assert pkg.deviations.items[0].kind == "file-name-case"


MANIFEST_DEVIATIONS = [
    # (manifest line as sent, kind, the normalised property or file mode)
    ("file.lineItems,", "manifest-empty-value", ("lineItems", "absent")),
    ("file.lineItems", "manifest-empty-value", ("lineItems", "absent")),
    ("File.LineItems,absent", "property-case", ("lineItems", "absent")),
    ("file.lineitems,absent", "property-case", ("lineItems", "absent")),
    ("file.lineItems,Absent", "enum-case", ("lineItems", "absent")),
    ("file.lineItems, absent", "whitespace", ("lineItems", "absent")),
    ("file.lineItems ,absent", "whitespace", ("lineItems", "absent")),
]


@pytest.mark.parametrize(("line", "kind", "expect"), MANIFEST_DEVIATIONS)
def test_manifest_deviations(tmp_path: Path, line: str, kind: str, expect: tuple[str, str]) -> None:
    members = files()
    text = members["manifest.csv"].decode().replace("file.lineItems,absent\n", line + "\n")
    assert text != members["manifest.csv"].decode()
    members["manifest.csv"] = text.encode()
    d = folder(tmp_path, members)
    pkg = Package(d)
    m = read_manifest(pkg)
    assert m.files[expect[0]] == expect[1]
    assert pkg.deviations.counts == {kind: 1}
    [dev] = pkg.deviations.items
    assert dev.location.startswith("manifest.csv")  # type: ignore[union-attr]
    records, _ = parse_package(d, tenant=T, source="sis")
    assert records
    with pytest.raises(MalformedInput) as exc:
        read_manifest(Package(d, strict=True))
    assert [m for _, _, m in detail(exc)] == [dev.message]  # strict: that one error, worded as the warning


def test_manifest_header_case_spaces_and_versions(tmp_path: Path) -> None:
    members = files()
    members["manifest.csv"] = (members["manifest.csv"].decode()
                               .replace("propertyName,value", "PropertyName,Value")
                               .replace("manifest.version,1.0", "Manifest.Version, 1.0")
                               .replace("oneroster.version,1.2", "oneRoster.version,1.2 ")).encode()
    pkg = Package(folder(tmp_path, members))
    m = read_manifest(pkg)
    assert m.version == "1.2" and m.properties["manifest.version"] == "1.0"
    assert pkg.deviations.counts == {"header-case": 1, "property-case": 2, "whitespace": 2}


def test_a_repeated_manifest_row(tmp_path: Path) -> None:
    members = files()
    members["manifest.csv"] += b"file.users,bulk\n"
    pkg = Package(folder(tmp_path, members, "same"))
    assert read_manifest(pkg).files["users"] == "bulk"
    assert pkg.deviations.counts == {"duplicate-property": 1}
    members["manifest.csv"] += b"file.users,delta\n"  # another value: no single reading
    for strict in (False, True):
        with pytest.raises(MalformedInput) as exc:
            read_manifest(Package(folder(tmp_path, members, f"other{strict}"), strict=strict))
        assert ("manifest.csv row 21", "propertyName", "property 'file.users' appears twice") in detail(exc)


def test_an_empty_value_of_a_version_stays_an_error(tmp_path: Path) -> None:
    members = files()
    members["manifest.csv"] = members["manifest.csv"].replace(b"manifest.version,1.0", b"manifest.version,")
    with pytest.raises(ValidationError, match="manifest.version must be 1.0"):
        read_manifest(Package(folder(tmp_path, members)))


def test_shared_deviations(tmp_path: Path) -> None:
    """An importer may hand its own ``Deviations`` (``devs=``): the package reports into it."""
    from gateway.errors import Deviations

    members = files()
    members["Users.csv"] = members.pop("users.csv")
    devs = Deviations()
    pkg = Package(folder(tmp_path, members), devs=devs)
    assert pkg.deviations is devs and devs.counts == {"file-name-case": 1}


def test_report_into_an_import_report(tmp_path: Path) -> None:
    """How an importer's report takes the package's deviations (``Package.report_into``)."""
    from gateway.errors import Deviations

    members = files()
    members["Users.csv"] = members.pop("users.csv")
    pkg = Package(folder(tmp_path, members))
    report = Deviations()
    report.tolerate("enum-case", "'Scheduled' is written 'scheduled' by the spec", location="classes.csv row 2")
    pkg.report_into(report)
    assert report.counts == {"enum-case": 1, "file-name-case": 1} and report.total == 2
    assert [d.kind for d in report.items] == ["file-name-case", "enum-case"]
    pkg.report_into(pkg.deviations)  # its own: nothing doubles
    assert pkg.deviations.total == 1


# --------------------------------------------------------------------------- the line splitter


def test_lines_split_as_universal_newlines_do_and_nowhere_else() -> None:
    assert split_lines("a\r\nb\rc\nd") == ["a\r\n", "b\r", "c\n", "d"]
    assert split_lines("a\u2028b\x0cc\r\nd\r") == ["a\u2028b\x0cc\r\n", "d\r"]  # \u2028 and \f are data in a CSV field


def test_crlf_split_between_two_blocks(tmp_path: Path) -> None:
    from adapters.oneroster.csv import limits

    body = "sourcedId,x\r\n" + "".join(f"r{i},{'v' * (i % 50)}\r\n" for i in range(5000))
    d = folder(tmp_path, {"manifest.csv": b"propertyName,value\n", "x.csv": body.encode()})
    for block in (7, 64, 1000, limits.BLOCK):
        old, limits.BLOCK = limits.BLOCK, block
        try:
            with Package(d).open_text("x.csv") as fh:
                assert list(fh.reader()) == [r.split(",") for r in body.split("\r\n")[:-1]]
        finally:
            limits.BLOCK = old


# --------------------------------------------------------------------------- a real bomb: 1 GiB without a line break

GIB_OF_A_CRC = 0x0F98B5AF  # zlib.crc32 of b"a" * 2**30


def gib_bomb(path: Path) -> None:
    """A zip whose users.csv is 1 GiB of ``a`` without a line break, about 1 MB compressed:
    a deflate block of 1 MiB of ``a`` after a full flush repeats byte for byte, so the bomb
    is written without compressing 1 GiB."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = co.compress(b"a" * (1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
    tail = co.flush()
    size, csize = 1 << 30, len(piece) * 1024 + len(tail)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("manifest.csv", "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\nfile.users,bulk\n")
    head = out.getvalue()
    cd_at = head.index(b"PK\x01\x02")
    local, directory = head[:cd_at], head[cd_at:head.index(b"PK\x05\x06")]
    name = b"users.csv"
    with open(path, "wb") as fh:
        fh.write(local)
        at = fh.tell()
        fh.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, GIB_OF_A_CRC, csize, size, len(name), 0) + name)
        for _ in range(1024):
            fh.write(piece)
        fh.write(tail)
        cd = fh.tell()
        fh.write(directory)
        fh.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, GIB_OF_A_CRC, csize, size, len(name), 0, 0, 0, 0,
                             0o100644 << 16, at) + name)
        end = fh.tell()
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, end - cd, cd, 0))


IMPORT_AND_MEASURE = """
import resource, sys
from adapters.oneroster.csv.ingest import parse_package
from gateway.errors import TesseraError
try:
    parse_package(sys.argv[1], tenant="t1", source="sis")
    print("IMPORTED")
except TesseraError as exc:
    print(type(exc).__name__, exc)
try:  # this address space's peak: getrusage's ru_maxrss also keeps the peak of the process
    # that spawned this one (Linux carries it over exec), here pytest's own
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) // 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print("PEAK", peak)
"""


def test_a_gib_without_a_line_break_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    gib_bomb(path)
    assert path.stat().st_size < 2 << 20
    with zipfile.ZipFile(path) as zf:  # a well-formed zip
        assert zf.getinfo("users.csv").file_size == 1 << 30
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(f"{ENV}MAX_COMPRESSION_RATIO", None)
    outcomes = {}
    for ratio in (None, "1000000"):  # the default refuses it by its ratio; raised, the line limit does
        if ratio:
            env[f"{ENV}MAX_COMPRESSION_RATIO"] = ratio
        run = subprocess.run([sys.executable, "-c", IMPORT_AND_MEASURE, str(path)], env=env, capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        outcomes[ratio] = lines[0]
        peak_mb = int(lines[-1].split()[1])
        assert peak_mb < 200, f"peak RSS {peak_mb} MB: {lines[0]}"
    assert outcomes[None].startswith("PackageTooLarge") and 'field "max_compression_ratio": users.csv expands 1,010 times' in outcomes[None]
    assert outcomes["1000000"].startswith("PackageTooLarge") and "users.csv line 1" in outcomes["1000000"]
    assert "longer than the limit of 1,048,576 characters" in outcomes["1000000"]
