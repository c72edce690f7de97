"""The Adapter protocol and the registry (DESIGN section 1; the guide is adapters/README.md).

An adapter is an object with a ``name`` (registry key and CLI name) and a ``title``.
Everything else is optional and found by attribute, so an adapter declares only what its
standard has:

* ``parse`` / ``emit`` (``Parser``, ``Emitter``): wire <-> canonical records, for standards
  with a file or message form; an adapter without one simply has no such method;
* ``scopes`` (name -> what it allows), ``implies`` (scope -> scopes it grants too) and
  ``scope_uri_prefixes`` (URI forms folded onto the short names);
* ``settings``: an ``gateway.config.AdapterSettings`` class with the env prefix
  ``TESSERA_<NAME>__``;
* ``routers(ctx)``: FastAPI routers mounted at the standard's own paths;
* ``cli_groups()``: top-level ``tessera <group>`` typer apps, and
  ``register_cli(import_app, export_app)``: ``tessera import|export <name>`` commands, both
  built with ``gateway.cli_kit`` (and, with a keyword ``validate_app``, ``tessera validate
  <name>``: a dry run that writes nothing);
* ``metadata`` (a SQLAlchemy ``MetaData`` built with ``gateway.store.types.NAMING``) and
  ``migrations`` (the folder of its Alembic branch): ``tessera migrate`` runs it;
* ``load_demo(store, tenant, console)``: sample data for ``tessera demo``;
* ``routing_roles()`` (``Routes``): connection roles the routing layer can pull from or
  deliver to (``gateway.routing.protocol``), and ``routing_kinds``: kinds of the adapter's
  own that push routes may carry besides the canonical ones (e.g. ``xapi.statement``; the
  adapter enqueues their outbox rows in its own write transaction).

The composition root, ``gateway.wiring``, is the one place that reads these. Adapters
register under the entry-point group ``tessera.adapters`` in their distribution's
metadata, e.g. ``oneroster = "adapters.oneroster:OneRosterAdapter"``; the value is a class
(instantiated without arguments) or an instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gateway.errors import ConfigError
from gateway.model import Record

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from sqlalchemy import MetaData

    from gateway.api.context import AppContext
    from gateway.config import AdapterSettings

ENTRY_POINT_GROUP = "tessera.adapters"


@runtime_checkable
class Adapter(Protocol):
    """What every adapter has. The optional parts are the protocols below."""

    #: registry key and CLI name, e.g. "oneroster"
    name: str
    #: one line for humans
    title: str


@runtime_checkable
class Parser(Protocol):
    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        """Wire -> canonical. Raises ``gateway.errors.ValidationError`` (or ``MalformedInput``)
        carrying *every* problem found, each with its location; returns nothing partial."""
        ...


@runtime_checkable
class Emitter(Protocol):
    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        """Canonical -> wire, as a stream of byte chunks."""
        ...


class Declares(Protocol):
    """The declarations an adapter may carry (each optional; read by ``gateway.wiring``)."""

    #: scope -> what it allows
    scopes: Mapping[str, str]
    #: scope -> the scopes it grants too
    implies: Mapping[str, Iterable[str]]
    #: URI prefixes whose scopes are the short name after them
    scope_uri_prefixes: Iterable[str]
    #: URI scopes standing for a scope of another name (URI -> short name)
    scope_uris: Mapping[str, str]
    #: the adapter's settings class (env prefix ``TESSERA_<NAME>__``)
    settings: type[AdapterSettings]
    #: its tables, and the folder of their Alembic branch
    metadata: MetaData
    migrations: Path


@runtime_checkable
class Mounts(Protocol):
    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """Routers to mount at the standard's own paths."""
        ...


@runtime_checkable
class Commands(Protocol):
    def cli_groups(self) -> Mapping[str, typer.Typer]:
        """Top-level groups: ``{"lrs": typer.Typer(...)}`` is ``tessera lrs ...``."""
        ...


@runtime_checkable
class ImportsExports(Protocol):
    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        """Add ``tessera import <name> ...`` / ``tessera export <name> ...`` commands; an
        adapter that also takes ``validate_app`` (keyword) adds ``tessera validate <name>``."""
        ...


@runtime_checkable
class Routes(Protocol):
    def routing_roles(self) -> Mapping[str, Callable[..., Any]]:
        """Role name (``oneroster.rest.client``, ``xapi.lrs``, ...) -> factory taking a
        ``gateway.routing.protocol.Connection`` and returning a ``Source`` and/or ``Destination``."""
        ...


@runtime_checkable
class Background(Protocol):
    def consumers(self, store: Any, settings: Any) -> list[Any]:
        """Long-running consumers of the store (each with ``start()`` and ``stop()``) that
        ``tessera worker`` runs beside the outbox and the scheduled pulls: the xAPI evidence
        deriver (``TESSERA_XAPI__DERIVE=async``), which the server's processes run too.
        ``settings``: the adapter's own (its ``settings`` class, from the environment)."""
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
