"""The change feed's record pseudonyms made by a helper process (``feed_records``): the pages
are the very pages the feed makes in-process, however the chunks fall; a helper that dies
leaves the pages right (made in-process from then on); one page at a time borrows it; it
ends when the feed closes. PostgreSQL (the feed's chunked reading); SQLite never starts one."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from gateway.sharing import feed as feed_mod
from gateway.sharing import feed_records
from gateway.sharing.deidentify import Pseudonymizer
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore

from .test_sharing import KEY, district, grant


def _pages(feed: ChangeFeed, limit: int = 7) -> list[dict]:
    reader = feed.reader("state", "state-client", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    seen, since = [], 0
    while True:
        page = feed.page(reader, since=since, until=until, limit=limit)
        seen += [{**c, "record": None if c["record"] is None else orjson.loads(orjson.dumps(c["record"]))} for c in page.changes]
        since = page.next_since
        if not page.more:
            return seen


def _helper_of(feed: ChangeFeed):
    return feed._helpers["state"][1].helper


@pytest.fixture
def shared(store, monkeypatch):
    """Two districts under de-identified grants, records read a few at a time, every chunk helped."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the helper serves the chunked reading of PostgreSQL")
    district(store, "d1", state_ids={"u2": "IA-2"}, n=6)
    district(store, "d2", state_ids={"u1": "IA-2"}, n=4)
    for g in ("d1", "d2"):
        grant(store, g, kinds=["person", "evidence", "enrollment", "org"])
    monkeypatch.setattr(feed_mod, "FIRST_CHUNK", 2)
    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 5)
    monkeypatch.setattr(feed_records, "HELPER_FROM", 1)
    monkeypatch.setattr(feed_records, "helper_pays", lambda: True)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    return store


def test_the_helper_makes_the_very_pages_made_in_process(shared, monkeypatch):
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    alone = _pages(feed)
    assert not feed._helpers
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    helped = _pages(feed)
    helper = _helper_of(feed)
    assert helper is not None and helper.rows >= 10  # every evidence item and enrollment went through it
    assert helped == alone
    assert sum(c["kind"] == "evidence" for c in helped) == 10 and all(c["grant"] for c in helped)
    feed.close()
    assert helper.proc.poll() is not None  # ended
    assert _pages(feed) == alone  # a new helper for the next sync
    feed.close()


def test_a_record_whose_id_member_differs_from_its_row_is_pseudonymised_from_the_member(shared, monkeypatch):
    """The helper hashes the ids the database gives; a record whose own ``id`` member is
    written otherwise (upper case) has its chunk's ids made in-process from the members, as
    without a helper: the same page."""
    with shared.engine.begin() as conn:
        conn.execute(text("UPDATE evidence SET data = replace(data, id::text, upper(id::text)) WHERE tenant = 'd1'"))
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    alone = _pages(feed)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    assert _pages(feed) == alone
    feed.close()


def test_a_helper_that_dies_leaves_the_pages_right_and_is_not_started_again(shared, monkeypatch):
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    alone = _pages(feed)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    reader = feed.reader("state", "state-client", frozenset({"changes.readonly"}))
    first = feed.page(reader, limit=7)
    helper = _helper_of(feed)
    helper.proc.kill()
    helper.proc.wait()
    assert _pages(feed) == alone
    assert _helper_of(feed) is None and feed._helpers["state"][1]._failed  # closed, made in-process since
    assert [c["version"] for c in first.changes] == [c["version"] for c in alone[:7]]
    feed.close()


def test_one_page_at_a_time_borrows_a_readers_helper():
    helper = feed_records.RecordHelper(Pseudonymizer(KEY, "state"))
    try:
        with helper.borrowed() as lent:
            assert lent is helper and helper.helper is not None
            process = helper.helper.proc
            with helper.borrowed() as second:  # another page of the same reader meanwhile: in-process
                assert second is None
        with helper.borrowed() as again:
            assert again is helper and helper.helper.proc is process  # the same process, kept
    finally:
        helper.close()
    assert process.poll() is not None and helper.helper is None
