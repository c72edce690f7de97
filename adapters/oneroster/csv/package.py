"""A OneRoster CSV package: a zip file or a directory, and its ``manifest.csv``.

OneRoster 1.1 CSV Tables section 2.2, 1.2 CSV Binding section 3.1: ``manifest.csv`` has
the header ``propertyName,value``; ``manifest.version`` must be 1.0, ``oneroster.version``
1.1 or 1.2, and each ``file.<name>`` is ``bulk``, ``delta`` or ``absent``. A file listed
bulk/delta must be present; a CSV file present but not listed (or listed absent) is an
error, as is a ``file.<name>`` the version does not define. Files are UTF-8, with or
without a byte-order mark; CRLF or LF; each is opened as a stream, never read whole.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ErrorCollector, ErrorDetail, MalformedInput, ValidationError

from ..values import normalize_version
from .cells import KNOWN_FILES
from .columns import COLUMNS

MODES = ("bulk", "delta", "absent")


class _CountingRaw(io.RawIOBase):
    """Counts the bytes read from an underlying binary stream (for the progress bar)."""

    def __init__(self, raw: Any, on_read: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        if self.on_read and n:
            self.on_read(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class Package:
    """A OneRoster CSV package: a zip file or a directory."""

    def __init__(self, path: Path | str | bytes) -> None:
        #: what it was opened from (a second process opens it again: ``enrollments.EnrollmentReader``)
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.dir: Path | None = None
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
        self.members: dict[str, str] = {}  # file name (no directory) -> member path
        if self.zip is not None:
            for info in self.zip.infolist():
                if not info.is_dir():
                    base = info.filename.rsplit("/", 1)[-1]
                    if base and not base.startswith("."):
                        self.members.setdefault(base, info.filename)
        else:
            assert self.dir is not None
            for p in sorted(self.dir.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    self.members[p.name] = str(p)

    @staticmethod
    def _open_zip(src: Any) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(src)
        except zipfile.BadZipFile:
            raise MalformedInput("not a zip file (a OneRoster CSV package is a zip or a directory)") from None

    def size(self, name: str) -> int:
        member = self.members[name]
        if self.zip is not None:
            return self.zip.getinfo(member).file_size
        return Path(member).stat().st_size

    def open_text(self, name: str, on_read: Callable[[int], None] | None = None) -> io.TextIOWrapper:
        member = self.members[name]
        raw = self.zip.open(member) if self.zip is not None else open(member, "rb")  # noqa: SIM115
        buffered = io.BufferedReader(_CountingRaw(raw, on_read), buffer_size=1 << 16)
        # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike
        return io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


@dataclass
class Manifest:
    version: str
    files: dict[str, str]  # file name (no .csv) -> bulk | delta | absent
    properties: dict[str, str]


def read_manifest(pkg: Package) -> Manifest:
    """OneRoster CSV 1.1 section 2.2 / 1.2 section 3.1: manifest.csv, ``propertyName,value``."""
    if "manifest.csv" not in pkg.members:
        raise MalformedInput(
            "not a OneRoster CSV package: manifest.csv is missing",
            errors=[ErrorDetail("manifest.csv is required (propertyName,value rows)", location="manifest.csv")],
        )
    errors = ErrorCollector()
    props: dict[str, str] = {}
    try:
        with pkg.open_text("manifest.csv") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["propertyName", "value"]:
                errors.add(f"header must be propertyName,value, not {','.join(header)!r}", location="manifest.csv row 1")
            for n, row in enumerate(reader, start=2):
                if not row or not any(c.strip() for c in row):
                    continue
                if len(row) < 2:
                    errors.add("expected propertyName,value", location=f"manifest.csv row {n}")
                    continue
                key, value = row[0].strip(), row[1].strip()
                if key in props:
                    errors.add(f"property {key!r} appears twice", location=f"manifest.csv row {n}", field="propertyName")
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
        if value not in MODES:
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
    errors.raise_if_any("invalid OneRoster package", MalformedInput)
    return Manifest(version=version, files=files, properties=props)
