"""The change feed's read-ahead (``feed_ahead``): pages read ahead are those read afresh, byte
for byte, and so is the access log (a page is logged when served, never when read ahead); a
grant revoked between pages stops the page read ahead under it; another question (since,
kinds, limit, until) is read afresh; the bounds hold (``MAX_JOBS``, ``TTL``, off by
``TESSERA_FEED_READ_AHEAD=0``). Also what two pages read at once share: the state ids of a
tenant looked up from two threads at once, and the garbage collector's pause. PostgreSQL
(the read-ahead's); SQLite never reads ahead."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import orjson
import pytest
from sqlalchemy import select

from gateway.gc_pause import paused_gc
from gateway.sharing import feed_ahead
from gateway.sharing.deidentify import StateIds
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store.tables import RECORD_TABLES, grant_access_log

from .test_sharing import KEY, district, grant
from .test_sharing_feed_parts import _pages
from .test_sharing_feed_worker import _log


def _feed(store) -> ChangeFeed:
    return ChangeFeed(store, GrantStore(store.engine), lambda: KEY)


def _reads(monkeypatch) -> list[tuple[int, bool]]:
    """Every page ``ChangeFeed.read`` reads from now on: (since, logged there)."""
    seen: list[tuple[int, bool]] = []
    real = ChangeFeed.read

    def read(self, reader, since, until, kinds, limit, *, logged=True, **kw):
        seen.append((since, logged))
        return real(self, reader, since, until, kinds, limit, logged=logged, **kw)

    monkeypatch.setattr(ChangeFeed, "read", read)
    return seen


def _first_page(store, monkeypatch):
    """A feed whose reads are recorded (``_reads``), the state's reader, the sync's ``until``
    and its first page (of 5: the next ones being read ahead)."""
    feed = _feed(store)
    reads = _reads(monkeypatch)
    reader = feed.reader("state", "state-client", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    return feed, reads, reader, until, feed.page(reader, since=0, until=until, limit=5)


@pytest.fixture
def districts(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("pages are read ahead on PostgreSQL")
    district(store, "d1", state_ids={"u2": "IA-2"}, n=8)
    district(store, "d2", state_ids={"u1": "IA-2"}, n=5)
    district(store, "d3", n=3)
    grants = {g: grant(store, g) for g in ("d1", "d2")}
    grants["d3"] = grant(store, "d3", deidentified=False, kinds=["person", "evidence"])
    return store, grants


def test_pages_read_ahead_and_their_log_are_those_read_afresh(districts, monkeypatch):
    store, _ = districts
    for limit in (1, 4, 9, 1000):
        monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "0")
        before = len(_log(store))
        afresh = _pages(_feed(store), limit=limit)
        logged_afresh = _log(store)[before:]
        monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "1")
        feed = _feed(store)
        reads = _reads(monkeypatch)
        ahead = _pages(feed, limit=limit)
        monkeypatch.undo()
        feed.close()
        assert ahead == afresh, limit
        assert _log(store)[before + len(logged_afresh):] == logged_afresh  # one row a grant a page served, same counts
        if len(afresh) > 1:  # every page after the first was read ahead, unlogged there
            assert [logged for _, logged in sorted(reads)] == [True] + [False] * (len(afresh) - 1), limit
    assert len(afresh) == 1 and len(ahead) == 1


def test_a_page_read_ahead_is_logged_only_when_served(districts, monkeypatch):
    store, grants = districts
    before = len(_log(store))
    feed, reads, _, until, first = _first_page(store, monkeypatch)
    feed.close()  # the sync stops: the page read ahead (second) is dropped once read
    assert first.more and len(reads) == 1 + feed_ahead.DEPTH  # this page and those read ahead, one from where it ends
    assert (0, True) in reads and (first.next_since, False) in reads
    logged = _log(store)[before:]
    assert len(logged) == len(grants) and all(d.startswith("since=0 ") for _, _, _, d, _ in logged)  # the first page only


def test_a_grant_revoked_between_pages_stops_the_page_read_ahead_under_it(districts, monkeypatch):
    store, grants = districts
    feed, _, reader, until, first = _first_page(store, monkeypatch)
    time.sleep(0.2)  # the next page read ahead, d1's changes and all
    GrantStore(store.engine).revoke(grants["d1"].id, grantor="d1", by="test")
    reader = feed.reader("state", "state-client", frozenset({"changes.readonly"}))
    rest = []
    since = first.next_since
    while True:
        page = feed.page(reader, since=since, until=until, limit=5)
        rest += page.changes
        since = page.next_since
        if not page.more:
            break
    feed.close()
    assert rest and {c["tenant"] for c in rest} <= {"d2", "d3"}
    c = grant_access_log.c
    with store.engine.connect() as conn:
        d1_reads = conn.execute(select(c.detail).where(c.grant_id == grants["d1"].id)).scalars().all()
    assert d1_reads == [f"since=0 until={until} kinds=enrollment,evidence,org,person"]  # nothing read under it since


def test_another_question_is_read_afresh(districts, monkeypatch):
    store, _ = districts
    feed, reads, reader, until, first = _first_page(store, monkeypatch)
    time.sleep(0.2)
    # the same since with other kinds, limit or until: none is the page read ahead
    for kw in ({"kinds": ["person"]}, {"limit": 6}, {"until": until - 1}):
        asked = {"since": first.next_since, "until": until, "limit": 5, **kw}
        monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "0")
        alone = orjson.dumps(feed.page(reader, **asked).changes)
        monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "1")
        assert orjson.dumps(feed.page(reader, **asked).changes) == alone, kw
    before = len(reads)
    again = feed.page(reader, since=0, until=until, limit=5)  # a page asked again (a retry): read afresh
    feed.close()
    assert orjson.dumps(again.changes) == orjson.dumps(first.changes)
    assert (0, True) in reads[before:]  # read here and logged here, not taken from a read-ahead


def test_the_read_ahead_is_bounded_and_can_be_turned_off(districts, monkeypatch):
    store, _ = districts
    feed = _feed(store)
    until = feed.available()["newest"]
    monkeypatch.setattr(feed_ahead, "MAX_JOBS", 2)
    readers = [feed.reader("state", f"client-{i}", frozenset({"changes.readonly"})) for i in range(4)]
    for r in readers:
        feed.page(r, since=0, until=until, limit=3)
    assert sum(map(len, feed._ahead._jobs.values())) == 2  # two readers read ahead; the others not
    for job in [j for js in feed._ahead._jobs.values() for j in js]:
        job.result.result()
    monkeypatch.setattr(feed_ahead, "TTL", 0.0)
    feed.page(readers[0], since=0, until=until, limit=3)  # unasked past TTL: dropped (and this reader's started anew)
    assert len(feed._ahead._jobs) == 1
    feed.close()
    assert not feed._ahead._jobs
    monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "0")
    feed.page(readers[1], since=0, until=until, limit=3)
    feed.page(readers[1], since=0, limit=3)
    assert not feed._ahead._jobs
    monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "1")
    feed.page(readers[1], since=0, limit=3)  # no until: each page's own newest safe version, nothing read ahead
    assert not feed._ahead._jobs
    feed.close()


def test_state_ids_looked_up_from_two_threads_at_once_are_never_missing(districts, monkeypatch):
    store, _ = districts
    people_t = RECORD_TABLES["person"]
    with store.engine.connect() as conn:
        people = [str(i) for i in conn.execute(select(people_t.c.id).where(people_t.c.tenant == "d1")).scalars()]
    for _ in range(5):
        ids = StateIds(store.engine, "d1")
        answers: list[dict] = []
        go = threading.Barrier(2)

        def look(ids=ids, answers=answers, go=go):
            go.wait()
            answers.append(ids.of(people))  # fewer than READ_ALL_FROM: looked up by person id

        threads = [threading.Thread(target=look) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers[0] == answers[1] and "IA-2" in answers[0].values()


def test_the_collectors_pause_ends_with_the_last_of_two_threads():
    assert gc.isenabled()
    first, second = paused_gc().start(), paused_gc().start()
    first.resume()
    assert not gc.isenabled()  # the second still works
    second.resume()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # disabled before: left so
    finally:
        gc.enable()


def test_a_sync_keeps_no_more_pages_alive_than_it_reads_ahead(districts, monkeypatch):
    store, _ = districts
    feed = _feed(store)
    alive: list[weakref.ref] = []
    real = ChangeFeed.read

    def read(self, *args, **kw):
        got = real(self, *args, **kw)
        alive.append(weakref.ref(got[0]))
        return got

    monkeypatch.setattr(ChangeFeed, "read", read)
    pages = _pages(feed, limit=2)
    gc.collect()
    assert len(pages) > 10 and len(alive) >= len(pages)
    assert sum(ref() is not None for ref in alive) <= feed_ahead.DEPTH  # those read ahead past the end, at most
    feed.close()


def test_a_page_read_ahead_tells_where_the_next_starts_without_a_look_up(districts, monkeypatch):
    store, _ = districts
    monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "0")
    alone = _pages(_feed(store), limit=2)
    monkeypatch.setenv(feed_ahead.READ_AHEAD_ENV, "1")
    feed = _feed(store)
    looked_up: list[int] = []
    real = ChangeFeed.next_since

    def next_since(self, reader, since, *args):
        looked_up.append(since)
        return real(self, reader, since, *args)

    monkeypatch.setattr(ChangeFeed, "next_since", next_since)
    assert _pages(feed, limit=2) == alone and len(alone) > 10
    feed.close()
    assert looked_up == [0]  # after the first page only (read as asked); then each page read ahead told it
