"""The LRS's settings: environment ``TESSERA_XAPI__*`` (``gateway.config.AdapterSettings``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gateway.config import AdapterSettings, load_adapter_settings

from .derive import BATCH
from .statement_store import MERGE_EVERY

if TYPE_CHECKING:
    from gateway.api.context import AppContext


class XapiSettings(AdapterSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_XAPI__", env_nested_delimiter="__", extra="forbid")
    renamed: ClassVar[dict[str, str]] = {"merge_every": "TESSERA_XAPI_MERGE_EVERY"}

    merge_every: int = Field(
        default=MERGE_EVERY, ge=1, description="SQLite: statements whose index rows wait in the recent tier before a merge"
    )
    derive: Literal["inline", "async"] = Field(
        default="inline",
        description="inline: a statement's evidence and mastery update commit with it; async: the LRS answers once the "
                    "statement is durable and a consumer of the statement log derives them just behind (docs/xapi-ingest.md)",
    )
    derive_batch: int = Field(default=BATCH, ge=1, description="async: statements derived in one transaction at most")
    derive_shards: int = Field(
        default=1, ge=1, le=64,
        description="async, PostgreSQL: consumers split by learner, each shard derived by one process at a time, so that "
                    "several processes derive at once (every process must say the same; SQLite: always 1)",
    )
    derive_in_server: bool = Field(
        default=True,
        description="async: the servers' processes run the consumer (one of them derives, the others stand by); false: "
                    "only `tessera worker` does, in a process of its own (its own core and GIL)",
    )
    derive_max_lag: int = Field(
        default=0, ge=0,
        description="async: a batch waits (at most derive_lag_wait_seconds) while more statements than this wait for "
                    "their evidence (backpressure; 0: never)",
    )
    derive_lag_wait_seconds: float = Field(default=30.0, ge=0, description="async: the longest a batch waits for backpressure")
    derive_wait_seconds: float = Field(
        default=5.0, ge=0, le=60, description="async: how long a read with consistent_through= waits for the evidence at most"
    )


def settings_of(ctx: AppContext) -> XapiSettings:
    """The settings the app was built with, or the environment's."""
    found = ctx.adapter_settings.get("xapi")
    return found if isinstance(found, XapiSettings) else load_adapter_settings(XapiSettings)  # type: ignore[return-value]
