"""Prepared streams: batches of records an adapter produces one at a time, prepared and
written in ONE transaction by ``RecordStore.apply_batches``, optionally produced AND
prepared in a forked child process while this one writes (``Store.streams``).

``apply_batches`` already takes lazy batches of records and prepares each in its pipeline
thread while the previous one is written; that is the in-process stream, and needs nothing
from here. What this module adds is for the producer whose own Python work (reading a file,
checking and converting its rows) is as large as the database's: a million-row OneRoster
enrollments.csv. Threads would only take turns on the GIL; a second process runs in
parallel:

* ``PreparedStreams.forked(tenant, producer)`` forks a child once the producer is ready
  (``ForkedStream.start``, when the caller chooses: the child inherits the parent's state as
  it stands then). The child opens its own connection to the database (a forked connection
  would share its socket or file locks), runs ``producer.batches(store)``, prepares each
  batch (``prepare_plain``), and sends it back through a pipe as plain values, which
  ``ForkedStream.batches`` turns into ``PreparedBatch``es for ``apply_batches`` to write as
  they are. Whatever the child raises is raised in the parent, in turn, which rolls the
  transaction back.
* ``prepare_plain`` is ``RecordStore.prepare`` at half the cost for plain enrollments
  (no identifiers, no extensions, no ``updated_at``): their JSON is written by orjson
  from the record's own values, which gives pydantic's bytes for these field types
  (UUIDs, strings, enums, booleans, dates, UTC datetimes with ``Z``, an empty list and
  dict) in a third of the time; any other record goes through ``prepare``.

What the producer vouches for: the references of the records it streams are NOT checked
by the store (the batches carry none; a OneRoster importer checks each row's against the
package and the store itself, and the store deletes no record: a deletion is
``tobedeleted``). Evidence cannot be streamed from a child: its append-only rules need the
record itself at write time.

Only the store knows a prepared row's layout (``Prepared.head``: id, tenant, source,
native_id, status, content_hash, then the kind's promoted columns); the pipe carries those
rows, and ``_ShippedRecord`` reads a record's id, source and status back from them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import operator
import os
import pickle
import queue
import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import orjson

from ..model import RECORD_CLASSES, Enrollment, Record, Status
from .db import uuid_from_sqlite
from .prepare import REFERENCES, Prepared, PreparedBatch
from .records import RecordStore

#: kinds whose records other records reference: the writer looks those up by id (``by_id``)
_REFERENCED = frozenset(target for refs in REFERENCES.values() for target, _ in refs)
_KIND_ORDER = {cls.KIND: i for i, cls in enumerate(RECORD_CLASSES)}
#: The class ``prepare_plain`` serialises itself. Every field of an Enrollment is a UUID,
#: string, enum, boolean, date or datetime, or the (empty) identifiers and extensions: orjson
#: writes them as pydantic does (``test_oneroster_csv_fast`` compares the two).
_PLAIN = Enrollment


class Producer(Protocol):
    """What a forked stream runs in its child (``batches``, ``progress``, ``summary``) and
    hands back in its parent (``on_progress``, ``on_summary``). Values crossing over are
    pickled."""

    def batches(self, store: Any) -> Iterable[Iterable[Record]]:
        """In the child: the batches, in order, each consumed whole before the next is asked
        for. ``store`` is the child's own ``Store`` (its own connections)."""
        ...

    def progress(self) -> Any:
        """In the child, with every message sent: e.g. how much input was read since the last."""
        ...

    def on_progress(self, value: Any) -> None:
        """In the parent, for every message received, before its batch is written."""
        ...

    def summary(self) -> Any:
        """In the child, after the last batch: e.g. the counts of what was read."""
        ...

    def on_summary(self, value: Any) -> None:
        """In the parent, once the last batch is received."""
        ...


