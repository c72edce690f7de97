"""A sample adapter: the smallest that declares every part of the protocol (adapters/README.md).

It adds a scope (``sample.read``), a setting (``TESSERA_SAMPLE__GREETING``, formerly
``TESSERA_SAMPLE_GREETING``), a router (``GET /sample/hello``), a CLI group (``tessera
sample notes add|list``) and a migration (its own Alembic branch "sample" and table
``sample_notes``), all without touching ``gateway/``. No distribution advertises it: the
tests wire it with ``gateway.wiring.Wiring.of(SampleAdapter())``. It has no file form, so
no ``parse``/``emit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic_settings import SettingsConfigDict

from gateway.config import AdapterSettings

from .tables import metadata

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from gateway.api.context import AppContext


class SampleSettings(AdapterSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_SAMPLE__", env_nested_delimiter="__", extra="forbid")
    renamed: ClassVar[dict[str, str]] = {"greeting": "TESSERA_SAMPLE_GREETING"}

    greeting: str = "hello"


class SampleAdapter:
    name = "sample"
    title = "A sample adapter (tests only)"
    scopes = {"sample.read": "read the sample adapter's greeting"}
    settings = SampleSettings
    metadata = metadata
    migrations = Path(__file__).resolve().parent / "migrations" / "versions"

    def routers(self, ctx: AppContext) -> list[APIRouter]:
        from .router import build_router

        return [build_router(ctx)]

    def cli_groups(self) -> Mapping[str, typer.Typer]:
        from .cli import sample_cli

        return {"sample": sample_cli()}
