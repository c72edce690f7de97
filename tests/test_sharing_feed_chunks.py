"""The change feed read in many small chunks gives the very page it gives in one chunk: the
same versions in order, the same records and tombstones, the same ids and grants, however
the page's change rows fall into chunks (each chunk's records are looked up and its changes
shaped as it comes, while the next one is read), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC

import orjson
import pytest
from sqlalchemy import select

from gateway.model import Status
from gateway.sharing import feed as feed_mod
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store.tables import changes

from .test_sharing import KEY, district, grant


def _shown(page) -> list[dict]:
    return [{**c, "record": None if c["record"] is None else orjson.loads(orjson.dumps(c["record"]))} for c in page.changes]


def _read_all(feed: ChangeFeed, tenant: str, limit: int) -> list[dict]:
    reader = feed.reader(tenant, f"{tenant}-client", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    seen, since = [], 0
    while True:
        page = feed.page(reader, since=since, until=until, limit=limit)
        seen += _shown(page)
        since = page.next_since
        if not page.more:
            return seen


def test_small_chunks_give_the_same_changes_as_one_chunk(store, monkeypatch):
    d1 = district(store, "d1", n=6)
    district(store, "d2", n=4)
    kid, other = [r for r in d1 if r.kind == "person"][:2]
    store.records.apply("d1", [kid.model_copy(update={"given_name": "Later"})])  # changed twice: two changes, current content
    store.records.apply("d1", [other.model_copy(update={"status": Status.tobedeleted})])  # retired: tombstones
    grant(store, "d1", kinds=["person", "evidence", "enrollment", "org"])
    grant(store, "d2", deidentified=False, kinds=["person", "evidence"])
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    whole = {t: _read_all(feed, t, 1000) for t in ("state", "d1")}
    assert len(whole["state"]) > 20 and any(c["tombstone"] for c in whole["state"])
    assert [c["version"] for c in whole["state"]] == sorted({c["version"] for c in whole["state"]})
    for first, steady, limit in ((1, 2, 1000), (1, 3, 5), (2, 2, 7), (3, 1000, 4)):
        monkeypatch.setattr(feed_mod, "FIRST_CHUNK", first)
        monkeypatch.setattr(feed_mod, "RECORD_CHUNK", steady)
        for tenant in ("state", "d1"):
            assert _read_all(feed, tenant, limit) == whole[tenant], (first, steady, limit, tenant)
    with store.engine.connect() as conn:  # each change's instant as the change log holds it, in UTC
        at = {seq: when.astimezone(UTC).isoformat() for seq, when in conn.execute(select(changes.c.seq, changes.c.at))}
    assert all(c["at"] == at[c["version"]] and c["at"].endswith("+00:00") for c in whole["state"] + whole["d1"])
    mine = [c for c in whole["d1"] if c["kind"] == "person" and c["id"] == str(kid.id)]
    assert len(mine) == 2 and all(c["record"]["given_name"] == "Later" for c in mine)
    retired = [c for c in whole["d1"] if c["id"] == str(other.id)]
    assert retired and all(c["tombstone"] and c["record"] is None for c in retired)


def test_each_page_logs_the_changes_it_shows_under_each_grant_however_it_is_chunked(store, monkeypatch):
    """The access log of a page read in chunks (on PostgreSQL written once its rows are all
    read, while the last chunk converts) holds, for each grant, the changes the page shows
    from its grantor: not the row past the page's limit that tells there are more."""
    district(store, "d1", n=6)
    district(store, "d2", n=4)
    g1 = grant(store, "d1", kinds=["person", "evidence"])
    g2 = grant(store, "d2", deidentified=False, kinds=["person", "evidence", "org"])
    monkeypatch.setattr(feed_mod, "FIRST_CHUNK", 1)
    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 2)
    gs = GrantStore(store.engine)
    feed = ChangeFeed(store, gs, lambda: KEY)
    reader = feed.reader("state", "state-client", frozenset({"changes.readonly"}))
    until = feed.available()["newest"]
    shown: list[dict[str, int]] = []
    since = 0
    while True:
        page = feed.page(reader, since=since, until=until, limit=4)
        shown.append({t: sum(c["tenant"] == t for c in page.changes) for t in ("d1", "d2")})
        since = page.next_since
        if not page.more:
            break
    assert len(shown) > 3 and sum(n["d1"] for n in shown) == 12 and sum(n["d2"] for n in shown) == 9
    for g, t in ((g1, "d1"), (g2, "d2")):
        assert [e["records"] for e in gs.access_log(g.id, grantor=t)] == [n[t] for n in shown]


