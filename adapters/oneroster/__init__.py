"""OneRoster 1.1 / 1.2, as an adapter. Its modules:

- ``csv/``: CSV bulk and delta packages in and out (package reading, the importer, the
  streamed enrollments, export);
- ``gradebook/``: line items, results, categories and score scales: storage, evidence,
  their CSV binding and the mastery write-back;
- ``mapping`` (wire -> canonical), ``to_wire`` (canonical -> wire), ``vocab``, ``values``,
  ``demographics``: the mapping shared by CSV and REST;
- ``provider``, ``gradebook_provider``, ``resources_provider``, ``query``, ``status_info``:
  the REST providers (rostering, gradebook, resources; 1.1 and 1.2), their filter grammar
  and imsx_StatusInfo errors; ``oauth1_auth``: OAuth 1.0a for the 1.1 paths;
- ``credentials``: user passwords never stored by default, sealed on request, served only
  under ``roster-credentials.readonly``; ``settings`` (``TESSERA_ONEROSTER__*``: the CSV
  package limits, what imports do with user passwords);
- ``client``: the REST client; ``cli``: the ``tessera oneroster`` group; ``scopes``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.errors import ConfigError
from gateway.model import Record

from . import tables
from .scopes import SCOPES, URI_PREFIX
from .settings import OneRosterSettings

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext
    from gateway.store import ApplyResult, Store

SAMPLES = Path(__file__).resolve().parent / "samples"
#: The demo tenant already holds an NDJSON district from source "sis"; OneRoster's demo
#: district is a different district from a different source, so the two never collide.
DEMO_SOURCE = "oneroster-sis"
DEMO_PACKAGE = "birchwood-district-v1p2.zip"


class OneRosterAdapter:
    name = "oneroster"
    title = "IMS OneRoster 1.1 / 1.2 (CSV bulk and delta)"
    #: gradebook and resource objects (``tables``), migrated as the "oneroster" Alembic branch
    metadata = tables.metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"
    #: gradebook and resources scopes; rostering's are the gateway's own
    scopes = SCOPES
    scope_uri_prefixes = (URI_PREFIX,)
    #: ``TESSERA_ONEROSTER__*``: the CSV package limits (``csv.limits``), what imports do with
    #: user passwords (``credentials``)
    settings = OneRosterSettings

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        """A CSV package (zip bytes) -> canonical records, validated without a store: every
        reference must resolve inside the package."""
        from .csv.ingest import parse_package

        raw = data if isinstance(data, bytes) else b"".join(data)
        records, _ = parse_package(raw, tenant=tenant, source=source, strict=bool(options.get("strict", False)))
        return records

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        """Canonical rostering records -> OneRoster REST JSON objects, one JSON line each.
        ``sourced_id`` (kind, id) -> sourcedId may be given; by default references are
        resolved among the records themselves."""
        import orjson

        from .to_wire import to_wire
        from .vocab import KIND_COLLECTIONS

        recs = [r for r in records if r.KIND in KIND_COLLECTIONS]
        names = {(r.KIND, r.id): r.native_id for r in recs}
        resolve = options.get("sourced_id") or (lambda kind, rid: names.get((kind, rid)))
        version = options.get("version", "1.2")
        for r in recs:
            yield orjson.dumps(to_wire(r, version=version, sourced_id=resolve)) + b"\n"

    def import_package(self, store: Store, path: Path | str | bytes, *, tenant: str, source: str = "sis", **kw: Any) -> Any:
        from .csv.ingest import import_package

        return import_package(store, path, tenant=tenant, source=source, **kw)

    def export_package(self, store: Store, out: Path | str | io.BytesIO, *, tenant: str, version: str = "1.2",
                       source: str | None = None, credentials: bool = False, deviations: Any = None) -> dict[str, int]:
        """``deviations`` (a ``gateway.errors.Deviations``) receives the references held
        unresolved that the package writes (``csv.export_held``)."""
        from .csv.export import export_package

        return export_package(store, out, tenant=tenant, version=version, source=source, credentials=credentials,
                              deviations=deviations)

    def load_demo(self, store: Store, tenant: str, console: Any = None) -> ApplyResult:
        """Load the bundled OneRoster 1.2 district (``samples/``) as source ``oneroster-sis``."""
        if tenant != "demo":
            raise ConfigError(f"the bundled sample data belongs to tenant 'demo', not {tenant!r}")
        path = SAMPLES / DEMO_PACKAGE
        if console is not None:
            console.print(f"OneRoster sample: {DEMO_PACKAGE} (source {DEMO_SOURCE})")
        report = self.import_package(store, path, tenant=tenant, source=DEMO_SOURCE)
        return report.result

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        try:
            from .provider import build_router  # the REST provider
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.provider":
                raise
            return []
        from .gradebook_provider import build_router as build_gradebook_router
        from .resources_provider import build_router as build_resources_router

        return [build_router(self, ctx), build_gradebook_router(ctx), build_resources_router(ctx)]

    def routing_roles(self) -> Mapping[str, Any]:
        """``oneroster.rest.client`` (pull a provider) and ``oneroster.gradebook`` (push
        mastery and evidence as assessmentResults): ``routing``."""
        from .routing import ROLES

        return ROLES

    def cli_groups(self) -> Mapping[str, typer.Typer]:
        """``tessera oneroster consumers create|list|revoke``."""
        from .cli import oneroster_cli

        return {"oneroster": oneroster_cli()}

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer, *, validate_app: typer.Typer | None = None) -> None:
        from .cli import register

        register(self, import_app, export_app, validate_app=validate_app)


__all__ = ["DEMO_SOURCE", "OneRosterAdapter"]
