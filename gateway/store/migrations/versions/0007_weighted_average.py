"""stored decaying_average rules become weighted_average: their results stay what they were

Until this revision ``decaying_average`` meant "the newest score counts w, the average of
all before it 1 - w". Issue 19 names that formula ``weighted_average`` (as Canvas did in
2023) and gives ``decaying_average`` the recursive formula (``dk = w * sk + (1 - w) *
d(k-1)``). Every stored MasteryRule whose method is ``decaying_average`` was written under
the old meaning, so it becomes ``weighted_average``, with the same ``decay_weight``: the
states it governs keep their values. The method lives in the record's JSON (``data``), not
in a column; the content hash is recomputed the way the store computed it, ``updated_at``
moves on, and each rewritten rule gets an ``updated`` row in the change log.

States are not touched (no engine runs in a migration): a stored state keeps its value and
the method name it was computed with until evidence or ``tessera mastery recompute``
derives it again. docs/mastery.md says what upgrading changes.

Downgrade turns ``weighted_average`` rules back into ``decaying_average`` (what the old code
calls that formula). A rule set to the recursive ``decaying_average`` after the upgrade has
no equivalent before it: it stays ``decaying_average`` and the old code computes it as the
weighted average.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from alembic import op

from gateway.store.db import UUIDType
from gateway.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

rules = sa.table(
    "mastery_rules", sa.column("id", UUIDType()), sa.column("tenant", sa.String()), sa.column("status", sa.String()),
    sa.column("updated_at", UTCDateTime()), sa.column("content_hash", sa.String()), sa.column("data", sa.Text()),
)
changes = sa.table(
    "changes", sa.column("tenant", sa.String()), sa.column("batch_id", UUIDType()), sa.column("record_kind", sa.String()),
    sa.column("record_id", UUIDType()), sa.column("op", sa.String()), sa.column("content_hash", sa.String()),
    sa.column("at", UTCDateTime()),
)
#: fields the store leaves out of a record's content hash (gateway.store.prepare.UNHASHED)
UNHASHED = ("updated_at", "recorded_at")


def _digests(body: str) -> tuple[str, str]:
    """The two ways the store hashes a record's JSON: the bytes as written (class order,
    without the store's timestamps) and the keys sorted (records with free-form dicts)."""
    doc = orjson.loads(body)
    bare = {k: v for k, v in doc.items() if k not in UNHASHED}
    raw = orjson.dumps(bare)
    return hashlib.sha256(raw).hexdigest(), hashlib.sha256(orjson.dumps(bare, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _renamed(data: str, old: str, new: str) -> str | None:
    """``data`` with its top-level ``method`` ``old`` -> ``new``, every other byte kept (the
    hash of the bytes as written must stay the store's); None when the method is not ``old``."""
    doc = orjson.loads(data)
    if doc.get("method") != old:
        return None
    needle = f'"method":"{old}"'
    at = data.find(needle)
    while at >= 0:  # an extension may hold the same text before the top-level key
        candidate = data[:at] + f'"method":"{new}"' + data[at + len(needle):]
        if orjson.loads(candidate) == {**doc, "method": new}:
            return candidate
        at = data.find(needle, at + 1)
    return orjson.dumps({**doc, "method": new}).decode()


def _rename(old: str, new: str) -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    stamp = now.isoformat()  # as the store writes it (gateway.store.write)
    batch = uuid.uuid4()
    found = conn.execute(sa.select(rules.c.id, rules.c.tenant, rules.c.content_hash, rules.c.data)
                         .where(rules.c.data.like(f'%"{old}"%'))).all()
    for rid, tenant, digest, data in found:
        body = _renamed(data, old, new)
        if body is None:
            continue
        was = orjson.loads(data).get("updated_at")
        if isinstance(was, str):
            body = body.replace(f'"updated_at":"{was}"', f'"updated_at":"{stamp}"', 1)
        as_written, as_sorted = _digests(data)
        new_written, new_sorted = _digests(body)
        new_digest = new_written if digest == as_written and digest != as_sorted else new_sorted
        conn.execute(sa.update(rules).where(rules.c.id == rid).values(data=body, content_hash=new_digest, updated_at=now))
        conn.execute(sa.insert(changes).values(tenant=tenant, batch_id=batch, record_kind="mastery_rule", record_id=rid,
                                               op="updated", content_hash=new_digest, at=now))


def upgrade() -> None:
    _rename("decaying_average", "weighted_average")


def downgrade() -> None:
    _rename("weighted_average", "decaying_average")
