"""Import runs: what each import brought in and what went wrong, kept for people to read
later (the console's integrator pages).

An importer wraps its work in ``ImportRuns.track``::

    with store.imports.track(tenant, "oneroster.csv", str(path)) as run:
        result = importer.load(...)
        run.done(result, deviations=devs)

On success the run records the counts; when the import raises a ``TesseraError`` (a
refused file: every error with its file, row and field) the run records the errors and the
error goes on. The run is written in its own transaction after the import's, so a refused
import still changes no record, and a failure to write the run never hides the import's
own outcome (it is logged). At most ``MAX_ERRORS`` errors are kept a run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy import Engine, func, insert, select

from ..errors import TesseraError
from ..model import utcnow
from . import tables as t
from .db import WRITE

log = logging.getLogger("tessera.imports")

MAX_ERRORS = 200


@dataclass
class ImportRun:
    """One import while it runs: ``done`` records its counts."""

    tenant: str
    source: str
    what: str
    via: str
    started_at: datetime = field(default_factory=utcnow)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deviations: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def done(self, result: Any = None, *, deviations: Any = None) -> None:
        """Counts from an ``ApplyResult`` (or anything with created/updated/unchanged) and the
        deviations normalised on the way in (a ``Deviations``: each kept as an error row too)."""
        if result is not None:
            self.created += int(getattr(result, "created", 0))
            self.updated += int(getattr(result, "updated", 0))
            self.unchanged += int(getattr(result, "unchanged", 0))
        items = list(getattr(deviations, "items", None) or [])
        self.deviations += len(items)
        self.errors.extend(_detail(d) for d in items[: MAX_ERRORS - len(self.errors)])


def _detail(e: Any) -> dict[str, Any]:
    return {"message": str(getattr(e, "message", e)), "location": getattr(e, "location", None) or "",
            "field": getattr(e, "field", None) or ""}


def shown(what: str) -> str:
    """What an import read, as it may be shown: a URL without its user, password or query."""
    if "://" not in what:
        return what
    parts = urlsplit(what)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ImportRuns:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def track(self, tenant: str, source: str, what: str, *, via: str = "cli") -> Iterator[ImportRun]:
        run = ImportRun(tenant, source, shown(what), via)
        try:
            yield run
        except TesseraError as exc:
            run.errors = [_detail(e) for e in exc.errors[:MAX_ERRORS]] or run.errors
            self._write(run, "failed", exc.detail)
            raise
        except BaseException as exc:  # an interrupted or crashed import is shown as failed too
            self._write(run, "failed", f"the import stopped: {type(exc).__name__}")
            raise
        self._write(run, "succeeded", None)

    def _write(self, run: ImportRun, status: str, message: str | None) -> None:
        row = {"id": uuid.uuid4(), "tenant": run.tenant, "source": run.source, "what": run.what[:2000], "via": run.via,
               "status": status, "started_at": run.started_at, "finished_at": utcnow(), "created": run.created,
               "updated": run.updated, "unchanged": run.unchanged, "deviations": run.deviations, "message": message,
               "errors": orjson.dumps(run.errors[:MAX_ERRORS]).decode()}
        try:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                conn.execute(insert(t.import_runs), row)
        except Exception:  # noqa: BLE001 - the import's own outcome matters more than its record
            log.exception("could not record the import run of %s", run.source)

    def recent(self, tenant: str, *, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
        """The tenant's runs, newest first, with ``errors`` parsed."""
        c = t.import_runs.c
        q = select(t.import_runs).where(c.tenant == tenant)
        if before is not None:
            q = q.where(c.started_at < before)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(c.started_at.desc(), c.id.desc()).limit(limit)).mappings().all()
        return [{**r, "errors": orjson.loads(r["errors"])} for r in rows]

    def failed_count(self, tenant: str) -> int:
        c = t.import_runs.c
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(c.tenant == tenant, c.status == "failed")).scalar_one())


__all__ = ["MAX_ERRORS", "ImportRun", "ImportRuns", "shown"]
