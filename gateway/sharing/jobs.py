"""Export jobs asked through ``/v1/exports``: queued in the database, run one at a time on
a background thread of the server process that accepted them.

A job exports into ``<export dir>/<job id>/`` (``TESSERA_EXPORT_DIR``, default ``./exports``).
Only one job per grant (or, without a grant, per tenant) may be queued or running, in the
whole database: a job row carries a ``lock_key`` under a partial unique index over active
jobs (migration 0012), so a second request is refused with 409 by the insert itself,
whichever server process it reaches. The process that holds a job renews its
``lease_until`` while it works; a job whose lease ran out (its process stopped) is marked
failed and its folder removed by the next request for the same key or the next server start
(``JobRunner.recover``), which frees the key. A live job of another process is never touched.

A multi-grant job (``submit_many``: one export of a recipient's many grants, ``export_many``)
holds every grant's key: its own row's key is ``grants:<job id>``, and beside it one *lock
row* per grant (format ``lock``, client ``job:<job id>``, the grant's key), inserted in one
transaction with the job, so a single-grant job of one of those grants, or another
multi-grant job sharing one, is refused with 409 while it runs. Lock rows follow their job's
status and lease and are never listed as jobs.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound
from ..model import utcnow
from ..store import Store
from ..store.db import WRITE
from ..store.tables import export_jobs
from .deidentify import Deidentifier, Pseudonymizer, StateIds
from .export import Manifest, export, validate
from .export_many import ManyManifest, export_many, sources_of, still_granted
from .grants import Grant, GrantStore

ACTIVE = ("queued", "running")
#: the format of a multi-grant job's lock rows (one per grant it holds)
LOCK = "lock"
#: how long a job stays ours without a renewal (renewed at most every RENEW seconds while it runs)
LEASE = timedelta(minutes=5)
RENEW = 30.0


def _job(row: Any, grants: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A job as the API shows it; a multi-grant job's ``grants``: [{grant, tenant}, ...]."""
    job = {
        "id": str(row.id), "status": row.status, "format": row.format, "kinds": orjson.loads(row.kinds), "since": row.since,
        "grant": str(row.grant_id) if row.grant_id else None, "tenant": row.source_tenant,
        "created_at": row.created_at.isoformat(), "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "manifest": orjson.loads(row.manifest) if row.manifest else None, "error": row.error,
    }
    if grants is not None:
        job["grants"] = [{"grant": g, "tenant": t} for g, t in grants]
    return job


def _holder(job_id: uuid.UUID) -> str:
    """The client id of a multi-grant job's lock rows."""
    return f"job:{job_id}"


def _with_locks(ids: Sequence[uuid.UUID]) -> Any:
    """These jobs' rows and their lock rows."""
    return or_(export_jobs.c.id.in_(ids), and_(export_jobs.c.format == LOCK, export_jobs.c.client_id.in_([_holder(i) for i in ids])))


def _grants_of(conn: Any, rows: Sequence[Any]) -> dict[uuid.UUID, list[tuple[str, str]]]:
    """The (grant, tenant) pairs each multi-grant job of ``rows`` holds, from its lock rows."""
    jobs = {_holder(r.id): r.id for r in rows if (r.lock_key or "").startswith("grants:")}
    out: dict[uuid.UUID, list[tuple[str, str]]] = {j: [] for j in jobs.values()}
    if jobs:
        for lock in conn.execute(select(export_jobs.c.client_id, export_jobs.c.grant_id, export_jobs.c.source_tenant).where(
                export_jobs.c.format == LOCK, export_jobs.c.client_id.in_(list(jobs))).order_by(export_jobs.c.source_tenant)):
            out[jobs[lock.client_id]].append((str(lock.grant_id), lock.source_tenant))
    return out


