"""The OneRoster adapter's settings: environment ``TESSERA_ONEROSTER__*``
(``gateway.config.AdapterSettings``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gateway.config import AdapterSettings, load_adapter_settings

#: what an import does with user passwords (``credentials``): drop them (the default) or keep
#: them sealed with the gateway's secret key
KeepCredentials = Literal["drop", "sealed"]


class OneRosterSettings(AdapterSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_ONEROSTER__", env_nested_delimiter="__", extra="forbid")

    keep_credentials: KeepCredentials = Field(
        default="drop",
        description="user passwords in OneRoster imports (users.csv password, 1.2 userProfiles credentials): "
                    "'drop' never stores them; 'sealed' keeps them encrypted with TESSERA_SECRET_KEY, served only "
                    "under the roster-credentials.readonly scope",
    )


def current_settings() -> OneRosterSettings:
    """The environment's settings (commands and imports outside the app)."""
    return load_adapter_settings(OneRosterSettings)  # type: ignore[return-value]


__all__ = ["KeepCredentials", "OneRosterSettings", "current_settings"]
