"""LTI 1.3 Advantage (tool and platform) and LTI 1.1: launches, grades and rosters as evidence.

Modules are named after the spec's services:

- ``registrations``: platforms and tools Tessera knows (CLI, /v1 API, Dynamic Registration).
- ``platform``: Tessera as a platform: login initiation, authorization endpoint, signed
  id_tokens, token endpoint for tools; ``ags_server`` and ``nrps_server`` behind it.
- ``tool``: Tessera as a tool: OIDC login, launch validation, Deep Linking; ``ags_client``
  and ``nrps_client`` for service calls with a JWT client assertion.
- ``lti11``: OAuth 1.0a launches and the Basic Outcomes service (POX).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.model import Record

from . import tables, tool_tables  # noqa: F401 - both register their tables on ``tables.metadata``

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class LtiAdapter:
    name = "lti"
    title = "LTI 1.3 Advantage and LTI 1.1"
    metadata = tables.metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"

    def parse(self, data: bytes | Iterable[bytes], *, tenant: str, source: str, **options: Any) -> list[Record]:
        raise NotImplementedError

    def emit(self, records: Iterable[Record], **options: Any) -> Iterator[bytes]:
        raise NotImplementedError

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        return []

    def register_cli(self, import_app: typer.Typer, export_app: typer.Typer) -> None:
        return None


__all__ = ["LtiAdapter"]
