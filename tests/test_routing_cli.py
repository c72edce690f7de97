"""``tessera config check|apply``, ``connections list``, ``routes list|status``,
``deadletters list|show|replay|discard``, ``sync ROUTE --once`` and ``worker`` (in-process,
on a SQLite file; the engine is a stand-in until the routing engine lands: ``engine_for``
is what these commands call)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from gateway import wiring
from gateway.errors import ConfigError, NotFound
from gateway.model import utcnow
from gateway.routing.engine import SyncRunSummary
from gateway.routing.protocol import PageResult
from gateway.store import tables as t
from tests.routing_fake import fake_wiring

GOOD = """\
tenant: district-a
connections:
  - name: sis
    role: fake.source
    base_url: https://sis.example.org/ims/oneroster/rostering/v1p2
    auth: {client_id: env:SIS_ID, client_secret: env:SIS_SECRET}
  - name: lms
    role: fake.sink
routes:
  - name: roster-in
    mode: pull
    source: sis
    kinds: [org, person]
    schedule: 1h
  - name: people-out
    mode: push
    destination: lms
    kinds: [person]
"""
SECRET = "the-secret-value"


@pytest.fixture
def rcli(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _sqlite_template: Path) -> Iterator:
    from gateway.cli_kit import out

    monkeypatch.setattr(out, "_width", 250)  # tables unfolded, whatever the terminal
    previous = wiring.install(fake_wiring())
    monkeypatch.setenv("SIS_ID", "id")
    monkeypatch.setenv("SIS_SECRET", SECRET)
    monkeypatch.delenv("TESSERA_CONFIG", raising=False)
    shutil.copy(_sqlite_template, rcli_path(cli.url))  # migrated already: quicker than `tessera migrate`
    try:
        yield cli
    finally:
        wiring.install(previous)


def rcli_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_config_check_names_each_problem_with_line_and_column(rcli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD)
    assert rcli("config", "check").stdout.strip() == "gateway.yaml: ok (2 connections, 2 routes)"
    monkeypatch.delenv("SIS_SECRET")
    bad = write(tmp_path, GOOD.replace("kinds: [person]", "kinds: [person, pets]"), "bad.yaml")
    result = rcli("config", "check", str(bad), code=1)
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines[0] == f"{bad}:6:50: auth 'client_secret': the environment variable SIS_SECRET is not set"
    assert lines[1].startswith(f"{bad}:18:21: unknown record kind 'pets'")
    assert "2 problems in" in result.stderr
    # TESSERA_CONFIG names the file when none is given
    monkeypatch.setenv("TESSERA_CONFIG", str(bad))
    assert rcli("config", "check", code=1).stdout.startswith(f"{bad}:6:50")
    monkeypatch.setenv("TESSERA_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="no configuration file"):
        rcli("config", "check")


def test_apply_then_list_and_status(rcli, tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    applied = rcli("config", "apply").stdout
    assert "created: route district-a/roster-in" in applied and "4 created, 0 updated, 0 unchanged, 0 disabled" in applied
    assert "0 created, 0 updated, 4 unchanged" in rcli("config", "apply").stdout
    conns = rcli("connections", "list", "--json").stdout
    assert "env:SIS_SECRET" in conns and SECRET not in conns
    table = rcli("connections", "list").stdout
    assert "client_secret=env:SIS_SECRET" in table and SECRET not in table
    routes = rcli("routes", "list").stdout
    assert "roster-in" in routes and "people-out" in routes and "1h" in routes
    status = rcli("routes", "status").stdout
    assert "tenant district-a" in status and "roster-in" in status and "ok" in status
    from gateway.routing import repository
    from gateway.wiring import open_store

    store = open_store(rcli.url)
    route = repository.find_route(store, "roster-in")
    run_id = repository.start_run(store, route)
    repository.finish_run(store, SyncRunSummary(run_id, route.id, "failed", read=12, failed=3))
    store.dispose()
    status = rcli("routes", "status", code=1).stdout
    assert "failing" in status and re.search(r"failed \d+s ago \(12 read, 3 failed\)", status), status

    write(tmp_path, GOOD.split("  - name: people-out")[0])
    assert "disabled (no longer in the file): district-a/people-out" in rcli("config", "apply").stdout
    import orjson

    health = {h["name"]: h for h in orjson.loads(rcli("routes", "status", "--json", code=1).stdout)}
    assert health["people-out"]["status"] == "disabled" and health["roster-in"]["status"] == "failing"
    assert health["roster-in"]["last_run"]["failed"] == 3 and health["roster-in"]["tenant"] == "district-a"


def _dead(url: str, route_name: str, n: int) -> list[int]:
    from gateway.wiring import open_store

    store = open_store(url)
    try:
        with store.engine.begin() as conn:
            route_id = conn.execute(select(t.routes.c.id).where(t.routes.c.name == route_name)).scalar_one()
            now = utcnow()
            ids = []
            for i in range(n):
                res = conn.execute(insert(t.outbox).values(
                    tenant="district-a", route_id=route_id, record_kind="person", record_id=uuid.uuid4(), content_hash=str(i),
                    idempotency_key=f"k{i}", state="dead", attempts=4, next_attempt_at=now, created_at=now, dead_at=now,
                    last_status=400, last_error="the destination answered 400",
                    last_request="PUT https://lms.example.org/users/u1\n\n{\"givenName\": \"Ada\"}",
                    last_response='{"error": "givenName too long"}'))
                ids.append(int(res.inserted_primary_key[0]))
        return ids
    finally:
        store.dispose()


def test_deadletters(rcli, tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    rcli("config", "apply")
    ids = _dead(rcli.url, "people-out", 3)
    listed = rcli("deadletters", "list").stdout
    assert all(str(i) in listed for i in ids) and "people-out" in listed
    status = rcli("routes", "status", code=1).stdout  # dead letters are never silent
    assert "dead-letters" in status
    shown = rcli("deadletters", "show", str(ids[0])).stdout
    assert "PUT https://lms.example.org/users/u1" in shown and "givenName too long" in shown and "attempts:" in shown
    with pytest.raises(NotFound, match="no dead letter 999999"):
        rcli("deadletters", "show", "999999")
    assert "give dead-letter ids" in rcli("deadletters", "replay", code=2).output
    assert rcli("deadletters", "replay", str(ids[0])).stdout.strip() == "1 dead letter queued again"
    assert rcli("deadletters", "replay", str(ids[0]), code=1).stdout.strip() == "0 dead letters queued again"
    assert rcli("deadletters", "discard", "--route", "people-out", "--tenant", "district-a").stdout.strip() == "2 dead letters discarded"
    assert str(ids[1]) in rcli("deadletters", "list", "--discarded").stdout
    assert "1 dead letter" not in rcli("deadletters", "list").stdout
    assert rcli("routes", "status").exit_code == 0


class FakeEngine:
    name = "embedded"

    def __init__(self, store: Any, status: str = "succeeded") -> None:
        self.store, self.status = store, status
        self.started = self.stopped = False
        self.synced: list[uuid.UUID] = []

    def sync_once(self, route_id: uuid.UUID, *, progress: Any = None) -> SyncRunSummary:
        self.synced.append(route_id)
        for page in (PageResult(cursor="p1", read=50, written=50), PageResult(cursor="p2", read=20, unchanged=19, failed=1)):
            progress(page)
        return SyncRunSummary(uuid.uuid4(), route_id, self.status, read=70, written=50, unchanged=19, failed=1, seconds=0.25,
                              errors=[{"message": "no such org", "location": "users page 2, item 4"}])

    def start(self) -> None:
        self.started = True
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict, FakeEngine]]:
    made: list[tuple[str, dict, FakeEngine]] = []

    def engine_for(name: str, store: Any, wiring: Any, **options: Any) -> FakeEngine:
        engine = FakeEngine(store, status=os.environ.get("FAKE_STATUS", "succeeded"))
        made.append((name, options, engine))
        return engine

    monkeypatch.setattr("gateway.routing.engine.engine_for", engine_for)
    return made


def test_sync_once(rcli, tmp_path: Path, engines, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD)
    rcli("config", "apply")
    result = rcli("sync", "roster-in", "--once")
    assert "district-a/roster-in: succeeded in 0.2 s: 70 read, 50 written, 19 unchanged, 0 deleted, 1 failed" in result.stdout
    assert "2 pages, 70 read, 50 written, 1 failed" in result.stderr  # the progress bar's last counts
    assert "users page 2, item 4: no such org" in result.stderr
    name, _, engine = engines[0]
    assert name == "embedded" and len(engine.synced) == 1
    with pytest.raises(ConfigError, match="push route"):
        rcli("sync", "people-out", "--once")
    with pytest.raises(NotFound, match="no route 'nope'"):
        rcli("sync", "nope")
    monkeypatch.setenv("FAKE_STATUS", "failed")
    rcli("sync", "roster-in", "--once", "--tenant", "district-a", code=1)
    monkeypatch.delenv("TESSERA_TEMPORAL_ADDRESS", raising=False)
    rcli("sync", "roster-in", "--engine", "temporal", code=1)
    assert engines[-1][0] == "temporal" and engines[-1][1] == {}  # the engine's default address
    rcli("sync", "roster-in", "--engine", "temporal", "--temporal-address", "127.0.0.1:7233", code=1)
    assert engines[-1][0] == "temporal" and engines[-1][1] == {"address": "127.0.0.1:7233"}


def test_worker_applies_the_config_and_stops_cleanly_on_sigterm(rcli, tmp_path: Path, engines) -> None:
    write(tmp_path, GOOD)
    before = signal.getsignal(signal.SIGTERM)
    result = rcli("worker", "--worker-id", "w-1")
    name, options, engine = engines[0]
    assert name == "embedded" and options == {"worker_id": "w-1"} and engine.started and engine.stopped
    assert "stopped" in result.stderr
    assert "gateway.yaml" in result.stderr and "4 created" in result.stderr  # applied before starting
    assert signal.getsignal(signal.SIGTERM) == before  # the worker's handler is put back
    assert "embedded or temporal" in rcli("worker", "--engine", "nope", code=2).output


def test_serve_applies_the_file_before_starting_and_refuses_a_bad_one(rcli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple] = []
    monkeypatch.setattr("gateway.cli._run_server", lambda *args: started.append(args))
    write(tmp_path, GOOD)
    rcli("serve", "--port", "0")
    assert len(started) == 1
    assert "people-out" in rcli("routes", "list").stdout
    write(tmp_path, GOOD.replace("role: fake.sink", "role: fake.nothing"))
    from gateway.routing.config import GatewayConfigError

    with pytest.raises(GatewayConfigError) as info:
        rcli("serve", "--port", "0")
    assert "gateway.yaml:8:11: unknown connection role 'fake.nothing'" in [str(e) for e in info.value.errors][0]
    assert len(started) == 1
