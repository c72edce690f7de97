"""The Adapter protocol and the registry (DESIGN section 1).

An adapter

* parses its standard's wire format into canonical records, validating as it goes and
  reporting every problem with its exact location (file, row, line, JSON path, field);
* emits canonical records back out in its wire format;
* may mount FastAPI routers at its standard's own paths (``/ims/oneroster/...``);
* may add sub-commands to ``tessera import`` and ``tessera export``;
* may keep tables of its own: the class attributes ``metadata`` (a SQLAlchemy ``MetaData``
  built with ``gateway.store.tables.NAMING``) and ``migrations`` (the folder of its Alembic
  branch); ``tessera migrate`` runs every adapter's branch (see ``gateway.store.migrate``).

Adapters register under the entry-point group ``tessera.adapters`` in their
distribution's metadata, e.g. ``oneroster = "adapters.oneroster:OneRosterAdapter"``; the
value is a class (instantiated without arguments) or an instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gateway.errors import ConfigError
from gateway.model import Record

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext

ENTRY_POINT_GROUP = "tessera.adapters"


@runtime_checkable
class Adapter(Protocol):
    """What every adapter provides. ``routers`` and ``register_cli`` may return nothing."""

    #: registry key and CLI name, e.g. "oneroster"
    name: str
    #: one line for humans
    title: str

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        """Wire -> canonical. Raises ``gateway.errors.ValidationError`` (or ``MalformedInput``)
        carrying *every* problem found, each with its location; returns nothing partial."""
        ...

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        """Canonical -> wire, as a stream of byte chunks."""
        ...

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """Routers to mount at the standard's own paths."""
        ...

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        """Add ``tessera import <name> ...`` / ``tessera export <name> ...`` commands."""
        ...


@dataclass
class Registry:
    adapters: dict[str, Adapter]

    def get(self, name: str) -> Adapter:
        try:
            return self.adapters[name]
        except KeyError:
            raise ConfigError(f"no adapter named {name!r}; installed: {sorted(self.adapters)}") from None

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self.adapters[k] for k in sorted(self.adapters))

    def __len__(self) -> int:
        return len(self.adapters)


def discover() -> Registry:
    """Load every adapter advertised under the ``tessera.adapters`` entry-point group."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party adapter must say which one it is
            raise ConfigError(f"adapter entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        adapter = obj() if isinstance(obj, type) else obj
        if not isinstance(adapter, Adapter):
            raise ConfigError(f"adapter entry point {ep.name!r} ({ep.value}) does not implement the Adapter protocol")
        if adapter.name in found:
            raise ConfigError(f"two adapters claim the name {adapter.name!r}")
        found[adapter.name] = adapter
    return Registry(found)