def test_pages_are_read_with_a_short_switch_interval_restored_after():
    """While pages are read the interpreter switches threads every ``SWITCH_INTERVAL`` (the
    reading thread gets the GIL back soon after the database answers); the interval is put
    back when the last of several concurrent readers is done, and never raised."""
    import sys

    from gateway.sharing import switching

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        default = sys.getswitchinterval()
        with switching.prompt_switching():
            assert sys.getswitchinterval() == pytest.approx(switching.SWITCH_INTERVAL)
            with switching.prompt_switching():  # a second reader at the same time
                assert sys.getswitchinterval() == pytest.approx(switching.SWITCH_INTERVAL)
            assert sys.getswitchinterval() == pytest.approx(switching.SWITCH_INTERVAL)  # the first still reads
        assert sys.getswitchinterval() == default
        sys.setswitchinterval(0.0002)  # already shorter: left as it is
        shorter = sys.getswitchinterval()
        with switching.prompt_switching():
            assert sys.getswitchinterval() == shorter
        assert sys.getswitchinterval() == shorter
    finally:
        sys.setswitchinterval(before)


def test_chunks_are_the_sizes_asked_whatever_the_instants():
    """A page's change rows come in chunks of the sizes asked (the last one shorter), every
    row once and in order, an instant's rows split over chunks as they fall: a page written
    at one instant (a batch of 10,000 changes) is still several chunks, so the next chunk is
    read while this one converts."""
    rows = [(i, "t", "evidence", f"id{i}", "upserted", at) for i, at in enumerate((1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 5, 5))]

    def chunks(sizes: list[int]) -> list[list[int]]:
        left = list(rows)

        def fetch(n: int) -> list[tuple]:
            got, left[:] = left[:n], left[n:]
            return got

        def more_sizes():
            yield from sizes
            while True:
                yield sizes[-1]

        return [[r[0] for r in c] for c in feed_mod._chunks(fetch, more_sizes())]

    for sizes in ([1], [2], [3], [1, 2, 5], [4, 100], [100]):
        got = chunks(sizes)
        assert [i for c in got for i in c] == list(range(len(rows))), sizes  # every row once, in order
        assert all(c for c in got)
    assert chunks([3]) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13]]  # instant 3 split over two chunks
    assert chunks([1, 2, 5]) == [[0], [1, 2], [3, 4, 5, 6, 7], [8, 9, 10, 11, 12], [13]]
    assert chunks([100]) == [list(range(len(rows)))]
    assert list(feed_mod._chunks(lambda n: [], iter([2]))) == []
    sizes = feed_mod._sizes()
    assert [next(sizes) for _ in range(4)] == [500, 1250, 2000, 2000]  # FIRST_CHUNK, growing by CHUNK_GROWTH to RECORD_CHUNK


class _CountedCursor:
    """A cursor that counts the statements run through it and keeps their parameters."""

    def __init__(self, cur) -> None:
        self.cur, self.statements, self.params = cur, 0, []

    def execute(self, query, params, **kwargs):
        self.statements += 1
        self.params.append(params)
        return self.cur.execute(query, params, **kwargs)

    def fetchall(self):
        return self.cur.fetchall()


