"""The console's settings: environment variables ``TESSERA_CONSOLE__*``.

The session secret signs the console's cookies. Set ``TESSERA_CONSOLE__SECRET`` (32+
random bytes, the same in every process behind one load balancer); without it, each
process derives one from the gateway's current token-signing key (``gateway.auth.keys``),
which every process of one database shares, so a key rotation signs everybody out.

OpenID Connect for staff: the district's identity provider (``OIDC_ISSUER``, its
discovery document at ``/.well-known/openid-configuration``), this console's client there
(``OIDC_CLIENT_ID``, ``OIDC_CLIENT_SECRET``) and the tenant whose staff sign in through it
(``OIDC_TENANT``). The sign-in page offers it only when it is configured. The client
secret comes from the environment only (``TESSERA_CONSOLE__OIDC_CLIENT_SECRET``); without
one the console signs in as a public client (PKCE alone).

LTI: a launch from the LMS opens a session (``gateway.console.signin``); ``LTI_ADMINS``
(default true) lets the LMS's institution administrators in as administrators.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_CONSOLE__", extra="ignore")

    enabled: bool = Field(default=True, description="serve the console under /console")
    secret: SecretStr | None = Field(default=None, description="signs session cookies; default: derived from the signing key")
    session_minutes: int = Field(default=480, ge=5, le=7 * 24 * 60, description="a session ends this long after sign-in")
    cookie_secure: bool | None = Field(
        default=None, description="Secure cookies; default: when TESSERA_PUBLIC_URL is https")
    lti_admins: bool = Field(
        default=True, description="an LMS launch with the institution Administrator role opens an administrator's session")
    oidc_issuer: str | None = Field(default=None, description="the district identity provider's issuer URL")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_tenant: str | None = Field(default=None, description="the tenant whose staff sign in through the provider")
    oidc_scopes: str = "openid email profile"


__all__ = ["ConsoleSettings"]
