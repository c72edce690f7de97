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


def test_pages_are_read_with_a_short_switch_interval_restored_after():
    """While pages are read the interpreter switches threads every ``SWITCH_INTERVAL`` (the
    reading thread gets the GIL back soon after the database answers); the interval is put
    back when the last of several concurrent readers is done, and never raised."""
    import sys

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        default = sys.getswitchinterval()
        with feed_mod._prompt_switching():
            assert sys.getswitchinterval() == pytest.approx(feed_mod.SWITCH_INTERVAL)
            with feed_mod._prompt_switching():  # a second reader at the same time
                assert sys.getswitchinterval() == pytest.approx(feed_mod.SWITCH_INTERVAL)
            assert sys.getswitchinterval() == pytest.approx(feed_mod.SWITCH_INTERVAL)  # the first still reads
        assert sys.getswitchinterval() == default
        sys.setswitchinterval(0.0002)  # already shorter: left as it is
        shorter = sys.getswitchinterval()
        with feed_mod._prompt_switching():
            assert sys.getswitchinterval() == shorter
        assert sys.getswitchinterval() == shorter
    finally:
        sys.setswitchinterval(before)