def test_postgresql_reads_each_record_once_a_page_however_instants_fall_into_chunks(store, monkeypatch):
    """On PostgreSQL a chunk's records are range-read from its least (instant, id) to its
    greatest (a batch writes a kind's records in id order, at one instant): chunks that split
    an instant read disjoint ranges of it, so each (tenant, kind) record is read by one chunk
    of a page, however small the chunks; the ranges find every record (no look-up by id
    after them), and the page is the same."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("records read by (instant, id) ranges: PostgreSQL only")
    people = [r for r in district(store, "d1", n=5) if r.kind == "person"]
    for n in range(2):  # two more batches of people, each written at one instant
        store.records.apply("d1", [p.model_copy(update={"given_name": f"Round {n}"}) for p in people])
    grant(store, kinds=["person", "evidence"])
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    whole = _read_all(feed, "state", 1000)
    with store.engine.connect() as conn:  # each record's last change's instant (UTC, without a zone, as the chunks hold it)
        last = {(t, str(rid)): when.astimezone(UTC).replace(tzinfo=None)
                for t, rid, when in conn.execute(select(changes.c.tenant, changes.c.record_id, changes.c.at).order_by(changes.c.seq))}
    looked: list[tuple[str, str, tuple, tuple, int, bool]] = []
    real = feed_mod._pg_records

    def recorded(cur, tenant, kind, chunk, *more):
        counted = _CountedCursor(cur)
        keys = [(at, rid) for rid, at in chunk]
        got = real(counted, tenant, kind, chunk, *more)
        # the range read's bounds: (tenant, first and last instant, then the same with the first and last id, ids)
        _, _, _, lo_at, lo_id, hi_at, hi_id, _ = counted.params[0]
        assert ((lo_at, lo_id), (hi_at, hi_id)) == (min(keys), max(keys))  # the chunk's least and greatest (instant, id)
        looked.append((tenant, kind, min(keys), max(keys), counted.statements, all(last[(tenant, r)] == at for r, at in chunk)))
        return got

    monkeypatch.setattr(feed_mod, "_pg_records", recorded)
    monkeypatch.setattr(feed_mod, "FIRST_CHUNK", 1)
    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 2)
    assert _read_all(feed, "state", 1000) == whole
    assert len(looked) >= 3
    # a chunk of changes that each wrote their record's current content finds them all in its range
    assert all(n == 1 for *_, n, current in looked if current), "a record the range held was looked up by id"
    assert any(current for *_, current in looked) and not all(current for *_, current in looked)
    by_source: dict[tuple[str, str], list[tuple[tuple, tuple]]] = {}
    for tenant, kind, lo, hi, *_ in looked:
        by_source.setdefault((tenant, kind), []).append((lo, hi))
    split = 0
    for ranges in by_source.values():
        ranges.sort()
        for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
            assert hi < lo, "two chunks' ranges overlap: records read twice"
            split += hi[0] == lo[0]
    assert split, "no instant was split over chunks: the test tests nothing"


def test_postgresql_gets_a_chunks_ids_as_one_binary_constant(store):
    """The range read keeps a chunk's records by their ids, sent as one binary ``uuid[]``
    (the 16 bytes of each, as the change rows bring them): PostgreSQL reads it as the very
    array the ids' text gives (repeats and all), and plans with it as a constant, which it
    looks ids up in by hash (a parameter it would search a row at a time)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a binary parameter of the PostgreSQL driver")
    import uuid

    from gateway.store.pg_arrays import uuid_array_of_bytes

    ids = [uuid.uuid4() for _ in range(12)] + [uuid.UUID(int=0)]
    ids.append(ids[0])
    with store.engine.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        cur.execute("SELECT %b::text = %s::uuid[]::text, cardinality(%b)",
                    (uuid_array_of_bytes([i.bytes for i in ids]), "{" + ",".join(map(str, ids)) + "}",
                     uuid_array_of_bytes([i.bytes for i in ids])), prepare=False)
        assert cur.fetchone() == (True, len(ids))
        cur.execute("SELECT cardinality(%b)", (uuid_array_of_bytes([]),), prepare=False)
        assert cur.fetchone() == (0,)
        cur.execute("EXPLAIN SELECT 1 FROM (SELECT id FROM evidence WHERE tenant = 'd1' OFFSET 0) r WHERE id = ANY(%b)",
                    (uuid_array_of_bytes([i.bytes for i in ids]),), prepare=False)
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert f"'{{{ids[0]}," in plan and "$1" not in plan, plan
        cur.close()
