"""The composition root: where the gateway meets its adapters (DESIGN section 1).

The one module of ``gateway/`` that imports ``adapters``. It

* finds the adapters (the registry, ``adapters.base.discover``; tests add their own with
  ``Wiring.of``),
* declares each adapter's scopes (``gateway.auth.scopes.declare``),
* hands each adapter's Alembic branch and tables to ``migrate`` (``Migrations``),
* registers the evidence listeners on a store (the mastery engine,
  ``gateway.mastery.attach``), so the store and the engine know nothing of each other,
* builds each adapter's settings (its own env prefix), and mounts its routers and CLI.

The API app (``gateway.api.app``), the CLI (``gateway.cli`` and ``gateway.cli_kit``) and the
tests open stores through ``open_store`` and reach adapters only through a ``Wiring``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.base import Adapter, Registry, discover

from .auth.scopes import declare
from .config import load_adapter_settings
from .errors import ConfigError
from .mastery.attach import attach
from .store import Branch, Migrations, Store

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from pydantic_settings import BaseSettings

    from .api.context import AppContext


class Wiring:
    """One set of adapters, wired into the gateway."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        for adapter in registry:
            scopes = getattr(adapter, "scopes", None)
            uri_scopes = getattr(adapter, "scope_uris", None)
            if scopes or uri_scopes:
                declare(scopes or {}, getattr(adapter, "implies", None), getattr(adapter, "scope_uri_prefixes", ()), uri_scopes)
        self._settings: dict[str, BaseSettings] = {}

    @classmethod
    def of(cls, *adapters: Adapter, installed: bool = True) -> Wiring:
        """The installed adapters (unless ``installed=False``) and ``adapters`` besides: how a
        test wires an adapter that no distribution advertises."""
        found = dict(discover().adapters) if installed else {}
        for adapter in adapters:
            if adapter.name in found and found[adapter.name] is not adapter:
                raise ConfigError(f"two adapters claim the name {adapter.name!r}")
            found[adapter.name] = adapter
        return cls(Registry(found))

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self.registry)

    # --- the store ------------------------------------------------------------------------------

    @cached_property
    def migrations(self) -> Migrations:
        """The gateway's migrations and every adapter's branch (``metadata``, ``migrations``)."""
        branches = []
        for adapter in self.registry:
            folder = getattr(adapter, "migrations", None)
            meta = getattr(adapter, "metadata", None)
            if folder is not None:
                branches.append(Branch(adapter.name, Path(folder), meta))
            elif meta is not None:
                raise ConfigError(f"adapter {adapter.name!r} declares tables but no migrations folder")
        return Migrations(branches)

    def wire(self, store: Store) -> Store:
        """Give ``store`` these migrations (unless it has adapter branches already: a store
        opened by another wiring keeps its schema) and the mastery engine as its evidence
        listener. Wiring a store twice changes nothing."""
        if not store.migrations.branches:
            store.migrations = self.migrations
        attach(store)
        return store

    def open_store(self, url: str) -> Store:
        return self.wire(Store.from_url(url, migrations=self.migrations))

    # --- settings, routers, CLI -------------------------------------------------------------------

    def settings(self, name: str) -> BaseSettings | None:
        """The settings of adapter ``name`` (its ``settings`` class, read once), or None."""
        if name not in self._settings:
            cls = getattr(self.registry.get(name), "settings", None)
            if cls is None:
                return None
            self._settings[name] = load_adapter_settings(cls)
        return self._settings[name]

    def all_settings(self) -> dict[str, BaseSettings]:
        """Every adapter's settings, by adapter name (read now, so a bad value fails at start)."""
        found = {a.name: self.settings(a.name) for a in self.registry}
        return {name: s for name, s in found.items() if s is not None}

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """Every adapter's routers, in registry order."""
        found: list[APIRouter] = []
        for adapter in self.registry:
            build = getattr(adapter, "routers", None)
            if build is not None:
                found.extend(build(ctx) or [])
        return found

    def consumers(self, store: Store) -> list[Any]:
        """Every adapter's background consumers of ``store`` (``consumers(store, settings)``):
        what ``tessera worker`` starts and stops besides its own work."""
        found: list[Any] = []
        for adapter in self.registry:
            build = getattr(adapter, "consumers", None)
            if build is not None:
                found.extend(build(store, self.settings(adapter.name)) or [])
        return found

    # --- routing ----------------------------------------------------------------------------------

    @cached_property
    def routing_roles(self) -> dict[str, tuple[str, Any]]:
        """Every adapter's connection roles (``routing_roles()``): role -> (adapter name, factory).
        Two adapters claiming one role is a configuration error. The gateway's own roles
        (``gateway.routing.webhook.BUILTIN_ROLES``: ``webhook``) come first."""
        from .routing.webhook import BUILTIN_ROLES

        found: dict[str, tuple[str, Any]] = {role: ("gateway", factory) for role, factory in BUILTIN_ROLES.items()}
        for adapter in self.registry:
            roles = getattr(adapter, "routing_roles", None)
            for role, factory in (roles() if roles is not None else {}).items():
                if role in found:
                    raise ConfigError(f"adapters {found[role][0]!r} and {adapter.name!r} both declare the connection role {role!r}")
                found[role] = (adapter.name, factory)
        return found

    @cached_property
    def routing_kinds(self) -> frozenset[str]:
        """Kinds push routes may carry besides the canonical record kinds (``routing_kinds``)."""
        return frozenset(k for a in self.registry for k in getattr(a, "routing_kinds", ()))

    def register_cli(self, app: typer.Typer, import_app: typer.Typer, export_app: typer.Typer, *,
                     validate_app: typer.Typer | None = None) -> None:
        """Every adapter's top-level groups (``cli_groups``) and import/export (and validate)
        sub-commands; ``validate_app`` goes to the adapters whose ``register_cli`` takes it."""
        for adapter in self.registry:
            groups = getattr(adapter, "cli_groups", None)
            for name, group in (groups() if groups is not None else {}).items():
                app.add_typer(group, name=name)
            register = getattr(adapter, "register_cli", None)
            if register is None:
                continue
            if validate_app is not None and "validate_app" in inspect.signature(register).parameters:
                register(import_app, export_app, validate_app=validate_app)
            else:
                register(import_app, export_app)


_default: Wiring | None = None
_lock = threading.Lock()


def default() -> Wiring:
    """The installed adapters (entry points), wired once per process (or what ``install``
    put in their place)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Wiring(discover())
    return _default


def install(wiring: Wiring | None) -> Wiring | None:
    """Make ``wiring`` the process's (None: discover again on next use); returns the one
    it replaces, to put back. For tests and programs that embed the gateway with adapters
    of their own (``Wiring.of``)."""
    global _default
    with _lock:
        previous, _default = _default, wiring
    return previous


def open_store(url: str) -> Store:
    """A store with every installed adapter's migrations and the mastery listener: what
    the server, the CLI, the benchmarks and the tests open."""
    return default().open_store(url)


def wire(store: Store) -> Store:
    return default().wire(store)
