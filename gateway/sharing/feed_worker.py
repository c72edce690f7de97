"""The change feed's de-identifying worker process: a reader's records of a de-identified
grant decoded, de-identified and written back as JSON text in another process
(``FeedWorker``), while the page's process reads the next chunk and shapes the one before.

**Why a process.** A page is made by one process, its reading thread (the driver) and its
converting thread sharing the interpreter's lock. Before this worker that process spent
~9.5 µs of CPU a de-identified change at full size, about half of the converting thread's
time in ``record_texts.deidentified_records`` (msgspec decoding each stored record, learner
pseudonyms column by column, the record's own id an HMAC, msgspec writing it back): the
page's rate was one over that process's CPU (~84,500 changes/s on 2 cores, the cores ~57 %
busy), not over the machine's. Threads cannot take that work over (it holds the lock); a
process can, on the core the database leaves free. The worker takes over the role of the
pseudonym helper the feed had (``pseudonym_helper``, which made the record ids' HMACs only):
one process a reader, not two.

**Protocol** (this file run as a script, ``python -I -S``, over its standard input and
output, pipes widened to 1 MiB): first the import path (the parent's ``sys.path`` behind the
folder of this ``gateway`` package, NUL-separated, length-prefixed; nothing secret), to which
the worker answers one byte, ``R``, once it has imported msgspec and the de-identification
code (~90 ms of CPU, ~20 MiB; the parent makes its chunks in-process until then, never waiting for it).
Then requests, each a length-prefixed msgpack array ``[setups, kinds, groups]``, answered in
order by one length-prefixed msgpack array with, a group, ``[texts, ids]`` (what
``record_texts.deidentified_records`` gives) or nil (the group raised: the parent makes it
in-process and raises what it raises):

* ``setups``: ``[tenant, pseudonymizer, state ids]`` for a grantor whose de-identifier the
  worker does not have yet (or has an older one of), replacing it;
* ``kinds``: kind -> its de-identified columns (``columns.columns_of``), once a kind: the
  worker does not import the canonical model to derive them;
* ``groups``: ``[tenant, kind, stored texts]``, a chunk's records of one (tenant, kind), as
  the database gave their bytes: the records of a chunk go in ONE request and come back in
  one answer, lengths and bytes packed by msgspec, not one message a record.

**Secrets.** The pseudonymizer goes as its pickle, which is the recipient's derived key only
(``Pseudonymizer.__reduce__``), never the server's key; the key and the state ids go over
the pipe, never on a command line, and the worker's environment is the server's without the
``TESSERA_*`` settings (the server's pseudonym key, the database's address and password).
**The state ids are sent, not read by the worker**: reading them itself would give the
worker the database's address and credentials, a connection and the database layer's
imports (~0.9 s and ~90 MiB more a process), for data the page's process reads anyway. The
parent sends a grantor's state ids (``StateIds.every``: the one query that reads them all,
the look-up a chunk of ``deidentify.READ_ALL_FROM`` records made in-process) with the first
chunk it sends under each of its de-identifiers, which ``feed.ChangeFeed`` replaces every
``feed.DEID_TTL``: the worker's state ids are exactly as fresh as the in-process path's (a
state id added to a learner shows in their pseudonym at most ``DEID_TTL`` later). A grantor
with more state ids than a de-identifier holds (``deidentify.CACHE_MAX``) is de-identified
in-process, looking its learners up as before.

**Pipes.** A chunk of 5,000 records is ~3.2 MB of request and ~2.7 MB of answer, more than a
pipe holds: the parent writes its requests from a thread of their own and the worker its
answers (``_write_all``), so neither the parent's reading thread nor the worker waits for
the other to read (``feed_records`` keeps at most two requests out).

**Measured** (``docs/scaling.md``, eighth round: the whole million-change feed of
``statebench``, alternated with the code before): the page's process 5.6-6.9 µs of CPU a
change against 8.8-11.2, the worker 3.7-4.5 µs on the other core, 79,799-99,158 changes/s
against 60,804-82,756 while the machine had a core to spare; the parent's side of the pipes
costs ~0.5 µs a record (msgpack and the copies), the worker's ~0.7.
"""

from __future__ import annotations

import os
import struct
import sys

TYPE_CHECKING = False  # typing is not imported at run time: the worker starts on the standard library until its path is set
if TYPE_CHECKING:
    import queue
    from typing import IO, Any

_LENGTH = struct.Struct("<Q")
#: the byte the worker writes once it can take requests
READY = b"R"


class WorkerFailed(RuntimeError):
    """The worker process ended, or answered short or garbled."""


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise WorkerFailed(f"the feed's worker process gave {0 if data is None else len(data)} of {n} bytes")
    return data


