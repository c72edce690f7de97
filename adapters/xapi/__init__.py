"""xAPI 1.0.3 / 2.0: a Learning Record Store whose statements become competency evidence.

- ``http``: version negotiation, xAPI errors (400 with a message), LRS authentication
  (HTTP Basic per tenant, OAuth 2.0 bearer), CORS, the alternate request syntax.
- ``validation``: statement validation exactly as the spec's Data section says.
- ``statements``: the Statement Resource, About, Activities and Agents resources.
- ``documents``: State, Activity Profile and Agent Profile resources.
- ``evidence``: statements -> canonical Evidence (verbs in mappings/xapi-verbs.yaml, cmi5).
- ``client``: pull from / forward to another LRS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.model import Record

from . import document_tables, tables  # noqa: F401 - both register their tables on ``tables.metadata``

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class XapiAdapter:
    name = "xapi"
    title = "xAPI 1.0.3 / 2.0 Learning Record Store"
    metadata = tables.metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        raise NotImplementedError  # filled in by adapters.xapi.evidence

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        raise NotImplementedError

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        return []

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        return None


__all__ = ["XapiAdapter"]
