"""One pull of a route (``engine.run_pull``): a sync run row, the route's ``Source`` page by
page, the cursor stored after each committed page, counts and errors on the run.

The cursor (``routes.watermark``) moves only after ``Source.pull`` yields, that is after the
page it covers is committed, so a crash re-reads at most one page, which the idempotent
store counts as unchanged. A ``DeliveryFailure`` (or anything else the source raises) ends
the run ``failed`` with the error recorded and the cursor where the last committed page
left it. A run whose pages reported failed records or errors is ``partial``. No error text
is stored before the connection's secret values are scrubbed out of it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from sqlalchemy import insert, update

from ..errors import ConfigError, NotFound
from ..model import utcnow
from ..store.db import WRITE
from ..store.tables import routes, sync_runs
from . import metrics
from .delivery import _close, role_object
from .load import load_route, scrub, secret_values
from .outcomes import SyncRunSummary
from .protocol import EXCERPT, DeliveryFailure, PageResult

if TYPE_CHECKING:
    from ..store import Store
    from ..wiring import Wiring

log = logging.getLogger("tessera.routing")

#: the most errors one run keeps (the counts still count every failure)
MAX_ERRORS = 100


def pull(store: Store, wiring: Wiring, route_id: uuid.UUID, *, trigger: str = "manual", engine: str = "embedded",
         progress: Callable[[PageResult], None] | None = None) -> SyncRunSummary:
    loaded = load_route(store.engine, route_id)
    if loaded is None:
        raise NotFound(f"no route {route_id}")
    route = loaded.route
    if route.mode != "pull" or route.source is None:
        raise ConfigError(f"route {route.name!r} is not a pull route (mode {route.mode}, source {route.source!r})")
    secrets = secret_values(route.source)
    started, clock = utcnow(), time.monotonic()
    run = SyncRunSummary(id=uuid.uuid4(), route_id=route.id, status="running", cursor_before=loaded.watermark,
                         cursor_after=loaded.watermark)
    with store.engine.connect().execution_options(**WRITE) as c, c.begin():
        c.execute(insert(sync_runs).values(id=run.id, tenant=route.tenant, route_id=route.id, trigger=trigger, engine=engine,
                                           status="running", started_at=started, cursor_before=loaded.watermark,
                                           cursor_after=loaded.watermark, errors="[]"))
    source = None
    try:
        source = role_object(wiring, route.source)
        if not callable(getattr(source, "pull", None)):
            raise ConfigError(f"connection {route.source.name!r}: role {route.source.role!r} cannot be pulled from")
        for page in source.pull(store, route, loaded.watermark):
            run.read += page.read
            run.written += page.written
            run.unchanged += page.unchanged
            run.deleted += page.deleted
            run.failed += page.failed
            for err in page.errors:
                if len(run.errors) < MAX_ERRORS:
                    run.errors.append({k: scrub(str(v), secrets) or "" for k, v in err.items()})
            metrics.RECORDS_PULLED.labels(route=route.name).inc(page.read)
            with store.engine.connect().execution_options(**WRITE) as c, c.begin():
                if page.cursor is not None:
                    run.cursor_after = page.cursor
                    c.execute(update(routes).where(routes.c.id == route.id).values(watermark=page.cursor, cursor_at=utcnow()))
                    metrics.CURSOR_AGE.labels(route=route.name).set(0)
                c.execute(update(sync_runs).where(sync_runs.c.id == run.id).values(**_counts(run)))
            if progress is not None:
                progress(page)
        run.status = "partial" if run.failed or run.errors else "succeeded"
    except DeliveryFailure as exc:
        run.status = "failed"
        where = f"HTTP {exc.status}" if exc.status else ""
        message = exc.message + (f"\n{exc.response[:EXCERPT]}" if exc.response else "")
        run.errors.append({"message": scrub(message, secrets) or "", "location": scrub(where or (exc.request or "").split("\n")[0], secrets) or ""})
    except Exception as exc:  # the run records it; the scheduler carries on with other routes
        run.status = "failed"
        log.warning("pull of route %s failed: %s", route.name, type(exc).__name__, exc_info=True)
        run.errors.append({"message": scrub(f"{type(exc).__name__}: {exc}"[:EXCERPT], secrets) or "", "location": ""})
    finally:
        if source is not None:
            _close(source)
        run.seconds = time.monotonic() - clock
        if run.status == "running":  # interrupted (KeyboardInterrupt...): say so
            run.status = "failed"
            run.errors.append({"message": "the run was interrupted", "location": ""})
        with store.engine.connect().execution_options(**WRITE) as c, c.begin():
            c.execute(update(sync_runs).where(sync_runs.c.id == run.id).values(
                status=run.status, finished_at=utcnow(), cursor_after=run.cursor_after, errors=orjson.dumps(run.errors).decode(),
                **_counts(run)))
        metrics.SYNC_RUNS.labels(route=route.name, status=run.status).inc()
    return run


def _counts(run: SyncRunSummary) -> dict[str, int]:
    return {"read": run.read, "written": run.written, "unchanged": run.unchanged, "deleted": run.deleted, "failed": run.failed}
