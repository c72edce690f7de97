"""What the two LTI kits share: RSA keys and JWKS, JWTs signed right and signed wrong, a
tiny HTTP server the kit runs for its own side of the exchange, and HTML form parsing.

A kit never imports Tessera's LTI code: it speaks HTTP and signs with pyjwt/cryptography,
as a vendor's peer would. ``KitServer`` is a stdlib ``ThreadingHTTPServer`` on a loopback
port (``--option port=N`` to fix it, so the peer can be registered with its URLs before the
run); every request it receives is recorded, so checks can judge what the peer sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ..kit import Fail, Target

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
C_AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
C_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
SCOPE_LINEITEM = AGS_SCOPE + "lineitem"
SCOPE_LINEITEM_READ = AGS_SCOPE + "lineitem.readonly"
SCOPE_RESULT = AGS_SCOPE + "result.readonly"
SCOPE_SCORE = AGS_SCOPE + "score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERSHIPS = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
INST_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KitKey:
    """An RSA key the kit signs with (from ``--tool-key-file``, or made for the run)."""

    def __init__(self, pem: bytes | None = None, kid: str | None = None) -> None:
        if pem is None:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise Fail("the --tool-key-file is not an RSA private key")
            self.private = loaded
        self.public = self.private.public_key()
        self.public_pem = self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        n = self.public.public_numbers().n
        self.kid = kid or b64url(hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).digest())[:22]

    @property
    def jwk(self) -> dict[str, Any]:
        return {**json.loads(RSAAlgorithm.to_jwk(self.public)), "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None | bool = True, headers: dict[str, Any] | None = None) -> str:
        """RS256; ``kid=True`` this key's kid, ``None``/``False`` none, a string that kid."""
        head: dict[str, Any] = {"typ": "JWT", **(headers or {})}
        if kid is True:
            head["kid"] = self.kid
        elif isinstance(kid, str):
            head["kid"] = kid
        return jwt.encode(claims, self.private, algorithm="RS256", headers=head)


def load_key(target: Target) -> KitKey:
    if target.tool_key_file:
        with open(target.tool_key_file, "rb") as fh:
            return KitKey(fh.read())
    return KitKey()


def unsigned(claims: dict[str, Any], kid: str | None = None) -> str:
    """``alg: none`` (RFC 7519 6.1): no signature at all."""
    head = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    return f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: KitKey) -> str:
    """The algorithm-confusion attack: HS256 keyed with the RSA public key's PEM."""
    head = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
    return signing + "." + b64url(hmac.new(key.public_pem, signing.encode(), hashlib.sha256).digest())


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise Fail(f"not a JWT: {exc}") from None


def key_from_jwks(jwks: Any, kid: str | None) -> Any:
    """The public key of ``kid`` in a JWKS document (None when it holds no such key)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for k in keys or []:
        if isinstance(k, dict) and k.get("kty") == "RSA" and (kid is None or k.get("kid") == kid):
            try:
                return jwt.PyJWK(k, algorithm="RS256").key
            except jwt.PyJWKError:
                continue
    return None


def now() -> int:
    return int(time.time())


def new_id() -> str:
    return uuid.uuid4().hex


# --- HTML forms (auto-submitting form posts, pickers) -------------------------------------

_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b([^>]*)>", re.I)
_ATTR = re.compile(r'([a-zA-Z_:-]+)\s*=\s*("([^"]*)"|\'([^\']*)\')')


def _attrs(text: str) -> dict[str, str]:
    return {m.group(1).lower(): unescape(m.group(3) if m.group(3) is not None else m.group(4) or "") for m in _ATTR.finditer(text)}


@dataclass
class Form:
    action: str
    method: str
    hidden: dict[str, str] = field(default_factory=dict)
    #: name -> the values of its checkboxes/radios, in page order
    choices: dict[str, list[str]] = field(default_factory=dict)


def forms(html: str) -> list[Form]:
    out = []
    for m in _FORM.finditer(html):
        attrs = _attrs(m.group(1))
        form = Form(attrs.get("action", ""), attrs.get("method", "get").lower())
        for inp in _INPUT.finditer(m.group(2)):
            a = _attrs(inp.group(1))
            kind, name = a.get("type", "text").lower(), a.get("name")
            if not name:
                continue
            if kind in ("checkbox", "radio"):
                form.choices.setdefault(name, []).append(a.get("value", "on"))
            elif kind != "submit":
                form.hidden[name] = a.get("value", "")
        out.append(form)
    return out


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# --- the kit's own little server ---------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


#: (request) -> (status, headers, body)
Handler = Callable[[Received], tuple[int, dict[str, str], bytes]]


def json_answer(body: Any, status: int = 200, *, media_type: str = "application/json",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": media_type, **(headers or {})}, json.dumps(body).encode()


class KitServer:
    """A loopback HTTP server in a daemon thread; ``handler`` answers, ``received`` records."""

    def __init__(self, handler: Handler, port: int = 0, host: str = "127.0.0.1", public_url: str | None = None) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.lock = threading.Lock()
        kit = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out as two writes: without this, Nagle's algorithm and
                # the peer's delayed ACK cost 40 ms per answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Received(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                               {k.lower(): v for k, v in self.headers.items()}, body)
                with kit.lock:
                    kit.received.append(req)
                try:
                    status, headers, out = kit.handler(req)
                except Exception as exc:  # the kit's own bug: answer, never hang the peer
                    status, headers, out = 500, {"Content-Type": "text/plain"}, f"kit error: {exc!r}".encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self.httpd = ThreadingHTTPServer((host, port), _H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        #: the URL the peer reaches the kit at (``public_url`` behind a tunnel or a proxy)
        self.base = (public_url or f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{self.port}").rstrip("/")
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="lti-kit-server", daemon=True)
        self.thread.start()

    def calls(self, prefix: str = "", method: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.startswith(prefix) and (method is None or r.method == method)]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _FreshOnStale(httpx.HTTPTransport):
    """A peer that closed its keep-alive connection after an error (uvicorn does, after a
    500) makes the next request on it fail with a read error before the peer saw it: try
    that request once more on a new connection, so one crash does not fail the next check."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            return super().handle_request(request)


def kit_client(target: Target) -> httpx.Client:
    """The kits' HTTP client: no redirects followed (the kit reads them), stale connections retried."""
    return httpx.Client(timeout=target.timeout, follow_redirects=False, transport=_FreshOnStale())


def start_server(target: Target, handler: Handler) -> KitServer:
    """The kit's own server: ``--option port=N`` (default a free one), ``bind=HOST`` (default
    127.0.0.1; 0.0.0.0 for a peer on another machine) and ``public_url=URL`` (what the peer
    calls, when that is not ``http://HOST:PORT``: a tunnel, a reverse proxy with TLS)."""
    return KitServer(handler, int(option(target, "port", "0") or 0), option(target, "bind", "127.0.0.1") or "127.0.0.1",
                     option(target, "public_url"))


def option(target: Target, name: str, default: str | None = None) -> str | None:
    value = target.options.get(name)
    return value if value not in (None, "") else default


def need(target: Target, name: str) -> str:
    value = option(target, name)
    if value is None:
        raise Fail(f"this kit needs --option {name}=...")
    return value


def options_list(target: Target, name: str) -> list[str]:
    return [v.strip() for v in (option(target, name) or "").split(",") if v.strip()]
