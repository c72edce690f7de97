"""The store's prepared streams (``gateway/store/streams.py``, ``Store.streams``): a
producer's batches, produced and prepared in a forked child process, are written exactly
as the same records written from this process, in ONE transaction; what the child raises
is raised here and nothing is written. The OneRoster importer's use of it is tested in
``test_oneroster_csv_stream`` and ``test_oneroster_csv_fast``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.errors import ValidationError
from gateway.model import Record
from gateway.store import Store
from tests import factories as f

T = f.T


def world() -> list[list[Record]]:
    """Orgs, courses and sections (referenced kinds), people with identifiers (prepared the
    store's usual way), and plain enrollments (serialised by the stream itself)."""
    school = f.org("s1")
    crs = f.course("c1", school)
    sec = f.section("k1", crs, school)
    people = [f.person(f"p{i}", school) for i in range(5)]
    return [[school, crs, sec], people, [f.enrollment(p, sec) for p in people]]


class Batches:
    """A producer: the given batches; its progress is how many were produced so far."""

    def __init__(self, batches: list[list[Record]], fail_at: int | None = None) -> None:
        self._batches, self.fail_at = batches, fail_at
        self.produced = 0
        self.progressed: list[Any] = []
        self.summarised: Any = None

    def batches(self, store: Any) -> Iterator[list[Record]]:
        assert isinstance(store, Store)  # the child's own
        for batch in self._batches:
            if self.produced == self.fail_at:
                raise ValidationError("row 9 is bad")
            self.produced += 1
            yield batch

    def progress(self) -> int:
        return self.produced

    def on_progress(self, value: Any) -> None:
        self.progressed.append(value)

    def summary(self) -> Any:
        return ("done", self.produced)

    def on_summary(self, value: Any) -> None:
        self.summarised = value


def forked(store: Store, producer: Batches) -> Any:
    if not store.streams.can_fork():
        pytest.skip("no fork on this platform")
    stream = store.streams.forked(T, producer, name="test-stream")
    stream.start()
    try:
        return store.records.apply_batches(T, stream.batches())
    finally:
        stream.close()


def test_a_forked_stream_writes_what_this_process_would(store: Store) -> None:
    producer = Batches(world())
    result = forked(store, producer)
    assert {k: c.created for k, c in result.counts.items()} == {"org": 1, "course": 1, "section": 1, "person": 5, "enrollment": 5}
    assert producer.progressed == [1, 2, 3, 3] and producer.summarised == ("done", 3)
    # the same records from this process: hash for hash what the child prepared
    again = store.records.apply_batches(T, world())
    assert again.created == again.updated == 0 and again.unchanged == 13
    assert [kind for kind, _ in store.records.lookup(T, "sis", "oneroster.sourcedId", "p3")] == ["person"]


def test_what_the_child_raises_is_raised_here_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(ValidationError, match="row 9 is bad"):
        forked(store, Batches(world(), fail_at=2))
    assert store.records.count(T, "org") == 0 and store.records.count(T, "person") == 0


def test_prepare_plain_prepares_as_the_store_does(store: Store) -> None:
    records = [rec for batch in world() for rec in batch]
    mine, theirs = store.streams.prepare(T, records), store.records.prepare(T, records)
    assert list(mine.by_kind) == list(theirs.by_kind) and mine.size == theirs.size
    for kind, items in theirs.by_kind.items():
        assert [(p.key, p.digest, p.head, p.body, p.idents) for p in mine.by_kind[kind]] == [
            (p.key, p.digest, p.head, p.body, p.idents) for p in items]


def test_a_child_stuck_on_a_lock_held_at_the_fork_is_forked_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child forked while this process held a lock the child's store takes (as SQLite's own
    mutexes are, when another thread is inside SQLite at the fork) waits for it for ever: it
    is killed after ``STARTUP`` seconds and forked again, and the stream goes on as if
    nothing happened. Before, the parent waited for ever for its first batch."""
    from gateway.store.streams import ForkedStream

    held = threading.Lock()
    held.acquire()  # copied into the first child as it stands: held, by a thread it does not have
    opening = Store.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: type[Store], url: str, **kw: Any) -> Store:
        with held:
            return opening(cls, url, **kw)

    forks: list[int] = []
    fork = ForkedStream._fork

    def counted(self: ForkedStream) -> None:
        fork(self)
        forks.append(self._proc.pid)
        if held.locked():
            held.release()  # the next child finds it free

    monkeypatch.setattr(Store, "from_url", classmethod(from_url))
    monkeypatch.setattr(ForkedStream, "_fork", counted)
    monkeypatch.setattr(ForkedStream, "STARTUP", 2.0)
    producer = Batches(world())
    result = forked(store, producer)
    assert len(forks) == 2
    assert {k: c.created for k, c in result.counts.items()} == {"org": 1, "course": 1, "section": 1, "person": 5, "enrollment": 5}
    assert producer.progressed == [1, 2, 3, 3] and producer.summarised == ("done", 3)


def test_a_child_that_never_opens_its_store_fails_the_stream(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fork stuck: ``start`` raises after ``ATTEMPTS`` children, each killed."""
    from gateway.store.streams import ForkedStream

    if not store.streams.can_fork():
        pytest.skip("no fork on this platform")
    never = threading.Event()

    def from_url(cls: type[Store], url: str, **kw: Any) -> Store:
        never.wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(Store, "from_url", classmethod(from_url))
    monkeypatch.setattr(ForkedStream, "STARTUP", 0.5)
    stream = store.streams.forked(T, Batches(world()), name="test-stream")
    try:
        with pytest.raises(RuntimeError, match=r"the test-stream process did not open its store within 0.5 s, 3 times"):
            stream.start()
        assert not stream._proc.is_alive()
    finally:
        stream.close()
