"""A CASE 1.0 provider client (``gateway.http``): page through CFDocuments, fetch CFPackages.

Authentication follows the provider: requests go out without credentials until the provider
answers 401; then, if the client was given OAuth 2.0 client credentials, it gets a token from
the token URL (RFC 6749 4.4, client authenticated with HTTP Basic, 2.3.1), retries, and reuses
the token until it expires or is refused. The secret is held in memory only and never appears
in an exception, a log line or a repr. Every call is a GET: transport failures, 429 and
5xx answers are retried with backoff, ``Retry-After`` honoured (``gateway.http.retry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from gateway.auth.outbound import ClientCredentials, json_or_none
from gateway.errors import AuthError, ConfigError, NotFound, UpstreamError
from gateway.http import BearerAuth, HttpClient, RetryLater, RetryPolicy, Unreachable, UsesHttp

API_PATH = "/ims/case/v1p0"


class ProviderError(UpstreamError):
    """The CASE provider answered with an error or something that is not CASE (502)."""


def provider_base(url: str) -> str:
    """``https://host`` or ``https://host/ims/case/v1p0`` -> the API base, without a trailing slash."""
    url = url.rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


class CaseClient(UsesHttp):
    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        scope: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (client_id is None) != (client_secret is None):
            raise ConfigError("give both an OAuth 2.0 client id and its secret, or neither")
        self.base = provider_base(base_url)
        self._client_id = client_id
        # ClientCredentials refuses a missing token URL
        self._auth = ClientCredentials(token_url, client_id, client_secret, scope) if client_id is not None and client_secret is not None else None
        self.http = HttpClient(timeout=timeout, transport=transport, retry=retry,
                               auth=BearerAuth(self._auth, lazy=True) if self._auth is not None else None,
                               headers={"Accept": "application/json", "User-Agent": "tessera-case-client"})

    def __repr__(self) -> str:
        return f"CaseClient({self.base!r}, client_id={self._client_id!r})"

    # --- HTTP ---------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET ``path`` under the API base. A token is asked for only when the provider
        answers 401 (CASE frameworks are often public), then renewed once on another 401."""
        url = f"{self.base}/{path.lstrip('/')}"
        try:
            r = self.http.get(url, params=params)
        except Unreachable as exc:
            raise ProviderError(f"the CASE provider at {self.base} could not be reached ({exc.reason})") from None
        except RetryLater as exc:
            raise ProviderError(f"the CASE provider at {self.base} asks to retry in {exc.seconds:.0f} s "
                                f"(HTTP {exc.status}); try again later") from None
        if r.status_code == 401:
            if self._auth is None:
                raise AuthError(f"the CASE provider asks for authorisation ({path}): give OAuth 2.0 client credentials "
                                "(--client-id, --client-secret-env, --token-url)")
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
            body = json_or_none(r)
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


def _status_description(r: httpx.Response) -> str:
    body = json_or_none(r)
    if isinstance(body, dict) and "imsx_description" in body:
        return str(body["imsx_description"])[:300]
    return r.reason_phrase or f"HTTP {r.status_code}"


__all__ = ["API_PATH", "CaseClient", "ProviderError", "provider_base"]
