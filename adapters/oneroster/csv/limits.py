"""What a OneRoster CSV package may hold before it is refused unread, and the bounded reading
of its files (issue 21 item 2: a 1 MB zip holding 1 GiB without a line break took 2.2 GB of
memory before it failed).

Before a byte of a file is read (``Package``):

* the entry count, from the zip's end record, before ``zipfile`` loads its directory
  (``max_members``; a directory package: its files);
* the total uncompressed size the zip's directory (or the file system) declares
  (``max_uncompressed_bytes``);
* each member's compression ratio, above ``RATIO_GRACE_BYTES`` (``max_compression_ratio``);
* member paths: absolute ones and ``..`` are refused (``member_parts``).

While a file is read (``Meter``, ``LimitedText``):

* no member gives more bytes than declared: ``zipfile`` stops at the directory's size and
  then fails its CRC check when a header lied; a directory package's file must not grow.
  With the total checked first, no package can make an import read more than the total;
* no line, and no CSV record (several lines when a quoted field holds line breaks), is
  longer than ``max_line_length`` characters: files are read in blocks of ``BLOCK``
  characters and split into lines here, so memory never holds more than a block and one
  line, whatever the file (``csv.field_size_limit``, 128 KiB by default, still bounds one
  field).

Every refusal is a ``PackageTooLarge`` (HTTP 413) naming the file, the limit and the
setting that raises it (``adapters.oneroster.settings``, ``TESSERA_ONEROSTER__*``).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from gateway.errors import ErrorDetail, MalformedInput, PayloadTooLarge

#: members this small are never refused for their compression ratio (a header of a few
#: hundred bytes compresses as well as it likes; Apache POI's grace size is 100 KB)
RATIO_GRACE_BYTES = 1 << 20
#: characters read at a time from a text file
BLOCK = 1 << 16
ENV = "TESSERA_ONEROSTER__"


class Limits(Protocol):
    """What ``Package`` needs of ``settings.OneRosterSettings``."""

    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_members: int
    max_line_length: int


class PackageTooLarge(PayloadTooLarge):
    """A package, or a file or line in it, over one of the limits (HTTP 413)."""

    title = "OneRoster package over a limit"


def over(limit: str, message: str, location: str) -> ErrorDetail:
    """One refusal, naming the setting (``field``) that raises the limit."""
    return ErrorDetail(f"{message} (set {ENV}{limit.upper()} to change the limit)", location=location, field=limit)


def refuse(what: str, *errors: ErrorDetail) -> PackageTooLarge:
    return PackageTooLarge(f"the OneRoster package is refused unread: {what}", errors=list(errors))


# ---- the zip's end record: the entry count before zipfile reads the directory

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def zip_directory(fh: Any) -> tuple[int, int] | None:
    """(entries, central directory bytes) from a zip's end of central directory record (and
    its zip64 record), or None when there is none (``zipfile`` then says it is no zip)."""
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    tail_len = min(size, _EOCD.size + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _, _, _, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    if 0xFFFF in (entries,) or 0xFFFFFFFF in (cd_size, cd_offset):
        loc_at = size - tail_len + at - _ZIP64_LOCATOR.size
        if loc_at >= 0:
            fh.seek(loc_at)
            sig, _, eocd64, _ = _ZIP64_LOCATOR.unpack(fh.read(_ZIP64_LOCATOR.size))
            if sig == b"PK\x06\x07" and 0 <= eocd64 < size:
                fh.seek(eocd64)
                raw = fh.read(_ZIP64_EOCD.size)
                if len(raw) == _ZIP64_EOCD.size and raw[:4] == b"PK\x06\x06":
                    fields = _ZIP64_EOCD.unpack(raw)
                    entries, cd_size = fields[7], fields[8]
    fh.seek(0)
    return entries, cd_size


def check_zip_directory(fh: Any, name: str, limits: Limits) -> None:
    """Refuse a zip whose end record announces more entries than ``max_members``, or a
    directory larger than that many entries with ordinary names take."""
    found = zip_directory(fh)
    if found is None:
        return
    entries, cd_size = found
    if entries > limits.max_members:
        raise refuse("too many entries", over("max_members", f"the zip holds {entries:,} entries, more than the limit of {limits.max_members:,}", name))
    most = limits.max_members * 1024 + (1 << 16)
    if cd_size > most:
        raise refuse("zip directory too large", over(
            "max_members", f"the zip's directory takes {cd_size:,} bytes, more than {limits.max_members:,} entries with ordinary names need ({most:,})", name))


# ---- member paths

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_parts(name: str) -> tuple[list[str] | None, str | None]:
    """A zip member's path as its folder names and file name (backslashes read as the
    separators Windows tools write), or None and why it is refused: an absolute path, a
    drive, or a ``..`` component (``../../users.csv`` must not be read as ``users.csv``)."""
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        return None, f"member {name!r} has an absolute path"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, f"member {name!r} has a '..' path component (it would point outside the package)"
    return parts, None


def ignored(parts: list[str]) -> bool:
    """Entries no package reads: hidden files and folders (``.DS_Store``), and the
    ``__MACOSX/`` twins macOS's archiver adds."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


