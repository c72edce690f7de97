"""A CASE 1.0 provider client (httpx): page through CFDocuments, fetch CFPackages.

Authentication follows the provider: requests go out without credentials until the provider
answers 401; then, if the client was given OAuth 2.0 client credentials, it gets a token from
the token URL (RFC 6749 4.4, client authenticated with HTTP Basic, 2.3.1), retries, and reuses
the token until it expires or is refused. The secret is held in memory only and never appears
in an exception, a log line or a repr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson

from gateway.errors import AuthError, ConfigError, NotFound, TesseraError

API_PATH = "/ims/case/v1p0"


class ProviderError(TesseraError):
    """The CASE provider answered with an error or something that is not CASE (502)."""

    status = 502
    title = "Bad gateway"
    type_slug = "bad-gateway"


def provider_base(url: str) -> str:
    """``https://host`` or ``https://host/ims/case/v1p0`` -> the API base, without a trailing slash."""
    url = url.rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


class CaseClient:
    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        scope: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (client_id is None) != (client_secret is None):
            raise ConfigError("give both an OAuth 2.0 client id and its secret, or neither")
        if client_id is not None and not token_url:
            raise ConfigError("OAuth 2.0 client credentials need the provider's token URL")
        self.base = provider_base(base_url)
        self._client_id = client_id
        self.__secret = client_secret
        self._token_url = token_url
        self._scope = scope
        self._token: str | None = None
        self._token_expires = 0.0
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True,
                                  headers={"Accept": "application/json", "User-Agent": "tessera-case-client"})

    def __repr__(self) -> str:
        return f"CaseClient({self.base!r}, client_id={self._client_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- OAuth 2.0 client credentials ----------------------------------------------------------

    def _fetch_token(self) -> str:
        data = {"grant_type": "client_credentials"}
        if self._scope:
            data["scope"] = self._scope
        assert self._token_url and self._client_id and self.__secret is not None
        try:
            r = self._http.post(self._token_url, data=data, auth=(self._client_id, self.__secret))
        except httpx.HTTPError as exc:
            raise ProviderError(f"the token endpoint {self._token_url} could not be reached ({type(exc).__name__})") from None
        if r.status_code != 200:
            err = _json_or_none(r) or {}
            raise AuthError(f"the token endpoint refused the client credentials: HTTP {r.status_code} {err.get('error', '')}".strip())
        body = _json_or_none(r) or {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError("the token endpoint answered without an access_token")
        self._token = token
        self._token_expires = time.monotonic() + max(0, int(body.get("expires_in") or 3600) - 30)
        return token

    def _headers(self) -> dict[str, str]:
        if self._token and time.monotonic() < self._token_expires:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` under the API base; handles the 401 -> token -> retry dance."""
        url = f"{self.base}/{path.lstrip('/')}"
        for attempt in range(2):
            try:
                r = self._http.get(url, params=params, headers=self._headers())
            except httpx.HTTPError as exc:
                raise ProviderError(f"the CASE provider at {self.base} could not be reached ({type(exc).__name__})") from None
            if r.status_code != 401:
                break
            if self._client_id is None:
                raise AuthError(f"the CASE provider asks for authorisation ({path}): give OAuth 2.0 client credentials "
                                "(--client-id, --client-secret-env, --token-url)")
            if attempt == 0:
                self._token = None
                self._fetch_token()
        else:
            raise AuthError(f"the CASE provider refused the access token for {path}")
        if r.status_code == 404:
            raise NotFound(f"the CASE provider has no {path}: {_status_description(r)}")
        if r.status_code >= 400:
            raise ProviderError(f"the CASE provider answered HTTP {r.status_code} for {path}: {_status_description(r)}")
        return r

    # --- CASE 1.0 calls -------------------------------------------------------------------------

    def documents(self, *, page_size: int = 100, on_page: Callable[[int, int | None], None] | None = None) -> Iterator[dict[str, Any]]:
        """getAllCFDocuments, every page (``limit``/``offset``; stops at ``X-Total-Count`` or a short page)."""
        offset = 0
        while True:
            r = self.get("CFDocuments", {"limit": page_size, "offset": offset})
            body = _json_or_none(r)
            docs = body.get("CFDocuments") if isinstance(body, dict) else None
            if not isinstance(docs, list):
                raise ProviderError("the CASE provider's CFDocuments answer has no CFDocuments array")
            total = r.headers.get("X-Total-Count")
            total_n = int(total) if total and total.isdigit() else None
            yield from docs
            offset += len(docs)
            if on_page:
                on_page(offset, total_n)
            if not docs or len(docs) < page_size or (total_n is not None and offset >= total_n):
                return

    def package(self, document_id: str) -> bytes:
        """getCFPackage: the raw JSON (the adapter validates it)."""
        return self.get(f"CFPackages/{document_id}").content


def _json_or_none(r: httpx.Response) -> Any:
    try:
        return orjson.loads(r.content)
    except orjson.JSONDecodeError:
        return None


def _status_description(r: httpx.Response) -> str:
    body = _json_or_none(r)
    if isinstance(body, dict) and "imsx_description" in body:
        return str(body["imsx_description"])[:300]
    return r.reason_phrase or f"HTTP {r.status_code}"


__all__ = ["API_PATH", "CaseClient", "ProviderError", "provider_base"]
