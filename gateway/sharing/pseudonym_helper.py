"""Record pseudonyms computed in a helper process while the export converts the rest of a
batch (``PseudonymHelper``), and the HMAC and UUID-text code it shares with
``deidentify.Pseudonymizer`` (``record_macs``, ``uuid_texts``).

**Why a process.** Every exported per-learner record has an id of its own, so its pseudonym
(an HMAC-SHA256) cannot be cached: about a microsecond a row of Python calls (hash-state
copies, updates, digests) that hold the interpreter's lock, a fifth of what the export's
main thread does a row. hashlib lets go of the lock only for messages of 2 KiB or more, so a
thread cannot take that work over; a process can. The export hands the batch's record ids
to the helper as soon as they are decoded, converts the other columns meanwhile, and takes
the pseudonyms back when it writes the column; the helper works on the core the database
and the Parquet writer leave free.

**The helper** is this file run as a script by the same interpreter (``python -I -S``: the
standard library only, no package imported, started in milliseconds), talking over its
standard input and output: first the recipient's derived key ``K_r`` (never the server's
key, never on a command line; its environment is the server's without the ``TESSERA_*``
settings, so not the server's key either), then requests of ``(prefix, ids)`` answered by the 36-byte
UUID texts of their HMACs, one request outstanding at a time (so neither side ever waits on
a full pipe the other is not reading). It ends when its input closes. Its results are the
very bytes ``Pseudonymizer.records`` gives in-process (one ``record_macs`` and
``uuid_texts``; a test checks).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys

TYPE_CHECKING = False  # typing is not imported at run time: the helper process starts on the standard library's bare minimum
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import IO, Any

#: the RFC 9562 variant bits (10xx) set on the first hex digit of the clock sequence
VARIANT = {c: "89ab"[int(c, 16) & 0x3] for c in "0123456789abcdef"}
_VARIANT_BYTES = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
#: where each of a UUID text's 36 characters comes from in a digest's hex (64 digits); -1: a
#: dash, -2: the version digit (8), -3: the variant digit (made from hex digit 16)
_UUID_LAYOUT = (*range(8), -1, *range(8, 12), -1, -2, *range(13, 16), -1, -3, *range(17, 20), -1, *range(20, 32))
_HEADER = struct.Struct("<III")  # prefix length, payload length, number of ids


def as_uuid(digest: bytes) -> str:
    """The first 16 bytes as a version-8 UUID's text: what ``str(uuid.UUID(...))`` gives with
    the version (8: custom, RFC 9562 5.8) and variant set, made with string slices."""
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def uuid_texts(digests: Sequence[bytes]) -> bytes:
    """``as_uuid`` of a whole column at once, as one ASCII text of 36 bytes a digest: the
    digests' hex in one call, then each of the 36 character positions filled for every row by
    one extended-slice copy (C loops, no per-row formatting)."""
    n = len(digests)
    hexed = b"".join(digests).hex().encode("ascii")  # 64 hex digits a row
    out = bytearray(36 * n)
    for pos, src in enumerate(_UUID_LAYOUT):
        if src >= 0:
            out[pos::36] = hexed[src::64]
        elif src == -1:
            out[pos::36] = b"-" * n
        elif src == -2:
            out[pos::36] = b"8" * n
        else:
            out[pos::36] = hexed[16::64].translate(_VARIANT_BYTES)
    return bytes(out)


def split_texts(texts: bytes) -> list[str]:
    """The 36-byte UUID texts of ``uuid_texts`` as a list of strings."""
    text = texts.decode("ascii")
    return [text[i:i + 36] for i in range(0, len(text), 36)]


_OFFSETS: dict[int, Any] = {}


def arrow_texts(texts: bytes) -> Any:
    """The 36-byte UUID texts of ``uuid_texts`` as an Arrow string array, straight from the
    bytes: no string object a row (the offsets of a batch's size are made once)."""
    import pyarrow as pa

    n = len(texts) // 36
    offsets = _OFFSETS.get(n)
    if offsets is None:
        if len(_OFFSETS) > 8:
            _OFFSETS.clear()
        offsets = _OFFSETS[n] = pa.array(range(0, 36 * n + 1, 36), pa.int32()).buffers()[1]
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(texts))


def _sha256_maker() -> Any:
    """The interpreter's own SHA-256 (``_sha256``) where it has one, else hashlib's (OpenSSL's):
    the same digests, but copying its state, done twice a pseudonym, costs a plain copy of a
    small struct where OpenSSL's copies a context it allocates (measured: 0.69 against 0.84
    µs a record pseudonym)."""
    try:
        from importlib import import_module

        made = import_module("_sha256").sha256
        made(b"")
        return made
    except (ImportError, ValueError):  # an interpreter built without it (or refusing it: FIPS)
        return hashlib.sha256


