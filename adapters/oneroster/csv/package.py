"""A OneRoster CSV package: a zip file or a directory, and its ``manifest.csv``.

OneRoster 1.1 CSV Tables section 2.2, 1.2 CSV Binding section 3.1: ``manifest.csv`` has
the header ``propertyName,value``; ``manifest.version`` must be 1.0, ``oneroster.version``
1.1 or 1.2, and each ``file.<name>`` is ``bulk``, ``delta`` or ``absent``. A file listed
bulk/delta must be present; a CSV file present but not listed (or listed absent) is an
error, as is a ``file.<name>`` the version does not define. Files are UTF-8, with or
without a byte-order mark; CRLF or LF; each is opened as a stream, never read whole.

Before anything is read, the package is held to the limits of ``limits`` (size, ratio,
entry count; lines while reading) and its member paths are checked: absolute paths and
``..`` components are refused, and so is a package that names one file twice (two
``users.csv`` in different folders, or ``users.csv`` and ``Users.csv``): there is no one
reading of it. Hidden files and ``__MACOSX/`` are ignored.

Deviations with one reading, normalised and reported through ``Deviations.tolerate``
(the default), or refused (``strict``), into ``Package.deviations``:

* ``package-folder``: the files sit in one folder inside the zip (``export/users.csv``,
  as many zip tools write), where the binding puts them at the zip's root. Files spread
  over several folders are refused in both modes;
* ``file-name-case``: a file name in another letter case (``userprofiles.csv``,
  ``Users.CSV``) is read as the binding's (``userProfiles.csv``, ``users.csv``);
* in ``manifest.csv`` (``read_manifest``): ``header-case`` (``PropertyName,Value``),
  ``property-case`` (``File.Users``, ``file.userprofiles``), ``enum-case`` (``Bulk``),
  ``whitespace`` around a name or value (``manifest.version, 1.0``, as Turnitin's own
  manifest example prints it), ``manifest-empty-value`` (``file.users,`` with no value,
  or no value column, read as ``absent``: producers write it for files they do not send),
  ``duplicate-property`` (a row repeated with the same value; another value stays an
  error).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import Deviations, ErrorCollector, ErrorDetail, MalformedInput, ValidationError

from ..values import normalize_version
from .cells import KNOWN_FILES
from .columns import COLUMNS
from .limits import (
    RATIO_GRACE_BYTES,
    LimitedText,
    Limits,
    Meter,
    check_zip_directory,
    ignored,
    member_parts,
    over,
    refuse,
)

MODES = ("bulk", "delta", "absent")
#: every file name either version defines, by its case-folded form
CANONICAL = {n.casefold(): n for n in ["manifest.csv", *(f"{f}.csv" for v in KNOWN_FILES.values() for f in v)]}


class Package:
    """A OneRoster CSV package: a zip file or a directory. ``members`` maps each file name
    the binding defines (as the binding writes it) to its member: a zip member name or a
    path. ``strict``: refuse the deviations (``deviations`` then holds them as errors,
    which ``read_manifest`` raises); ``devs``: report into these instead of new ones.
    ``limits``: ``settings.OneRosterSettings`` (by default the environment's)."""

    def __init__(self, path: Path | str | bytes, *, strict: bool = False, devs: Deviations | None = None,
                 limits: Limits | None = None) -> None:
        #: what it was opened from (a second process opens it again: ``reopen``)
        self.path = path
        if limits is None:
            from ..settings import current_settings

            limits = current_settings()
        self.limits: Limits = limits
        self.deviations = devs if devs is not None else Deviations(strict=strict)
        self.zip: zipfile.ZipFile | None = None
        self._fh: Any = None
        self.dir: Path | None = None
        self.members: dict[str, str] = {}  # file name (no directory) -> member path
        self.sizes: dict[str, int] = {}  # file name -> bytes uncompressed, as declared before reading
        if isinstance(path, bytes):
            self.name = "package.zip"
            self.zip = self._open_zip(io.BytesIO(path))
        else:
            path = Path(path)
            self.name = path.name
            if path.is_dir():
                self.dir = path
            elif path.is_file():
                self.zip = self._open_zip(path)
            else:
                raise MalformedInput(f"{path} is neither a zip file nor a directory")
        try:
            found = self._zip_files() if self.zip is not None else self._dir_files()
            self._check(found)
        except BaseException:
            self.close()
            raise

    def reopen(self) -> Package:
        """The same package opened again, with the same limits and mode (for a child process:
        a forked process must not share a zip file's read offset). Its deviations are its
        own: the first opening reported them."""
        return Package(self.path, strict=self.deviations.strict, limits=self.limits)

    def _open_zip(self, src: Any) -> zipfile.ZipFile:
        fh = self._fh = open(src, "rb") if isinstance(src, Path) else src  # noqa: SIM115  # closed by close()
        try:
            check_zip_directory(fh, self.name, self.limits)
            return zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            fh.close()
            raise MalformedInput("not a zip file (a OneRoster CSV package is a zip or a directory)") from None
        except BaseException:
            fh.close()
            raise

    def _zip_files(self) -> list[tuple[list[str], str, int]]:
        """(folders and name, member, size) of each file a package may read."""
        assert self.zip is not None
        errors = ErrorCollector()
        infos = self.zip.infolist()
        if len(infos) > self.limits.max_members:  # the end record said less
            raise refuse("too many entries", over("max_members", f"the zip holds {len(infos):,} entries, more than "
                                                                  f"the limit of {self.limits.max_members:,}", self.name))
        found: list[tuple[list[str], str, int]] = []
        ratio = self.limits.max_compression_ratio
        bombs: list[ErrorDetail] = []
        for info in infos:
            parts, why = member_parts(info.filename)
            if parts is None:
                errors.add(str(why), location=self.name)
                continue
            if info.is_dir() or not parts or ignored(parts):
                continue
            if info.file_size > RATIO_GRACE_BYTES and info.file_size > ratio * max(info.compress_size, 1):
                bombs.append(over("max_compression_ratio", f"{info.filename} expands {info.file_size / max(info.compress_size, 1):,.0f} "
                                  f"times ({info.compress_size:,} bytes to {info.file_size:,}), more than the limit of {ratio:g}:1 "
                                  "(a zip bomb's mark)", info.filename))
            found.append((parts, info.filename, info.file_size))
        errors.raise_if_any("invalid OneRoster package: members outside the package", MalformedInput)
        if bombs:
            raise refuse("a member's compression ratio", *bombs)
        return found

    def _dir_files(self) -> list[tuple[list[str], str, int]]:
        assert self.dir is not None
        root = self.dir.resolve()
        errors = ErrorCollector()
        found: list[tuple[list[str], str, int]] = []
        for n, p in enumerate(sorted(self.dir.iterdir()), start=1):
            if n > self.limits.max_members:
                raise refuse("too many files", over("max_members", f"the folder holds more than {self.limits.max_members:,} "
                                                                   "entries", self.name))
            if p.name.startswith("."):
                continue
            if p.is_symlink():
                target = p.resolve()
                if not target.is_relative_to(root):
                    errors.add(f"{p.name} is a symbolic link to {target}, outside the package's folder", location=p.name)
                    continue
            if p.is_file():
                found.append(([p.name], str(p), p.stat().st_size))
        errors.raise_if_any("invalid OneRoster package: files outside the package", MalformedInput)
        return found

    def _check(self, found: list[tuple[list[str], str, int]]) -> None:
        """One reading of the package's files, or refuse it: one folder, no name twice (in
        any letter case), the total within the limit. Deviations with one reading: see the
        module docstring."""
        errors = ErrorCollector()
        by_name: dict[str, list[str]] = {}
        for parts, member, _ in found:
            by_name.setdefault(parts[-1].casefold(), []).append(member)
        for members in by_name.values():
            if len(members) > 1:
                shown = " and ".join(repr(m) for m in members)
                errors.add(f"the package names one file twice ({shown}): which one to read has no single answer", location=self.name)
        folders = sorted({"/".join(parts[:-1]) for parts, _, _ in found})
        if len(folders) > 1:
            errors.add("the package's files are in several folders (" + ", ".join(repr(f + "/") if f else "the root" for f in folders)
                       + "): a package is one folder", location=self.name)
        errors.raise_if_any("invalid OneRoster package: no single reading of its files", MalformedInput)
        total = sum(size for _, _, size in found)
        if total > self.limits.max_uncompressed_bytes:
            raise refuse("too large", over("max_uncompressed_bytes", f"the package holds {total:,} bytes uncompressed, more than the "
                                                                     f"limit of {self.limits.max_uncompressed_bytes:,}", self.name))
        if folders and folders[0]:
            self.deviations.tolerate("package-folder", f"the files are in the folder {folders[0] + '/'!r} inside the zip; the CSV "
                                     "binding puts them at its root", location=self.name)
        for parts, member, size in found:
            name = parts[-1]
            canonical = CANONICAL.get(name.casefold(), name)
            if canonical != name and self.deviations.tolerate(
                    "file-name-case", f"{name} is named {canonical} by the CSV binding: read as {canonical}", location=member):
                name = canonical
            self.members[name] = member
            self.sizes[name] = size

    def report_into(self, devs: Deviations) -> None:
        """Add this package's deviations to ``devs`` (an import report's), ahead of what is
        already there: they were found first. Nothing to do when ``devs`` is already the
        package's own (``Package(..., devs=devs)``)."""
        mine = self.deviations
        if devs is mine:
            return
        for kind, n in mine.counts.items():
            devs.counts[kind] = devs.counts.get(kind, 0) + n
        devs.items[:0] = mine.items[:max(devs.limit - len(devs.items), 0)]
        devs.errors.errors[:0] = mine.errors.errors

    def size(self, name: str) -> int:
        """Bytes of ``name`` uncompressed, as declared before reading (no more is read)."""
        return self.sizes[name]

    def open_text(self, name: str, on_read: Callable[[int], None] | None = None) -> LimitedText:
        """``name`` as lines of text (``limits.LimitedText``): ``csv.reader(fh)``, or
        ``fh.reader()`` with each record bounded too."""
        member = self.members[name]
        raw = self.zip.open(member) if self.zip is not None else open(member, "rb")  # noqa: SIM115
        buffered = io.BufferedReader(Meter(raw, member, self.sizes[name], on_read), buffer_size=1 << 16)
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike
        text = io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")
        return LimitedText(text, name, self.limits.max_line_length)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        if self._fh is not None:
            self._fh.close()


@dataclass
class Manifest:
    version: str
    files: dict[str, str]  # file name (no .csv) -> bulk | delta | absent
    properties: dict[str, str]


#: the manifest's property names either version defines, by their case-folded form
PROPERTIES = {n.casefold(): n for n in ["manifest.version", "oneroster.version", "source.systemName", "source.systemCode",
                                        *(f"file.{f}" for v in KNOWN_FILES.values() for f in v)]}


def read_manifest(pkg: Package) -> Manifest:
    """OneRoster CSV 1.1 section 2.2 / 1.2 section 3.1: manifest.csv, ``propertyName,value``.
    Its deviations (module docstring) go to ``pkg.deviations``; in strict mode they are
    raised here with the package's own and every other problem of the manifest."""
    devs = pkg.deviations
    if "manifest.csv" not in pkg.members:
        raise MalformedInput(
            "not a OneRoster CSV package: manifest.csv is missing",
            errors=[*devs.errors.errors, ErrorDetail("manifest.csv is required (propertyName,value rows)", location="manifest.csv")],
        )
    errors = ErrorCollector()
    props: dict[str, str] = {}
    try:
        with pkg.open_text("manifest.csv") as fh:
            reader = fh.reader()
            header = [_stripped(devs, h, "manifest.csv row 1", "column name") for h in next(reader, [])]
            if header[:2] != ["propertyName", "value"]:
                if [h.casefold() for h in header[:2]] == ["propertyname", "value"]:
                    devs.tolerate("header-case", f"header {','.join(header[:2])!r} is written 'propertyName,value' by the spec",
                                  location="manifest.csv row 1")
                else:
                    errors.add(f"header must be propertyName,value, not {','.join(header)!r}", location="manifest.csv row 1")
            for n, row in enumerate(reader, start=2):
                if not row or not any(c.strip() for c in row):
                    continue
                loc = f"manifest.csv row {n}"
                key = _property(devs, _stripped(devs, row[0], loc, "property name"), loc)
                if len(row) < 2 and not key.startswith("file."):
                    errors.add("expected propertyName,value", location=loc)
                    continue
                value = _stripped(devs, row[1], loc, f"value of {key}", key) if len(row) > 1 else ""
                if key in props:
                    if props[key] == value and devs.tolerate("duplicate-property", f"property {key!r} appears twice, with the same "
                                                             "value: read once", location=loc, field="propertyName"):
                        continue
                    if props[key] != value:
                        errors.add(f"property {key!r} appears twice", location=loc, field="propertyName")
                props[key] = value
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MalformedInput("manifest.csv is not readable UTF-8 CSV", errors=[ErrorDetail(str(exc), location="manifest.csv")]) from None
    if props.get("manifest.version") not in ("1.0",):
        errors.add(f"manifest.version must be 1.0, not {props.get('manifest.version')!r}", location="manifest.csv", field="manifest.version")
    try:
        version = normalize_version(props.get("oneroster.version", ""))
    except ValidationError:
        errors.add(f"oneroster.version must be 1.1 or 1.2, not {props.get('oneroster.version')!r}", location="manifest.csv", field="oneroster.version")
        version = "1.2"
    files: dict[str, str] = {}
    for key, value in props.items():
        if not key.startswith("file."):
            continue
        name = key[len("file."):]
        if name not in KNOWN_FILES[version]:
            errors.add(f"OneRoster {version} defines no file {name!r}", location="manifest.csv", field=key)
            continue
        if value == "" and devs.tolerate("manifest-empty-value", f"{key} has no value: read as absent (no {name}.csv is sent)",
                                         location="manifest.csv", field=key):
            value = "absent"
        elif value not in MODES and value.lower() in MODES and devs.tolerate(
                "enum-case", f"{value!r} is written {value.lower()!r} by the spec", location="manifest.csv", field=key):
            value = value.lower()
        if value not in MODES:
            if value.lower() not in MODES and value:
                errors.add(f"{value!r} is not bulk, delta or absent", location="manifest.csv", field=key)
            continue
        files[name] = value
    for name, mode in files.items():
        if mode != "absent" and f"{name}.csv" not in pkg.members:
            errors.add(f"manifest says {name}.csv is {mode}, but the package has no {name}.csv", location="manifest.csv", field=f"file.{name}")
    for member in pkg.members:
        if member == "manifest.csv":
            continue
        stem = member[:-4] if member.endswith(".csv") else None
        if stem is None or files.get(stem, "absent") == "absent":
            errors.add(f"{member} is not listed in manifest.csv as bulk or delta", location=member)
    for name, mode in files.items():
        if mode != "absent" and name not in COLUMNS[version]:
            errors.add(f"{name}.csv is not supported by this importer yet", location=f"{name}.csv")
    if devs.errors:  # strict mode: the deviations refused, first
        errors.errors[:0] = devs.errors.errors
    errors.raise_if_any("invalid OneRoster package", MalformedInput)
    return Manifest(version=version, files=files, properties=props)


def _stripped(devs: Deviations, text: str, loc: str, what: str, field: str | None = None) -> str:
    """``text`` without surrounding spaces: RFC 4180, which the binding names, makes them part
    of the value, but no manifest name or value has them (strict: reported, and read
    stripped so that nothing is reported twice)."""
    s = text.strip()
    if s != text:
        devs.tolerate("whitespace", f"{what} {text!r} has surrounding spaces; read as {s!r}", location=loc, field=field)
    return s


def _property(devs: Deviations, key: str, loc: str) -> str:
    """A property name in another letter case, read as the binding writes it."""
    canonical = PROPERTIES.get(key.casefold(), key)
    if canonical != key:
        devs.tolerate("property-case", f"property {key!r} is written {canonical!r} by the binding", location=loc, field="propertyName")
    return canonical
