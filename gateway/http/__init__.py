"""Outbound HTTP: the one client every connection to another system uses.

- ``client``: ``HttpClient`` (one httpx pool per peer; retries, 401 renewal, request ids,
  redacted logging) and ``UsesHttp`` (the lifecycle of a client class that owns one).
- ``retry``: ``RetryPolicy`` (backoff with full jitter, ``Retry-After``), ``Unreachable``,
  ``RetryLater``.
- ``auth``: ``BasicAuth``, ``BearerAuth`` over a ``TokenSource`` (OAuth 2.0 client
  credentials are ``gateway.auth.outbound.ClientCredentials``), ``OAuth1Signature``,
  ``NoAuth``.
- ``redact``: what of a request may appear in a log line.
"""

from __future__ import annotations

from .auth import Auth, BasicAuth, BearerAuth, NoAuth, OAuth1Signature, TokenSource
from .client import REQUEST_ID, HttpClient, UsesHttp
from .retry import NO_RETRY, RetryLater, RetryPolicy, Unreachable, retry_after

__all__ = [
    "NO_RETRY", "REQUEST_ID", "Auth", "BasicAuth", "BearerAuth", "HttpClient", "NoAuth", "OAuth1Signature", "RetryLater",
    "RetryPolicy", "TokenSource", "Unreachable", "UsesHttp", "retry_after",
]
