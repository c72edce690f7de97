"""The store's prepared streams (``gateway/store/streams.py``, ``Store.streams``): a
producer's batches, produced and prepared in a forked child process, are written exactly
as the same records written from this process, in ONE transaction; what the child raises
is raised here and nothing is written. The OneRoster importer's use of it is tested in
``test_oneroster_csv_stream`` and ``test_oneroster_csv_fast``."""

from __future__ import annotations

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
