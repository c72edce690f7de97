"""The delivery engines' shared interface, and the two steps both engines run.

Both engines (``embedded``: threads inside ``tessera serve``/``tessera worker``; ``temporal``:
Temporal schedules, workflows and activities) run the same two steps, defined here once:

* ``run_pull``: one pull of a route: a sync run row, ``Source.pull`` page by page, the
  cursor stored after each committed page, counts and errors on the run;
* ``deliver_one``: one attempt at one outbox row: load the row, its route and the record,
  call ``Destination.deliver``, and record what happened (delivered; retry at a time with
  backoff and jitter; wait for a dependency; dead-lettered), updating the connection's
  circuit breaker and the metrics.

Where they live: ``pull`` (run_pull), ``delivery`` (the failure policy applied to claimed
rows; ``policy`` reads it from the connection), ``dispatch`` (the embedded engine),
``webhook`` (the built-in destination), ``serve`` (the engine in ``tessera serve``).

What differs is only who calls them and when: the embedded dispatcher claims rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` and a lease (PostgreSQL; SQLite has one dispatcher),
and its scheduler starts pulls under an advisory lock; the Temporal engine makes each a
workflow (id = the idempotency key) or a Schedule, and each step an activity.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .outcomes import Outcome, SyncRunSummary
from .protocol import PageResult

if TYPE_CHECKING:
    from ..store import Store
    from ..wiring import Wiring


def run_pull(store: Store, wiring: Wiring, route_id: uuid.UUID, *, trigger: str = "manual", engine: str = "embedded",
             progress: Callable[[PageResult], None] | None = None) -> SyncRunSummary:
    """One pull of route ``route_id`` (see the module's docstring)."""
    from .pull import pull

    return pull(store, wiring, route_id, trigger=trigger, engine=engine, progress=progress)


def deliver_one(store: Store, wiring: Wiring, outbox_id: int, *, worker: str) -> Outcome:
    """One attempt at outbox row ``outbox_id`` (see the module's docstring). The caller
    holds the row's lease (embedded) or is the row's workflow (temporal). A row that is
    gone, or no longer pending (delivered, dead), is ``skipped``."""
    from sqlalchemy import select

    from ..store.tables import outbox
    from .delivery import deliverer_for

    with store.engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).mappings().first()
    if row is None or row["state"] != "pending":
        return Outcome("skipped")
    return deliverer_for(store, wiring, worker).deliver_rows([dict(row)])[0]


class DeliveryEngine(Protocol):
    name: str

    def start(self) -> None:
        """Start delivering and scheduling in the background (``tessera serve``/``worker``)."""
        ...

    def stop(self) -> None:
        ...

    def sync_once(self, route_id: uuid.UUID, *, progress: Callable[[PageResult], None] | None = None) -> SyncRunSummary:
        """Run one pull of a route now and wait for it (``tessera sync ROUTE --once``)."""
        ...

    def drain(self, *, route_id: uuid.UUID | None = None, timeout: float = 60.0) -> int:
        """Deliver what is due now (every route, or one) and return how many rows were delivered."""
        ...


def engine_for(name: str, store: Store, wiring: Wiring, **options: object) -> DeliveryEngine:
    """``embedded`` or ``temporal`` (``options``: e.g. ``address`` for Temporal, ``worker_id``)."""
    if name == "embedded":
        from .dispatch import EmbeddedEngine

        return EmbeddedEngine(store, wiring, **options)  # type: ignore[arg-type]
    if name == "temporal":
        import importlib

        # the Temporal engine's module (``temporal_engine.TemporalEngine``); imported only when asked for
        module = importlib.import_module(".temporal_engine", __package__)
        temporal: DeliveryEngine = module.TemporalEngine(store, wiring, **options)
        return temporal
    from ..errors import ConfigError

    raise ConfigError(f"unknown delivery engine {name!r}: embedded or temporal")


__all__ = ["DeliveryEngine", "Outcome", "SyncRunSummary", "deliver_one", "engine_for", "run_pull"]
