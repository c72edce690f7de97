"""The change feed's de-identifying worker process (``feed_records``, ``feed_worker``): the
pages it makes are byte for byte those made in-process (records, ids, tombstones, order,
access log), whatever the page sizes, chunks and starting versions; a worker killed mid-page
leaves the page right (the rest made in-process) and is not started again; one page at a
time borrows it; its answers go to their chunks whichever thread reads them; it gets no
secret but the recipient's derived key, and the state ids it is sent are as fresh as the
in-process path's. PostgreSQL (the feed's chunked reading); SQLite never starts one."""

from __future__ import annotations

import pickle

import orjson
import pytest
from sqlalchemy import select

from gateway.model import Identifier
from gateway.sharing import feed as feed_mod
from gateway.sharing import feed_records
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store.tables import grant_access_log

from .test_sharing import KEY, district, grant
from .test_sharing_feed_parts import _pages


def _log(store) -> list[tuple]:
    """The access log's rows as (grant, client, action, detail, records), oldest first."""
    c = grant_access_log.c
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(c.grant_id, c.client_id, c.action, c.detail, c.records).order_by(c.id))]


def _helper(feed: ChangeFeed) -> feed_records.RecordHelper:
    return feed._helpers["state"][1][0]


def _kids(records) -> list:
    return [r for r in records if r.kind == "person"]


