"""PostgreSQL: evidence and the change log partitioned by month (issue "State agencies", item 5)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text

from gateway.errors import Gone
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store import partitions
from gateway.store.db import WRITE

from .factories import competency, evidence, framework, roster


@pytest.fixture
def pg(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("partitions exist on PostgreSQL only; SQLite keeps one table per kind")
    return store


def _load(store, months: list[datetime]):
    recs = roster(2)
    learner = recs[3]
    fw = framework()
    comp = competency("m1", fw)
    ev = [evidence(f"ev-{i}", learner, comp, observed_at=at) for i, at in enumerate(months)]
    store.records.apply("t1", [*recs, fw, comp, *ev])
    return learner, ev


def _where(store, ev) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {str(r[0]): r[1] for r in conn.execute(text("SELECT id, tableoid::regclass::text FROM evidence"))
                if str(r[0]) in {str(e.id) for e in ev}}


def test_evidence_lands_in_its_months_partition_and_old_months_wait_in_the_default(pg):
    now = datetime.now(UTC)
    learner, ev = _load(pg, [now, datetime(1999, 5, 17, tzinfo=UTC)])
    where = _where(pg, ev)
    assert where[str(ev[0].id)] == f"evidence_y{now.year:04d}m{now.month:02d}"
    assert where[str(ev[1].id)] == "evidence_default"
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        created = partitions.ensure(conn)
    assert "evidence_y1999m05" in created
    assert _where(pg, ev)[str(ev[1].id)] == "evidence_y1999m05"  # moved in, nothing lost
    assert pg.records.get("t1", "evidence", ev[1].id).observed_at.year == 1999
    # the same evidence again: an idempotent upsert on (id, observed_at), nothing changes
    result = pg.records.apply("t1", ev)
    assert result.counts["evidence"].unchanged == 2


def test_a_month_bounded_query_reads_only_that_months_partition(pg):
    now = datetime.now(UTC)
    learner, _ = _load(pg, [now, datetime(1999, 5, 17, tzinfo=UTC)])
    lo = date(now.year, now.month, 1)
    hi = partitions.next_month(lo)
    with pg.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.execute(text(
            "EXPLAIN SELECT data FROM evidence WHERE tenant = 't1' AND learner_id = :l "
            "AND observed_at >= :lo AND observed_at < :hi"), {"l": learner.id, "lo": lo, "hi": hi}))
    scanned = set(re.findall(r" on (evidence_(?:y\d{4}m\d{2}|default))\b", plan))
    assert scanned == {f"evidence_y{now.year:04d}m{now.month:02d}"}, plan  # not 1999's, not the default, not next month's


def test_retention_drops_old_months_of_the_change_log_and_the_feed_says_gone(pg):
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.create_month(conn, "changes", date(2020, 1, 1))
        conn.execute(text("INSERT INTO changes (tenant, batch_id, record_kind, record_id, op, content_hash, at) VALUES "
                          "('t1', gen_random_uuid(), 'org', gen_random_uuid(), 'created', 'x', '2020-01-15T00:00:00Z')"))
    _load(pg, [datetime.now(UTC)])
    feed = ChangeFeed(pg, GrantStore(pg.engine), lambda: b"k" * 32)
    reader = feed.reader("t1", "c", frozenset({"changes.readonly"}))
    assert feed.page(reader, since=0).changes[0]["version"] == 1
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        dropped = partitions.drop_before(conn, "changes", 12)
        with pytest.raises(ValueError, match="never dropped"):
            partitions.drop_before(conn, "evidence", 12)
    assert dropped == ["changes_y2020m01"]
    with pytest.raises(Gone, match="oldest available is 2"):
        feed.page(reader, since=0)
    assert feed.page(reader, since=1).changes[0]["version"] == 2


def test_cli_lists_and_ensures_partitions(pg, monkeypatch):
    from typer.testing import CliRunner

    from gateway.cli import app, register_adapters
    from gateway.config import get_settings

    register_adapters()
    monkeypatch.setenv("TESSERA_DATABASE_URL", pg.engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["partitions", "list"], catch_exceptions=False)
        assert out.exit_code == 0 and "changes_default" in out.output and "evidence_default" in out.output
        out = CliRunner().invoke(app, ["partitions", "ensure", "--ahead", "6"], catch_exceptions=False)
        assert out.exit_code == 0
        with pg.engine.connect() as conn:
            have = {p.name for p in partitions.partitions(conn, "evidence")}
        assert partitions.name_of("evidence", partitions.add_months(partitions.month_start(datetime.now(UTC)), 6)) in have
    finally:
        get_settings.cache_clear()


def test_an_export_reads_one_tenants_rows_through_the_tenant_index_not_the_whole_table(pg):
    """Every tenant's rows share one table: an export of one district must read the pages
    holding its rows, not scan every district's (``export_reads.READ_SETTINGS``). On a small
    table PostgreSQL's own choice is a sequential scan, so this fails without the settings."""
    from sqlalchemy.dialects import postgresql

    from gateway.sharing.export_reads import READ_SETTINGS, export_query

    _load(pg, [datetime.now(UTC), datetime(1999, 5, 17, tzinfo=UTC)])
    with pg.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # the statistics a loaded database has
    for kind in ("evidence", "person"):
        compiled = export_query("t1", kind, None, 10**9).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        with pg.engine.connect() as conn, conn.begin():
            plain = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            for setting in READ_SETTINGS:
                conn.exec_driver_sql(setting)
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert "Seq Scan" in plain, plain  # what the settings are there to change
        assert "Seq Scan" not in plan and re.search(r"(Bitmap Index|Index) Scan", plan), plan
