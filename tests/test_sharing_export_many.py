"""A recipient's export under many grants in one read of each kind (issue "State agencies",
bulk export): the same rows as one export per grant, one manifest, the grants' own
de-identification, bounded buffers, and the bad-input rules (a revoked grant, a full disk,
a grant made to someone else). On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import uuid

import orjson
import pytest

from gateway.errors import ConfigError, Conflict, NotFound, ScopeError
from gateway.sharing import columns as columnar
from gateway.sharing import export as export_mod
from gateway.sharing import export_many as export_many_mod
from gateway.sharing import export_reads
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds
from gateway.sharing.export import export, read_back
from gateway.sharing.export_many import export_many, granted, sources_of, still_granted
from gateway.sharing.grants import GrantStore
from gateway.sharing.jobs import JobRunner
from gateway.sharing.pseudonym_helper import PseudonymHelper

from .factories import competency, evidence, framework, org, person
from .test_sharing import KEY, disk_full_at, district, grant, wait_for

KINDS = ["person", "enrollment", "evidence"]


def three_districts(store):
    """d1 de-identified, d2 identified, d3 de-identified and people only; every grant to ``state``,
    and one from d1 to a research partner."""
    district(store, "d1", state_ids={"u0": "IA-1"}, n=5)
    district(store, "d2", state_ids={"u1": "IA-1"}, n=4)
    district(store, "d3", n=3)
    gs = [grant(store, "d1"), grant(store, "d2", deidentified=False), grant(store, "d3", kinds=["person"])]
    research = grant(store, "d1", "research")
    return gs, research


def _rows(path):
    return sorted(read_back(path), key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))


def _single(store, tmp_path, g, fmt):
    deid = Deidentifier(Pseudonymizer(KEY, g.grantee), StateIds(store.engine, g.grantor)) if g.deidentified else None
    out = tmp_path / f"single-{g.grantor}"
    return out, export(store, out, tenant=g.grantor, kinds=[k for k in KINDS if k in g.kinds], fmt=fmt, deidentifier=deid,
                       grant_id=str(g.id))


@pytest.mark.parametrize("fmt", ["parquet", "ndjson"])
def test_a_multi_grant_export_equals_one_export_per_grant(store, tmp_path, monkeypatch, fmt):
    (g1, g2, g3), _ = three_districts(store)
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 4)  # many batches, buffers written out as they fill
    monkeypatch.setattr(columnar, "HELPER_FROM", 2)  # record pseudonyms made by the helper process (one for the recipient)
    helped = {"rows": 0}
    real_collect = PseudonymHelper.collect

    def collect(self):
        texts = real_collect(self)
        helped["rows"] += len(texts) // 36
        return texts

    monkeypatch.setattr(PseudonymHelper, "collect", collect)
    stats: dict[str, float] = {}
    out = tmp_path / "many"
    sources = sources_of([g1, g2, g3], key=KEY, engine=store.engine)
    manifest = export_many(store, out, recipient="state", sources=sources, kinds=KINDS, fmt=fmt, stats=stats)
    if (os.cpu_count() or 1) >= 2 and store.engine.dialect.name == "postgresql":
        assert helped["rows"] > 0

    written = orjson.loads((out / "manifest.json").read_bytes())
    assert written["recipient"] == "state" and written["consistent_with"] == manifest.consistent_with > 0
    assert [(s["tenant"], s["grant"], s["deidentified"], s["kinds"]) for s in written["sources"]] == [
        ("d1", str(g1.id), True, KINDS), ("d2", str(g2.id), False, KINDS), ("d3", str(g3.id), True, ["person"])]
    ext = export_mod.WRITERS[fmt][1]
    assert sorted((f["tenant"], f["kind"], f["name"], f["grant"]) for f in written["files"]) == sorted(
        [(t, k, f"{t}/{k}.{ext}", str(g.id)) for t, g in (("d1", g1), ("d2", g2)) for k in KINDS] + [("d3", "person", f"d3/person.{ext}", str(g3.id))])
    for f in written["files"]:
        data = (out / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    assert sorted(p.name for p in out.iterdir()) == ["d1", "d2", "d3", "manifest.json"]

    for g in (g1, g2, g3):  # row for row what the grant's own export holds, in the same columns
        single_out, single = _single(store, tmp_path, g, fmt)
        for f in single.files:
            mine = out / g.grantor / f.name
            assert _rows(mine) == _rows(single_out / f.name), (g.grantor, f.name)
            if fmt == "parquet":
                import pyarrow.parquet as pq

                assert pq.read_schema(mine) == pq.read_schema(single_out / f.name)
            assert [m.rows for m in manifest.files if m.tenant == g.grantor and m.kind == f.kind] == [f.rows] and f.rows > 0
    # d1's and d2's learner with one state id: one pseudonym in the de-identified d1, the plain id in d2
    d1_people = read_back(out / "d1" / f"person.{ext}")
    assert all("given_name" not in p or p["given_name"] is None for p in d1_people)
    assert any(p.get("given_name") for p in read_back(out / "d2" / f"person.{ext}"))


def test_the_buffers_stay_under_their_cap_whatever_the_districts(store, tmp_path, monkeypatch):
    """Districts' rows interleaved (written in turn, as live districts write), buffers capped
    at 3 rows in all (batches of 4): the largest is written out each time the cap is passed,
    and the files still hold every row, the same as each district's own export."""
    (g1, g2, g3), _ = three_districts(store)
    learners = {t: store.records.get(t, "person", person("u0", org(tenant=t), t).id) for t in ("d1", "d2", "d3")}
    for i in range(6):
        for t, learner in learners.items():
            store.records.apply(t, [evidence(f"late-{t}-{i}", learner, competency("m1", framework(tenant=t), t), t)])
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 4)
    monkeypatch.setattr(export_many_mod, "CACHED_MAX", 4)  # learners cached in all the districts' de-identifiers
    stats: dict[str, float] = {}
    sources = sources_of([g1, g2, g3], key=KEY, engine=store.engine)
    out = tmp_path / "capped"
    manifest = export_many(store, out, recipient="state", sources=sources, kinds=["person", "evidence"],
                           fmt="parquet", buffer_rows=3, stats=stats)
    assert sum(f.rows for f in manifest.files) == (5 + 4 + 3) + (5 + 6) + (4 + 6)
    if store.engine.dialect.name == "postgresql":  # one query a kind, split by tenant
        assert 0 < stats["peak_buffered"] <= 3 + 4 and stats["flushes"] >= 6  # written out before the end, again and again
    assert stats["forgotten"] > 0  # caches emptied on the way; the pseudonyms the same (below)
    for g in (g1, g2):
        single_out, single = _single(store, tmp_path, g, "parquet")
        assert _rows(out / g.grantor / "evidence.parquet") == _rows(single_out / "evidence.parquet")


