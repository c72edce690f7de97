"""Data sharing with state agencies: grants, the change feed, de-identification and bulk
export (issue "State agencies", items 1 to 4), on SQLite and PostgreSQL."""

from __future__ import annotations

import errno
import hashlib
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, insert, text

from gateway.errors import ConfigError, Gone, NotFound, ScopeError, ValidationError
from gateway.model import Identifier, Status, utcnow
from gateway.sharing import export_reads
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds
from gateway.sharing.export import ExportFailed, export, read_back
from gateway.sharing.feed import ChangeFeed
from gateway.sharing.grants import GrantStore
from gateway.store.changefeed import newest_safe
from gateway.store.tables import change_log_horizon, changes

from .factories import competency, course, enrollment, evidence, framework, org, person, section

KEY = b"k" * 32


def disk_full_at(monkeypatch: pytest.MonkeyPatch, write_call: int) -> None:
    """The NDJSON writer's ``write_call``-th write fails as a full disk would (ENOSPC)."""
    from gateway.sharing import export as mod

    real = mod._Ndjson.write
    calls = {"n": 0}

    def full_disk(self: Any, docs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == write_call:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, docs)

    monkeypatch.setattr(mod._Ndjson, "write", full_disk)


def revoked_after(batches: int) -> Callable[[], None]:
    """An export's ``check`` that lets ``batches`` batches through, then stops it as a revoked grant would."""
    seen = {"n": 0}

    def check() -> None:
        seen["n"] += 1
        if seen["n"] > batches:
            raise PermissionError("grant revoked")

    return check
NOW = datetime.now(UTC)


def district(store, tenant: str, *, state_ids: dict[str, str] | None = None, n: int = 3) -> list:
    """A school, a section, ``n`` students (with state ids when given), a framework and evidence."""
    school = org(tenant=tenant)
    crs = course("c1", school, tenant)
    sec = section("s1", crs, school, tenant)
    people = []
    for i in range(n):
        native = f"u{i}"
        idents = [Identifier(system="sis", kind="oneroster.sourcedId", value=native)]
        if state_ids and native in state_ids:
            idents.append(Identifier(system="sis", kind="oneroster.userId.state", value=state_ids[native]))
        people.append(person(native, school, tenant, given_name=f"Given{tenant}{i}", family_name=f"Family{tenant}{i}",
                             email=f"kid{i}@{tenant}.example", identifiers=idents))
    fw = framework(tenant=tenant)
    comp = competency("m1", fw, tenant)
    ev = [evidence(f"statement-{tenant}-{i}", p, comp, tenant, activity={"system": "lms", "id": f"act-{i}", "title": f"Essay by Given{tenant}{i}"})
          for i, p in enumerate(people)]
    records = [school, crs, sec, *people, *(enrollment(p, sec, tenant) for p in people), fw, comp, *ev]
    store.records.apply(tenant, records)
    return records


def grant(store, grantor="d1", grantee="state", **kw):
    args = {"purpose": "state progress reporting", "starts_at": NOW - timedelta(days=1), "ends_at": NOW + timedelta(days=30),
            "scopes": ["changes.readonly", "exports"], "kinds": ["person", "evidence", "enrollment", "org"],
            "deidentified": True, "created_by": "test"}
    args.update(kw)
    return GrantStore(store.engine).create(grantor, grantee, **args)


# --- grants ----------------------------------------------------------------------------------------

def test_a_grant_is_checked_when_created(store):
    gs = GrantStore(store.engine)
    with pytest.raises(ValidationError) as exc:
        gs.create("d1", "d1", purpose=" ", starts_at=NOW, ends_at=NOW - timedelta(days=1), scopes=["admin"], kinds=["nope"],
                  deidentified=True, created_by="t")
    fields = sorted(e.field for e in exc.value.errors)
    assert fields == ["ends_at", "grantee", "kinds", "purpose", "scopes"]