class PreparedStreams:
    """The store's prepared-stream facility (``Store.streams``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def can_fork(self) -> bool:
        """Whether a forked child can read this store through connections of its own: a fork
        is needed (the child inherits the producer's state), and an in-memory SQLite
        database exists only in this process."""
        url = self.store.engine.url
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        return "fork" in multiprocessing.get_all_start_methods() and not in_memory

    def prepare(self, tenant: str, records: Iterable[Record]) -> PreparedBatch:
        """``prepare_plain`` on this store's records."""
        return prepare_plain(self.store.records, tenant, records)

    def forked(self, tenant: str, producer: Producer, *, name: str = "tessera-stream") -> ForkedStream:
        """A stream of ``producer``'s batches, produced and prepared in a child process
        (``name``); call its ``start`` when the producer is ready, pass its ``batches()`` to
        ``apply_batches``, and ``close`` it in any case."""
        return ForkedStream(self.store, tenant, producer, name=name)


#: the child's first message: its store is open and was read (``ForkedStream.start``)
_READY = b"ready"
#: the read that takes SQLite's (or libpq's) locks of a first connection
_PROBE = {"sqlite": "SELECT count(*) FROM sqlite_master", "postgresql": "SELECT 1"}


def _send_all(ready: queue.Queue[bytes | None], conn: Any) -> None:
    """The child's sender thread: writes each pickled message to the pipe (without the GIL)
    while the main thread produces and prepares the next batches. A broken pipe means the
    parent is gone or gave up: the child ends at once."""
    try:
        while (data := ready.get()) is not None:
            conn.send_bytes(data)
    except OSError:
        os._exit(1)


class ForkedStream:
    """A producer's batches, produced and prepared in a forked child process while this
    process writes them.

    Why: a OneRoster import streaming a million enrollments was one process's Python work,
    about 20 us per enrollment, of which reading, checking, converting and preparing a row
    took 15; the database's own work (inserts, index builds, the commit) runs without the
    GIL, so the second core sat half idle. (A million enrollments: 32 s before, 23-25 s
    with a child; see bench/oneroster_csv.py.)

    Messages (pickled, (tag, ``producer.progress()``, payload)):

    * ``batch``: one batch's prepared rows as plain values (``_ship``);
    * ``end``: ``producer.summary()``;
    * ``raise``: what the producer or the preparation raised, raised here in turn (a
      failure that cannot be pickled arrives as a RuntimeError carrying its traceback).

    The child holds up to ``AHEAD`` pickled batches ready beyond what the pipe holds, no
    more, so memory stays bounded while the writer is busy with other records first."""

    #: pickled batches the child holds ready beyond the pipe's (~12 MB each at 20,000 enrollments)
    AHEAD = 8
    #: seconds a child has to open its store and read from it (``start``), and how many forks to
    #: try; under SQLite's busy timeout (30 s), so a child that inherited a lock's bookkeeping as
    #: held (it waits in its busy loop, then would fail) is forked again too
    STARTUP = 20.0
    ATTEMPTS = 3
    #: seconds without a message from a live child past which it is stuck (``batches``); under
    #: the tests' 300 s limit, because a stuck child left behind holds its parent's pipes (a
    #: pytest-xdist worker's among them: its end then went unnoticed, seen in CI)
    STALLED = 120.0

    def __init__(self, store: Any, tenant: str, producer: Producer, *, name: str = "tessera-stream") -> None:
        self.store = store
        self.tenant = tenant
        self.producer = producer
        self.name = name
        self._proc: Any = None
        self._recv: Any = None

    def start(self) -> None:
        """Fork the child: it inherits this process's state as it is now. Returns once the
        child has opened its store and read from it (``_READY``); a child that has not by
        ``STARTUP`` seconds is killed and forked again, up to ``ATTEMPTS`` times.

        Why: ``fork`` copies only the forking thread, and every lock as it stands. A child
        forked while another thread of this process was inside SQLite (the checkpoint thread
        of ``gateway.store.db``, a server's request, any SQLite database) inherits SQLite's
        global mutexes held by a thread it does not have, and blocks for ever on the first it
        takes (its first connection's first allocation): the parent then waited for ever for
        its first batch. Measured with a thread writing and checkpointing the same database
        while streams are forked: without this wait 3 streams of 100 stuck (gdb: the
        child in pthread_mutex_lock under sqlite3Malloc, for good); with it, 30 children of
        330 forked again and all 300 streams written. Those locks are taken within the first
        connection and read, so a child that got past them is past the hazard, and one forked
        again (a moment later) finds them free. The wait costs this process the child's
        start, tens of milliseconds."""
        for attempt in range(1, self.ATTEMPTS + 1):
            self._fork()
            if self._recv.poll(self.STARTUP):
                return  # READY, or what the child raised, or its end: ``batches`` reads it
            self._stop()
            if attempt == self.ATTEMPTS:
                raise RuntimeError(f"the {self.name} process did not open its store within {self.STARTUP:g} s, "
                                   f"{self.ATTEMPTS} times (stuck on a lock held when it was forked)")

    def _fork(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=self._child, args=(send,), name=self.name, daemon=True)
        self._proc.start()
        send.close()  # the child's end: EOF here once the child is gone

    def _child(self, conn: Any) -> None:
        producer = self.producer
        ready: queue.Queue[bytes | None] = queue.Queue(self.AHEAD)
        sender = threading.Thread(target=_send_all, args=(ready, conn), daemon=True)
        sender.start()

        def put(tag: str, payload: Any) -> None:
            ready.put(pickle.dumps((tag, producer.progress(), payload), protocol=pickle.HIGHEST_PROTOCOL))

        store = None
        try:
            # its own connections: a forked one shares its socket or file locks with the parent's
            store = type(self.store).from_url(self.store.engine.url.render_as_string(hide_password=False))
            with store.engine.connect() as probe:  # the first connection and read: past the inherited locks (``start``)
                probe.exec_driver_sql(_PROBE.get(store.engine.dialect.name, "SELECT 1")).fetchall()
            ready.put(_READY)
            for batch in producer.batches(store):
                put("batch", _ship(prepare_plain(store.records, self.tenant, batch)))
            put("end", producer.summary())
        except BaseException as exc:  # noqa: BLE001  # every failure goes to the parent, which raises it
            try:
                put("raise", exc)
            except (pickle.PicklingError, TypeError, AttributeError):  # not picklable: its traceback, then
                put("raise", RuntimeError(f"{self.name} failed:\n{traceback.format_exc()}"))
        ready.put(None)
        sender.join()
        if store is not None:
            store.dispose()

    def batches(self) -> Iterator[PreparedBatch]:
        """The child's batches, prepared, in order; then its summary goes to the producer."""
        producer = self.producer
        while True:
            # the child sends a batch every fraction of a second (it prepares up to ``AHEAD``
            # ahead): one silent for ``STALLED`` seconds while alive is stuck, not slow
            if not self._recv.poll(self.STALLED):
                self._stop()
                raise RuntimeError(f"the {self.name} process sent nothing for {self.STALLED:g} s: stopped")
            try:
                data = self._recv.recv_bytes()
            except EOFError:
                raise RuntimeError(f"the {self.name} process ended unexpectedly (exit code {self._proc.exitcode})") from None
            if data == _READY:
                continue
            tag, progress, payload = pickle.loads(data)
            producer.on_progress(progress)
            if tag == "raise":
                raise payload
            if tag == "end":
                producer.on_summary(payload)
                return
            yield _unship(self.tenant, payload)

    def close(self) -> None:
        """Stop the child (still running only when the writer failed) and reap it."""
        if self._proc is None:
            return
        self._stop()

    def _stop(self) -> None:
        self._recv.close()
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join()


def prepare_plain(records: RecordStore, tenant: str, batch: Iterable[Record]) -> PreparedBatch:
    """``records.prepare(tenant, batch)`` at half the cost for plain enrollments (no
    identifiers, no extensions, no ``updated_at``): each is serialised and hashed here
    (``_plain_digest``) and handed to ``prepare_serialised``, which builds the same row; any
    other record goes through ``prepare``. The plain records' references are not collected
    (see the module docstring: the producer vouches for them)."""
    plain: list[tuple[Record, str, str]] = []
    other: list[Record] = []
    for rec in batch:
        if type(rec) is _PLAIN and not rec.identifiers and not rec.extensions and rec.updated_at is None:
            plain.append((rec, *_plain_digest(rec)))
        else:
            other.append(rec)
    fast = records.prepare_serialised(tenant, _PLAIN.KIND, plain)
    if not other:
        return fast
    rest = records.prepare(tenant, other)
    by_kind = dict(rest.by_kind)
    mine = fast.by_kind.get(_PLAIN.KIND)
    if mine:
        # in id order, as prepare orders them (a stored key's order is its UUID's on both engines)
        by_kind[_PLAIN.KIND] = sorted([*mine, *by_kind.get(_PLAIN.KIND, [])], key=operator.attrgetter("key"))
    by_id = dict(rest.by_id)
    if _PLAIN.KIND in fast.by_id:
        by_id[_PLAIN.KIND] = {**by_id.get(_PLAIN.KIND, {}), **fast.by_id[_PLAIN.KIND]}
    kinds = sorted(by_kind, key=_KIND_ORDER.__getitem__)
    return PreparedBatch(tenant, {k: by_kind[k] for k in kinds}, fast.size + rest.size, by_id, rest.refs)


def _plain_digest(rec: Record) -> tuple[str, str]:
    """(content hash, JSON body without its closing brace) of a plain enrollment, byte for
    byte what ``RecordStore.prepare`` makes of it: pydantic's JSON of the fields that are
    not None, in field order, hashed as it is (its only free-form dict, ``extensions``, is
    empty). orjson writes these field types exactly as pydantic does, in a third of the
    time; ``test_oneroster_csv_fast`` compares the two."""
    raw = orjson.dumps({k: v for k, v in rec.__dict__.items() if v is not None}, option=orjson.OPT_UTC_Z)
    return hashlib.sha256(raw).hexdigest(), raw[:-1].decode()


#: one batch as plain values: kind -> (keys, hashes, rows, bodies, identifier rows)
_Shipped = dict[str, tuple[list[Any], list[str], list[tuple[Any, ...]], list[str], list[tuple[Any, ...]]]]


def _ship(batch: PreparedBatch) -> _Shipped:
    """A prepared batch as plain values to pickle (strings, bytes, tuples; UUIDs on
    PostgreSQL), not its records: unpickling a million pydantic models would cost the
    writing process more than preparing them did."""
    if "evidence" in batch.by_kind:
        raise ValueError("evidence cannot be prepared in a child process: its append-only rules need the record when it is written")
    return {kind: ([p.key for p in items], [p.digest for p in items], [p.head for p in items],
                   [p.body for p in items], [p.idents for p in items])  # type: ignore[misc]
            for kind, items in batch.by_kind.items()}


def _unship(tenant: str, shipped: _Shipped) -> PreparedBatch:
    """The ``PreparedBatch`` of what ``_ship`` sent, a ``_ShippedRecord`` standing in for each
    record. ``by_id`` is filled only for kinds that records reference (the writer reads it
    for those alone); no references travel (see the module docstring)."""
    by_kind: dict[str, list[Prepared]] = {}
    by_id: dict[str, dict[uuid.UUID, Prepared]] = {}
    size = 0
    for kind, columns in shipped.items():
        items = [Prepared(_ShippedRecord(head), key, digest, head, body, None, idents)  # type: ignore[arg-type]
                 for key, digest, head, body, idents in zip(*columns, strict=True)]
        if not items:
            continue
        by_kind[kind] = items
        size += len(items)
        if kind in _REFERENCED:
            by_id[kind] = {p.rec.id: p for p in items}  # type: ignore[misc]
    return PreparedBatch(tenant, by_kind, size, by_id)


class _ShippedRecord:
    """``Prepared.rec`` of a record prepared in the child: what the writer reads of it, from
    its row (``Prepared.head``: id, tenant, source, native_id, status, ...): its status (to
    log an update as a deletion) and, for an outbox route, its id and source."""

    __slots__ = ("head",)

    def __init__(self, head: tuple[Any, ...]) -> None:
        self.head = head

    @property
    def id(self) -> uuid.UUID:
        key = self.head[0]  # a UUID on PostgreSQL, its 16 bytes on SQLite
        return key if isinstance(key, uuid.UUID) else uuid_from_sqlite(key)  # type: ignore[return-value]

    @property
    def source(self) -> str:
        return self.head[2]

    @property
    def status(self) -> Status:
        return Status(self.head[4])


__all__ = ["ForkedStream", "PreparedStreams", "Producer", "prepare_plain"]
