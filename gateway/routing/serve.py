"""The delivery engine inside ``tessera serve``: started with the app (its lifespan), stopped
after it. ``TESSERA_ROUTING__ENGINE`` chooses it: ``embedded`` (the default), ``temporal``,
or ``off`` (another process, e.g. ``tessera worker``, delivers)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .engine import engine_for

if TYPE_CHECKING:
    from fastapi import FastAPI

#: environment variable choosing the engine ``tessera serve`` starts (embedded | temporal | off)
ENGINE_SETTING = "TESSERA_ROUTING__ENGINE"

def configured_engine() -> str:
    """The engine ``tessera serve`` starts: ``TESSERA_ROUTING__ENGINE`` (embedded | temporal | off)."""
    return (os.environ.get(ENGINE_SETTING) or "embedded").strip().lower()


def install(app: FastAPI) -> None:
    """Start the configured delivery engine with the app (its lifespan) and stop it after."""
    name = configured_engine()
    if name == "off":
        return
    ctx, wiring = app.state.ctx, getattr(app.state, "wiring", None)
    if wiring is None:
        from ..wiring import default

        wiring = default()
    engine = engine_for(name, ctx.store, wiring)
    app.state.routing_engine = engine
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        from starlette.concurrency import run_in_threadpool

        engine.start()
        try:
            async with original(a) as state:
                yield state
        finally:
            await run_in_threadpool(engine.stop)

    app.router.lifespan_context = lifespan
