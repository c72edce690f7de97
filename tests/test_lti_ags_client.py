"""The AGS client and the RFC 7523 service authentication, against a platform mocked with
respx (the platform's token endpoint and gradebook are external peers).

The mocked platform checks what a real one checks: the client assertion's signature against
Tessera's JWKS, its iss/sub/aud/jti, the scopes, the bearer token, and each AGS media type."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import orjson
import pytest
import respx

from adapters.lti.claims import C_AGS
from adapters.lti.tool import assignments_grades as ags
from adapters.lti.tool.message_launch import Launch
from adapters.lti.tool.platforms import Platform
from adapters.lti.tool.service_auth import ASSERTION_TYPE, ServiceAuth
from gateway.auth import Auth
from gateway.errors import UpstreamError, ValidationError
from gateway.http import HttpClient
from gateway.store import Store

TOKEN_URL = "https://lms.example.edu/login/oauth2/token"
LINEITEMS = "https://lms.example.edu/api/lti/courses/7/line_items"
CLIENT_ID = "tessera-client-1"
ALL = [ags.SCOPE_LINEITEM, ags.SCOPE_RESULT, ags.SCOPE_SCORE]


def platform() -> Platform:
    return Platform(uuid.uuid4(), "t1", "LMS", "https://lms.example.edu", CLIENT_ID, ("d1",), "https://lms.example.edu/auth",
                    TOKEN_URL, "https://lms.example.edu/jwks", "sis")


class Gradebook:
    """The platform: a token endpoint that checks the client assertion, and line items."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.tokens_issued = 0
        self.items: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.jtis: set[str] = set()
        self.revoked: set[str] = set()

    def token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert form["grant_type"] == "client_credentials" and form["client_assertion_type"] == ASSERTION_TYPE
        kid = jwt.get_unverified_header(form["client_assertion"])["kid"]
        key = self.auth.keys.find(kid)
        claims = jwt.decode(form["client_assertion"], key.public_key, algorithms=["RS256"], audience=TOKEN_URL)
        assert claims["iss"] == claims["sub"] == CLIENT_ID and claims["exp"] - claims["iat"] <= 300
        assert claims["jti"] not in self.jtis
        self.jtis.add(claims["jti"])
        self.tokens_issued += 1
        return httpx.Response(200, json={"access_token": f"tok-{self.tokens_issued}", "token_type": "Bearer",
                                         "expires_in": 3600, "scope": form["scope"]})

    def _authorised(self, request: httpx.Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return token.startswith("tok-") and token not in self.revoked

    def line_items(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return httpx.Response(401)
        if request.method == "POST":
            assert request.headers["content-type"] == ags.LINEITEM
            item = {**orjson.loads(request.content), "id": f"{LINEITEMS}/{len(self.items) + 1}"}
            self.items.append(item)
            return httpx.Response(201, json=item, headers={"Content-Type": ags.LINEITEM})
        assert request.headers["accept"] == ags.LINEITEMS
        q = parse_qs(request.url.query.decode())
        found = [i for i in self.items if all(i.get(k) == q[p][0] for p, k in (("resource_id", "resourceId"), ("tag", "tag")) if p in q)]
        page = int(q.get("page", ["0"])[0])
        headers = {"Content-Type": ags.LINEITEMS}
        if page == 0 and len(found) > 1:  # paging: one item per page, Link rel="next"
            headers["Link"] = f'<{LINEITEMS}?page=1>; rel="next"'
            found = found[:1]
        elif page == 1:
            found = found[1:]
        return httpx.Response(200, json=found, headers=headers)

    def scores_(self, request: httpx.Request) -> httpx.Response:
        assert self._authorised(request) and request.headers["content-type"] == ags.SCORE
        self.scores.append({**orjson.loads(request.content), "lineitem": str(request.url).rsplit("/scores", 1)[0]})
        return httpx.Response(204)

    def results(self, request: httpx.Request) -> httpx.Response:
        assert self._authorised(request) and request.headers["accept"] == ags.RESULTS
        item = str(request.url).split("/results")[0]
        q = parse_qs(request.url.query.decode())
        out = [{"id": f"{item}/results/{s['userId']}", "scoreOf": item, "userId": s["userId"], "resultScore": s["scoreGiven"],
                "resultMaximum": s["scoreMaximum"]} for s in self.scores if s["lineitem"] == item and s["userId"] in q.get("user_id", [s["userId"]])]
        return httpx.Response(200, json=out, headers={"Content-Type": ags.RESULTS})

    def mount(self, mock: respx.MockRouter) -> None:
        mock.post(TOKEN_URL).mock(side_effect=self.token)
        mock.route(url__startswith=LINEITEMS, path__regex=r"/scores$").mock(side_effect=self.scores_)
        mock.route(url__startswith=LINEITEMS, path__regex=r"/results$").mock(side_effect=self.results)
        mock.route(url__startswith=LINEITEMS).mock(side_effect=self.line_items)


@pytest.fixture
def setup(store: Store) -> Any:
    auth = Auth.build(store.engine, issuer="tessera", token_ttl_seconds=3600)
    book = Gradebook(auth)
    with respx.mock(assert_all_called=False) as mock, HttpClient() as http:
        book.mount(mock)
        yield book, ServiceAuth(auth.keys, http)


def client(service: ServiceAuth, scopes: list[str] = ALL) -> ags.AgsClient:
    return ags.AgsClient(service, platform(), ags.AgsEndpoint(frozenset(scopes), LINEITEMS, None))


def test_mastery_creates_the_competency_column_once_and_posts_scores(setup: Any) -> None:
    book, service = setup
    c = client(service)
    ref = "https://case.example/uri/0b6a-rl-3-1"
    item = c.post_mastery(ref, "RL.3.1", "tessera:competency", "user-1", 0.75)
    c.post_mastery(ref, "RL.3.1", "tessera:competency", "user-2", 1.0)
    assert len(book.items) == 1
    assert book.items[0] | {} == {"id": item["id"], "label": "RL.3.1", "scoreMaximum": 100, "resourceId": ref, "tag": "tessera:competency"}
    first = book.scores[0]
    assert (first["userId"], first["scoreGiven"], first["scoreMaximum"]) == ("user-1", 75.0, 100.0)
    assert first["activityProgress"] == "Completed" and first["gradingProgress"] == "FullyGraded"
    assert "." in first["timestamp"] and first["timestamp"].endswith("+00:00")
    assert [r["resultScore"] for r in c.results(item["id"], user_id="user-2")] == [100.0]
    assert book.tokens_issued <= 3  # one token per scope set, cached until expiry


def test_line_items_follow_link_next(setup: Any) -> None:
    _, service = setup
    c = client(service)
    for n in range(2):
        c.create_line_item(label=f"C{n}", resource_id=f"r{n}", tag="t")
    assert [i["label"] for i in c.line_items()] == ["C0", "C1"]


def test_a_token_is_cached_and_a_refused_one_is_replaced(setup: Any) -> None:
    book, service = setup
    p = platform()
    assert service.token(p, ALL) == service.token(p, list(reversed(ALL))) == "tok-1"
    book.revoked.add("tok-1")  # the platform forgets the token before it expires
    r = service.request(p, ALL, "GET", LINEITEMS, headers={"Accept": ags.LINEITEMS})
    assert r.status_code == 200 and book.tokens_issued == 2
    assert service.token(p, ALL) == "tok-2"


def test_scopes_not_granted_in_the_launch_are_not_used(setup: Any) -> None:
    _, service = setup
    c = client(service, [ags.SCOPE_RESULT])
    with pytest.raises(ValidationError, match="score"):
        c.post_score(f"{LINEITEMS}/1", "u", 1, 1)
    with pytest.raises(ValidationError, match="between 0 and 1"):
        client(service).post_mastery("r", "l", "t", "u", 1.5)


def test_the_endpoint_comes_from_the_launch_claim() -> None:
    launch = Launch(platform(), {C_AGS: {"scope": ALL, "lineitems": LINEITEMS, "lineitem": f"{LINEITEMS}/9"}})
    ep = ags.AgsEndpoint.from_launch(launch)
    assert ep.scopes == frozenset(ALL) and ep.lineitems == LINEITEMS and ep.lineitem == f"{LINEITEMS}/9"
    with pytest.raises(ValidationError, match="AGS"):
        ags.AgsEndpoint.from_launch(Launch(platform(), {}))


def test_a_refused_client_assertion_and_a_broken_gradebook_are_errors(store: Store) -> None:
    auth = Auth.build(store.engine, issuer="tessera", token_ttl_seconds=3600)
    with respx.mock() as mock, HttpClient() as http:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(400, json={"error": "invalid_client"}))
        with pytest.raises(UpstreamError, match="invalid_client"):
            ServiceAuth(auth.keys, http).token(platform(), ALL)
    with respx.mock() as mock, HttpClient() as http:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 60}))
        mock.get(LINEITEMS).mock(return_value=httpx.Response(200, text="<html>"))
        with pytest.raises(UpstreamError, match="JSON"):
            client(ServiceAuth(auth.keys, http)).line_items()