def _revoking_the_second_at_the_second_check(store, g1, g2, g3):
    """An export's ``check`` that revokes ``g2`` when it is called the second time, and raises
    (as the export's own check does) once any of the three grants is no longer in force."""
    gs = GrantStore(store.engine)
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            gs.revoke(g2.id, grantor="d2", by="admin")
        still_granted(gs, "state", [g1.id, g2.id, g3.id])

    return check


def test_a_grant_revoked_mid_export_fails_the_whole_export_cleanly(store, tmp_path, monkeypatch):
    (g1, g2, g3), _ = three_districts(store)
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    check = _revoking_the_second_at_the_second_check(store, g1, g2, g3)
    out = tmp_path / "revoked"
    with pytest.raises(PermissionError, match=str(g2.id)):
        export_many(store, out, recipient="state", sources=sources_of([g1, g2, g3], key=KEY, engine=store.engine), kinds=KINDS,
                    fmt="parquet", check=check)
    assert list(out.iterdir()) == []


def test_a_full_disk_removes_every_file(store, tmp_path, monkeypatch):
    (g1, g2, _g3), _ = three_districts(store)
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    disk_full_at(monkeypatch, 3)
    out = tmp_path / "full"
    with pytest.raises(OSError, match="No space"):
        export_many(store, out, recipient="state", sources=sources_of([g1, g2], key=KEY, engine=store.engine), kinds=KINDS, fmt="ndjson")
    assert list(out.iterdir()) == []