def test_a_grant_allows_only_in_its_window_and_until_revoked(store):
    gs = GrantStore(store.engine)
    future = grant(store, starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=2))
    current = grant(store)
    assert [g.id for g in gs.active_for("state", "exports")] == [current.id]
    assert gs.active_for("state", "changes.readonly", grant_id=future.id) == []
    gs.revoke(current.id, grantor="d1", by="admin-client")
    assert gs.active_for("state", "exports") == []
    with pytest.raises(NotFound):  # only the grantor revokes; to anyone else the grant does not exist
        gs.revoke(future.id, grantor="state", by="x")
    assert gs.get(current.id).as_json()["status"] == "revoked"


# --- the change feed -------------------------------------------------------------------------------

def test_the_feed_pages_in_version_order_without_gaps_or_repeats(store):
    district(store, "d1", n=5)
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    reader = feed.reader("d1", "c", frozenset({"changes.readonly"}))
    newest = feed.available()["newest"]
    seen, since = [], 0
    while True:
        page = feed.page(reader, since=since, until=newest, limit=4)
        seen += [c["version"] for c in page.changes]
        since = page.next_since
        if not page.more:
            break
    with store.engine.connect() as conn:
        all_versions = [r[0] for r in conn.execute(text("SELECT seq FROM changes WHERE tenant = 'd1' ORDER BY seq"))]
    assert seen == all_versions and len(seen) == len(set(seen))
    assert since == newest


def test_a_retired_record_is_a_tombstone_and_kinds_filter(store):
    recs = district(store, "d1")
    kid = recs[3]
    store.records.apply("d1", [kid.model_copy(update={"status": Status.tobedeleted})])
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    page = feed.page(feed.reader("d1", "c", frozenset({"changes.readonly"})), kinds=["person"])
    assert {c["kind"] for c in page.changes} == {"person"}
    last = [c for c in page.changes if c["id"] == str(kid.id)][-1]
    assert last["tombstone"] is True and last["record"] is None


def test_a_version_older_than_the_oldest_kept_is_gone(store):
    district(store, "d1")
    with store.engine.begin() as conn:
        conn.execute(delete(changes).where(changes.c.seq <= 5))  # what a retention policy does ...
        conn.execute(insert(change_log_horizon).values(id=1, dropped_through=5, at=utcnow()))  # ... and records
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    reader = feed.reader("d1", "c", frozenset({"changes.readonly"}))
    with pytest.raises(Gone) as exc:
        feed.page(reader, since=2)
    assert "the oldest available is 6" in str(exc.value)
    assert feed.page(reader, since=5).changes[0]["version"] == 6


def test_a_state_reads_every_granting_district_tagged_and_logged(store):
    district(store, "d1")
    district(store, "d2")
    district(store, "d3")  # grants nothing
    g1 = grant(store, "d1", kinds=["person"])
    g2 = grant(store, "d2", kinds=["evidence"], deidentified=False)
    gs = GrantStore(store.engine)
    feed = ChangeFeed(store, gs, lambda: KEY)
    page = feed.page(feed.reader("state", "state-client", frozenset({"changes.readonly"})), limit=1000)
    by = {(c["tenant"], c["kind"]) for c in page.changes}
    assert by == {("d1", "person"), ("d2", "evidence")}
    assert {c["grant"] for c in page.changes} == {str(g1.id), str(g2.id)}
    d1_people = [orjson.loads(orjson.dumps(c["record"])) for c in page.changes if c["tenant"] == "d1"]  # JSON text too
    assert all("given_name" not in r and "email" not in r for r in d1_people)  # de-identified grant
    d2_ev = [orjson.loads(orjson.dumps(c["record"])) for c in page.changes if c["tenant"] == "d2"]  # as stored: JSON text
    assert all(r["learner_id"] for r in d2_ev)  # identified grant: as stored
    log = gs.access_log(g1.id, grantor="d1")
    assert [(e["client_id"], e["action"], e["records"]) for e in log] == [("state-client", "changes", 3)]
    with pytest.raises(NotFound):
        gs.access_log(g1.id, grantor="state")  # only the grantor reads the log
    gs.revoke(g1.id, grantor="d1", by="x")
    page = feed.page(feed.reader("state", "state-client", frozenset({"changes.readonly"})), limit=1000)
    assert {c["tenant"] for c in page.changes} == {"d2"}
    with pytest.raises(ScopeError):
        feed.reader("state", "c", frozenset({"changes.readonly"}), grant_id=g1.id)


