"""What the OneRoster REST kits share: the OAuth 2.0 token, JSON reads, imsx_StatusInfo.

OneRoster 1.2 secures every REST service with OAuth 2.0 client credentials (1EdTech Security
Framework) and names its scopes as URIs (``https://purl.imsglobal.org/spec/or/v1p2/scope/
roster-core.readonly``). A kit asks the token endpoint (``--token-url``, default
``{base}/oauth/token``) for the 1.2 scope URIs its checks need, with HTTP Basic client
authentication; ``--option scope=...`` replaces the scopes asked for.

Errors of the REST bindings are one ``imsx_StatusInfo`` object (codeMajor, severity,
description, ``imsx_CodeMinor.imsx_codeMinorField[].imsx_codeMinorFieldValue``);
``status_info`` checks that shape and the code minor.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from ..kit import Fail, Session, Skip, Target

SCOPE_URI = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
#: the 1.2 code minor values (rostering binding's OpenAPI imsx_CodeMinorField enumeration)
CODE_MINORS = frozenset({"fullsuccess", "invalid_filter_field", "invalid_selection_field", "invaliddata", "unauthorisedrequest",
                         "forbidden", "server_busy", "unknownobject", "internal_server_error", "invalid_sort_field"})
#: a sourcedId no target holds (the kits never invent data: only this, and ``conformance-`` test objects)
UNKNOWN_ID = "conformance-no-such-object-7f3a"


class Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def make_client(target: Target) -> httpx.Client:
    return httpx.Client(base_url=target.base_url, timeout=target.timeout, headers={"Accept": "application/json"})


def token_url(target: Target) -> str:
    return target.token_url or f"{target.base_url.rstrip('/')}/oauth/token"


def hide(s: Session, *secrets: str | None) -> None:
    """Blank ``secrets`` out of every exchange the session recorded (reports never hold one)."""
    for secret in {x for x in secrets if x and len(x) >= 4}:  # shorter: blanking it would garble the report
        forms = {secret, quote(secret, safe=""), quote_plus(secret)}
        for e in s.exchanges:
            for form in forms:
                e.url = e.url.replace(form, "(hidden)")
                e.request_body = e.request_body.replace(form, "(hidden)")
                e.response_body = e.response_body.replace(form, "(hidden)")


def request_token(s: Session, scopes: Iterable[str] | None) -> httpx.Response:
    """POST the token endpoint (client credentials) for ``scopes`` (URIs); the answer.

    HTTP Basic first (RFC 6749 2.3.1: every server supports it); a server that refuses it
    with 400/401 invalid_client is asked again with the credentials in the body (the Basic
    answer is the one reported when both fail). The secret and the token
    granted are blanked out of the recorded exchanges."""
    t = s.target
    if not t.client_id or not t.client_secret:
        raise Fail("this kit needs OAuth 2.0 client credentials: --client-id and --client-secret-env")
    data = {"grant_type": "client_credentials"}
    if scopes:
        data["scope"] = " ".join(scopes)
    r = s.post(token_url(t), data=data, auth=(t.client_id, t.client_secret))
    if r.status_code in (400, 401) and "invalid_client" in r.text:
        again = s.post(token_url(t), data={**data, "client_id": t.client_id, "client_secret": t.client_secret}, auth=None)
        if again.status_code == 200:
            r = again
    granted = None
    if r.status_code == 200:
        try:
            granted = r.json().get("access_token")
        except (ValueError, AttributeError):
            granted = None
    hide(s, t.client_secret, granted if isinstance(granted, str) else None)
    return r


def token(s: Session, *choices: Iterable[str] | None) -> str:
    """An access token for the first scope set the token endpoint grants (``--option scope`` first)."""
    wanted = [s.target.options["scope"].split()] if s.target.options.get("scope") else list(choices)
    last: httpx.Response | None = None
    for scopes in wanted:
        last = request_token(s, scopes)
        if last.status_code == 200:
            try:
                tok = last.json()["access_token"]
            except (ValueError, KeyError, TypeError):
                raise Fail(f"the token endpoint answered 200 without an access_token: {last.text[:200]!r}") from None
            if isinstance(tok, str) and tok:
                return tok
    assert last is not None
    raise Fail(f"the token endpoint {token_url(s.target)} refused the client credentials: HTTP {last.status_code} {last.text[:300]!r}")


def authenticate(s: Session, *choices: Iterable[str] | None) -> None:
    """Setup: every later request of the kit carries a token for the first scope set granted."""
    s.client.auth = Bearer(token(s, *choices))
    s.state["choices"] = choices


def uris(*names: str) -> list[str]:
    return [SCOPE_URI + n for n in names]


def body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        raise Fail(f"{r.request.method} {r.request.url.path}: the answer is not JSON (HTTP {r.status_code}, "
                   f"Content-Type {r.headers.get('content-type')!r}): {r.text[:200]!r}") from None


def expect(r: httpx.Response, *status: int) -> Any:
    """The JSON body of an answer with one of ``status``; Fail naming what came instead."""
    if r.status_code not in status:
        raise Fail(f"{r.request.method} {r.request.url.path}?{r.request.url.query.decode()}: expected HTTP "
                   f"{' or '.join(map(str, status))}, got {r.status_code}: {r.text[:300]!r}")
    return body(r) if r.content else None


def code_minors(data: Any) -> list[str]:
    try:
        fields = data["imsx_CodeMinor"]["imsx_codeMinorField"]
        return [f["imsx_codeMinorFieldValue"] for f in (fields if isinstance(fields, list) else [fields])]
    except (KeyError, TypeError):
        return []


def status_info(r: httpx.Response, status: int | tuple[int, ...], *minors: str) -> dict[str, Any]:
    """The answer is HTTP ``status`` with one imsx_StatusInfo object whose code minor is one of ``minors``."""
    statuses = status if isinstance(status, tuple) else (status,)
    data = expect(r, *statuses)
    if not isinstance(data, dict):
        raise Fail(f"HTTP {r.status_code}: the body is not one imsx_StatusInfo object: {r.text[:200]!r}")
    if data.get("imsx_codeMajor") != "failure":
        raise Fail(f"HTTP {r.status_code}: imsx_codeMajor is {data.get('imsx_codeMajor')!r}, expected 'failure'")
    if data.get("imsx_severity") != "error":
        raise Fail(f"HTTP {r.status_code}: imsx_severity is {data.get('imsx_severity')!r}, expected 'error'")
    got = code_minors(data)
    if not got:
        raise Fail(f"HTTP {r.status_code}: no imsx_CodeMinor.imsx_codeMinorField[].imsx_codeMinorFieldValue in {r.text[:200]!r}")
    if minors and not set(got) & set(minors):
        raise Fail(f"HTTP {r.status_code}: codeMinor {got}, expected {' or '.join(minors)}")
    return data


def parse_datetime(v: Any) -> datetime | None:
    if not isinstance(v, str) or "T" not in v:
        return None
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else None


def wire_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def need(value: Any, why: str) -> Any:
    """``value``, or Skip: the target holds nothing this check can test with."""
    if not value:
        raise Skip(why)
    return value


__all__ = [
    "CODE_MINORS", "SCOPE_URI", "UNKNOWN_ID", "Bearer", "authenticate", "body", "code_minors", "expect", "hide", "make_client",
    "need", "parse_datetime", "request_token", "status_info", "token", "token_url", "uris", "wire_time",
]