@pytest.fixture
def shared(store, monkeypatch):
    """Three districts (two de-identified, one identified), records read a few at a time,
    every chunk sent to the worker, which each page waits for while it starts."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the worker serves the chunked reading of PostgreSQL")
    d1 = district(store, "d1", state_ids={"u2": "IA-2"}, n=6)
    district(store, "d2", state_ids={"u1": "IA-2"}, n=4)
    district(store, "d3", n=3)
    kid = _kids(d1)[0]
    store.records.apply("d1", [kid.model_copy(update={"given_name": "Later"})])  # a record changed twice
    for g in ("d1", "d2"):
        grant(store, g, kinds=["person", "evidence", "enrollment", "org"])
    grant(store, "d3", deidentified=False, kinds=["person", "evidence"])
    monkeypatch.setattr(feed_mod, "FIRST_CHUNK", 2)
    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 5)
    monkeypatch.setattr(feed_records, "HELPER_FROM", 1)
    monkeypatch.setattr(feed_records, "READY_WAIT", 30.0)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    return store


def test_the_worker_makes_the_very_pages_made_in_process(shared, monkeypatch):
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    newest = feed.available()["newest"]
    for n, (limit, since) in enumerate(((1000, 0), (7, 0), (3, 5), (1, newest - 9), (4, 17))):
        monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
        before = len(_log(shared))
        alone = _pages(feed, limit=limit, since=since)
        logged_alone = _log(shared)[before:]
        rows = _helper(feed).rows if "state" in feed._helpers else 0
        assert n or "state" not in feed._helpers  # none started by pages made without
        monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
        worked = _pages(feed, limit=limit, since=since)
        assert worked == alone, (limit, since)
        assert _helper(feed).rows > rows  # made by the worker
        assert _log(shared)[before + len(logged_alone):] == logged_alone  # the same reads under the same grants
    helper = _helper(feed)
    assert helper.worker is not None and helper.rows >= 40  # every de-identified record went through it
    whole = b"".join(alone)
    assert b'"Later"' not in whole and b"IA-2" not in whole and b"Givend1" not in whole and b"Givend3" in whole
    assert all(c["grant"] for p in alone for c in orjson.loads(p)["changes"])
    process = helper.worker.proc
    own = _pages(feed, "d1", limit=5)  # a district's own changes: identified, no worker
    assert "d1" not in feed._helpers and b'"Later"' in b"".join(own)
    feed.close()
    assert process.poll() is not None and helper.worker is None  # ended with the feed
    assert _pages(feed, limit=7) == _pages(ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY), limit=7)
    feed.close()


def test_a_worker_killed_mid_page_leaves_the_page_right_and_is_not_started_again(shared, monkeypatch):
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    alone = _pages(feed, limit=1000)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    answered, asking, add = feed_records.RecordHelper.answer, feed_records.RecordHelper.ask, feed_mod._Shape.add
    calls: list[int] = []
    chunks: list[int] = []
    killed_at: list[int] = []
    asked_since: list[bool] = []  # whether each chunk asked after the kill went to the worker

    def answer(self, asked, group):
        calls.append(group)
        if len(calls) == 3:  # the page's third answer: the worker gone, its requests still out
            self.worker.proc.kill()
            self.worker.proc.wait()
            killed_at.append(len(chunks))
        return answered(self, asked, group)

    def ask(self, groups, deids):
        after = bool(killed_at)
        got = asking(self, groups, deids)
        if after:
            asked_since.append(got is not None)
        return got

    def shaped(self, rows, found, in_order=None):
        chunks.append(len(rows))
        return add(self, rows, found, in_order)

    monkeypatch.setattr(feed_records.RecordHelper, "answer", answer)
    monkeypatch.setattr(feed_records.RecordHelper, "ask", ask)
    monkeypatch.setattr(feed_mod._Shape, "add", shaped)
    assert _pages(feed, limit=1000) == alone
    helper = _helper(feed)
    assert len(chunks) > killed_at[0] + 3 and len(asked_since) >= 3  # chunks after the kill: made in-process
    assert not any(asked_since) and helper._failed and helper.worker is None  # closed: none sent to it since
    assert helper.rows > 0  # the chunks before the kill were the worker's
    assert _pages(feed, limit=6) == _pages(ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY), limit=6)
    assert helper.worker is None  # not started again
    feed.close()


def test_one_page_at_a_time_borrows_a_readers_worker():
    helper = feed_records.RecordHelper()
    try:
        with helper.borrowed() as lent:
            assert lent is helper and helper.worker is not None
            process = helper.worker.proc
            with helper.borrowed() as second:  # another page of the same reader meanwhile: in-process
                assert second is None
        with helper.borrowed() as again:
            assert again is helper and helper.worker.proc is process  # the same process, kept
    finally:
        helper.close()
    assert process.poll() is not None and helper.worker is None


def test_the_workers_answers_go_to_their_chunks_whichever_thread_reads_them(shared, monkeypatch):
    """The reading thread sends a chunk while one or two are still out; before a third it
    takes the oldest answer itself, kept for its chunk; the converting thread then finds it."""
    with shared.engine.connect() as conn:
        stored = {t: conn.execute(select(feed_mod.RECORD_TABLES["evidence"].c.id, feed_mod.RECORD_TABLES["evidence"].c.data)
                                  .where(feed_mod.RECORD_TABLES["evidence"].c.tenant == t)).all() for t in ("d1", "d2")}
    deids = {t: Deidentifier(Pseudonymizer(KEY, "state"), StateIds(shared.engine, t)) for t in ("d1", "d2")}
    got = {t: [(str(rid), data.encode(), False) for rid, data in rows] for t, rows in stored.items()}
    chunks = [[("d1", "evidence", got["d1"][:3]), ("d3", "evidence", got["d2"][:1])],  # d3: not de-identified, not sent
              [("d2", "evidence", got["d2"])], [("d1", "evidence", got["d1"][3:])]]
    helper = feed_records.RecordHelper()
    try:
        with helper.borrowed() as lent:
            assert lent is helper
            asked = [helper.ask(c, deids) for c in chunks]
            assert all(a is not None for a in asked) and len(helper._out) == 2 and asked[0].done  # the third took the first's
            for a, chunk in reversed(list(zip(asked, chunks, strict=True))):
                for at, (tenant, kind, records) in enumerate(chunk):
                    answer = helper.answer(a, at)
                    if tenant == "d3":
                        assert answer is None
                    else:
                        assert answer == feed_records.deidentified_records(kind, records, deids[tenant])
            assert helper.rows == len(got["d1"]) + len(got["d2"])
            helper.worker.proc.kill()
            helper.worker.proc.wait()
            late = helper.ask(chunks[1], deids)
            assert late is None or helper.answer(late, 0) is None  # failed: made in-process by the caller
            assert helper._failed and helper.ask(chunks[1], deids) is None
    finally:
        helper.close()


def test_the_worker_has_no_secret_but_the_recipients_derived_key(monkeypatch):
    monkeypatch.setenv("TESSERA_PSEUDONYM_KEY", KEY.decode())
    monkeypatch.setenv("TESSERA_DATABASE_URL", "postgresql://user:secret-password@db/tessera")
    helper = feed_records.RecordHelper()
    try:
        with helper.borrowed():
            pid = helper.worker.proc.pid
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
    finally:
        helper.close()
    assert b"TESSERA_" not in environ and b"secret-password" not in environ and KEY not in environ
    assert KEY not in cmdline and b"secret" not in cmdline
    sent = pickle.dumps(Pseudonymizer(KEY, "state"))  # what a setup carries
    assert KEY not in sent and pickle.loads(sent).record("d1", "x") == Pseudonymizer(KEY, "state").record("d1", "x")


def test_the_workers_state_ids_are_as_fresh_as_the_in_process_ones(shared, monkeypatch):
    """A state id given to a learner shows in their pseudonym once the reader's de-identifier
    is renewed (``DEID_TTL``), not before: with the worker as without it."""
    feed = ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY)
    _pages(feed, limit=1000)
    helper = _helper(feed)
    kid = next(r for r in shared.records.iter_records("d1", ["person"]) if r.native_id == "u0")
    keyed = Pseudonymizer(KEY, "state").learner("d1", str(kid.id), "IA-9").encode()
    shared.records.apply("d1", [kid.model_copy(update={"identifiers": [*kid.identifiers, Identifier(
        system="sis", kind="oneroster.userId.state", value="IA-9")]})])
    rows = helper.rows
    kept = _pages(feed, limit=1000)  # within DEID_TTL: the reader's de-identifiers kept, and the worker's copies
    assert helper.rows > rows and keyed not in b"".join(kept)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    assert _pages(feed, limit=1000) == kept
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: True)
    feed._deids = {k: (at - feed_mod.DEID_TTL - 1, d) for k, (at, d) in feed._deids.items()}  # DEID_TTL later
    rows = helper.rows
    renewed = _pages(feed, limit=1000)
    assert helper.rows > rows and _helper(feed) is helper  # the same worker, sent the new state ids
    assert keyed in b"".join(renewed)
    monkeypatch.setattr(feed_mod, "helper_pays", lambda: False)
    assert renewed == _pages(ChangeFeed(shared, GrantStore(shared.engine), lambda: KEY), limit=1000)
    feed.close()
