"""Export jobs asked through ``/v1/exports``: queued in the database, run one at a time on
a background thread of the server process that accepted them.

A job exports into ``<export dir>/<job id>/`` (``TESSERA_EXPORT_DIR``, default ``./exports``).
Only one job per grant (or, without a grant, per tenant) may be queued or running: a second
is refused with 409. A job the process did not finish (a restart) is marked failed when the
next server starts (``JobRunner.recover``), and its folder removed.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert, select, update

from ..errors import Conflict, NotFound
from ..model import utcnow
from ..store import Store
from ..store.db import WRITE
from ..store.tables import export_jobs
from .deidentify import Deidentifier, Pseudonymizer, StateIds
from .export import export, validate
from .grants import Grant, GrantStore

ACTIVE = ("queued", "running")


def _job(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id), "status": row.status, "format": row.format, "kinds": orjson.loads(row.kinds), "since": row.since,
        "grant": str(row.grant_id) if row.grant_id else None, "tenant": row.source_tenant,
        "created_at": row.created_at.isoformat(), "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "manifest": orjson.loads(row.manifest) if row.manifest else None, "error": row.error,
    }


class JobRunner:
    def __init__(self, store: Store, grants: GrantStore, export_dir: Path, pseudonym_key: Callable[[], bytes]) -> None:
        self.store, self.grants, self.dir, self.key = store, grants, export_dir, pseudonym_key
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-export")
        self._lock = threading.Lock()

    def recover(self) -> None:
        """Jobs left queued or running by a process that stopped: failed, folders removed."""
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            ids = [r.id for r in conn.execute(select(export_jobs.c.id).where(export_jobs.c.status.in_(ACTIVE)))]
            if ids:
                conn.execute(update(export_jobs).where(export_jobs.c.id.in_(ids)).values(
                    status="failed", error="interrupted: the server stopped before the export finished", finished_at=utcnow()))
        for jid in ids:
            shutil.rmtree(self.dir / str(jid), ignore_errors=True)

    def submit(self, *, tenant: str, client_id: str, fmt: str, kinds: list[str], since: int | None, grant: Grant | None) -> dict[str, Any]:
        kinds = validate(fmt, kinds)
        if grant is not None:
            kinds = [k for k in kinds if k in grant.kinds]
            if not kinds:
                raise NotFound(f"grant {grant.id} covers none of the kinds asked")
        jid = uuid.uuid4()
        with self._lock, self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            busy = select(export_jobs.c.id).where(export_jobs.c.status.in_(ACTIVE))
            busy = busy.where(export_jobs.c.grant_id == grant.id) if grant else busy.where(
                export_jobs.c.tenant == tenant, export_jobs.c.grant_id.is_(None))
            other = conn.scalar(busy)
            if other is not None:
                raise Conflict(f"export {other} for this {'grant' if grant else 'tenant'} is still running; wait for it to finish")
            conn.execute(insert(export_jobs).values(
                id=jid, tenant=tenant, client_id=client_id, grant_id=grant.id if grant else None,
                source_tenant=grant.grantor if grant else tenant, format=fmt, kinds=orjson.dumps(kinds).decode(), since=since,
                status="queued", created_at=utcnow()))
        self._pool.submit(self._run, jid)
        return self.get(jid, tenant=tenant)

    def get(self, job_id: uuid.UUID, *, tenant: str) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(export_jobs).where(export_jobs.c.id == job_id, export_jobs.c.tenant == tenant)).first()
        if row is None:
            raise NotFound(f"no export {job_id}")
        return _job(row)

    def list(self, *, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(export_jobs).where(export_jobs.c.tenant == tenant)
                                .order_by(export_jobs.c.created_at.desc()).limit(limit))
            return [_job(r) for r in rows]

    def file(self, job_id: uuid.UUID, name: str, *, tenant: str) -> Path:
        job = self.get(job_id, tenant=tenant)
        names = {f["name"] for f in (job["manifest"] or {}).get("files", [])} | ({"manifest.json"} if job["manifest"] else set())
        if name not in names:
            raise NotFound(f"export {job_id} has no file {name!r}")
        return self.dir / str(job_id) / name

    def _set(self, job_id: uuid.UUID, **values: Any) -> None:
        with self.store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(update(export_jobs).where(export_jobs.c.id == job_id).values(**values))

    def _run(self, job_id: uuid.UUID) -> None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(export_jobs).where(export_jobs.c.id == job_id)).one()
        self._set(job_id, status="running")
        try:
            grant = self.grants.get(row.grant_id) if row.grant_id else None
            deid = None
            check = None
            if grant is not None:
                gid = grant.id
                if grant.deidentified:
                    deid = Deidentifier(Pseudonymizer(self.key(), row.tenant), StateIds(self.store.engine, grant.grantor))

                def check() -> None:  # a revoked or expired grant ends the export at the next batch
                    if not self.grants.active_for(row.tenant, "exports", grant_id=gid):
                        raise PermissionError(f"grant {gid} was revoked or has expired")

            manifest = export(self.store, self.dir / str(job_id), tenant=row.source_tenant, kinds=orjson.loads(row.kinds),
                              fmt=row.format, since=row.since, deidentifier=deid, grant_id=str(grant.id) if grant else None,
                              check=check)
            if grant is not None:
                for f in manifest.files:
                    self.grants.log(grant.id, client_id=row.client_id, action="export",
                                    detail=f"job={job_id} kind={f.kind} format={row.format}", records=f.rows)
            self._set(job_id, status="succeeded", manifest=orjson.dumps(manifest.as_json()).decode(), finished_at=utcnow())
        except Exception as exc:  # the job records why; the export removed its files
            shutil.rmtree(self.dir / str(job_id), ignore_errors=True)
            self._set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())

    def wait(self, timeout: float = 60.0) -> None:
        """Block until every submitted job has run (tests, ``tessera`` shutdown)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["JobRunner"]