class FeedWorker:
    """One de-identifying worker process: ``send`` a request, ``receive`` the answers in the
    order asked. Which thread writes or reads, and how many requests are out, is the caller's
    (``feed_records.RecordHelper``); ``kill`` may be called from any thread."""

    def __init__(self) -> None:
        import subprocess

        from .pseudonym_helper import _widen  # the helper's pipes are widened the same way (in this process only)

        here = os.path.abspath(__file__)
        if not sys.executable or not os.path.isfile(here):  # an embedded or frozen interpreter: no worker
            raise OSError("no interpreter or script to run the feed's worker process with")
        # the environment without the server's settings: TESSERA_PSEUDONYM_KEY is the server's key
        # itself, TESSERA_DATABASE_URL may hold a password; the worker needs neither
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TESSERA_")}
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", here], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        _widen(self._in.fileno())
        _widen(self._out.fileno())
        root = os.path.dirname(os.path.dirname(os.path.dirname(here)))  # the folder this ``gateway`` package is in
        path = b"\0".join(os.fsencode(p) for p in [root, *(p for p in sys.path if p != root)])
        self._ready = False
        self.send(path)

    def ready(self, wait: float = 0.0) -> bool:
        """Whether the worker has started (its imports done), waiting up to ``wait`` seconds."""
        if not self._ready:
            import select

            try:
                readable = bool(select.select([self._out], [], [], wait)[0])
            except (OSError, ValueError):  # no select on pipes here: wait for it
                readable = True
            if not readable:
                return False
            if self._out.read(1) != READY:
                raise WorkerFailed("the feed's worker process ended before it started")
            self._ready = True
        return True

    def send(self, payload: bytes) -> None:
        self._in.write(_LENGTH.pack(len(payload)))
        self._in.write(payload)
        self._in.flush()

    def receive(self) -> bytes:
        return _read_exactly(self._out, _LENGTH.unpack(_read_exactly(self._out, _LENGTH.size))[0])

    def kill(self) -> None:
        """End the process now (a thread waiting on it gets an error and goes on)."""
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        """End the process (its input closed: it ends; killed if it does not within 5 s)."""
        import subprocess

        for pipe in (self._in, self._out):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's side: the import path, then requests until its input closes."""
    header = stdin.read(_LENGTH.size)
    if len(header) != _LENGTH.size:
        return
    sys.path[:] = [os.fsdecode(p) for p in _read_exactly(stdin, _LENGTH.unpack(header)[0]).split(b"\0")]
    import pickle
    import queue
    import threading

    import msgspec

    from gateway.sharing.deidentify import Deidentifier, StateIds
    from gateway.sharing.record_texts import deidentified_records

    decode, encode = msgspec.msgpack.Decoder().decode, msgspec.msgpack.Encoder().encode
    deids: dict[str, Deidentifier] = {}
    cols: dict[str, tuple[tuple[str, str], ...]] = {}
    stdout.write(READY)
    stdout.flush()
    answered: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    writer = threading.Thread(target=_write_all, args=(answered, stdout), daemon=True)
    writer.start()
    while True:
        header = stdin.read(_LENGTH.size)
        if len(header) != _LENGTH.size:
            answered.put(None)
            writer.join()
            return
        setups, kinds, groups = decode(_read_exactly(stdin, _LENGTH.unpack(header)[0]))
        for tenant, pseudonyms, every in setups:  # the parent's pickle: the recipient's derived key
            deids[tenant] = Deidentifier(pickle.loads(pseudonyms), StateIds.given(tenant, every))
        cols.update((kind, tuple(map(tuple, c))) for kind, c in kinds.items())
        answers: list[Any] = []
        for tenant, kind, raws in groups:
            try:
                answers.append(deidentified_records(kind, cols[kind], raws, deids[tenant]))
            except Exception:  # the parent makes this group in-process, and raises what it raises there
                answers.append(None)
        try:
            out = encode(answers)
        except (TypeError, ValueError, OverflowError):  # a value msgpack cannot hold: all in-process
            out = encode([None] * len(groups))
        answered.put(out)


def _write_all(answered: queue.SimpleQueue[bytes | None], stdout: IO[bytes]) -> None:
    """The worker's writing thread: each answer written as it comes, so the worker goes on to
    the next request while the page's process has not read this one yet (an answer of 5,000
    records, ~2.7 MB, is more than the pipe holds)."""
    try:
        while (out := answered.get()) is not None:
            stdout.write(_LENGTH.pack(len(out)))
            stdout.write(out)
            stdout.flush()
    except OSError:  # the page's process ended or killed the pipe: the worker ends at its next read
        os._exit(1)


if __name__ == "__main__":
    try:
        _serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, WorkerFailed):  # the page's process ended, or closed the pipe mid-request
        sys.exit(1)
