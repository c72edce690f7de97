"""PostgreSQL: raw xAPI statements partitioned by month (issue "State agencies", item 5;
``adapters/xapi/partitions.py``): the migration of a database that holds statements, the
Statement Resource over real HTTP as before, pruned plans, retention."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from gateway.model import record_id
from gateway.store import partitions
from gateway.store.db import WRITE
from tests import factories as f

ADL = "http://adlnet.gov/expapi/verbs/"
ACTOR = {"objectType": "Agent", "account": {"homePage": "http://www.example.com", "name": "1625378"}}
OTHER = {"objectType": "Agent", "mbox": "mailto:other@example.com"}
AU = "http://www.example.com/LA1/001/intro"
OLD = datetime(2020, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg(store):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("statements are partitioned on PostgreSQL only; SQLite keeps one table")
    return store


@pytest.fixture
def lrs(pg, api) -> httpx.Client:
    cid, secret = api.credentials(f.T, ["xapi/all"])
    c = api.client()
    c.auth = httpx.BasicAuth(cid, secret)
    c.headers["X-Experience-API-Version"] = "1.0.3"
    return c


def stmt(verb: str, actor: dict[str, Any] = ACTOR, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": actor, "verb": {"id": ADL + verb, "display": {"en-US": verb}},
            "object": {"id": AU, "objectType": "Activity"}, **extra}


def void(target: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": OTHER, "verb": {"id": ADL + "voided"},
            "object": {"objectType": "StatementRef", "id": target}}


def month(d: datetime) -> str:
    return f"y{d.year:04d}m{d.month:02d}"


def where(store, table: str, column: str = "seq") -> dict[Any, str]:
    """row key -> the partition that holds it"""
    with store.engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text(f"SELECT {column}, tableoid::regclass::text FROM {table}"))}


def age(store, ids: list[str], when: datetime = OLD) -> None:
    """Make statements look stored at ``when`` (time passing): PostgreSQL moves the rows to the
    partition of that month (the default one until ``partitions.ensure`` makes it)."""
    with store.engine.begin() as conn:
        seqs = list(conn.execute(text("UPDATE xapi_statements SET stored = :w WHERE id = ANY(:ids) RETURNING seq"),
                                 {"w": when, "ids": [uuid.UUID(i) for i in ids]}).scalars())
        for table in ("xapi_statement_agents", "xapi_statement_activities", "xapi_statement_ids"):
            conn.execute(text(f"UPDATE {table} SET stored = :w WHERE seq = ANY(:s)"), {"w": when, "s": seqs})


class Captured:
    """The SQL the LRS sends while a request runs, to EXPLAIN it as sent."""

    def __init__(self, engine) -> None:
        self.engine, self.sent = engine, []

    def __enter__(self) -> Captured:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.sent.append((statement, parameters))

    def scanned(self, table: str) -> list[set[str]]:
        """For each SELECT of statement bodies that read ``table`` (its partitions), the
        partitions its plan reads."""
        out = []
        with self.engine.connect() as conn:
            for sql, params in self.sent:
                if not sql.lstrip().upper().startswith("SELECT") or "xapi_statements.body" not in sql \
                        or not re.search(rf"\b{table}\b", sql):
                    continue
                plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
                out.append(set(re.findall(rf" on ({table}_(?:y\d{{4}}m\d{{2}}|default))\b", plan)))
        return out


# --- the migration ---------------------------------------------------------------------------------


def test_the_migration_partitions_a_database_that_already_holds_statements(pg, lrs):
    kept, voided = stmt("completed"), stmt("attempted")
    assert lrs.post("/xapi/statements", json=[kept, voided]).status_code == 200
    assert lrs.post("/xapi/statements", json=[void(voided["id"])]).status_code == 200
    pg.migrations.downgrade(pg.engine, "xapi_0004")  # the layout before: one table, unique (tenant, id)
    with pg.engine.begin() as conn:
        assert not partitions.is_partitioned(conn, "xapi_statements")
        # a statement stored long ago, with its index rows, as the old layout held it
        seq = conn.scalar(text("SELECT nextval('xapi_statements_seq_seq')"))
        old = stmt("completed")
        conn.execute(text("INSERT INTO xapi_statements (seq, tenant, id, stored, verb_id, voided, authority, attachments, body) "
                          "VALUES (:seq, :t, :id, :at, :verb, false, 'a', false, :body)"),
                     {"seq": seq, "t": f.T, "id": uuid.UUID(old["id"]), "at": OLD, "verb": ADL + "completed",
                      "body": f'{{"id": "{old["id"]}", "actor": {{"objectType": "Agent", "account": {{"homePage": '
                              f'"http://www.example.com", "name": "1625378"}}}}, "verb": {{"id": "{ADL}completed", "display": '
                              f'{{"en-US": "completed"}}}}, "object": {{"id": "{AU}", "objectType": "Activity"}}, '
                              f'"stored": "2020-03-10T12:00:00.000Z", "version": "1.0.0"}}'})
        agents = conn.execute(text("SELECT agent, role FROM xapi_statement_agents WHERE verb_id = :v"), {"v": ADL + "completed"}).all()
        for agent, role in set(agents):
            conn.execute(text("INSERT INTO xapi_statement_agents (tenant, agent, verb_id, seq, role) VALUES (:t, :a, :v, :s, :r)"),
                         {"t": f.T, "a": agent, "v": ADL + "completed", "s": seq, "r": role})
        conn.execute(text("INSERT INTO xapi_statement_activities (tenant, activity, seq, role) VALUES (:t, :a, :s, 'p')"),
                     {"t": f.T, "a": AU, "s": seq})
    pg.migrate()
    now = datetime.now(UTC)
    with pg.engine.connect() as conn:
        for table in ("xapi_statements", "xapi_statement_agents", "xapi_statement_activities"):
            assert partitions.is_partitioned(conn, table)
            have = {p.name for p in partitions.partitions(conn, table)}
            assert {f"{table}_y2020m03", f"{table}_{month(now)}", f"{table}_default"} <= have
        ids = dict(conn.execute(text("SELECT id::text, stored FROM xapi_statement_ids")).all())
        assert {kept["id"], voided["id"], old["id"]} <= set(ids) and len(ids) == 4  # and the voiding statement's
        assert ids[old["id"]] == OLD
        # every index row carries its statement's stored
        assert conn.scalar(text("SELECT count(*) FROM xapi_statement_agents a JOIN xapi_statements s "
                                "ON s.seq = a.seq AND s.stored = a.stored")) == conn.scalar(text("SELECT count(*) FROM xapi_statement_agents"))
    assert where(pg, "xapi_statements")[seq] == "xapi_statements_y2020m03"
    assert set(where(pg, "xapi_statement_agents").values()) == {"xapi_statement_agents_y2020m03", f"xapi_statement_agents_{month(now)}"}
    # the LRS answers as before, the old statement too
    assert lrs.get("/xapi/statements", params={"statementId": old["id"]}).json()["id"] == old["id"]
    assert lrs.get("/xapi/statements", params={"statementId": voided["id"]}).status_code == 404
    assert lrs.get("/xapi/statements", params={"voidedStatementId": voided["id"]}).status_code == 200
    found = lrs.get("/xapi/statements", params={"verb": ADL + "completed", "agent": '{"account": {"homePage": '
                                                 '"http://www.example.com", "name": "1625378"}}'}).json()["statements"]
    assert {s["id"] for s in found} == {kept["id"], old["id"]}  # (the old one took a later seq: not in seq order)
    assert lrs.put("/xapi/statements", params={"statementId": old["id"]}, json={**old, "verb": {"id": ADL + "failed"}}).status_code == 409


def test_ensure_makes_the_coming_months_of_statements_and_their_index_rows(pg):
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.ensure(conn, ahead=7)
        ahead = partitions.add_months(partitions.month_start(datetime.now(UTC)), 7)
        for table in ("xapi_statements", "xapi_statement_agents", "xapi_statement_activities"):
            assert partitions.name_of(table, ahead) in {p.name for p in partitions.partitions(conn, table)}
    assert "xapi_statements" in partitions.RETAINABLE and "xapi_statement_agents" not in partitions.RETAINABLE


# --- the Statement Resource over HTTP ------------------------------------------------------------------


def test_a_statement_id_is_unique_through_the_id_table_and_a_repeat_is_compared(pg, lrs):
    s = stmt("completed")
    assert lrs.post("/xapi/statements", json=[s]).status_code == 200
    with pg.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM xapi_statement_ids WHERE id = :i"), {"i": uuid.UUID(s["id"])}) == 1
    assert lrs.put("/xapi/statements", params={"statementId": s["id"]}, json=s).status_code == 204  # the same: nothing changes
    assert lrs.post("/xapi/statements", json=[s, fresh := stmt("attempted")]).status_code == 200  # a known one in a batch
    r = lrs.put("/xapi/statements", params={"statementId": s["id"]}, json={**s, "verb": {"id": ADL + "failed"}})
    assert r.status_code == 409 and "already stored with different content" in r.text
    r = lrs.post("/xapi/statements", json=[stmt("passed"), {**s, "result": {"success": True}}])
    assert r.status_code == 409  # nothing of the batch is stored
    with pg.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM xapi_statements")) == 2
        assert conn.scalar(text("SELECT count(*) FROM xapi_statement_ids")) == 2
    assert lrs.get("/xapi/statements", params={"statementId": fresh["id"]}).json()["verb"]["id"] == ADL + "attempted"
    # another tenant may use the same id
    assert lrs.get("/xapi/statements", params={"statementId": str(uuid.uuid4())}).status_code == 404


def test_voiding_across_months_marks_the_target_in_its_own_partition(pg, lrs):
    target = stmt("completed")
    lrs.post("/xapi/statements", json=[target])
    age(pg, [target["id"]])  # the target was stored in an older month
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.ensure(conn)  # makes March 2020's partitions (unless an earlier test did), moving the rows in
    assert set(where(pg, "xapi_statements").values()) == {"xapi_statements_y2020m03"}
    assert lrs.post("/xapi/statements", json=[void(target["id"])]).status_code == 200
    assert lrs.get("/xapi/statements", params={"statementId": target["id"]}).status_code == 404
    assert lrs.get("/xapi/statements", params={"voidedStatementId": target["id"]}).json()["id"] == target["id"]
    assert [s["verb"]["id"] for s in lrs.get("/xapi/statements").json()["statements"]] == [ADL + "voided"]
    # a voiding statement cannot be voided, wherever it is stored
    voider = lrs.get("/xapi/statements").json()["statements"][0]["id"]
    assert lrs.post("/xapi/statements", json=[void(voider)]).status_code == 400


# --- pruning -----------------------------------------------------------------------------------------


def test_a_get_by_statement_id_reads_one_partition(pg, lrs):
    old, new = stmt("completed"), stmt("completed")
    lrs.post("/xapi/statements", json=[old, new])
    age(pg, [old["id"]])
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.ensure(conn)
    now = datetime.now(UTC)
    for s, part in ((old, "xapi_statements_y2020m03"), (new, f"xapi_statements_{month(now)}")):
        with Captured(pg.engine) as seen:
            assert lrs.get("/xapi/statements", params={"statementId": s["id"]}).json()["id"] == s["id"]
        assert seen.scanned("xapi_statements") == [{part}]  # not the other months, not the default


def test_since_and_until_queries_read_only_their_months(pg, lrs):
    lrs.post("/xapi/statements", json=[stmt("completed"), stmt("completed", actor=OTHER)])
    now = datetime.now(UTC)
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.create_month(conn, "xapi_statements", datetime(2020, 3, 1).date())
        for t in ("xapi_statement_agents", "xapi_statement_activities"):
            partitions.create_month(conn, t, datetime(2020, 3, 1).date())
    window = {"since": (now - timedelta(minutes=5)).isoformat(), "until": (now + timedelta(minutes=5)).isoformat()}
    if (now - timedelta(minutes=5)).month != (now + timedelta(minutes=5)).month:
        pytest.skip("the window spans two months right now")
    this = month(now)
    for params, table in ((window, "xapi_statements"), ({**window, "verb": ADL + "completed"}, "xapi_statement_agents"),
                          ({**window, "activity": AU}, "xapi_statement_activities")):
        with Captured(pg.engine) as seen:
            assert len(lrs.get("/xapi/statements", params=params).json()["statements"]) == 2
        assert seen.scanned("xapi_statements") == [{f"xapi_statements_{this}"}], params
        assert seen.scanned(table) == [{f"{table}_{this}"}], params  # the index rows too, where they drive the query


# --- retention -----------------------------------------------------------------------------------------


def test_retention_drops_old_months_of_statements_with_their_index_rows_and_ids_and_keeps_evidence(pg, lrs, monkeypatch):
    from typer.testing import CliRunner

    from gateway.cli import app, register_adapters
    from gateway.config import get_settings

    old, old_voided, kept = stmt("completed"), stmt("attempted"), stmt("completed")
    lrs.post("/xapi/statements", json=[old, old_voided, kept])
    age(pg, [old["id"], old_voided["id"]])
    voider = void(old_voided["id"])
    assert lrs.post("/xapi/statements", json=[voider]).status_code == 200  # kept: this month's
    evidence = {s["id"]: pg.records.get(f.T, "evidence", record_id(f.T, "evidence", "xapi", s["id"]))
                for s in (old, kept)}
    assert all(e is not None for e in evidence.values())
    with pg.engine.connect() as conn:
        old_seqs = list(conn.execute(text("SELECT seq FROM xapi_statements WHERE stored = :w"), {"w": OLD}).scalars())
    assert len(old_seqs) == 2
    register_adapters()
    monkeypatch.setenv("TESSERA_DATABASE_URL", pg.engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["partitions", "ensure"], catch_exceptions=False)  # March 2020 out of the defaults
        assert out.exit_code == 0, out.output
        assert where(pg, "xapi_statements")[old_seqs[0]] == "xapi_statements_y2020m03"
        out = runner.invoke(app, ["partitions", "retain", "--table", "xapi_statements", "--months", "12"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        for table in ("xapi_statements", "xapi_statement_agents", "xapi_statement_activities"):
            assert f"{table}_y2020m03" in out.output
        out = runner.invoke(app, ["partitions", "retain", "--table", "xapi_statement_agents", "--months", "12"])
        assert out.exit_code == 2 and "is never dropped by retention" in re.sub(r"[\s│]+", " ", out.output)  # the index rows go with their statements
    finally:
        get_settings.cache_clear()
    with pg.engine.connect() as conn:
        for table in ("xapi_statements", "xapi_statement_agents", "xapi_statement_activities"):
            assert not conn.scalar(text(f"SELECT count(*) FROM {table} WHERE seq = ANY(:s)"), {"s": old_seqs}), table
            assert f"{table}_y2020m03" not in {p.name for p in partitions.partitions(conn, table)}
        assert set(conn.execute(text("SELECT id::text FROM xapi_statement_ids")).scalars()) == {kept["id"], voider["id"]}
    # evidence stays; the LRS answers: the dropped statements are gone, the kept ones are there
    for sid, ev in evidence.items():
        assert pg.records.get(f.T, "evidence", ev.id) == ev, sid
    assert lrs.get("/xapi/statements", params={"statementId": old["id"]}).status_code == 404
    assert lrs.get("/xapi/statements", params={"voidedStatementId": old_voided["id"]}).status_code == 404
    assert lrs.get("/xapi/statements", params={"statementId": kept["id"]}).json()["id"] == kept["id"]
    assert lrs.get("/xapi/statements", params={"statementId": voider["id"]}).json()["id"] == voider["id"]  # its target is gone
    assert {s["id"] for s in lrs.get("/xapi/statements").json()["statements"]} == {kept["id"], voider["id"]}
    assert [s["id"] for s in lrs.get("/xapi/statements", params={"verb": ADL + "completed"}).json()["statements"]] == [kept["id"]]
    # a dropped statement's id is free again in the LRS (it refuses a reused id as long as it keeps the
    # statement), but the evidence derived from it is kept and append-only: a statement under its id
    # would change that evidence (its provenance, if nothing else) and is refused, nothing stored
    for again in ({**old, "verb": {"id": ADL + "failed"}}, old):
        r = lrs.post("/xapi/statements", json=[again])
        assert r.status_code == 409 and "evidence is append-only" in r.text
    assert lrs.get("/xapi/statements", params={"statementId": old["id"]}).status_code == 404
    assert pg.records.get(f.T, "evidence", evidence[old["id"]].id) == evidence[old["id"]]


def test_the_sharded_consumer_finds_a_voided_target_in_its_own_month(pg, lrs):
    """``derive_shards.Shards.mine`` looks the target of a voiding statement up to route it to its
    actor's shard: by the id table, so the plan reads the target's month only (by ``id`` alone
    it read every month of every tenant's statements, none indexed by id on PostgreSQL)."""
    from adapters.xapi.derive import Deriver, _Row
    from adapters.xapi.evidence import EvidenceMapper

    target, voider = stmt("completed"), None
    lrs.post("/xapi/statements", json=[target])
    age(pg, [target["id"]])
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        partitions.ensure(conn)
    voider = void(target["id"])
    lrs.post("/xapi/statements", json=[voider])
    with pg.engine.connect() as conn:
        seq = conn.scalar(text("SELECT seq FROM xapi_statement_ids WHERE id = :i"), {"i": uuid.UUID(voider["id"])})
    deriver = Deriver(pg, EvidenceMapper(pg), shards=2)
    assert deriver.shards is not None
    row = _Row(seq, f.T, voider["id"], json.dumps(voider), False, True)
    with Captured(pg.engine) as seen:
        mine = [deriver.shards.mine([row], i) for i in range(2)]
    assert sum(len(m) for m in mine) == 1
    assert mine[deriver.shards.shard_of(f.T, ACTOR)] == [row]  # the target's actor's shard, not the voider's
    assert seen.scanned("xapi_statements") == [{"xapi_statements_y2020m03"}] * 2


def test_retention_finds_the_months_whatever_the_sessions_time_zone(pg, lrs):
    """A partition's bounds print in the session's time zone (a server configured for a state's
    own zone prints January as from '2025-12-31 19:00:00-05'): its month is still January, so
    retention drops January's index rows with January's statements, not December's."""
    old = stmt("completed")
    lrs.post("/xapi/statements", json=[old])
    age(pg, [old["id"]])
    with pg.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL TIME ZONE 'America/New_York'")
        partitions.ensure(conn)
        march = [p for p in partitions.partitions(conn, "xapi_statements") if p.name == "xapi_statements_y2020m03"]
        assert [(p.start, p.end) for p in march] == [(datetime(2020, 3, 1).date(), datetime(2020, 4, 1).date())]
        dropped = partitions.drop_before(conn, "xapi_statements", 12)
    assert {"xapi_statements_y2020m03", "xapi_statement_agents_y2020m03", "xapi_statement_activities_y2020m03"} <= set(dropped)
    with pg.engine.connect() as conn:
        for table in ("xapi_statement_agents", "xapi_statement_activities"):
            assert not conn.scalar(text(f"SELECT count(*) FROM {table} WHERE stored = :w"), {"w": OLD}), table
