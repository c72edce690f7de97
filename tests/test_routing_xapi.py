"""``xapi.lrs`` against a second Tessera's LRS on a real port (``routing_support``): pulling
its statements page by page (cursor after each committed page, capped by
X-Experience-API-Consistent-Through; a broken page keeps the cursor of the pages before it),
evidence derived as for a POST; forwarding this LRS's statements (enqueued in the statement
store's write transaction) with their ids, a retry storing nothing twice, and a voiding
statement voiding its target at the destination."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest

from adapters.xapi.routing import Lrs
from gateway.routing.protocol import Reject, Retry
from gateway.store import Store

from .conftest import Api
from .routing_support import (  # noqa: F401 - fixtures
    Peer,
    connection,
    fault_proxy,
    make_peer_fixture,
    peer_fixture,
    pending_deliveries,
    pull_all,
    pull_route,
    register_push_route,
    total,
)
from .xapi_support import V1, statement

T = "t1"
PASSED = {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}}
VOIDED = {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}}


def lrs_credentials(store: Store, monkeypatch: pytest.MonkeyPatch, prefix: str, tenant: str = T) -> tuple[tuple[str, str], dict[str, str]]:
    from gateway.auth import ClientStore

    client, secret = ClientStore(store.engine).create(tenant, ["xapi/all"], f"lrs-{prefix.lower()}")
    monkeypatch.setenv(f"{prefix}_USER", client.client_id)
    monkeypatch.setenv(f"{prefix}_PASSWORD", secret)
    return (client.client_id, secret), {"username": f"env:{prefix}_USER", "password": f"env:{prefix}_PASSWORD"}


def passed(n: int) -> list[dict]:
    return [statement(verb=PASSED, actor={"name": f"Learner {i}", "mbox": f"mailto:l{i}@example.com"},
                      result={"score": {"scaled": 0.5 + i / 100}, "success": True}) for i in range(n)]


def post(base: str, auth: tuple[str, str], statements: list[dict]) -> None:
    r = httpx.post(f"{base}/xapi/statements", json=statements, auth=auth, headers=V1, timeout=60)  # a loaded CI host
    assert r.status_code == 200, r.text


def local_ids(store: Store, tenant: str = T) -> set[str]:
    from sqlalchemy import select

    from adapters.xapi.tables import xapi_statements as s

    with store.engine.connect() as conn:
        return {str(i) for i in conn.execute(select(s.c.id).where(s.c.tenant == tenant)).scalars()}


def test_statements_are_pulled_page_by_page_and_become_evidence(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    first = passed(5)
    post(peer.base_url, remote, first)
    src = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth, page_size=2))
    route = pull_route(src.connection)

    pages, cursor = pull_all(src, store, route, None)
    assert [p.read for p in pages] == [2, 2, 1] and total(pages, "written") == 5
    assert all(p.cursor for p in pages)
    assert local_ids(store) == {s["id"] for s in first}
    evidence = list(store.records.iter_records(T, ["evidence"]))
    assert len(evidence) == 5 and {e.source for e in evidence} == {"state-lrs"}  # derived as for a POST

    # two new statements and one voiding an earlier one: the next pull reads them (and re-reads
    # the overlap, unchanged), and the voided statement is voided here too
    later = passed(2)
    void = statement(verb=VOIDED, object={"objectType": "StatementRef", "id": first[0]["id"]})
    post(peer.base_url, remote, later)
    post(peer.base_url, remote, [void])
    pages, cursor2 = pull_all(src, store, route, cursor)
    assert total(pages, "written") == 3 and total(pages, "failed") == 0
    assert orjson.loads(cursor2)["since"] >= orjson.loads(cursor)["since"]
    from adapters.xapi.statement_store import StatementStore

    reads = StatementStore(store)
    assert reads.get(T, first[0]["id"], voided=True) is not None
    assert reads.get(T, first[0]["id"], voided=False) is None


def test_a_broken_page_is_a_retry_after_the_pages_before_it_are_kept(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    post(peer.base_url, remote, passed(4))
    with fault_proxy(peer.base_url) as (base, proxy):
        calls: list[str] = []

        def second_page_cut(req, r):
            calls.append(str(req.url))
            return (200, dict(r.headers), r.content[:40]) if len(calls) == 2 else None

        proxy.fault = second_page_cut
        src = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{base}/xapi/", auth=auth, page_size=2))
        kept = []
        with pytest.raises(Retry) as caught:
            for page in src.pull(store, pull_route(src.connection), None):
                kept.append(page)
    assert len(kept) == 1 and kept[0].written == 2 and kept[0].cursor  # the engine keeps this cursor
    assert len(local_ids(store)) == 2
    assert "StatementResult" in caught.value.message


def test_statements_are_forwarded_with_their_ids_voiding_included(api: Api, peer: Peer, store: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    remote, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    dest = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth))
    route = register_push_route(store, dest.connection, ["xapi.statement"])
    local, _ = lrs_credentials(store, monkeypatch, "LOCAL")

    sent = passed(3)
    post(api.base_url, local, sent)  # this Tessera's LRS: the outbox rows are written with the statements
    rows = pending_deliveries(store, route)
    assert sorted(str(d.record_id) for d in rows) == sorted(s["id"] for s in sent)
    assert all(d.record is None and d.record_kind == "xapi.statement" for d in rows)
    for d in rows:
        dest.deliver(store, d)
    dest.deliver(store, rows[0])  # a retry after a lost answer: stored once
    got = httpx.get(f"{peer.base_url}/xapi/statements", auth=remote, headers=V1).json()["statements"]
    assert sorted(s["id"] for s in got) == sorted(s["id"] for s in sent)

    void = statement(verb=VOIDED, object={"objectType": "StatementRef", "id": sent[1]["id"]})
    post(api.base_url, local, [void])
    (d,) = [x for x in pending_deliveries(store, route) if str(x.record_id) == void["id"]]
    dest.deliver(store, d)
    one = httpx.get(f"{peer.base_url}/xapi/statements", params={"statementId": sent[1]["id"]}, auth=remote, headers=V1)
    assert one.status_code == 404
    voided = httpx.get(f"{peer.base_url}/xapi/statements", params={"voidedStatementId": sent[1]["id"]}, auth=remote, headers=V1)
    assert voided.status_code == 200 and voided.json()["id"] == sent[1]["id"]


def test_a_conflicting_id_at_the_destination_is_refused_and_pulled_statements_are_not_echoed(
        api: Api, peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    remote, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    dest = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth))
    route = register_push_route(store, dest.connection, ["xapi.statement"])
    local, _ = lrs_credentials(store, monkeypatch, "LOCAL")
    sid = str(uuid.uuid4())
    post(peer.base_url, remote, [statement(id=sid, verb=PASSED)])
    post(api.base_url, local, [statement(id=sid)])  # the same id, other content
    (d,) = pending_deliveries(store, route)
    with pytest.raises(Reject) as caught:
        dest.deliver(store, d)
    assert caught.value.status == 409

    # statements pulled from the destination's own system are never routed back to it
    other = passed(2)
    post(peer.base_url, remote, other)
    src = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth))
    pages, _ = pull_all(src, store, pull_route(src.connection), None)
    assert total(pages, "written") == 2 and total(pages, "failed") == 1  # the conflicting id, reported
    assert [str(x.record_id) for x in pending_deliveries(store, route)] == [sid]
    assert any(sid in e["location"] for p in pages for e in p.errors)


def test_an_unreachable_lrs_is_a_retry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import free_port

    monkeypatch.setenv("U", "u")
    monkeypatch.setenv("P", "p")
    src = Lrs(connection("gone", "xapi", "xapi.lrs", f"http://127.0.0.1:{free_port()}/xapi/",
                         auth={"username": "env:U", "password": "env:P"}, timeout=2))
    with pytest.raises(Retry):
        pull_all(src, store, pull_route(src.connection), None)


def test_an_empty_pull_moves_the_cursor_to_the_consistent_through_time(peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    src = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth))
    pages, cursor = pull_all(src, store, pull_route(src.connection), None)
    assert [p.read for p in pages] == [0] and cursor and orjson.loads(cursor)["since"].endswith("Z")


def test_statements_go_in_one_post_and_a_refused_batch_statement_by_statement(api: Api, peer: Peer, store: Store,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    remote, auth = lrs_credentials(peer.store, monkeypatch, "PEER")
    dest = Lrs(connection("state-lrs", "xapi", "xapi.lrs", f"{peer.base_url}/xapi/", auth=auth))
    route = register_push_route(store, dest.connection, ["xapi.statement"])
    local, _ = lrs_credentials(store, monkeypatch, "LOCAL")
    sent = passed(3)
    post(api.base_url, local, sent)
    rows = pending_deliveries(store, route)
    assert dest.deliver_batch(store, rows) == [None, None, None]
    got = httpx.get(f"{peer.base_url}/xapi/statements", auth=remote, headers=V1).json()["statements"]
    assert sorted(s["id"] for s in got) == sorted(s["id"] for s in sent)

    # one id the destination holds with other content: only that statement is refused
    sid = str(uuid.uuid4())
    post(peer.base_url, remote, [statement(id=sid, verb=PASSED)])
    more = passed(2)
    post(api.base_url, local, [statement(id=sid), *more])
    fresh = [d for d in pending_deliveries(store, route) if str(d.record_id) in {sid, *(s["id"] for s in more)}]
    out = dict(zip((str(d.record_id) for d in fresh), dest.deliver_batch(store, fresh), strict=True))
    assert isinstance(out.pop(sid), Reject) and list(out.values()) == [None, None]
    for s in more:
        one = httpx.get(f"{peer.base_url}/xapi/statements", params={"statementId": s["id"]}, auth=remote, headers=V1)
        assert one.status_code == 200
