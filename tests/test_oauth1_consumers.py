"""The gateway's one OAuth 1.0a consumer store (gateway.auth.consumers), on both backends:
purposes keep OneRoster 1.1 and LTI 1.1 keys apart, revocation, removal with the adapter's
rows, single-use nonces (RFC 5849 3.3), and the migrations that moved both adapters' keys
and nonces into it (and back)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from oauthlib.oauth1 import Client
from sqlalchemy import Connection, column, func, insert, select
from sqlalchemy import table as sql_table

from gateway.auth.consumers import ConsumerStore
from gateway.auth.oauth1 import OAuth1Error
from gateway.errors import Conflict
from gateway.model import utcnow
from gateway.store import Store
from gateway.store.migrate import current_revisions
from gateway.store.tables import oauth1_consumers, oauth1_nonces
from gateway.store.types import UTCDateTime, UUIDType

URL = "https://tessera.example/ims/oneroster/v1p1/orgs"


def signed(key: str, secret: str) -> tuple[str, dict[str, str]]:
    uri, headers, _ = Client(key, client_secret=secret, signature_method="HMAC-SHA256").sign(URL, "GET")
    return uri, headers


def test_a_key_verifies_only_for_its_purpose(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    made, secret = consumers.add("t1", "oneroster", scopes=["roster.readonly"], key_prefix="or1_", name="SIS")
    assert made.consumer_key.startswith("or1_") and made.scopes == ("roster.readonly",) and made.name == "SIS"
    uri, headers = signed(made.consumer_key, secret)
    request, consumer = consumers.verify(uri, "GET", b"", headers, purpose="oneroster")
    assert consumer == made and request.consumer_key == made.consumer_key
    uri, headers = signed(made.consumer_key, secret)
    with pytest.raises(OAuth1Error) as exc:
        consumers.verify(uri, "GET", b"", headers, purpose="lti11.tool")
    assert exc.value.problem == "consumer_key_unknown"
    assert consumers.secret(made.consumer_key, "lti11.tool") is None and consumers.secret(made.consumer_key, "oneroster") == secret


def test_the_secret_is_sealed_and_attributes_kept(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    made, secret = consumers.add("t1", "lti11.tool", consumer_key="lms-key", secret="a-shared-secret-1234",
                                 attributes={"roster_system": "sis2"})
    assert secret == "a-shared-secret-1234" and made.attributes == {"roster_system": "sis2"}
    with store.engine.connect() as conn:
        assert secret not in conn.execute(select(oauth1_consumers.c.secret_sealed)).scalar_one()
    assert consumers.list("t1", ["lti11.tool", "lti11.consumer"]) == [made] and consumers.list("t2") == []


def test_a_key_is_unique_across_purposes(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    consumers.add("t1", "lti11.tool", consumer_key="shared", secret="secret-one-1234567")
    with pytest.raises(Conflict, match="already in use"):
        consumers.add("t2", "oneroster", consumer_key="shared", secret="secret-two-1234567")


def test_a_revoked_key_is_refused_as_revoked(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    made, secret = consumers.add("t1", "oneroster", scopes=["roster.readonly"])
    assert consumers.revoke(made.consumer_key, "oneroster") and not consumers.revoke(made.consumer_key, "oneroster")
    uri, headers = signed(made.consumer_key, secret)
    with pytest.raises(OAuth1Error) as exc:
        consumers.verify(uri, "GET", b"", headers, purpose="oneroster")
    assert exc.value.problem == "consumer_key_refused"


def test_removal_runs_the_adapters_cleanup_in_the_same_transaction(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    consumers.add("t1", "lti11.consumer", consumer_key="tool-key", secret="secret-one-1234567")
    seen: list[Connection] = []
    assert not consumers.remove("t2", "tool-key", "lti11.consumer", within=seen.append)  # another tenant's: untouched
    assert not consumers.remove("t1", "tool-key", "oneroster", within=seen.append)
    assert seen == [] and consumers.get("tool-key") is not None
    assert consumers.remove("t1", "tool-key", ["lti11.tool", "lti11.consumer"], within=seen.append)
    assert len(seen) == 1 and consumers.get("tool-key") is None


def test_a_nonce_is_spent_once_and_expired_ones_are_forgotten(store: Store) -> None:
    consumers = ConsumerStore(store.engine)
    assert consumers.spend_nonce("k", "n-1", 1700000000, 600)
    assert not consumers.spend_nonce("k", "n-1", 1700000000, 600)
    assert consumers.spend_nonce("k", "n-1", 1700000001, 600) and consumers.spend_nonce("other", "n-1", 1700000000, 600)
    with store.engine.begin() as conn:
        conn.execute(insert(oauth1_nonces).values(consumer_key="k", nonce="old", timestamp=1, expires_at=utcnow() - timedelta(seconds=1)))
    consumers.spend_nonce("k", "n-2", 1700000002, 600)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(oauth1_nonces).where(oauth1_nonces.c.nonce == "old")).scalar_one() == 0


# --- the migrations -------------------------------------------------------------------------------


def test_both_adapters_keys_and_nonces_move_into_the_gateway_and_back(store: Store) -> None:
    """0006 makes the tables; oneroster_0003 and lti_0003 (each depending on 0006) copy their
    rows in and drop their own tables; the downgrades copy them back."""
    sealer = ConsumerStore(store.engine).sealer
    now = utcnow()
    learner = uuid.uuid4()
    store.migrations.downgrade(store.engine, "0005")
    assert current_revisions(store.engine) >= {"0005", "oneroster_0002", "lti_0002"}
    with store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', CURRENT_TIMESTAMP)")
        _insert(conn, "oneroster_oauth1_consumers", consumer_key="or1_abc", tenant="t1", name="SIS",
                secret_sealed=sealer.seal("or-secret"), scopes="roster.readonly", created_at=now, revoked_at=None)
        _insert(conn, "oneroster_oauth1_nonces", consumer_key="or1_abc", nonce="n-or", timestamp=1700000000,
                expires_at=now + timedelta(minutes=10))
        _insert(conn, "lti11_credentials", consumer_key="lms-key", tenant="t1", role="tool", name="LMS",
                secret_sealed=sealer.seal("lti-secret"), roster_system="sis2", created_at=now)
        _insert(conn, "lti_nonces", scope="oauth1:lms-key", nonce="1700000001:n-lti", expires_at=now + timedelta(minutes=10))
        _insert(conn, "lti_nonces", scope="platform:abc", nonce="id-token-nonce", expires_at=now + timedelta(minutes=10))
        _insert(conn, "lti11_results", sourcedid="s-1", tenant="t1", consumer_key="lms-key", learner_id=learner,
                activity_id="a-1", competency_id=None, score=0.5, evidence_id=None, updated_at=now)
    store.migrations.upgrade(store.engine)
    assert current_revisions(store.engine) == store.migrations.head_revisions()
    consumers = ConsumerStore(store.engine)
    (oneroster,) = consumers.list("t1", "oneroster")
    (lti,) = consumers.list("t1", "lti11.tool")
    assert (oneroster.consumer_key, oneroster.scopes, oneroster.name) == ("or1_abc", ("roster.readonly",), "SIS")
    assert (lti.consumer_key, lti.attributes, lti.scopes) == ("lms-key", {"roster_system": "sis2"}, ())
    assert consumers.secret("or1_abc", "oneroster") == "or-secret" and consumers.secret("lms-key", "lti11.tool") == "lti-secret"
    assert not consumers.spend_nonce("or1_abc", "n-or", 1700000000, 600)  # still spent
    assert not consumers.spend_nonce("lms-key", "n-lti", 1700000001, 600)
    with store.engine.connect() as conn:
        assert [r.scope for r in conn.exec_driver_sql("SELECT scope FROM lti_nonces")] == ["platform:abc"]
        assert conn.exec_driver_sql("SELECT consumer_key FROM lti11_results").scalar_one() == "lms-key"
    store.migrations.downgrade(store.engine, "0005")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT role, roster_system FROM lti11_credentials").one() == ("tool", "sis2")
        assert conn.exec_driver_sql("SELECT consumer_key FROM oneroster_oauth1_consumers").scalar_one() == "or1_abc"
        assert sorted(r.scope for r in conn.exec_driver_sql("SELECT scope FROM lti_nonces")) == ["oauth1:lms-key", "platform:abc"]
        assert conn.exec_driver_sql("SELECT count(*) FROM oneroster_oauth1_nonces").scalar_one() == 1
    store.migrations.upgrade(store.engine)
    assert ConsumerStore(store.engine).secret("lms-key", "lti11.tool") == "lti-secret"


def _insert(conn: Connection, table: str, **row: object) -> None:
    """A row into a table of an older revision, with the column types the code gives them."""
    types = {"learner_id": UUIDType(), "competency_id": UUIDType(), "evidence_id": UUIDType()}
    cols = [column(k, UTCDateTime() if k.endswith("_at") else types.get(k)) for k in row]
    conn.execute(insert(sql_table(table, *cols)).values(**row))