def test_the_newest_safe_version_waits_for_a_transaction_still_writing(store):
    """PostgreSQL: a change that got a lower version but commits later is never skipped."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time: seq order is commit order")
    recs = district(store, "d1")
    school = recs[0]
    with store.engine.connect() as slow_conn:
        slow = slow_conn.begin()
        try:
            store.records.apply_in(slow_conn, "d1", [org("late", "d1")], now=utcnow())  # holds seq N, not committed
            store.records.apply("d1", [school.model_copy(update={"name": "Renamed"})])  # seq N+1, committed
            with store.engine.connect() as conn:
                visible_max = conn.scalar(text("SELECT max(seq) FROM changes"))
                safe = newest_safe(conn)
            assert safe < visible_max  # the committed N+1 is not offered while N may still come
            slow.commit()
        finally:
            if slow.is_active:
                slow.rollback()
    with store.engine.connect() as conn:
        assert newest_safe(conn) == conn.scalar(text("SELECT max(seq) FROM changes"))


def test_a_reader_paging_while_writers_write_sees_each_change_once(store):
    district(store, "d1", n=2)
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    reader = feed.reader("d1", "c", frozenset({"changes.readonly"}))
    school = org(tenant="d1")
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set() and i < 60:
            store.records.apply("d1", [org(f"w{i}", "d1", parent_id=school.id)])
            i += 1

    threads = [threading.Thread(target=write) for _ in range(3)]
    for t in threads:
        t.start()
    seen: list[int] = []
    since = 0
    try:
        for _ in range(200):
            page = feed.page(reader, since=since, limit=7)
            seen += [c["version"] for c in page.changes]
            since = page.next_since
    finally:
        stop.set()
        for t in threads:
            t.join()
    while True:
        page = feed.page(reader, since=since, limit=50)
        seen += [c["version"] for c in page.changes]
        since = page.next_since
        if not page.more:
            break
    with store.engine.connect() as conn:
        everything = [r[0] for r in conn.execute(text("SELECT seq FROM changes ORDER BY seq"))]
    assert seen == everything


# --- de-identification -----------------------------------------------------------------------------

def test_pseudonyms_follow_the_state_id_across_districts_and_differ_by_recipient(store):
    district(store, "d1", state_ids={"u0": "IA-555"})
    district(store, "d2", state_ids={"u1": "IA-555"})
    p_state = Pseudonymizer(KEY, "state")
    p_research = Pseudonymizer(KEY, "research")
    d1 = Deidentifier(p_state, StateIds(store.engine, "d1"))
    d2 = Deidentifier(p_state, StateIds(store.engine, "d2"))
    kid_d1 = store.records.get("d1", "person", person("u0", org(tenant="d1"), "d1").id).model_dump(mode="json")
    kid_d2 = store.records.get("d2", "person", person("u1", org(tenant="d2"), "d2").id).model_dump(mode="json")
    other_d2 = store.records.get("d2", "person", person("u2", org(tenant="d2"), "d2").id).model_dump(mode="json")
    assert d1.record(kid_d1)["id"] == d2.record(kid_d2)["id"]  # one learner, one pseudonym, in both districts
    assert d2.record(other_d2)["id"] != d2.record(kid_d2)["id"]
    research = Deidentifier(p_research, StateIds(store.engine, "d1"))
    assert research.record(kid_d1)["id"] != d1.record(kid_d1)["id"]
    assert "IA-555" not in orjson.dumps(d1.record(kid_d1)).decode()


def test_a_deidentified_export_cannot_be_reidentified(store, tmp_path):
    """Every name, email, sourcedId, record id and native id of a person, and every id a
    recipient could recompute from public parts, is absent from the export's bytes."""
    recs = district(store, "d1", state_ids={"u0": "IA-777"}, n=4)
    g = grant(store, kinds=["person", "evidence", "enrollment", "org", "section"])
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    for fmt in ("parquet", "ndjson", "csv"):
        out = tmp_path / fmt
        manifest = export(store, out, tenant="d1", kinds=list(g.kinds), fmt=fmt, deidentifier=deid, grant_id=str(g.id))
        blob = b"".join((out / f.name).read_bytes() for f in manifest.files)
        rows = [r for f in manifest.files for r in read_back(out / f.name)]
        assert sum(f.rows for f in manifest.files) == len(rows) > 0
        people = [r for r in recs if r.kind == "person"]
        per_learner = [r for r in recs if r.kind in ("person", "evidence", "enrollment")]
        secrets = [s for p in people for s in (p.given_name, p.family_name, p.email, p.native_id, "IA-777")]
        secrets += [str(r.id) for r in per_learner] + [r.native_id for r in per_learner]
        if fmt != "parquet":  # parquet compresses: check its rows instead
            assert not [s for s in secrets if s and s.encode() in blob], fmt
        text_rows = orjson.dumps(rows, default=str).decode()
        assert not [s for s in secrets if s and s in text_rows], fmt
        assert "Essay by" not in text_rows  # free text dropped
        person_rows = [r for r in rows if r.get("kind") == "person"]
        present = {k for r in person_rows for k, v in r.items() if v is not None}
        assert present <= {"enabled", "grades", "id", "kind", "roles", "source", "status", "tenant", "updated_at", "source_updated_at"}
        assert present >= {"id", "roles", "status"}
        # joins still work inside the export: evidence points at exported people
        ids = {r["id"] for r in person_rows}
        assert {r["learner_id"] for r in rows if r.get("kind") == "evidence"} <= ids


