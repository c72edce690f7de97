"""The change feed's records de-identified a part at a time (``record_texts.PART``), and a
chunk's changes shaped from records that came in their order without a look-up: the very
pages the feed makes with the whole chunk as one part and every record looked up, on SQLite
and PostgreSQL (and with the de-identifying worker process)."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from gateway.sharing import feed as feed_mod
from gateway.sharing import feed_records, record_texts
from gateway.sharing.deidentify import StateIds
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store.tables import RECORD_TABLES

from .test_sharing import KEY, district, grant


def _pages(feed: ChangeFeed, tenant: str = "state", limit: int = 7, since: int = 0) -> list[bytes]:
    """Every page from ``since`` as the response writes it (its records' JSON text as it is)."""
    reader = feed.reader(tenant, f"{tenant}-client", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    seen = []
    while True:
        page = feed.page(reader, since=since, until=until, limit=limit)
        seen.append(orjson.dumps({"changes": page.changes, "next_since": page.next_since, "more": page.more}))
        since = page.next_since
        if not page.more:
            return seen


@pytest.fixture
def districts(store):
    d1 = district(store, "d1", state_ids={"u2": "IA-2"}, n=9)
    district(store, "d2", state_ids={"u1": "IA-2"}, n=5)
    kid = [r for r in d1 if r.kind == "person"][0]
    store.records.apply("d1", [kid.model_copy(update={"given_name": "Later"})])  # a record changed twice
    grant(store, "d1", kinds=["person", "evidence", "enrollment", "org"])
    grant(store, "d2", kinds=["person", "evidence", "enrollment"])
    return store


@pytest.mark.parametrize("helped", [False, True])
def test_records_in_parts_make_the_very_pages_of_one_part(districts, monkeypatch, helped):
    if helped and districts.engine.dialect.name != "postgresql":
        pytest.skip("the worker serves the chunked reading of PostgreSQL")
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: helped)
    monkeypatch.setattr(feed_records, "HELPER_FROM", 1)
    monkeypatch.setattr(feed_mod, "FIRST_CHUNK", 3)
    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 8)
    feed = ChangeFeed(districts, GrantStore(districts.engine), lambda: KEY)
    monkeypatch.setattr(record_texts, "PART", 10_000)
    whole = _pages(feed, limit=20)
    for part in (1, 2, 3):
        monkeypatch.setattr(record_texts, "PART", part)
        assert _pages(feed, limit=20) == whole, part
    feed.close()
    assert b'"Later"' not in b"".join(whole) and b"IA-2" not in b"".join(whole)  # de-identified


def test_changes_whose_records_came_in_their_order_are_shaped_without_a_look_up(districts, monkeypatch):
    """A chunk whose records of a (tenant, kind) came once each in the order of its changes is
    shaped from them in turn; one naming a record twice (or in another order) looks each up:
    both give the pages a look-up of every record gives."""
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    feed = ChangeFeed(districts, GrantStore(districts.engine), lambda: KEY)
    used: list[tuple[int, int]] = []  # (changes shaped in order, kinds looked up) a chunk
    add = feed_mod._Shape.add

    def spied(self, rows, found, in_order=None):
        used.append((len(in_order or {}), sum(map(len, found.values()))))
        return add(self, rows, found, in_order)

    monkeypatch.setattr(feed_mod._Shape, "add", spied)
    pages = {t: _pages(feed, t, limit=1000) for t in ("state", "d1")}
    if districts.engine.dialect.name == "postgresql":  # SQLite's records come by id: always looked up
        assert any(n for n, _ in used) and any(k for _, k in used)

    def looked_up(self, rows, found, in_order=None):  # every record in ``found``, by id
        for (tenant, kind), entries in (in_order or {}).items():
            for row in rows:
                if row[1:3] == (tenant, kind):
                    found.setdefault(kind, {})[row[3]] = next(entries)
        return add(self, rows, found)

    monkeypatch.setattr(feed_mod._Shape, "add", looked_up)
    assert {t: _pages(feed, t, limit=1000) for t in ("state", "d1")} == pages
    feed.close()


def test_state_ids_loaded_at_once_answer_as_looked_up(store):
    """``StateIds.load`` (the feed's, before a chunk's records are de-identified in parts)
    reads the tenant's state ids as the first large look-up does: the same answers."""
    district(store, "d1", state_ids={"u0": "IA-0", "u2": "IA-2"}, n=4)
    people = RECORD_TABLES["person"]
    with store.engine.connect() as conn:
        found = [str(r) for r in conn.execute(select(people.c.id).where(people.c.tenant == "d1")).scalars()]
    by_id = StateIds(store.engine, "d1").of(found)  # fewer than READ_ALL_FROM: looked up by person id
    loaded = StateIds(store.engine, "d1")
    loaded.load()
    assert loaded._all is not None and sorted(loaded._all.values()) == ["IA-0", "IA-2"]
    assert loaded.of(found) == by_id and sum(v is not None for v in by_id.values()) == 2
