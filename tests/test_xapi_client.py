"""The LRS client (pull with since + more, forward in idempotent batches), against Tessera's
own LRS on a real port: xAPI 1.0.3 Communication 2.1.1 (PUT), 2.1.2 (POST), 2.1.3 (GET,
StatementResult ``more``), 3.3 (version header)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from adapters.xapi.client import LrsClient, LrsError
from gateway.errors import AuthError

ADL = "http://adlnet.gov/expapi/verbs/"


def statement(i: int, verb: str = "answered") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "mbox": f"mailto:learner{i % 7}@example.com"},
        "verb": {"id": ADL + verb, "display": {"en-US": verb}},
        "object": {"id": f"http://www.example.com/questions/{i}", "objectType": "Activity"},
        "result": {"score": {"scaled": 0.5}},
    }


@pytest.fixture
def peer(api) -> LrsClient:
    cid, secret = api.credentials("t1", ["xapi/all"])
    with LrsClient(f"{api.base_url}/xapi/", username=cid, password=secret) as c:
        yield c


def test_forwarded_batches_arrive_and_a_pull_follows_more_to_the_end(peer):
    sent = [statement(i) for i in range(230)]
    result = peer.send(sent, batch_size=100)
    assert result.stored == [s["id"] for s in sent] and result.conflicts == []
    pulled = list(peer.statements(limit=40))
    assert sorted(s["id"] for s in pulled) == sorted(s["id"] for s in sent)
    assert peer.consistent_through is not None


def test_forwarding_again_is_idempotent(peer):
    sent = [statement(i) for i in range(30)]
    peer.send(sent, batch_size=8)
    again = peer.send(sent, batch_size=8)
    assert sorted(again.stored) == sorted(s["id"] for s in sent) and again.conflicts == []
    assert len(list(peer.statements())) == 30


def test_a_conflicting_id_is_reported_and_the_rest_of_its_batch_still_stored(peer):
    first = statement(1)
    peer.send([first])
    clash = {**statement(2, "failed"), "id": first["id"]}
    fresh = [statement(3), statement(4)]
    result = peer.send([fresh[0], clash, fresh[1]])
    assert result.conflicts == [first["id"]]
    assert sorted(result.stored) == sorted(s["id"] for s in fresh)
    ids = {s["id"]: s for s in peer.statements()}
    assert set(ids) == {first["id"], *(s["id"] for s in fresh)}
    assert ids[first["id"]]["verb"]["id"] == ADL + "answered"  # the stored one is untouched


def test_pull_since_returns_only_later_statements(peer):
    peer.send([statement(1)])
    cut = datetime.now(UTC).isoformat()
    later = statement(2)
    peer.send([later])
    assert [s["id"] for s in peer.statements(since=cut)] == [later["id"]]


def test_oauth_client_credentials(api):
    cid, secret = api.credentials("t1", ["xapi/all"])
    with LrsClient(f"{api.base_url}/xapi", client_id=cid, client_secret=secret, token_url=f"{api.base_url}/oauth/token",
                   version="2.0.0") as c:
        s = statement(1)
        assert c.send([s]).stored == [s["id"]]
        assert [x["id"] for x in c.statements()] == [s["id"]]


def test_a_refused_token_is_renewed_once(api):
    """The LRS answers 401 to a token it no longer accepts: the client fetches a new one and
    sends the request again, once."""
    cid, secret = api.credentials("t1", ["xapi/all"])
    with LrsClient(f"{api.base_url}/xapi", client_id=cid, client_secret=secret, token_url=f"{api.base_url}/oauth/token") as c:
        assert list(c.statements()) == []
        c._oauth._token = "a-token-the-lrs-never-issued"  # still cached as valid, as after a key rotation
        s = statement(2)
        assert c.send([s]).stored == [s["id"]]
        assert c._oauth.current() != "a-token-the-lrs-never-issued"


def test_wrong_credentials_fail_without_showing_the_secret(api):
    cid, _ = api.credentials("t1", ["xapi/all"])
    with LrsClient(f"{api.base_url}/xapi", username=cid, password="wrong-secret-123") as c, pytest.raises(AuthError) as exc:
        list(c.statements())
    assert "wrong-secret-123" not in str(exc.value) and "wrong-secret-123" not in repr(c)


def test_an_unreachable_lrs_is_an_upstream_error():
    with LrsClient("http://127.0.0.1:9/xapi", username="u", password="p", timeout=2) as c, pytest.raises(LrsError):
        list(c.statements())