# --- bulk export -----------------------------------------------------------------------------------

def test_an_export_writes_typed_parquet_and_a_manifest_that_checks_out(store, tmp_path):
    district(store, "d1")
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = export(store, tmp_path / "x", tenant="d1", kinds=["evidence", "person"], fmt="parquet")
    written = orjson.loads((tmp_path / "x" / "manifest.json").read_bytes())
    assert written["consistent_with"] == manifest.consistent_with > 0
    assert [f["kind"] for f in written["files"]] == ["person", "evidence"]  # dependency order
    for f in written["files"]:
        data = (tmp_path / "x" / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    schema = pq.read_schema(tmp_path / "x" / "evidence.parquet")
    assert schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("voided").type == pa.bool_()
    assert schema.field("score").type == pa.string()  # nested: JSON text
    rows = read_back(tmp_path / "x" / "evidence.parquet")
    assert len(rows) == 3 and orjson.loads(rows[0]["score"])["max"] == 10


def test_an_export_since_a_version_has_only_what_changed(store, tmp_path):
    recs = district(store, "d1")
    with store.engine.connect() as conn:
        v = newest_safe(conn)
    store.records.apply("d1", [recs[3].model_copy(update={"given_name": "Changed"})])
    manifest = export(store, tmp_path / "d", tenant="d1", kinds=["person", "evidence"], fmt="ndjson", since=v)
    assert [(f.kind, f.rows) for f in manifest.files] == [("person", 1), ("evidence", 0)]


def test_a_failing_export_leaves_nothing_behind(store, tmp_path, monkeypatch):
    district(store, "d1")
    disk_full_at(monkeypatch, 2)
    out = tmp_path / "full"
    with pytest.raises(OSError):
        export(store, out, tenant="d1", kinds=["person", "evidence"], fmt="ndjson")
    assert list(out.iterdir()) == []
    (out / "manifest.json").write_text("{}")
    with pytest.raises(ExportFailed):
        export(store, out, tenant="d1", kinds=["person"], fmt="ndjson")


# --- the API ---------------------------------------------------------------------------------------

def test_grants_feed_and_exports_over_http(api, tmp_path):
    district(api.store, "d1")
    admin = api.auth_client("d1", ["admin"])
    r = admin.post("/v1/grants", json={"grantee": "state", "purpose": "progress", "starts_at": "2020-01-01", "ends_at": "2099-01-01",
                                       "scopes": ["changes.readonly", "exports"], "kinds": ["person", "evidence"]})
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    assert r.json()["deidentified"] is True
    bad = admin.post("/v1/grants", json={"grantee": "state", "purpose": "x", "starts_at": "2020-01-01", "ends_at": "2019-01-01",
                                         "scopes": ["root"], "kinds": ["person"], "extra": 1})
    assert bad.status_code == 422
    assert sorted(e["field"] for e in bad.json()["errors"]) == ["extra"]

    state = api.auth_client("state", ["changes.readonly", "exports"])
    avail = state.get("/v1/changes/available").json()
    page = state.get("/v1/changes", params={"since": 0, "until": avail["newest"], "kinds": "person"}).json()
    assert page["changes"] and {c["tenant"] for c in page["changes"]} == {"d1"}
    assert all("given_name" not in c["record"] for c in page["changes"])
    assert state.get("/v1/changes", params={"since": "x"}).status_code == 422
    assert state.get("/v1/grants").status_code == 403  # admin only

    job = state.post("/v1/exports", json={"format": "ndjson", "kinds": ["person"], "grant": gid})
    assert job.status_code == 202, job.text
    done = wait_for(state, job.json()["id"])
    assert done["status"] == "succeeded", done
    name = done["manifest"]["files"][0]["name"]
    body = state.get(f"/v1/exports/{job.json()['id']}/files/{name}")
    assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == done["manifest"]["files"][0]["sha256"]
    assert state.get(f"/v1/exports/{job.json()['id']}/files/..%2Fmanifest.json").status_code == 404

    log = admin.get(f"/v1/grants/{gid}/access-log").json()["entries"]
    assert [e["action"] for e in log] == ["changes", "export"]
    assert admin.post(f"/v1/grants/{gid}/revoke").json()["status"] == "revoked"
    assert state.get("/v1/changes", params={"grant": gid}).status_code == 403
    assert state.post("/v1/exports", json={"format": "csv", "kinds": ["person"], "grant": gid}).status_code == 403
    other = api.auth_client("d2", ["admin"])
    assert other.get(f"/v1/grants/{gid}").status_code == 404


def wait_for(client, job_id: str) -> dict:
    import time

    deadline = time.time() + 30
    while time.time() < deadline:
        job = client.get(f"/v1/exports/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"export {job_id} did not finish")


def test_cli_grants_and_bulk_export(cli, tmp_path):
    from gateway.cli_kit import open_store

    cli("migrate")
    district(open_store(), "d1")
    out = cli("grants", "create", "--grantor", "d1", "--grantee", "state", "--purpose", "reporting", "--from", "2020-01-01",
              "--to", "2099-01-01", "--scope", "exports", "--kind", "person,evidence")
    gid = uuid.UUID(out.stdout.strip().splitlines()[0])
    cli("export", "bulk", str(tmp_path / "b"), "--grant", str(gid), "--format", "csv")
    m = orjson.loads((tmp_path / "b" / "manifest.json").read_bytes())
    assert m["deidentified"] is True and {f["kind"] for f in m["files"]} == {"person", "evidence"}
    cli("grants", "revoke", str(gid))
    with pytest.raises(ConfigError, match="revoked"):
        cli("export", "bulk", str(tmp_path / "c"), "--grant", str(gid))
    assert not Path(tmp_path / "c" / "manifest.json").exists()


def test_an_export_stopped_between_batches_closes_its_reader_and_removes_its_files(store, tmp_path, monkeypatch):
    """Many small batches fetched ahead on a thread: a grant revoked mid-way ends the export,
    the fetching thread is gone, the files are removed, and the next export still works."""
    district(store, "d1", n=9)
    from gateway.sharing import export as mod

    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(mod.EXPORT_WORKERS_ENV, "0")  # one process reading ahead on a thread (parts: the test below)
    before = set(threading.enumerate())
    out = tmp_path / "stopped"
    with pytest.raises(PermissionError):
        export(store, out, tenant="d1", kinds=["person"], fmt="parquet", check=revoked_after(2))
    # no thread of the export's left (compared as threads, not counted: an earlier test's
    # thread may end meanwhile)
    assert list(out.iterdir()) == [] and set(threading.enumerate()) - before == set()
    manifest = export(store, tmp_path / "whole", tenant="d1", kinds=["person"], fmt="parquet")
    assert manifest.files[0].rows == 9 and len(read_back(tmp_path / "whole" / "person.parquet")) == 9


def test_pseudonyms_are_hmac_sha256_of_the_recipients_key_shaped_as_uuids():
    """The hand-rolled HMAC (hash states of the padded key made once) gives the very bytes of
    ``hmac.digest``, one value or a column at a time (None stays None, ids compared lower-cased)."""
    import hmac

    key_r = hmac.digest(KEY, b"tessera.pseudonym.v1|state", "sha256")

    def expected(message: str) -> str:
        b = bytearray(hmac.digest(key_r, message.encode(), "sha256")[:16])
        b[6], b[8] = b[6] & 0x0F | 0x80, b[8] & 0x3F | 0x80  # version 8, variant 10xx (RFC 9562)
        return str(uuid.UUID(bytes=bytes(b)))

    p = Pseudonymizer(KEY, "state")
    ids = [str(uuid.uuid4()) for _ in range(50)] + [None, "ABCDEF01-2345-6789-ABCD-EF0123456789"]
    want = [None if r is None else expected(f"record:d1:{r.lower()}") for r in ids]
    assert p.records("d1", ids) == want
    assert p.records("d1", ids[-3:]) == want[-3:]  # a short column
    assert p.records("d1", [None, None]) == [None, None]
    assert p.record("d1", ids[0]) == want[0]
    assert p.learner("d1", "P-1", "IA-9 ") == expected("state:ia-9") and p.learner("d1", "P-1", None) == expected("person:d1:p-1")
    assert all(uuid.UUID(x).version == 8 and uuid.UUID(x).variant == uuid.RFC_4122 for x in want if x)


def test_state_ids_read_in_one_query_or_by_person_when_too_many(store, monkeypatch):
    """A tenant's state ids are read all at once (one query) when they fit the cache, else
    looked up by person id; both answer the same (state id kinds compared without case)."""
    records = district(store, "d1", state_ids={"u0": "IA-0", "u2": "IA-2"}, n=4)
    people = [str(r.id) for r in records if getattr(r, "kind", "") == "person"]
    other = person("x", org(tenant="d1"), "d1", identifiers=[Identifier(system="sis", kind="OneRoster.userId.SSID", value="S-9"),
                                                              Identifier(system="sis", kind="oneroster.userId.district", value="D-9")])
    store.records.apply("d1", [other])
    asked = [*people, str(other.id).upper(), str(uuid.uuid4())]
    want = {p.lower(): None for p in asked} | {people[0]: "IA-0", people[2]: "IA-2", str(other.id): "S-9"}
    from gateway.sharing import deidentify

    assert StateIds(store.engine, "d1").of(asked) == want  # a few: by person id
    monkeypatch.setattr(deidentify, "READ_ALL_FROM", 3)
    whole = StateIds(store.engine, "d1")
    assert whole.of(asked) == want and whole._all is not None
    assert whole.of([people[2], str(other.id)]) == {people[2]: "IA-2", str(other.id): "S-9"}  # answered from them
    monkeypatch.setattr(deidentify, "CACHE_MAX", 2)  # 3 state ids: too many to read at once
    by_person = StateIds(store.engine, "d1")
    assert by_person.of(asked) == want and by_person._all is None


def test_the_columnar_export_matches_record_by_record_deidentification(store, tmp_path):
    """The export decodes only the kept columns of a whole batch and de-identifies column by
    column; what it writes is what ``Deidentifier.record`` makes of each stored record."""
    district(store, "d1", state_ids={"u1": "IA-1"}, n=5)
    kinds = ["person", "enrollment", "evidence"]
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    from gateway.store.tables import RECORD_TABLES

    want = {}
    with store.engine.connect() as conn:
        for kind in kinds:
            tbl = RECORD_TABLES[kind]
            docs = [deid.record(orjson.loads(d)) for d in conn.scalars(tbl.select().with_only_columns(tbl.c.data).where(tbl.c.tenant == "d1"))]
            want[kind] = sorted(({k: v for k, v in d.items() if v is not None} for d in docs), key=lambda d: d["id"])
    for fmt in ("ndjson", "parquet"):
        out = tmp_path / fmt
        manifest = export(store, out, tenant="d1", kinds=kinds, fmt=fmt, deidentifier=deid)
        for f in manifest.files:
            rows = read_back(out / f.name)
            got = []
            for r in rows:
                r = {k: v for k, v in r.items() if v is not None}
                if fmt == "parquet":  # typed columns: JSON members as text, instants as timestamps
                    r = {k: orjson.loads(v) if k in ("roles", "grades", "activity", "score", "provenance") else v for k, v in r.items()}
                    r = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                got.append(r)
            expected = want[f.kind]
            if fmt == "parquet":
                expected = [{k: datetime.fromisoformat(v.replace("Z", "+00:00")).isoformat() if k.endswith("_at") else v
                             for k, v in d.items()} for d in expected]
            assert sorted(got, key=lambda d: d["id"]) == expected, (fmt, f.kind)


def test_the_feed_under_a_deidentified_grant_shows_what_deidentify_record_makes(store, monkeypatch):
    """The feed decodes the kept members, replaces personal ids a column at a time and writes
    each record back as JSON text; the result is ``Deidentifier.record`` of the stored record,
    for records looked up over several chunks (fetched on a thread while the last converts)."""
    from gateway.sharing import feed as feed_mod

    monkeypatch.setattr(feed_mod, "RECORD_CHUNK", 2)
    district(store, "d1", state_ids={"u2": "IA-2"}, n=5)
    grant(store, kinds=["person", "evidence", "enrollment"])
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    from gateway.store.tables import RECORD_TABLES

    want = {}
    with store.engine.connect() as conn:
        for kind in ("person", "evidence", "enrollment"):
            tbl = RECORD_TABLES[kind]
            for d in conn.scalars(tbl.select().with_only_columns(tbl.c.data).where(tbl.c.tenant == "d1")):
                shown = deid.record(orjson.loads(d))
                want[(kind, shown["id"])] = {k: v for k, v in shown.items() if v is not None}
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    page = feed.page(feed.reader("state", "state-client", frozenset({"changes.readonly"})), limit=1000)
    got = {(c["kind"], c["id"]): orjson.loads(orjson.dumps(c["record"])) for c in page.changes}
    assert got == want and len(got) == 15


def test_a_large_kind_is_exported_in_parts_by_several_processes_in_one_snapshot(store, tmp_path, monkeypatch):
    """PostgreSQL: a kind of at least two batches is split over processes that adopt the
    export's snapshot; the parts hold every record once (what one process writes), each
    file in the manifest with its rows and SHA-256, and a failure removes every part."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("parts in several processes: PostgreSQL only")
    from gateway.sharing import export as mod

    district(store, "d1", state_ids={"u3": "IA-3"}, n=12)
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(mod.EXPORT_WORKERS_ENV, "0")
    alone = export(store, tmp_path / "alone", tenant="d1", kinds=["person", "evidence"], fmt="parquet", deidentifier=deid)
    monkeypatch.setenv(mod.EXPORT_WORKERS_ENV, "2")
    seen: dict[str, int] = {}
    stats: dict[str, float] = {}
    split = export(store, tmp_path / "split", tenant="d1", kinds=["person", "evidence"], fmt="parquet", deidentifier=deid,
                   progress=lambda kind, n: seen.__setitem__(kind, seen.get(kind, 0) + n), stats=stats)
    assert [f.name for f in alone.files] == ["person.parquet", "evidence.parquet"]
    assert [f.name for f in split.files] == ["person.part-1-of-2.parquet", "person.part-2-of-2.parquet",
                                             "evidence.part-1-of-2.parquet", "evidence.part-2-of-2.parquet"]
    assert stats["workers"] == 2 and seen == {"person": 12, "evidence": 12}
    for kind in ("person", "evidence"):
        one = read_back(tmp_path / "alone" / f"{kind}.parquet")
        parts = [f for f in split.files if f.kind == kind]
        rows = [r for f in parts for r in read_back(tmp_path / "split" / f.name)]
        assert sorted(rows, key=lambda r: r["id"]) == sorted(one, key=lambda r: r["id"]) and len(rows) == 12
        assert all(f.rows > 0 for f in parts)  # both parts got some
        for f in parts:
            data = (tmp_path / "split" / f.name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.bytes
    calls = {"n": 0}

    def revoked_while_parts_run() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise PermissionError("grant revoked")

    with pytest.raises(PermissionError):
        export(store, tmp_path / "stopped", tenant="d1", kinds=["evidence"], fmt="parquet", deidentifier=deid, check=revoked_while_parts_run)
    assert list((tmp_path / "stopped").iterdir()) == []


def test_a_record_changed_again_after_a_page_is_found_with_its_current_content(store):
    """The feed finds a page's records by the instants of its changes first; a record changed
    again since (its ``updated_at`` later than the page) is looked up by id, never lost."""
    recs = district(store, "d1")
    kid = recs[3]
    assert kid.kind == "person"
    with store.engine.connect() as conn:
        first = newest_safe(conn)
    store.records.apply("d1", [kid.model_copy(update={"given_name": "Later"})])
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    page = feed.page(feed.reader("d1", "c", frozenset({"changes.readonly"})), until=first, limit=1000)
    assert page.until == first
    mine = [c for c in page.changes if c["kind"] == "person" and c["id"] == str(kid.id)]
    assert len(mine) == 1 and not mine[0]["tombstone"]
    assert orjson.loads(orjson.dumps(mine[0]["record"]))["given_name"] == "Later"
    assert {str(r.id) for r in recs} <= {c["id"] for c in page.changes if c["record"] is not None}  # every record found


def test_records_whose_json_holds_escapes_pass_the_feed_and_the_export_unchanged(store, tmp_path):
    """Quotes, backslashes, control characters and non-ASCII in a record's JSON text: the
    identified feed hands on the stored record, the de-identified feed and the export keep
    what they keep of it, byte for byte (the stored text is read as its UTF-8 bytes, never
    through a cast that reads backslashes as escapes)."""
    school = org(tenant="d1")
    odd = 'O"Brien \\ Zoë\ttab \\u0041 \\\\'
    kid = person("u-odd", school, "d1", given_name=odd, family_name="Back\\slash", email="odd@d1.example")
    fw = framework(tenant="d1")
    comp = competency("m1", fw, "d1")
    ev = evidence("statement-odd", kid, comp, "d1", activity={"system": "lms", "id": 'act "7" \\ é', "title": odd})
    store.records.apply("d1", [school, kid, fw, comp, ev])
    feed = ChangeFeed(store, GrantStore(store.engine), lambda: KEY)
    own = feed.page(feed.reader("d1", "d1-client", frozenset({"changes.readonly"})), limit=1000)
    by_kind = {c["kind"]: orjson.loads(orjson.dumps(c["record"])) for c in own.changes if c["kind"] in ("person", "evidence")}
    assert by_kind["person"]["given_name"] == odd and by_kind["person"]["family_name"] == "Back\\slash"
    assert by_kind["evidence"]["activity"]["id"] == 'act "7" \\ é' and by_kind["evidence"]["activity"]["title"] == odd
    grant(store, kinds=["person", "evidence"])
    shown = feed.page(feed.reader("state", "state-client", frozenset({"changes.readonly"})), limit=1000)
    deid_ev = [orjson.loads(orjson.dumps(c["record"])) for c in shown.changes if c["kind"] == "evidence"]
    assert [e["activity"] for e in deid_ev] == [{"system": "lms", "id": 'act "7" \\ é'}]
    export(store, tmp_path / "x", tenant="d1", kinds=["person", "evidence"], fmt="ndjson")
    rows = read_back(tmp_path / "x" / "person.ndjson")
    assert [r["given_name"] for r in rows] == [odd]
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    export(store, tmp_path / "p", tenant="d1", kinds=["evidence"], fmt="parquet", deidentifier=deid)
    assert [orjson.loads(r["activity"]) for r in read_back(tmp_path / "p" / "evidence.parquet")] == [{"system": "lms", "id": 'act "7" \\ é'}]
