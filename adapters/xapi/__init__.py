"""xAPI 1.0.3 / 2.0: a Learning Record Store whose statements become competency evidence.

- ``http``: version negotiation, xAPI errors (400 with a message), LRS authentication
  (HTTP Basic per tenant, OAuth 2.0 bearer), CORS, the alternate request syntax.
- ``validation``: statement validation exactly as the spec's Data section says.
- ``statements``: the Statement Resource, About, Activities and Agents resources.
- ``documents``: State, Activity Profile and Agent Profile resources.
- ``evidence``: statements -> canonical Evidence (verbs in mappings/xapi-verbs.yaml, cmi5).
- ``client``: pull from / forward to another LRS.
- ``scopes``, ``settings`` (``TESSERA_XAPI__*``), ``cli`` (``tessera lrs ...``): what the
  adapter declares to the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.model import Record

from . import document_tables, partitions, tables  # noqa: F401 - the tables on ``tables.metadata``, the partitioned ones (PostgreSQL)
from .scopes import IMPLIES, SCOPES
from .settings import XapiSettings

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class XapiAdapter:
    name = "xapi"
    title = "xAPI 1.0.3 / 2.0 Learning Record Store"
    metadata = tables.metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"
    scopes = SCOPES
    implies = IMPLIES
    settings = XapiSettings
    #: push routes may carry statements as they are (``routing``: forwarded to another LRS)
    routing_kinds = ("xapi.statement",)

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        """xAPI statements (one, or a JSON array) -> canonical records: the Persons their
        actors need and the Evidence they carry. Validated strictly (``version``: "1.0.3",
        the default, or "2.0.0"); ``store`` (required) resolves actors and alignments, and
        ``authority`` (an xAPI Agent) is the authority of statements that have none."""
        import orjson

        from gateway.errors import ConfigError, MalformedInput, ValidationError

        from .evidence import EvidenceMapper
        from .http import V1, XapiError
        from .statements import complete
        from .validation import statements

        store = options.get("store")
        if store is None:
            raise ConfigError("parsing xAPI statements resolves actors and alignments in a store: pass store=")
        raw = data if isinstance(data, bytes) else b"".join(data)
        try:
            batch = statements(orjson.loads(raw), options.get("version", V1))
        except orjson.JSONDecodeError as exc:
            raise MalformedInput(f"the statements are not valid JSON: {exc}") from None
        except XapiError as exc:
            raise ValidationError(exc.detail) from None
        authority = options.get("authority") or {"objectType": "Agent", "account": {"homePage": "https://tessera.invalid", "name": source}}
        given = [s.get("authority", authority) for s in batch]  # kept: these statements come from another LRS
        complete(batch, authority, options.get("version", V1))
        for s, a in zip(batch, given, strict=True):
            s["authority"] = a
        return EvidenceMapper(store, source=source).map(tenant, batch).records

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        """One router mounting the whole LRS at /xapi and /xAPI (see ``http``)."""
        from .http import lrs_router
        from .statements import build_router as statements_router

        routers = [statements_router(ctx)]
        try:
            from .documents import build_router as documents_router
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.documents":
                raise
        else:
            routers.append(documents_router(ctx))
        return [lrs_router(ctx, routers)]

    def routing_roles(self) -> Mapping[str, Any]:
        """``xapi.lrs``: pull statements from another LRS, forward statements to it (``routing``)."""
        from .routing import ROLES

        return ROLES

    def consumers(self, store: Any, settings: Any) -> list[Any]:
        """With ``TESSERA_XAPI__DERIVE=async``, the consumer that derives deferred statements'
        evidence (``derive.Deriver``), for ``tessera worker``: a worker consumes beside the
        servers (one consumer at a time, whichever process holds the lock; the others stand by)."""
        if not isinstance(settings, XapiSettings) or settings.derive != "async":
            return []
        from .derive import Deriver, register_metrics
        from .evidence import EvidenceMapper

        register_metrics()
        return [Deriver(store, EvidenceMapper(store), batch=settings.derive_batch, shards=settings.derive_shards)]

    def cli_groups(self) -> Mapping[str, typer.Typer]:
        """``tessera lrs credentials create|list|revoke``."""
        from .cli import lrs_cli

        return {"lrs": lrs_cli()}


__all__ = ["XapiAdapter"]
