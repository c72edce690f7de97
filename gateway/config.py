"""Settings: environment variables ``TESSERA_*``, optionally a ``gateway.yaml``.

Precedence, highest first: environment, then the YAML file named by
``TESSERA_CONFIG`` (default ``./gateway.yaml`` when it exists), then the defaults here.
Secrets are never read from the YAML file: it may reference environment variables
(``env:NAME``) for connection credentials, and nothing else.

An adapter's settings are its own: a subclass of ``AdapterSettings`` with the env prefix
``TESSERA_<NAME>__`` (nested fields below it with ``__`` again, as Ralph does:
``TESSERA_XAPI__MERGE_EVERY``), built by the composition root (``gateway.wiring``).
Names an adapter used before it had a prefix of its own keep working for a while
(``renamed``), with a DeprecationWarning and a log warning.
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="forbid")

    database_url: str = Field(default="sqlite:///./tessera.db", description="sqlite:///path or postgresql+psycopg://...")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    keepalive_max_age: float = Field(
        default=5.0, gt=0, description="with several workers: seconds before a keep-alive connection is asked to reconnect"
    )
    public_url: str | None = Field(default=None, description="base URL clients see (behind a proxy); used for links")
    issuer: str = Field(default="tessera", description="iss of the access tokens this gateway signs")
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="requests above this get 413")
    page_size_default: int = Field(default=100, ge=1, le=1000)
    page_size_max: int = Field(default=1000, ge=1, le=10000)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    db_pool_size: int = Field(default=10, ge=1, le=200)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the ``gateway:`` section (or the top level) of gateway.yaml."""

    def _load(self) -> dict[str, Any]:
        path = Path(os.environ.get("TESSERA_CONFIG", "gateway.yaml"))
        if not path.exists():
            if "TESSERA_CONFIG" in os.environ:
                raise ConfigError(f"TESSERA_CONFIG names {path}, which does not exist")
            return {}
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        section = doc.get("gateway", doc)
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: 'gateway' must be a mapping")
        return section

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return self._load().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._load()


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


class AdapterSettings(BaseSettings):
    """Base of an adapter's settings: set ``model_config`` with ``env_prefix`` (e.g.
    ``"TESSERA_XAPI__"``) and ``env_nested_delimiter="__"``; list former environment
    names in ``renamed`` (field -> old name)."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    #: field name -> the environment variable that set it before (read when the new one is unset)
    renamed: ClassVar[dict[str, str]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _RenamedEnvSource(settings_cls))


class _RenamedEnvSource(PydanticBaseSettingsSource):
    """The former environment names of an ``AdapterSettings`` (below the new ones)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        prefix = self.settings_cls.model_config.get("env_prefix", "")
        for name, old in getattr(self.settings_cls, "renamed", {}).items():
            if old not in os.environ or (prefix + name).upper() in {k.upper() for k in os.environ}:
                continue
            message = f"{old} is deprecated: set {(prefix + name).upper()} instead"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            logging.getLogger("tessera.config").warning(message)
            found[name] = os.environ[old]
        return found


def load_adapter_settings(cls: type[AdapterSettings], **overrides: Any) -> AdapterSettings:
    """``cls`` from the environment, its validation errors as one ConfigError."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(f"{prefix}{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
