"""One export per grant at a time, across server processes (issue "State agencies", bad
input): two job runners on two engines, as two server processes would be, race to start an
export for the same grant; the database lets exactly one in. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from gateway.errors import Conflict
from gateway.model import utcnow
from gateway.sharing import jobs as jobs_mod
from gateway.sharing.grants import GrantStore
from gateway.sharing.jobs import JobRunner
from gateway.store.tables import export_jobs
from gateway.wiring import open_store

from .test_sharing import KEY, district, grant


class _Gate(threading.Event):
    """Released by ``set()``; ``entered`` is set once an export waits at it (its job has
    started: the runner set it running and its lease before calling the export)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()


@pytest.fixture
def blocked_exports(monkeypatch):
    """Exports that wait until released, so a job stays running while the test races."""
    release = _Gate()
    real = jobs_mod.export

    def slow(*args, **kwargs):
        release.entered.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_mod, "export", slow)
    yield release
    release.set()


def _runner(store, tmp_path):
    return JobRunner(store, GrantStore(store.engine), tmp_path / "exports", lambda: KEY)


def test_two_processes_asking_at_once_get_one_export(store, db_url, tmp_path, blocked_exports):
    district(store, "d1")
    g = grant(store)
    other = open_store(db_url)  # a second server process: its own engine, its own in-process lock
    a, b = _runner(store, tmp_path), _runner(other, tmp_path)
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def ask(name: str, runner: JobRunner) -> None:
        barrier.wait()
        try:
            outcome[name] = runner.submit(tenant="state", client_id=name, fmt="ndjson", kinds=["person"], since=None, grant=g)
        except Conflict as exc:
            outcome[name] = exc

    try:
        threads = [threading.Thread(target=ask, args=(n, r)) for n, r in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [n for n, v in outcome.items() if isinstance(v, dict)]
        lost = [n for n, v in outcome.items() if isinstance(v, Conflict)]
        assert len(won) == 1 and len(lost) == 1, outcome
        assert "still running" in str(outcome[lost[0]])
        winner = a if won[0] == "a" else b
        blocked_exports.set()
        winner.wait()
        job = winner.get(uuid.UUID(outcome[won[0]]["id"]), tenant="state")  # type: ignore[index]
        assert job["status"] == "succeeded", job
        # the key is free again once the first finished: the other process may start one now
        loser = b if winner is a else a
        again = loser.submit(tenant="state", client_id="again", fmt="ndjson", kinds=["person"], since=None, grant=g)
        loser.wait()
        assert loser.get(uuid.UUID(again["id"]), tenant="state")["status"] == "succeeded"
    finally:
        a.close()
        b.close()
        other.dispose()


def test_a_job_of_a_stopped_process_frees_its_grant_when_its_lease_runs_out(store, tmp_path, blocked_exports):
    district(store, "d1")
    g = grant(store)
    dead = _runner(store, tmp_path)
    first = dead.submit(tenant="state", client_id="a", fmt="ndjson", kinds=["person"], since=None, grant=g)
    # its job's thread has set the lease it starts with: the lease run out below stays run out
    assert blocked_exports.entered.wait(20), "the first job never started"
    live = _runner(store, tmp_path)
    try:
        with pytest.raises(Conflict):  # its lease still runs: the job is alive
            live.submit(tenant="state", client_id="b", fmt="ndjson", kinds=["person"], since=None, grant=g)
        live.recover()  # a server starting meanwhile leaves a live job alone
        assert live.get(uuid.UUID(first["id"]), tenant="state")["status"] in ("queued", "running")
        with store.engine.begin() as conn:  # the process stops: nobody renews the lease
            conn.execute(update(export_jobs).values(lease_until=utcnow() - timedelta(seconds=1)))
        second = live.submit(tenant="state", client_id="b", fmt="ndjson", kinds=["person"], since=None, grant=g)
        stale = live.get(uuid.UUID(first["id"]), tenant="state")
        assert stale["status"] == "failed" and "interrupted" in stale["error"]
        blocked_exports.set()
        live.wait()
        assert live.get(uuid.UUID(second["id"]), tenant="state")["status"] == "succeeded"
    finally:
        blocked_exports.set()
        dead.close()
        live.close()


def test_the_command_line_export_and_an_api_job_exclude_each_other(cli, tmp_path, blocked_exports):
    """``tessera export bulk --grant`` holds the grant as a job does (SQLite: the CLI's database)."""
    import orjson

    from gateway.cli_kit import open_store as cli_store

    cli("migrate")
    store = cli_store()
    district(store, "d1")
    g = grant(store)
    runner = _runner(store, tmp_path)
    try:
        runner.submit(tenant="state", client_id="api", fmt="ndjson", kinds=["person"], since=None, grant=g)
        with pytest.raises(Conflict, match="still running"):
            cli("export", "bulk", str(tmp_path / "cli-out"), "--grant", str(g.id), "--format", "ndjson", "--kind", "person")
        assert not (tmp_path / "cli-out" / "manifest.json").exists()
        blocked_exports.set()
        runner.wait()
        cli("export", "bulk", str(tmp_path / "cli-out"), "--grant", str(g.id), "--format", "ndjson", "--kind", "person")
        manifest = orjson.loads((tmp_path / "cli-out" / "manifest.json").read_bytes())
        assert manifest["files"][0]["rows"] == 3
        jobs = runner.list(tenant="state")
        assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]  # the API's job and the command line's
    finally:
        runner.close()