def test_which_grants_a_recipient_may_export_under(store):
    (g1, g2, g3), research = three_districts(store)
    gs = GrantStore(store.engine)
    recipient, chosen = granted(gs, recipient="state", grant_ids=[], kinds=["evidence"], refused=ConfigError)
    assert recipient == "state" and [g.id for g in chosen] == [g1.id, g2.id]  # d3's grant covers no evidence
    assert granted(gs, recipient=None, grant_ids=[g3.id, g1.id], kinds=[], refused=ConfigError)[1] == [g1, g3]
    with pytest.raises(ScopeError, match="unknown"):  # a grant made to someone else does not exist for this recipient
        granted(gs, recipient="research", grant_ids=[g2.id], kinds=[], refused=ScopeError)
    with pytest.raises(ConfigError, match="one recipient"):
        granted(gs, recipient=None, grant_ids=[g1.id, research.id], kinds=[], refused=ConfigError)
    gs.revoke(g2.id, grantor="d2", by="admin")
    with pytest.raises(ConfigError, match=f"grant {g2.id} is revoked"):
        granted(gs, recipient="state", grant_ids=[g1.id, g2.id], kinds=[], refused=ConfigError)
    second = grant(store, "d1", kinds=["evidence"])
    with pytest.raises(ConfigError, match="one grant per district"):
        granted(gs, recipient="state", grant_ids=[], kinds=[], refused=ConfigError)
    with pytest.raises(ConfigError, match="no active grant to nobody"):
        granted(gs, recipient="nobody", grant_ids=[], kinds=[], refused=ConfigError)
    assert second.grantor == "d1"


def test_a_multi_grant_job_holds_every_grant(store, tmp_path):
    (g1, g2, _g3), _ = three_districts(store)
    runner = JobRunner(store, GrantStore(store.engine), tmp_path / "exports", lambda: KEY)
    try:
        held = runner._claim(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grant=None, status="queued",
                             many=[g1, g2])
        with pytest.raises(Conflict, match=f"export {held} for this grant is still running"):
            runner.submit(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grant=g2)
        with pytest.raises(Conflict):
            runner.submit_many(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grants=[g2])
        jobs = runner.list(tenant="state")
        assert [(j["id"], [g["tenant"] for g in j["grants"]]) for j in jobs] == [(str(held), ["d1", "d2"])]  # lock rows are not jobs
        runner._set(held, status="failed", error="test")
        done = runner.submit(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grant=g2)
        runner.wait()
        assert runner.get(uuid.UUID(done["id"]), tenant="state")["status"] == "succeeded"
    finally:
        runner.close()


def test_multi_grant_exports_over_http(api, tmp_path):
    (g1, g2, g3), _ = three_districts(api.store)
    state = api.auth_client("state", ["exports"])
    job = state.post("/v1/exports", json={"format": "ndjson", "kinds": ["person", "evidence"], "grants": "all"})
    assert job.status_code == 202, job.text
    assert [g["tenant"] for g in job.json()["grants"]] == ["d1", "d2", "d3"]
    done = wait_for(state, job.json()["id"])
    assert done["status"] == "succeeded", done
    files = {f["name"]: f for f in done["manifest"]["files"]}
    assert set(files) == {"d1/person.ndjson", "d1/evidence.ndjson", "d2/person.ndjson", "d2/evidence.ndjson", "d3/person.ndjson"}
    body = state.get(f"/v1/exports/{job.json()['id']}/files/d2/person.ndjson")
    assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == files["d2/person.ndjson"]["sha256"]
    assert state.get(f"/v1/exports/{job.json()['id']}/files/d2%2F..%2F..%2Fexports").status_code == 404
    admin = api.auth_client("d1", ["admin"])
    log = admin.get(f"/v1/grants/{g1.id}/access-log").json()["entries"]
    assert sorted((e["action"], e["records"]) for e in log) == [("export", 5), ("export", 5)]  # people, evidence

    named = state.post("/v1/exports", json={"format": "csv", "kinds": ["person"], "grants": [str(g1.id), str(g3.id)]})
    assert named.status_code == 202, named.text
    assert wait_for(state, named.json()["id"])["status"] == "succeeded"
    research = api.auth_client("research", ["exports"])
    assert research.post("/v1/exports", json={"format": "csv", "grants": [str(g1.id)]}).status_code == 403
    assert state.post("/v1/exports", json={"format": "csv", "grants": []}).status_code == 422
    GrantStore(api.store.engine).revoke(g2.id, grantor="d2", by="admin")
    refused = state.post("/v1/exports", json={"format": "csv", "grants": [str(g1.id), str(g2.id)]})
    assert refused.status_code == 403 and "revoked" in refused.text


