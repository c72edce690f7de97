"""OAuth 1.0a request validation (RFC 5849 3.2) with the body hash extension, checked
against requests signed by oauthlib's own client (an independent signer)."""

from __future__ import annotations

import time

import pytest
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, Client

from gateway.auth.oauth1 import OAuth1Error, body_hash, verify

URL = "https://tessera.example/lti11/launch"
KEY, SECRET = "lms-key", "lms-secret"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LAUNCH = "lti_message_type=basic-lti-launch-request&lti_version=LTI-1p0&resource_link_id=rl-1"


class Nonces:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, key: str, nonce: str, ts: int, ttl: int) -> bool:
        if (key, nonce, ts) in self.seen:
            return False
        self.seen.add((key, nonce, ts))
        return True


def secret_for(key: str) -> str | None:
    return SECRET if key == KEY else None


def signed_form(secret: str = SECRET, key: str = KEY, **kw: object) -> tuple[str, dict[str, str], str]:
    uri, headers, body = Client(key, client_secret=secret, **kw).sign(URL, "POST", body=LAUNCH, headers=FORM)
    return uri, headers, body


def check(uri: str, headers: dict[str, str], body: bytes | str, nonces: Nonces):
    raw = body.encode() if isinstance(body, str) else body
    return verify(uri, "POST", raw, headers, secret_for=secret_for, use_nonce=nonces)


def test_a_signed_form_post_verifies_and_gives_its_parameters() -> None:
    uri, headers, body = signed_form()
    got = check(uri, headers, body, Nonces())
    assert got.consumer_key == KEY
    assert got.params["resource_link_id"] == "rl-1" and "oauth_signature" not in got.params


def test_a_wrong_secret_is_signature_invalid_with_an_oauth_challenge() -> None:
    uri, headers, body = signed_form(secret="guessed")
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, body, Nonces())
    assert err.value.status == 401 and err.value.problem == "signature_invalid"
    assert err.value.challenge == 'OAuth realm="tessera", oauth_problem="signature_invalid"'
    assert SECRET not in str(err.value) and "guessed" not in str(err.value)


def test_a_tampered_parameter_breaks_the_signature() -> None:
    uri, headers, body = signed_form()
    with pytest.raises(OAuth1Error, match="signature"):
        check(uri, headers, body.replace("rl-1", "rl-2"), Nonces())


def test_an_unknown_consumer_key_is_refused() -> None:
    uri, headers, body = signed_form(key="stranger")
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, body, Nonces())
    assert err.value.problem == "consumer_key_unknown"


def test_a_timestamp_outside_the_window_is_refused() -> None:
    uri, headers, body = signed_form(timestamp=str(int(time.time()) - 3600))
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, body, Nonces())
    assert err.value.problem == "timestamp_refused"


def test_a_replayed_nonce_is_refused_but_a_forgery_does_not_burn_it() -> None:
    nonces = Nonces()
    ts = str(int(time.time()))
    forged = signed_form(secret="guessed", nonce="n-1", timestamp=ts)
    with pytest.raises(OAuth1Error):
        check(*forged, nonces)
    assert nonces.seen == set()
    uri, headers, body = signed_form(nonce="n-1", timestamp=ts)
    check(uri, headers, body, nonces)
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, body, nonces)
    assert err.value.problem == "nonce_used"


def test_a_missing_signature_parameter_is_parameter_absent() -> None:
    uri, headers, body = signed_form()
    headers["Authorization"] = headers["Authorization"].replace("oauth_nonce", "oauth_xnonce")
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, body, Nonces())
    assert err.value.problem in ("parameter_absent", "parameter_rejected")


class BodyHashClient(Client):
    def __init__(self, *a: object, body: bytes, **kw: object) -> None:
        super().__init__(*a, **kw)
        self.hash = body_hash(body)

    def get_oauth_params(self, request):  # type: ignore[no-untyped-def]
        return [*super().get_oauth_params(request), ("oauth_body_hash", self.hash)]


XML = b'<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeRequest xmlns="http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"/>'


def signed_xml(body: bytes = XML) -> tuple[str, dict[str, str]]:
    client = BodyHashClient(KEY, client_secret=SECRET, signature_type=SIGNATURE_TYPE_AUTH_HEADER, body=body)
    uri, headers, _ = client.sign(URL, "POST", headers={"Content-Type": "application/xml"})
    return uri, headers


def test_body_hash_example_from_the_extension() -> None:
    # OAuth Request Body Hash 1.0, Appendix A.1: the body "Hello World!"
    assert body_hash(b"Hello World!") == "Lve95gjOVATpfV8EL5X4nxwjKHE="


def test_an_xml_body_with_its_body_hash_verifies_and_a_changed_body_does_not() -> None:
    uri, headers = signed_xml()
    assert check(uri, headers, XML, Nonces()).params["oauth_body_hash"] == body_hash(XML)
    uri, headers = signed_xml()
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, XML.replace(b"POX", b"PAX"), Nonces())
    assert err.value.problem == "signature_invalid" and "body_hash" in err.value.detail


def test_an_xml_body_without_a_body_hash_is_refused() -> None:
    uri, headers, _ = Client(KEY, client_secret=SECRET).sign(URL, "POST", headers={"Content-Type": "application/xml"})
    with pytest.raises(OAuth1Error) as err:
        check(uri, headers, XML, Nonces())
    assert err.value.problem == "parameter_absent"