class JobRunner:
    def __init__(self, store: Store, grants: GrantStore, export_dir: Path, pseudonym_key: Callable[[], bytes]) -> None:
        self.store, self.grants, self.dir, self.key = store, grants, export_dir, pseudonym_key
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-export")
        self._lock = threading.Lock()
        self._owned: set[uuid.UUID] = set()  # jobs this runner (process) holds the lease of
        self._renewed = 0.0

    def recover(self, lock_key: str | Sequence[str] | None = None) -> None:
        """Jobs left queued or running by a process that stopped (their lease ran out): failed,
        folders removed. With ``lock_key``, only that grant's (or tenant's) job (a list: those keys')."""
        now = utcnow()
        expired = or_(export_jobs.c.lease_until.is_(None), export_jobs.c.lease_until < now)
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            q = select(export_jobs.c.id).where(export_jobs.c.status.in_(ACTIVE), expired)
            if isinstance(lock_key, str):
                q = q.where(export_jobs.c.lock_key == lock_key)
            elif lock_key is not None:
                q = q.where(export_jobs.c.lock_key.in_(list(lock_key)))
            found = conn.execute(q.add_columns(export_jobs.c.format, export_jobs.c.client_id)).all()
            ids = [r.id for r in found] + [uuid.UUID(r.client_id[4:]) for r in found if r.format == LOCK]
            if ids:
                conn.execute(update(export_jobs).where(_with_locks(ids)).values(
                    status="failed", error="interrupted: the server stopped before the export finished", finished_at=now))
        for jid in ids:
            shutil.rmtree(self.dir / str(jid), ignore_errors=True)

    def submit(self, *, tenant: str, client_id: str, fmt: str, kinds: list[str], since: int | None, grant: Grant | None) -> dict[str, Any]:
        kinds = validate(fmt, kinds)
        if grant is not None:
            kinds = [k for k in kinds if k in grant.kinds]
            if not kinds:
                raise NotFound(f"grant {grant.id} covers none of the kinds asked")
        jid = self._claim(tenant=tenant, client_id=client_id, fmt=fmt, kinds=kinds, since=since, grant=grant, status="queued")
        self._owned.add(jid)
        self._pool.submit(self._run, jid)
        return self.get(jid, tenant=tenant)

    def _claim(self, *, tenant: str, client_id: str, fmt: str, kinds: list[str], since: int | None, grant: Grant | None,
               status: str, many: Sequence[Grant] = ()) -> uuid.UUID:
        """Insert the job row that holds the grant's (or tenant's) key, or raise Conflict. With
        ``many`` (a multi-grant job) the row holds ``grants:<id>`` and a lock row each grant's key."""
        jid = uuid.uuid4()
        key = f"grants:{jid}" if many else f"grant:{grant.id}" if grant else f"tenant:{tenant}"
        keys = [f"grant:{g.id}" for g in many] or [key]
        self.recover(keys)  # a job of a stopped process no longer holds the key
        now = utcnow()
        try:
            with self._lock, self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                conn.execute(insert(export_jobs).values(
                    id=jid, tenant=tenant, client_id=client_id, grant_id=grant.id if grant else None,
                    source_tenant=None if many else grant.grantor if grant else tenant, format=fmt,
                    kinds=orjson.dumps(kinds).decode(), since=since, status=status, created_at=now, lock_key=key,
                    lease_until=now + LEASE))
                if many:
                    conn.execute(insert(export_jobs), [
                        {"id": uuid.uuid4(), "tenant": tenant, "client_id": _holder(jid), "grant_id": g.id, "source_tenant": g.grantor,
                         "format": LOCK, "kinds": "[]", "since": None, "status": status, "created_at": now,
                         "lock_key": f"grant:{g.id}", "lease_until": now + LEASE} for g in many])
        except IntegrityError:  # the partial unique index: another job holds this grant (or tenant)
            with self.store.engine.connect() as conn:
                other = conn.execute(select(export_jobs.c.id, export_jobs.c.format, export_jobs.c.client_id).where(
                    export_jobs.c.lock_key.in_(keys), export_jobs.c.status.in_(ACTIVE))).first()
            holder = other and (other.client_id[4:] if other.format == LOCK else other.id)
            raise Conflict(f"export {holder} for this {'grant' if grant or many else 'tenant'} is still running; wait for it to finish") from None
        return jid

    def submit_many(self, *, tenant: str, client_id: str, fmt: str, kinds: list[str], since: int | None,
                    grants: Sequence[Grant]) -> dict[str, Any]:
        """Queue one export of many grants to ``tenant`` (``export_many``), holding every grant."""
        kinds = validate(fmt, kinds)
        kinds = [k for k in kinds if any(k in g.kinds for g in grants)]
        if not kinds:
            raise NotFound("the grants cover none of the kinds asked")
        jid = self._claim(tenant=tenant, client_id=client_id, fmt=fmt, kinds=kinds, since=since, grant=None, status="queued",
                          many=grants)
        self._owned.add(jid)
        self._pool.submit(self._run, jid)
        return self.get(jid, tenant=tenant)

    def run_here(self, *, tenant: str, client_id: str, fmt: str, kinds: list[str], since: int | None, grant: Grant | None,
                 run: Callable[[Callable[[], None]], Manifest | ManyManifest], many: Sequence[Grant] = ()) -> Any:
        """Run an export in the caller's thread (``tessera export bulk``) holding the grant's
        (or tenant's; with ``many``, every grant's) key as a job does, so it and the API's jobs
        exclude each other. ``run`` gets a callable to call before each batch (it renews the
        lease) and returns the manifest."""
        jid = self._claim(tenant=tenant, client_id=client_id, fmt=fmt, kinds=kinds, since=since, grant=grant, status="running",
                          many=many)
        self._owned.add(jid)
        try:
            manifest = run(self._renew)
        except BaseException as exc:
            self._set(jid, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
            raise
        finally:
            self._owned.discard(jid)
        self._set(jid, status="succeeded", manifest=orjson.dumps(manifest.as_json()).decode(), finished_at=utcnow())
        return manifest

    def _renew(self, force: bool = False) -> None:
        """Push the lease of every job this runner holds (queued or running) further out."""
        if not force and time.monotonic() - self._renewed < RENEW:
            return
        self._renewed = time.monotonic()
        owned = list(self._owned)
        if owned:
            self._set_many(owned, lease_until=utcnow() + LEASE)

    def get(self, job_id: uuid.UUID, *, tenant: str) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(export_jobs).where(export_jobs.c.id == job_id, export_jobs.c.tenant == tenant,
                                                         export_jobs.c.format != LOCK)).first()
            if row is None:
                raise NotFound(f"no export {job_id}")
            return _job(row, _grants_of(conn, [row]).get(row.id))

    def list(self, *, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(export_jobs).where(export_jobs.c.tenant == tenant, export_jobs.c.format != LOCK)
                                .order_by(export_jobs.c.created_at.desc()).limit(limit)).all()
            many = _grants_of(conn, rows)
            return [_job(r, many.get(r.id)) for r in rows]

    def file(self, job_id: uuid.UUID, name: str, *, tenant: str) -> Path:
        job = self.get(job_id, tenant=tenant)
        names = {f["name"] for f in (job["manifest"] or {}).get("files", [])} | ({"manifest.json"} if job["manifest"] else set())
        path = self.dir / str(job_id) / name
        if name not in names:
            raise NotFound(f"export {job_id} has no file {name!r}")
        if not path.is_file():  # written elsewhere (tessera export bulk OUT/) or removed since
            raise NotFound(f"export {job_id} was written to a folder of the server's operator; its files are not served")
        return path

    def _set(self, job_id: uuid.UUID, **values: Any) -> None:
        self._set_many([job_id], **values)

    def _set_many(self, job_ids: Sequence[uuid.UUID], **values: Any) -> None:
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(export_jobs).where(_with_locks(job_ids)).values(**values))

    def _run(self, job_id: uuid.UUID) -> None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(export_jobs).where(export_jobs.c.id == job_id)).one()
        self._set(job_id, status="running", lease_until=utcnow() + LEASE)
        self._finish(job_id, lambda: self._export_many(row) if (row.lock_key or "").startswith("grants:") else self._export_one(row))

    def _finish(self, job_id: uuid.UUID, work: Callable[[], Manifest | ManyManifest]) -> None:
        """Run a job's export and record how it ended: its manifest, or why it failed (the
        export removed its files; the folder goes too)."""
        try:
            manifest = work()
            self._set(job_id, status="succeeded", manifest=orjson.dumps(manifest.as_json()).decode(), finished_at=utcnow())
        except Exception as exc:
            shutil.rmtree(self.dir / str(job_id), ignore_errors=True)
            self._set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
        finally:
            self._owned.discard(job_id)

    def _export_one(self, row: Any) -> Manifest:
        job_id = row.id
        grant = self.grants.get(row.grant_id) if row.grant_id else None
        deid = None
        if grant is not None and grant.deidentified:
            deid = Deidentifier(Pseudonymizer(self.key(), row.tenant), StateIds(self.store.engine, grant.grantor))

        def check() -> None:  # before each batch: keep the lease; a revoked or expired grant ends the export
            self._renew()
            if grant is not None and not self.grants.active_for(row.tenant, "exports", grant_id=grant.id):
                raise PermissionError(f"grant {grant.id} was revoked or has expired")

        manifest = export(self.store, self.dir / str(job_id), tenant=row.source_tenant, kinds=orjson.loads(row.kinds),
                          fmt=row.format, since=row.since, deidentifier=deid, grant_id=str(grant.id) if grant else None,
                          check=check)
        if grant is not None:
            for f in manifest.files:
                self.grants.log(grant.id, client_id=row.client_id, action="export",
                                detail=f"job={job_id} kind={f.kind} format={row.format}", records=f.rows)
        return manifest

    def _export_many(self, row: Any) -> ManyManifest:
        job_id = row.id
        with self.store.engine.connect() as conn:
            held = [uuid.UUID(g) for g, _ in _grants_of(conn, [row])[job_id]]
        grants = [self.grants.get(g) for g in held]

        def check() -> None:  # before each batch: keep the lease; a grant revoked or expired ends the export
            self._renew()
            still_granted(self.grants, row.tenant, held)

        check()
        manifest = export_many(self.store, self.dir / str(job_id), recipient=row.tenant,
                               sources=sources_of(grants, key=self.key(), engine=self.store.engine), kinds=orjson.loads(row.kinds),
                               fmt=row.format, since=row.since, check=check)
        self.grants.log_many([(uuid.UUID(f.grant), f"job={job_id} tenant={f.tenant} kind={f.kind} format={row.format}", f.rows)
                              for f in manifest.files if f.grant], client_id=row.client_id, action="export")
        return manifest

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every submitted job has run (tests, ``tessera`` shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["JobRunner"]
