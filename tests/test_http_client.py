"""gateway.http, the one outbound HTTP client, against respx-mocked peers: the retry
schedule (full jitter, seeded), Retry-After in both forms (RFC 9110 10.2.3), retries only
for idempotent requests, one 401 renewal (never two), X-Request-ID, OAuth 1.0a signing
(RFC 5849 3.4) and redacted logs."""

from __future__ import annotations

import base64
import email.utils
import logging
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature

from gateway.auth.oauth1 import body_hash, verify
from gateway.auth.outbound import ClientCredentials
from gateway.http import (
    REQUEST_ID,
    BasicAuth,
    BearerAuth,
    HttpClient,
    NoAuth,
    OAuth1Signature,
    RetryLater,
    RetryPolicy,
    Unreachable,
    UsesHttp,
    retry_after,
)

URL = "https://peer.example/api/things"
TOKEN_URL = "https://peer.example/oauth/token"
SECRET = "s3cr3t-never-logged"


class Clock:
    """An injected sleep: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def policy(clock: Clock, seed: int = 7, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=clock, random=random.Random(seed).random, **kw)


@respx.mock(assert_all_mocked=True)
def test_backoff_is_exponential_with_full_jitter_then_the_last_answer_is_returned(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(return_value=httpx.Response(503))
    clock = Clock()
    with HttpClient(retry=policy(clock, retries=3, backoff=0.5)) as http:
        assert http.get(URL).status_code == 503
    assert route.call_count == 4
    draws = random.Random(7)
    assert clock.slept == [0.5 * draws.random(), 1.0 * draws.random(), 2.0 * draws.random()]


def test_the_backoff_ceiling_caps_every_wait() -> None:
    p = RetryPolicy(backoff=1.0, max_backoff=5.0, random=lambda: 0.999)
    assert [round(p.backoff_for(n), 3) for n in range(5)] == [0.999, 1.998, 3.996, 4.995, 4.995]


@respx.mock(assert_all_mocked=True)
def test_transport_errors_and_5xx_are_retried_until_an_answer(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                                  httpx.Response(502), httpx.Response(200, json={"ok": True})])
    clock = Clock()
    with HttpClient(retry=policy(clock)) as http:
        assert http.get(URL).json() == {"ok": True}
    assert route.call_count == 4 and len(clock.slept) == 3


@respx.mock(assert_all_mocked=True)
def test_an_unreachable_peer_is_an_upstream_error_after_every_attempt(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(side_effect=httpx.ConnectError("refused"))
    with HttpClient(retry=policy(Clock(), retries=2)) as http, pytest.raises(Unreachable) as exc:
        http.get(URL, params={"access_token": SECRET})
    assert route.call_count == 3 and exc.value.reason == "ConnectError" and exc.value.attempts == 3
    assert exc.value.status == 502 and SECRET not in str(exc.value)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
@respx.mock(assert_all_mocked=True)
def test_client_errors_are_never_retried(respx_mock: respx.MockRouter, status: int) -> None:
    route = respx_mock.get(URL).mock(return_value=httpx.Response(status))
    clock = Clock()
    with HttpClient(retry=policy(clock)) as http:
        assert http.get(URL).status_code == status
    assert route.call_count == 1 and clock.slept == []


@respx.mock(assert_all_mocked=True)
def test_a_post_is_not_retried_unless_the_caller_says_it_is_safe(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(URL).mock(return_value=httpx.Response(503))
    clock = Clock()
    with HttpClient(retry=policy(clock)) as http:
        assert http.post(URL, json={}).status_code == 503
        assert route.call_count == 1
        with pytest.raises(Unreachable):
            route.side_effect = httpx.ReadTimeout("slow")  # it may have reached the peer: not repeated
            http.post(URL, json={})
        assert route.call_count == 2
        route.side_effect = None
        route.return_value = httpx.Response(503)
        assert http.post(URL, json={}, headers={"Idempotency-Key": "k-1"}, idempotent=True).status_code == 503
    assert route.call_count == 2 + 4


@respx.mock(assert_all_mocked=True)
def test_a_post_that_never_reached_the_peer_is_retried(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(URL).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(201)])
    with HttpClient(retry=policy(Clock())) as http:
        assert http.post(URL, json={}).status_code == 201
    assert route.call_count == 2


@respx.mock(assert_all_mocked=True)
def test_a_get_can_be_marked_not_to_repeat(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(return_value=httpx.Response(503))
    with HttpClient(retry=policy(Clock())) as http:
        assert http.get(URL, idempotent=False).status_code == 503
    assert route.call_count == 1


@respx.mock(assert_all_mocked=True)
def test_retry_after_in_seconds_and_as_an_http_date_sets_the_wait(respx_mock: respx.MockRouter) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    route = respx_mock.get(URL).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                                  httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200)])
    clock = Clock()
    with HttpClient(retry=policy(clock)) as http:
        assert http.get(URL).status_code == 200
    assert route.call_count == 3
    assert clock.slept[0] == 7 and 25 < clock.slept[1] <= 30


@respx.mock(assert_all_mocked=True)
def test_a_retry_after_beyond_the_cap_is_not_waited_out(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    clock = Clock()
    with HttpClient(retry=policy(clock, retry_after_cap=120)) as http, pytest.raises(RetryLater) as exc:
        http.get(URL)
    assert exc.value.seconds == 3600 and exc.value.status == 429 and clock.slept == []


def test_retry_after_values() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert retry_after("120") == 120.0
    assert retry_after("Sun, 06 Dec 2026 12:01:00 GMT", now=now) == 60.0
    assert retry_after("Sun, 06 Dec 2026 11:00:00 GMT", now=now) == 0.0
    assert retry_after(None) is None and retry_after("soon") is None and retry_after("-5") is None


# --- 401 and auth ---------------------------------------------------------------------------------


def token_route(mock: respx.MockRouter, tokens: list[str]) -> respx.Route:
    issued = iter(tokens)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode()
        assert parse_qs(request.content.decode())["grant_type"] == ["client_credentials"]
        return httpx.Response(200, json={"access_token": next(issued), "expires_in": 3600})

    return mock.post(TOKEN_URL).mock(side_effect=answer)


@respx.mock(assert_all_mocked=True)
def test_a_401_renews_the_token_once_and_sends_again(respx_mock: respx.MockRouter) -> None:
    tokens = token_route(respx_mock, ["tok-1", "tok-2"])
    route = respx_mock.get(URL).mock(side_effect=lambda r: httpx.Response(
        200 if r.headers["Authorization"] == "Bearer tok-2" else 401))
    source = ClientCredentials(TOKEN_URL, "client-1", SECRET)
    with HttpClient(auth=BearerAuth(source), retry=policy(Clock())) as http:
        assert http.get(URL).status_code == 200
        assert http.get(URL).status_code == 200  # the renewed token is reused
    assert tokens.call_count == 2 and route.call_count == 3


@respx.mock(assert_all_mocked=True)
def test_a_second_401_is_returned_not_renewed_again(respx_mock: respx.MockRouter) -> None:
    tokens = token_route(respx_mock, ["tok-1", "tok-2", "tok-3"])
    route = respx_mock.get(URL).mock(return_value=httpx.Response(401))
    with HttpClient(auth=BearerAuth(ClientCredentials(TOKEN_URL, "client-1", SECRET)), retry=policy(Clock())) as http:
        assert http.get(URL).status_code == 401
    assert tokens.call_count == 2 and route.call_count == 2


@respx.mock(assert_all_mocked=True)
def test_a_lazy_bearer_sends_nothing_until_the_peer_asks(respx_mock: respx.MockRouter) -> None:
    tokens = token_route(respx_mock, ["tok-1"])
    route = respx_mock.get(URL).mock(side_effect=lambda r: httpx.Response(200 if r.headers.get("Authorization") == "Bearer tok-1" else 401))
    with HttpClient(auth=BearerAuth(ClientCredentials(TOKEN_URL, "client-1", SECRET), lazy=True)) as http:
        assert http.get(URL).status_code == 200
    assert "Authorization" not in route.calls[0].request.headers and tokens.call_count == 1


@respx.mock(assert_all_mocked=True)
def test_basic_auth_is_not_renewed_and_may_be_overridden_per_request(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(return_value=httpx.Response(401))
    with HttpClient(auth=BasicAuth("user", SECRET)) as http:
        assert http.get(URL).status_code == 401
        assert route.call_count == 1
        assert route.calls[0].request.headers["Authorization"] == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
        http.get(URL, auth=NoAuth())
    assert "Authorization" not in route.calls[1].request.headers
    assert SECRET not in repr(http) and SECRET not in repr(BasicAuth("user", SECRET))


def _verifies(request: httpx.Request, secret: str) -> bool:
    nonces: set = set()
    got = verify(str(request.url), request.method, request.content, dict(request.headers), secret_for=lambda k: secret,
                 use_nonce=lambda *a: not (a in nonces or nonces.add(a)))
    return got.consumer_key == "key-1"


@pytest.mark.parametrize("method", ["HMAC-SHA1", "HMAC-SHA256"])
@respx.mock(assert_all_mocked=True)
def test_oauth1_signatures_verify_over_the_query_and_a_form_body(respx_mock: respx.MockRouter, method: str) -> None:
    route = respx_mock.route(url__startswith=URL).mock(return_value=httpx.Response(200))
    with HttpClient(auth=OAuth1Signature("key-1", SECRET, method=method)) as http:
        http.get(URL, params={"filter": "dateLastModified>'2026-01-01T00:00:00Z'", "limit": 10})
        http.post(URL, data={"lti_message_type": "basic-lti-launch-request", "x": "a b&c"})
    for call in route.calls:
        assert f'oauth_signature_method="{method}"' in call.request.headers["Authorization"]
        assert _verifies(call.request, SECRET)
    # an independent check with oauthlib's own verifier
    get = route.calls[0].request
    req = Request(str(get.url), "GET", headers={"Authorization": get.headers["Authorization"]})
    req.params = signature.collect_parameters(uri_query=get.url.query.decode(), headers={"Authorization": get.headers["Authorization"]},
                                              exclude_oauth_signature=True)
    req.signature = dict(signature.collect_parameters(headers={"Authorization": get.headers["Authorization"]},
                                                      exclude_oauth_signature=False))["oauth_signature"]
    check = signature.verify_hmac_sha256 if method == "HMAC-SHA256" else signature.verify_hmac_sha1
    assert check(req, SECRET) and not check(req, "another-secret")


@respx.mock(assert_all_mocked=True)
def test_oauth1_body_hash_covers_a_non_form_body(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(URL).mock(return_value=httpx.Response(200))
    body = b"<imsx_POXEnvelopeRequest/>"
    with HttpClient(auth=OAuth1Signature("key-1", SECRET, method="HMAC-SHA1", body_hash=True)) as http:
        http.post(URL, content=body, headers={"Content-Type": "application/xml"})
    sent = route.calls[0].request
    assert f'oauth_body_hash="{body_hash(body).replace("=", "%3D").replace("+", "%2B").replace("/", "%2F")}"' in sent.headers["Authorization"]
    assert _verifies(sent, SECRET)


# --- request id and logs ----------------------------------------------------------------------------


@respx.mock(assert_all_mocked=True)
def test_every_request_carries_a_request_id_kept_across_its_attempts(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(200), httpx.Response(200)])
    with HttpClient(retry=policy(Clock())) as http:
        http.get(URL)
        http.get(URL, headers={"x-request-id": "mine-1"})
    first, again, other = (c.request.headers[REQUEST_ID] for c in route.calls)
    assert first == again and len(first) == 32 and other == "mine-1"


@respx.mock(assert_all_mocked=True)
def test_logs_never_show_credentials_tokens_secrets_or_signatures(respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token_route(respx_mock, ["tok-secret-1", "tok-secret-2"])
    respx_mock.get(URL).mock(side_effect=[httpx.Response(401), httpx.Response(503), httpx.Response(200)])
    signed = respx_mock.post(URL).mock(return_value=httpx.Response(200))
    with HttpClient(auth=BearerAuth(ClientCredentials(TOKEN_URL, "client-1", SECRET)), retry=policy(Clock())) as http:
        http.get(URL, params={"client_secret": SECRET, "q": "visible"})
        http.post(URL, data={"client_assertion": SECRET}, auth=OAuth1Signature("key-1", SECRET))
        http.post(URL, data={"x": "1"}, auth=BasicAuth("user", SECRET))
    sig = signature.collect_parameters(headers={"Authorization": signed.calls[0].request.headers["Authorization"]},
                                       exclude_oauth_signature=False)
    text = caplog.text
    assert "q=visible" in text and "[redacted]" in text and "retry 1" in text and "renewed" in text
    for secret in (SECRET, "tok-secret-1", "tok-secret-2", dict(sig)["oauth_signature"],
                   base64.b64encode(f"client-1:{SECRET}".encode()).decode(), base64.b64encode(f"user:{SECRET}".encode()).decode()):
        assert secret not in text


def test_a_peer_client_closes_its_one_pool_with_the_with_block() -> None:
    class Peer(UsesHttp):
        def __init__(self) -> None:
            self.http = HttpClient()

    with Peer() as peer:
        inner = peer.http._http
        assert not inner.is_closed
    assert inner.is_closed
