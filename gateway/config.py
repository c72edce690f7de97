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
    revocation_check_seconds: float = Field(
        default=5.0, ge=0, le=60,
        description="a revoked client's tokens are refused within this many seconds (each process asks the database "
                    "at most this often per client; 0: on every request)",
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="requests above this get 413")
    page_size_default: int = Field(default=100, ge=1, le=1000)
    page_size_max: int = Field(default=1000, ge=1, le=10000)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    export_dir: str = Field(default="./exports", description="where /v1/exports writes its files (one folder per export)")
    metrics_public: bool = Field(
        default=False, description="serve /metrics without a token (scrapes over a private network only); else scope metrics")

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
        # the routing layer's keys (gateway.routing.config) are no settings
        return {k: v for k, v in section.items() if section is not doc or k not in _ROUTING_KEYS}

    def adapter_keys(self) -> dict[str, Any]:
        """The section's keys an adapter's settings took over (``AdapterSettings.renamed``)."""
        return {k: v for k, v in self._load().items() if k in _RENAMED_KEYS}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return self._load().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._load().items() if k not in _RENAMED_KEYS}


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

    #: field name -> the environment variable that set it before (read when the new one is
    #: unset), e.g. ``{"merge_every": "TESSERA_XAPI_MERGE_EVERY"}``; the matching key of
    #: gateway.yaml (``xapi_merge_every``) is read too
    renamed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for old in cls.__dict__.get("renamed", {}).values():
            _RENAMED_KEYS.add(_yaml_key(old))

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
        current = {k.upper() for k in os.environ}
        yaml_keys: dict[str, Any] | None = None
        for name, old in getattr(self.settings_cls, "renamed", {}).items():
            new = (prefix + name).upper()
            if new in current:
                continue
            if old in os.environ:
                value, where = os.environ[old], old
            else:
                if yaml_keys is None:
                    yaml_keys = _YamlSource(self.settings_cls).adapter_keys()
                if _yaml_key(old) not in yaml_keys:
                    continue
                value, where = yaml_keys[_yaml_key(old)], f"{_yaml_key(old)} in gateway.yaml"
            message = f"{where} is deprecated: set {new} instead"
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            logging.getLogger("tessera.config").warning(message)
            found[name] = value
        return found


#: top-level gateway.yaml keys of the routing layer's connections and routes (``gateway.routing.config``)
_ROUTING_KEYS = frozenset({"tenant", "connections", "routes"})

#: gateway.yaml keys that adapters' settings took over from the core's (``renamed``)
_RENAMED_KEYS: set[str] = set()


def _yaml_key(env_name: str) -> str:
    """``TESSERA_XAPI_MERGE_EVERY`` -> ``xapi_merge_every``: the key gateway.yaml used."""
    return env_name.removeprefix("TESSERA_").lower()


def load_adapter_settings(cls: type[AdapterSettings], **overrides: Any) -> AdapterSettings:
    """``cls`` from the environment, its validation errors as one ConfigError."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(f"{prefix}{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
