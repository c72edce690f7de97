"""PostgreSQL: the xAPI evidence consumer split by learner (``TESSERA_XAPI__DERIVE_SHARDS`` > 1;
``derive.Deriver`` holds a ``Shards`` then). docs/xapi-ingest.md says why each rule is there."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, select, text

from .evidence import EvidenceMapper, actor_keys
from .partitions import where_ids
from .tables import xapi_statements

#: PostgreSQL, ``shards`` > 1: shard i's session lock is SHARD_LOCK + i; every consumer process
#: holds PRESENCE shared, so that each can count the others and take its share of the shards
SHARD_LOCK = 7_244_503_000
PRESENCE = 7_244_502_999
#: seconds between two looks at how many consumers there are (shards taken or given back)
REBALANCE_EVERY = 2.0


class Shards:
    """PostgreSQL, ``TESSERA_XAPI__DERIVE_SHARDS`` > 1: consumers split by learner, so that
    several processes derive at once (one consumer tops out near 2,000 statements a second).

    - A statement's shard is a hash of its tenant and its actor's strongest key
      (``evidence.actor_keys``): each learner's statements are derived by one shard, in
      order, once. Every shard consumer reads the statements past its own cursor row
      (``evidence/<i>of<K>``) up to the same safe seq and derives only its own.
    - A voiding statement belongs to the shard of its **target's** actor (the target is
      stored below it, or is flagged voided when it comes): in another shard it could look
      for the target's evidence before the target's shard committed it, while that shard had
      read the target before it was flagged, and the evidence would stay unvoided.
    - Each shard has its own session advisory lock; a process takes about K / (consumer
      processes present) of them (every consumer holds ``PRESENCE`` shared, so counting its
      holders counts them), gives back any over its share and takes free ones under it,
      every ``REBALANCE_EVERY`` seconds, between rounds.
    - Everything's cursor row (``evidence``: what consistency, lag and the benchmark read)
      is moved to the lowest shard cursor after each round; a shard row starts at it.
      Every process must run the same number of shards.
    - Two actors naming one person may fall in two shards: the mastery update's per-learner
      locks serialise their updates, and a state does not depend on the order of its evidence.
    """

    def __init__(self, deriver: Any, count: int, cursor: str) -> None:
        """``deriver``: the ``derive.Deriver`` of this process; ``cursor``: everything's cursor row."""
        self.deriver = deriver
        self.count = count
        self.cursor = cursor
        self.names = [f"{cursor}/{i}of{count}" for i in range(count)]
        self.held: dict[int, Connection] = {}
        self._presence: Connection | None = None
        self._balanced_at = -REBALANCE_EVERY
        self._start = uuid.uuid4().int % count  # processes try the shards from different places

    def shard_of(self, tenant: str, actor: Any) -> int:
        keys = actor_keys(actor) if isinstance(actor, dict) else []
        kind, value = keys[0] if keys else ("", "")
        digest = hashlib.blake2b(f"{tenant}\x1f{kind}\x1f{value}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count

    def mine(self, rows: list[Any], shard: int) -> list[Any]:
        """The deferred rows of ``shard`` (voiding statements by their target's actor)."""
        for r in rows:
            if r.deferred:
                r.doc = orjson.loads(r.body)
        docs = {r.seq: r.doc for r in rows if r.deferred}
        targets: dict[tuple[str, str], Any] = {}
        for r in rows:
            doc = docs.get(r.seq)
            if doc is not None and (target := EvidenceMapper._voided_target(doc)) is not None and _uuid(target) is not None:
                targets[(r.tenant, target.lower())] = None
        if targets:
            s = xapi_statements
            with self.deriver.engine.connect() as conn:
                for tenant in {t for t, _ in targets}:
                    ids = [u for t, i in targets if t == tenant and (u := _uuid(i)) is not None]
                    # by the id table on PostgreSQL (``partitions.where_ids``): no partition is indexed by id
                    for sid, body in conn.execute(select(s.c.id, s.c.body).where(where_ids(conn, tenant, ids))):
                        targets[(tenant, str(sid))] = orjson.loads(body).get("actor")
        out = []
        for r in rows:
            doc = docs.get(r.seq)
            if doc is None:
                continue
            target = EvidenceMapper._voided_target(doc)
            actor = targets.get((r.tenant, target.lower())) if target is not None else None
            if self.shard_of(r.tenant, actor if actor is not None else doc.get("actor")) == shard:
                out.append(r)
        return out

    def elect(self, *, force: bool = False) -> bool:
        """Hold this process's share of the shards (looked at every ``REBALANCE_EVERY`` s)."""
        now = time.monotonic()
        if not force and now - self._balanced_at < REBALANCE_EVERY:
            return bool(self.held)
        self._balanced_at = now
        engine = self.deriver.engine
        if self._presence is None:
            conn = engine.connect()
            try:
                conn.execute(text("SELECT pg_advisory_lock_shared(:k)"), {"k": PRESENCE})
                conn.commit()
            except Exception:
                conn.close()
                raise
            self._presence = conn
            self._make_rows()
        present = int(self._presence.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock' "
            "AND ((classid::bigint << 32) | objid::bigint) = :k AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"), {"k": PRESENCE}) or 1)
        self._presence.commit()
        share = -(-self.count // max(1, present))
        while len(self.held) > share:  # between rounds: nothing of the shard is in flight
            self._release(max(self.held))
        for step in range(self.count):
            if len(self.held) >= share:
                break
            i = (self._start + step) % self.count
            if i in self.held:
                continue
            conn = engine.connect()
            try:
                got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": SHARD_LOCK + i}))
                conn.commit()
            except Exception:
                conn.close()
                raise
            if got:
                self.held[i] = conn
            else:
                conn.close()
        return bool(self.held)

    def _make_rows(self) -> None:
        with self.deriver.engine.connect() as conn:
            for name in self.names:
                self.deriver._cursor(conn, name)

    def _release(self, shard: int) -> None:
        conn = self.held.pop(shard)
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SHARD_LOCK + shard})
            conn.commit()
        except Exception:  # noqa: BLE001 - the lock goes with the connection anyway
            pass
        conn.close()

    def resign(self) -> None:
        for shard in list(self.held):
            self._release(shard)
        if self._presence is not None:
            self._presence.close()  # the shared lock goes with the session
            self._presence = None
        self._balanced_at = -REBALANCE_EVERY

    def derive_once(self) -> int:
        if not self.held and not self.elect(force=True):
            return 0
        n = sum(self.deriver._derive_from(self.names[i], i) for i in sorted(self.held))
        if n:
            self.summarise()
        return n

    def summarise(self) -> None:
        """Everything's cursor to the lowest of the shards' (it never moves back)."""
        with self.deriver.store.records.write_transaction() as conn:
            conn.execute(text(
                "UPDATE xapi_derive_cursor SET seq = m.low, updated = now() FROM "
                "(SELECT min(seq) AS low FROM xapi_derive_cursor WHERE name = ANY(:names)) AS m "
                "WHERE name = :everything AND xapi_derive_cursor.seq < m.low"), {"names": self.names, "everything": self.cursor})


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


__all__ = ["PRESENCE", "REBALANCE_EVERY", "SHARD_LOCK", "Shards"]
