"""The one mastery engine of a store: attached by the composition root, found by its users.

The store knows no listener by name (DESIGN section 1): ``gateway.wiring.open_store``
calls ``attach``, which builds the store's engine and registers ``MasteryEngine.on_evidence``
as an evidence listener, so states are derived in the transaction of the evidence they
come from. Everything that reads or recomputes mastery asks ``engine_of(store)``; a store
opened without the wiring has no engine, and asking for one is an error rather than a
store that silently derives nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from gateway.errors import ConfigError

from .engine import MasteryEngine

if TYPE_CHECKING:
    from gateway.store import Store

_ENGINES: WeakKeyDictionary[Store, MasteryEngine] = WeakKeyDictionary()


def attach(store: Store) -> MasteryEngine:
    """The store's engine, created and registered as its evidence listener on first call."""
    engine = _ENGINES.get(store)
    if engine is None:
        engine = _ENGINES[store] = MasteryEngine(store)
        store.add_evidence_listener(engine.on_evidence)
    return engine


def engine_of(store: Store) -> MasteryEngine:
    """The engine ``attach`` gave this store; ConfigError for a store opened without it."""
    engine = _ENGINES.get(store)
    if engine is None:
        raise ConfigError("this store derives no mastery: open it with gateway.wiring.open_store (or wire it)")
    return engine