def test_cli_bulk_export_under_several_grants(cli, tmp_path):
    from gateway.cli_kit import open_store

    cli("migrate")
    store = open_store()
    (g1, g2, g3), research = three_districts(store)
    cli("export", "bulk", str(tmp_path / "two"), "--grant", str(g1.id), "--grant", str(g2.id), "--format", "csv")
    m = orjson.loads((tmp_path / "two" / "manifest.json").read_bytes())
    assert {f["tenant"] for f in m["files"]} == {"d1", "d2"} and (tmp_path / "two" / "d2" / "evidence.csv").is_file()
    cli("export", "bulk", str(tmp_path / "all"), "--grantee", "state", "--kind", "person")
    m = orjson.loads((tmp_path / "all" / "manifest.json").read_bytes())
    assert [(f["tenant"], f["rows"]) for f in m["files"]] == [("d1", 5), ("d2", 4), ("d3", 3)]
    with pytest.raises(ConfigError, match="one recipient"):
        cli("export", "bulk", str(tmp_path / "mixed"), "--grant", str(g1.id), "--grant", str(research.id))
    assert not (tmp_path / "mixed" / "manifest.json").exists()
    with pytest.raises(NotFound):
        GrantStore(store.engine).get(g3.id, tenant="research")


def test_the_districts_are_read_by_one_scan_of_each_table(store):
    """PostgreSQL: one query a kind for every district (``tenant = ANY``); where they are most
    of the table (by the planner's statistics, every partition's) it may be scanned in order
    once, else the tenants' index picks their pages (``export_reads.READ_SETTINGS``)."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads each district in turn (small data)")
    from sqlalchemy.dialects import postgresql

    three_districts(store)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    with store.engine.connect() as conn, conn.begin():
        dbapi = conn.connection.dbapi_connection
        for kind, rows in (("person", (5, 4, 3)), ("evidence", (5, 4, 3))):
            assert export_reads.tenant_share(dbapi, kind, ["d1", "d2", "d3"]) == pytest.approx(1.0, abs=0.01)
            assert export_reads.tenant_share(dbapi, kind, ["d3"]) == pytest.approx(rows[2] / sum(rows), abs=0.05)
        assert export_reads.tenant_share(dbapi, "person", ["nobody"]) == 0.0
        compiled = export_reads.many_query(["d1", "d2"], "evidence", None, 10**9).compile(dialect=postgresql.dialect())
        for setting in export_reads.READ_SETTINGS:
            dbapi.execute(setting)
        plan = "\n".join(r[0] for r in dbapi.execute("EXPLAIN " + str(compiled), compiled.params))
        assert "Seq Scan" not in plan and "ANY" in plan, plan
        dbapi.execute("SET LOCAL enable_seqscan = on")
        plan = "\n".join(r[0] for r in dbapi.execute("EXPLAIN " + str(compiled), compiled.params))
        assert "Seq Scan" in plan and plan.count(" Scan on ") == plan.count("Seq Scan on "), plan  # each partition read once, in order


def test_a_multi_grant_job_fails_cleanly_when_a_grant_is_revoked_and_frees_its_grants_when_its_process_stops(store, tmp_path, monkeypatch):
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.model import utcnow
    from gateway.sharing import jobs as jobs_mod
    from gateway.store.tables import export_jobs

    (g1, g2, _g3), _ = three_districts(store)
    gs = GrantStore(store.engine)
    real = jobs_mod.export_many

    def revoked_meanwhile(*args, **kwargs):
        gs.revoke(g2.id, grantor="d2", by="admin")  # while the job starts: its first check refuses
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_mod, "export_many", revoked_meanwhile)
    runner = JobRunner(store, gs, tmp_path / "exports", lambda: KEY)
    try:
        job = runner.submit_many(tenant="state", client_id="c", fmt="parquet", kinds=KINDS, since=None, grants=[g1, g2])
        runner.wait()
        failed = runner.get(uuid.UUID(job["id"]), tenant="state")
        assert failed["status"] == "failed" and str(g2.id) in failed["error"] and "revoked" in failed["error"], failed
        assert not (tmp_path / "exports" / job["id"]).exists()
        assert [e for e in gs.access_log(g1.id, grantor="d1") if e["action"] == "export"] == []  # nothing was exported
        # a job whose process stopped: its lease runs out, and its grants are free again
        held = runner._claim(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grant=None, status="running",
                             many=[g1])
        with store.engine.begin() as conn:
            conn.execute(update(export_jobs).values(lease_until=utcnow() - timedelta(seconds=1)))
        again = runner.submit(tenant="state", client_id="c", fmt="ndjson", kinds=["person"], since=None, grant=g1)
        runner.wait()
        assert runner.get(uuid.UUID(again["id"]), tenant="state")["status"] == "succeeded"
        stale = runner.get(held, tenant="state")
        assert stale["status"] == "failed" and "interrupted" in stale["error"]
    finally:
        runner.close()


def test_a_multi_grant_export_since_a_version_has_only_what_changed_in_each_district(store, tmp_path):
    from gateway.store.changefeed import newest_safe

    (g1, g2, g3), _ = three_districts(store)
    with store.engine.connect() as conn:
        v = newest_safe(conn)
    for t in ("d1", "d3"):
        kid = store.records.get(t, "person", person("u1", org(tenant=t), t).id)
        store.records.apply(t, [kid.model_copy(update={"given_name": "Changed"})])
    manifest = export_many(store, tmp_path / "since", recipient="state", sources=sources_of([g1, g2, g3], key=KEY, engine=store.engine),
                           kinds=["person", "evidence"], fmt="ndjson", since=v)
    assert manifest.since == v and manifest.consistent_with > v
    assert sorted((f.tenant, f.kind, f.rows) for f in manifest.files) == [
        ("d1", "evidence", 0), ("d1", "person", 1), ("d2", "evidence", 0), ("d2", "person", 0), ("d3", "person", 1)]


def test_a_multi_grant_export_in_part_processes_writes_what_one_process_writes(store, tmp_path, monkeypatch):
    """PostgreSQL, ``TESSERA_EXPORT_WORKERS=2``: the districts are cut into two groups, each
    read by a part's process in the export's snapshot (its own districts' rows only); the
    files, their rows and the manifest's order are those of the export in one process, the
    progress counts every row, and a grant revoked while the parts run fails the export and
    leaves nothing behind."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("part processes: PostgreSQL only")
    (g1, g2, g3), _ = three_districts(store)
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)  # here: the kinds are large enough to split
    sources = sources_of([g1, g2, g3], key=KEY, engine=store.engine)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "0")
    one = export_many(store, tmp_path / "one", recipient="state", sources=sources, kinds=KINDS, fmt="parquet")
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "2")
    stats: dict[str, float] = {}
    seen: dict[str, int] = {}
    split = export_many(store, tmp_path / "split", recipient="state", sources=sources, kinds=KINDS, fmt="parquet", stats=stats,
                        progress=lambda kind, n: seen.__setitem__(kind, seen.get(kind, 0) + n))
    assert stats["workers"] == 2 and stats["worker_cpu_s"] > 0
    assert [(f.name, f.tenant, f.kind, f.rows) for f in split.files] == [(f.name, f.tenant, f.kind, f.rows) for f in one.files]
    assert seen == {k: sum(f.rows for f in one.files if f.kind == k) for k in KINDS}
    for f in split.files:
        assert _rows(tmp_path / "split" / f.name) == _rows(tmp_path / "one" / f.name), f.name
        data = (tmp_path / "split" / f.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.bytes
    check = _revoking_the_second_at_the_second_check(store, g1, g2, g3)
    out = tmp_path / "revoked"
    with pytest.raises(PermissionError, match=str(g2.id)):
        export_many(store, out, recipient="state", sources=sources, kinds=KINDS, fmt="parquet", check=check)
    assert list(out.iterdir()) == []


def test_an_export_leaves_read_ahead_to_the_operating_system_unless_told(store, monkeypatch):
    """PostgreSQL: the export's transaction turns off the database's per-page prefetching
    (``effective_io_concurrency`` 0: its pages are read in the table's order, which the
    operating system reads ahead); ``TESSERA_EXPORT_IO_CONCURRENCY`` sets another value, empty
    keeps the server's, anything else is refused with the setting's name."""
    import importlib

    assert "SET LOCAL effective_io_concurrency = 0" in export_reads.READ_SETTINGS
    try:
        monkeypatch.setenv(export_reads.IO_CONCURRENCY_ENV, "32")
        assert importlib.reload(export_reads).READ_SETTINGS[-1] == "SET LOCAL effective_io_concurrency = 32"
        monkeypatch.setenv(export_reads.IO_CONCURRENCY_ENV, "")
        assert not any("effective_io_concurrency" in s for s in importlib.reload(export_reads).READ_SETTINGS)
        monkeypatch.setenv(export_reads.IO_CONCURRENCY_ENV, "lots")
        with pytest.raises(ValueError, match=export_reads.IO_CONCURRENCY_ENV):
            importlib.reload(export_reads)
    finally:
        monkeypatch.delenv(export_reads.IO_CONCURRENCY_ENV, raising=False)
        importlib.reload(export_reads)
    if store.engine.dialect.name != "postgresql":
        return
    from gateway.sharing.export_reads import snapshot

    with snapshot(store) as conn:
        assert conn.exec_driver_sql("SHOW effective_io_concurrency").scalar() == "0"
    with store.engine.connect() as conn:  # the transaction's own: the server's setting is untouched
        assert conn.exec_driver_sql("SHOW effective_io_concurrency").scalar() != "0"