# ---- reading

class Meter(io.RawIOBase):
    """The raw bytes of one member: counted for the progress bar, refused past ``declared``
    (what the zip directory or the file system said before the read), and a damaged zip
    member reported as such (``zipfile``'s CRC and inflate errors) rather than crashing."""

    def __init__(self, raw: Any, name: str, declared: int, on_read: Callable[[int], None] | None) -> None:
        self.raw = raw
        self.name = name
        self.declared = declared
        self.on_read = on_read
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self.raw.read(len(b))
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise MalformedInput(f"{self.name} is damaged in the zip", errors=[ErrorDetail(str(exc), location=self.name)]) from None
        n = len(data)
        self.count += n
        if self.count > self.declared:
            raise refuse(f"{self.name} is larger than declared", over(
                "max_uncompressed_bytes",
                f"{self.name} gives more than the {self.declared:,} bytes declared before it was read "
                "(a lying zip header, or a file growing while it is read)", self.name))
        b[:n] = data
        if self.on_read and n:
            self.on_read(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


#: line breaks str.splitlines honours that a CSV reader (universal newlines) does not
_OTHER_BREAKS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_BREAKS = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


def split_lines(text: str) -> list[str]:
    """``text`` split after each ``\\n``, ``\\r\\n`` or lone ``\\r``, line breaks kept (as
    ``open(newline="")`` does); the last item may be a line without its break."""
    if any(c in text for c in _OTHER_BREAKS):
        lines = _BREAKS.split(text)
        if lines and not lines[-1]:
            lines.pop()
        return lines
    return text.splitlines(True)


class LimitedText:
    """A text file of a package read as lines of at most ``limit`` characters (line break
    not counted), without ever holding more than a block and a line. Iterating gives the
    lines (``csv.reader(fh)`` works as on a file); ``reader()`` is ``csv.reader`` with each
    record bounded too (a quoted field may hold line breaks: a record of many lines)."""

    def __init__(self, text: io.TextIOWrapper, name: str, limit: int) -> None:
        self.text = text
        self.name = name
        self.limit = limit
        #: the physical line the last record ``reader()`` returned ended on
        self._end = 0
        self._track = False

    def __enter__(self) -> LimitedText:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.text.close()

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._blocks())

    def reader(self) -> Iterator[list[str]]:
        """``csv.reader`` over this file, its records bounded; a ``csv.Error`` names its line."""
        self._track = True
        return self._records(csv.reader(self))

    def _records(self, rows: Any) -> Iterator[list[str]]:
        try:
            for row in rows:
                self._end = rows.line_num
                yield row
        except csv.Error as exc:
            raise csv.Error(f"line {rows.line_num}: {exc}") from None

    def _too_long(self, line_no: int, what: str) -> PackageTooLarge:
        return refuse(f"{self.name} has a line too long", over(
            "max_line_length", f"{what} longer than the limit of {self.limit:,} characters", f"{self.name} line {line_no}"))

    def _blocks(self) -> Iterator[list[str]]:
        """The file's lines, a block's worth at a time (a C-level chain yields them one by
        one: no Python call per line). Each is checked against the limit; with ``reader()``,
        so is the record still open when the next block is asked for."""
        read, limit = self.text.read, self.limit
        carry = ""
        done = 0  # lines yielded so far (csv has consumed them all when we are resumed)
        pos = 0  # characters yielded so far
        prev: list[str] = []
        prev_first = prev_pos = 0
        seen_end, rec_start = -1, 0
        while True:
            block = read(BLOCK)
            if block:
                lines = split_lines(carry + block if carry else block)
                carry = lines.pop() if lines and not lines[-1].endswith("\n") else ""
                if len(carry) > limit + 1:
                    raise self._too_long(done + len(lines) + 1, "a line")
            else:
                lines = [carry] if carry else []
                carry = ""
            if lines and max(map(len, lines)) > limit:
                for i, line in enumerate(lines):
                    if len(line.rstrip("\r\n")) > limit:
                        raise self._too_long(done + i + 1, "a line")
            if self._track and self._end < done:  # a record is open since line _end + 1
                end = self._end
                if end != seen_end:
                    seen_end = end
                    if end + 1 >= prev_first:
                        rec_start = prev_pos + sum(map(len, prev[:end + 1 - prev_first]))
                if pos - rec_start > limit:
                    raise self._too_long(end + 1, "a record from this line on (a quoted field holding line breaks) is")
            if not lines:
                if not block:
                    return
                continue
            yield lines
            prev, prev_first, prev_pos = lines, done + 1, pos
            done += len(lines)
            pos += sum(map(len, lines))