def padded_states(key_r: bytes) -> tuple[Any, Any]:
    """The inner and outer SHA-256 states of HMAC with ``key_r`` after its padded key block
    (RFC 2104: ``H((K ^ opad) || H((K ^ ipad) || m))``), made once per key."""
    block = key_r.ljust(64, b"\0")  # a 32-byte key is shorter than SHA-256's 64-byte block
    sha256 = _sha256_maker()
    return sha256(bytes(b ^ 0x36 for b in block)), sha256(bytes(b ^ 0x5C for b in block))


def record_macs(inner: Any, outer: Any, prefix: bytes, ids: Sequence[bytes]) -> list[bytes]:
    """HMAC-SHA256 of ``prefix + id`` for each id, from the padded states: the prefix hashed
    once into a copy of the inner state, then per id two hash-state copies and three C calls."""
    prefixed = inner.copy()
    prefixed.update(prefix)
    outer0 = outer.copy
    digests: list[bytes] = []
    add = digests.append
    for r in ids:
        i = prefixed.copy()
        i.update(r)
        o = outer0()
        o.update(i.digest())
        add(o.digest())
    return digests


class HelperFailed(RuntimeError):
    """The helper process ended or answered short."""


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise HelperFailed(f"the pseudonym helper process answered {0 if data is None else len(data)} of {n} bytes")
    return data


def _widen(fd: int) -> None:
    """A pipe of 1 MiB (Linux; elsewhere as it is): a batch's ids or answer fit at once, so
    the writer goes on without waiting for the reader."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


class PseudonymHelper:
    """The helper process of one recipient's key: ``submit`` record ids with the tenant's
    prefix, later ``collect`` their pseudonyms. One request at a time; ``close`` ends the
    process (also when a request is still out)."""

    def __init__(self, key_r: bytes) -> None:
        import subprocess

        if not sys.executable or not os.path.isfile(__file__):  # an embedded or frozen interpreter: no helper
            raise OSError("no interpreter or script to run the pseudonym helper process with")
        # the environment without the server's settings: TESSERA_PSEUDONYM_KEY is the server's key
        # itself, TESSERA_DATABASE_URL may hold a password; the helper needs neither
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TESSERA_")}
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        _widen(self._in.fileno())
        _widen(self._out.fileno())
        self._in.write(struct.pack("<I", len(key_r)) + key_r)
        self._in.flush()
        self._outstanding = 0
        self.rows = 0

    def submit(self, prefix: bytes, joined: bytes, count: int) -> None:
        """Ask for the pseudonyms of ``count`` ids (lower-cased, joined by newlines, none holding
        one); a request still out is collected (and dropped) first."""
        if self._outstanding:
            self.collect()
        self._in.write(_HEADER.pack(len(prefix), len(joined), count) + prefix + joined)
        self._in.flush()
        self._outstanding = count

    def collect(self) -> bytes:
        """The 36-byte UUID texts of the outstanding request's ids, in order."""
        n, self._outstanding = self._outstanding, 0
        self.rows += n
        return _read_exactly(self._out, 36 * n) if n else b""

    def close(self) -> None:
        import subprocess

        for pipe in (self._in, self._out):  # its input ends it; a request still out finds no reader and ends it too
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class InProcessPseudonyms(PseudonymHelper):
    """What the helper process does, done in this process at once (``submit``): where no
    helper process runs (an export's part processes, which have the cores between them; an
    export with ``TESSERA_EXPORT_HELPER=0``; no process to be had) the record pseudonyms still
    go out as the UUID texts' bytes, made into an Arrow array without a string object a row."""

    def __init__(self, inner: Any, outer: Any) -> None:  # no process: the padded states of the key
        self._inner, self._outer, self._texts = inner, outer, b""
        self._outstanding, self.rows = 0, 0

    def submit(self, prefix: bytes, joined: bytes, count: int) -> None:
        self._texts = uuid_texts(record_macs(self._inner, self._outer, prefix, joined.split(b"\n") if count else []))
        self._outstanding = count

    def collect(self) -> bytes:
        texts, self._texts = self._texts, b""
        self.rows += self._outstanding
        self._outstanding = 0
        return texts

    def close(self) -> None:
        self._texts = b""


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The helper's side: the key, then requests until its input closes."""
    size = stdin.read(4)
    if len(size) != 4:
        return
    inner, outer = padded_states(_read_exactly(stdin, struct.unpack("<I", size)[0]))
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) != _HEADER.size:
            return
        plen, size_ids, count = _HEADER.unpack(header)
        prefix = _read_exactly(stdin, plen)
        ids = _read_exactly(stdin, size_ids).split(b"\n") if count else []
        if len(ids) != count:
            raise HelperFailed(f"{len(ids)} ids where {count} were announced")
        stdout.write(uuid_texts(record_macs(inner, outer, prefix, ids)))
        stdout.flush()


if __name__ == "__main__":
    try:
        _serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, HelperFailed):  # the export ended while a request was out
        sys.exit(1)
