"""The platform the ``lti-1.3-tool`` kit plays for the vendor's tool: its JWKS, and the
token, AGS and NRPS endpoints the tool calls back, lenient on purpose.

The server answers every well-formed call (a token even for a bad client assertion), so
that one mistake of the tool does not hide the rest; what the tool sent is recorded by
``KitServer`` and judged by the kit's checks (``lti_tool``), each with its own reason.

Paths, under the kit's base URL: ``/jwks``, ``/authorize`` (never followed: the kit reads
the tool's redirect itself), ``/token``, ``/return`` (launch_presentation.return_url),
``/deep-link-return``, ``/ags/{context}/lineitems[/{n}[/scores|/results]]``,
``/nrps/{context}/memberships`` (paged: ``nrps_page_size`` members a page, Link rel=next).
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import httpx
import jwt

from .lti_common import (
    LINEITEM,
    LINEITEMS,
    MEMBERSHIPS,
    RESULTS,
    KitKey,
    Received,
    json_answer,
    key_from_jwks,
)


class MockPlatform:
    def __init__(self, key: KitKey, *, members: list[dict[str, Any]], page_size: int = 1,
                 tool_jwks_url: str | None = None, context_title: str = "Conformance kit course") -> None:
        self.key = key
        self.extra_keys: list[KitKey] = []
        self.base = ""  # set once the server runs
        self.members = members
        self.page_size = max(1, page_size)
        self.tool_jwks_url = tool_jwks_url
        self.context_title = context_title
        self.line_items: dict[str, dict[str, Any]] = {}
        self.scores: dict[str, list[dict[str, Any]]] = {}
        self.tokens: dict[str, str] = {}  # access token -> granted scope string
        #: per token request: the assertion's verification (None when it verified)
        self.assertion_errors: list[str | None] = []
        self.lock = threading.Lock()
        self._n = 0
        self._http = httpx.Client(timeout=10)
        self._tool_jwks: Any = None

    # --- the handler ------------------------------------------------------------------

    def __call__(self, req: Received) -> tuple[int, dict[str, str], bytes]:
        p = req.path.rstrip("/")
        if p == "/jwks":
            return json_answer({"keys": [self.key.jwk, *(k.jwk for k in self.extra_keys)]})
        if p in ("/authorize", "/return", "/deep-link-return"):
            return 200, {"Content-Type": "text/plain"}, b"conformance kit: recorded"
        if p == "/token" and req.method == "POST":
            return self._token(req)
        parts = p.split("/")
        if len(parts) >= 4 and parts[1] == "ags" and parts[3] == "lineitems":
            return self._ags(req, parts[2], parts[4:])
        if len(parts) == 4 and parts[1] == "nrps" and parts[3] == "memberships" and req.method == "GET":
            return self._nrps(req, parts[2])
        return json_answer({"error": "not_found"}, 404)

    # --- token endpoint (Security Framework 4.1, RFC 7523) ------------------------------

    def verify_assertion(self, form: dict[str, str], client_id: str) -> str | None:
        """Why the tool's client assertion is not right, or None."""
        if form.get("grant_type") != "client_credentials":
            return f"grant_type is {form.get('grant_type')!r}, not client_credentials"
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "client_assertion_type is not urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assertion = form.get("client_assertion", "")
        try:
            head = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            return "client_assertion is not a JWT"
        if head.get("alg") != "RS256":
            return f"the client assertion is signed with {head.get('alg')!r}, not RS256"
        if not self.tool_jwks_url:
            return "no tool_jwks_url option: the assertion's signature cannot be checked"
        key = key_from_jwks(self._tool_jwks, head.get("kid")) if self._tool_jwks else None
        if key is None:  # first time, or a kid not seen yet (the tool rotated its key)
            try:
                self._tool_jwks = self._http.get(self.tool_jwks_url).json()
            except (httpx.HTTPError, ValueError) as exc:
                return f"the tool's JWKS ({self.tool_jwks_url}) could not be read: {exc}"
            key = key_from_jwks(self._tool_jwks, head.get("kid"))
        if key is None:
            return f"the tool's JWKS holds no RSA key with the assertion's kid {head.get('kid')!r}"
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=f"{self.base}/token", leeway=30,
                                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})
        except jwt.InvalidTokenError as exc:
            return f"the client assertion does not verify: {exc}"
        if claims["iss"] != client_id or claims["sub"] != client_id:
            return f"the assertion's iss/sub ({claims['iss']!r}/{claims['sub']!r}) are not the client_id {client_id!r}"
        return None

    def _token(self, req: Received) -> tuple[int, dict[str, str], bytes]:
        form = req.form()
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = form.get("scope", "")
        return json_answer({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope", "")},
                           headers={"Cache-Control": "no-store"})

    def scope_of(self, req: Received) -> str | None:
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        return self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None

    # --- AGS 2.0 ----------------------------------------------------------------------

    def _item_url(self, ctx: str, n: str) -> str:
        return f"{self.base}/ags/{ctx}/lineitems/{n}"

    def _ags(self, req: Received, ctx: str, rest: list[str]) -> tuple[int, dict[str, str], bytes]:
        if self.scope_of(req) is None:
            return json_answer({"error": "invalid_token"}, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not rest:
            if req.method == "GET":
                q = req.query
                items = [i for i in self.line_items.values() if i["_ctx"] == ctx and all(
                    q.get(k) in (None, i.get(f)) for k, f in (("resource_id", "resourceId"), ("tag", "tag"), ("resource_link_id", "resourceLinkId")))]
                return json_answer([{k: v for k, v in i.items() if not k.startswith("_")} for i in items], media_type=LINEITEMS)
            if req.method == "POST":
                body = req.json()
                if not isinstance(body, dict) or not body.get("label") or not isinstance(body.get("scoreMaximum"), (int, float)):
                    return json_answer({"error": "label and scoreMaximum are required"}, 400)
                with self.lock:
                    self._n += 1
                    n = str(self._n)
                made = {**body, "id": self._item_url(ctx, n), "_ctx": ctx}
                self.line_items[n] = made
                return json_answer({k: v for k, v in made.items() if not k.startswith("_")}, 201, media_type=LINEITEM)
            return json_answer({"error": "method"}, 405)
        n = rest[0]
        item = self.line_items.get(n)
        if item is None or item["_ctx"] != ctx:
            return json_answer({"error": "no such line item"}, 404)
        public = {k: v for k, v in item.items() if not k.startswith("_")}
        if len(rest) == 1:
            if req.method == "GET":
                return json_answer(public, media_type=LINEITEM)
            if req.method == "PUT":
                body = req.json()
                if isinstance(body, dict):
                    item.update({k: v for k, v in body.items() if k != "id"})
                return json_answer({k: v for k, v in item.items() if not k.startswith("_")}, media_type=LINEITEM)
            if req.method == "DELETE":
                self.line_items.pop(n, None)
                return 204, {}, b""
        elif rest[1] == "scores" and req.method == "POST":
            self.scores.setdefault(n, []).append(req.json() if isinstance(req.json(), dict) else {})
            return 204, {}, b""
        elif rest[1] == "results" and req.method == "GET":
            latest: dict[str, dict[str, Any]] = {}
            for sc in self.scores.get(n, []):
                if isinstance(sc.get("userId"), str):
                    latest[sc["userId"]] = sc
            results = [{"id": f"{item['id']}/results/{u}", "scoreOf": item["id"], "userId": u,
                        **({"resultScore": s["scoreGiven"], "resultMaximum": s.get("scoreMaximum")} if "scoreGiven" in s else {})}
                       for u, s in latest.items() if req.query.get("user_id") in (None, u)]
            return json_answer(results, media_type=RESULTS)
        return json_answer({"error": "not found"}, 404)

    # --- NRPS 2.0 ---------------------------------------------------------------------

    def _nrps(self, req: Received, ctx: str) -> tuple[int, dict[str, str], bytes]:
        if self.scope_of(req) is None:
            return json_answer({"error": "invalid_token"}, 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        role = req.query.get("role")
        members = [m for m in self.members if role is None or role in m["roles"] or any(r.endswith("#" + role) for r in m["roles"])]
        try:
            page = max(0, int(req.query.get("page", "0")))
        except ValueError:
            page = 0
        chunk = members[page * self.page_size:(page + 1) * self.page_size]
        url = f"{self.base}/nrps/{ctx}/memberships"
        headers: dict[str, str] = {}
        if (page + 1) * self.page_size < len(members):
            q = "&".join(f"{k}={v}" for k, v in (("role", role),) if v)
            headers["Link"] = f'<{url}?{q + "&" if q else ""}page={page + 1}>; rel="next"'
        body = {"id": url, "context": {"id": ctx, "label": "KIT", "title": self.context_title}, "members": chunk}
        return 200, {"Content-Type": MEMBERSHIPS, **headers}, json.dumps(body).encode()
