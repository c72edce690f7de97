"""``case.client`` against a second Tessera's CASE 1.0 provider on a real port
(``routing_support``): a full pull imports every framework (one committed page each), the
next pull fetches only the CFPackage whose lastChangeDateTime moved, a changed framework
updates in place and retires what it dropped, and a provider failure keeps the cursor."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from adapters.case import CaseAdapter
from adapters.case.routing import CaseSource
from gateway.routing.protocol import Reject, Retry
from gateway.store import Store

from .routing_support import (  # noqa: F401 - fixtures
    Peer,
    connection,
    credentials_env,
    fault_proxy,
    make_peer_fixture,
    peer_fixture,
    pull_all,
    pull_route,
    total,
)

FIXTURES = Path(__file__).parent / "fixtures" / "case"
SAMPLE = orjson.loads((FIXTURES / "opensalt-sample-framework.json").read_bytes())
ORDERING = orjson.loads((FIXTURES / "opensalt-test-framework.json").read_bytes())
T = "t1"


def source(peer: Peer, monkeypatch: pytest.MonkeyPatch, base: str | None = None) -> CaseSource:
    cid, secret = peer.credentials(T, ["competencies.readonly"])
    auth = credentials_env(monkeypatch, "CASE", cid, secret)
    return CaseSource(connection("state-case", "case", "case.client", base or peer.base_url, auth=auth,
                                 token_url=f"{peer.base_url}/oauth/token"), CaseAdapter())


def competencies(store: Store) -> dict[str, str]:
    return {c.native_id: c.status.value for c in store.records.iter_records(T, ["competency"]) if c.source == "state-case"}


def test_frameworks_changed_since_the_cursor_are_pulled_one_committed_package_at_a_time(
        peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = CaseAdapter()
    adapter.import_package(peer.store, T, orjson.dumps(SAMPLE))
    adapter.import_package(peer.store, T, orjson.dumps(ORDERING))
    with fault_proxy(peer.base_url) as (base, proxy):
        src = source(peer, monkeypatch, base)
        route = pull_route(src.connection)
        pages, cursor = pull_all(src, store, route, None)
        assert len(pages) == 2 and all(p.cursor for p in pages) and total(pages, "failed") == 0
        # oldest change first: the first page's cursor is the older document's
        assert orjson.loads(pages[0].cursor)["since"].startswith("2017-05-25T18:05:33")
        assert orjson.loads(cursor)["since"].startswith("2018-01-03T07:35:38")
        first = competencies(store)
        assert len(first) >= 16 and set(first.values()) == {"active"}

        # nothing changed: the list is read, no package fetched, the cursor stays
        proxy.seen.clear()
        pages, again = pull_all(src, store, route, cursor)
        assert pages == [] and again == cursor
        assert not [u for u in proxy.seen if "CFPackages" in u]

        # the publisher changes the older framework: one item reworded, one dropped
        changed = orjson.loads(orjson.dumps(SAMPLE))
        changed["CFDocument"]["lastChangeDateTime"] = "2026-11-30T10:00:00+00:00"
        changed["CFItems"][0]["fullStatement"] = "Reworded by the publisher"
        dropped = changed["CFItems"].pop()
        changed["CFAssociations"] = [a for a in changed["CFAssociations"]
                                     if dropped["identifier"] not in (a["originNodeURI"].get("identifier"), a["destinationNodeURI"].get("identifier"))]
        adapter.import_package(peer.store, T, orjson.dumps(changed))
        proxy.seen.clear()
        pages, latest = pull_all(src, store, route, cursor)
    assert [u.split("?")[0].rsplit("/", 1)[-1] for u in proxy.seen if "CFPackages" in u] == [SAMPLE["CFDocument"]["identifier"]]
    assert len(pages) == 1 and pages[0].written >= 1 and pages[0].deleted >= 1 and pages[0].unchanged > 0
    assert orjson.loads(latest)["since"].startswith("2026-11-30T10:00:00")
    now = competencies(store)
    assert now[dropped["identifier"]] == "tobedeleted"
    item = next(c for c in store.records.iter_records(T, ["competency"]) if c.native_id == changed["CFItems"][0]["identifier"])
    assert item.statement == "Reworded by the publisher"


def test_a_failing_provider_is_a_retry_and_an_invalid_package_a_rejection(peer: Peer, store: Store,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    CaseAdapter().import_package(peer.store, T, orjson.dumps(SAMPLE))
    with fault_proxy(peer.base_url) as (base, proxy):
        src = source(peer, monkeypatch, base)
        proxy.fault = lambda req, r: (503, {"Content-Type": "text/plain"}, b"down for maintenance") if "CFDocuments" in req.url.path else None
        with pytest.raises(Retry):
            pull_all(src, store, pull_route(src.connection), None)

        def invalid(req, r):
            if "CFPackages" not in req.url.path:
                return None
            pkg = orjson.loads(r.content)
            del pkg["CFDocument"]["title"]  # required by CASE 1.0
            return 200, dict(r.headers), orjson.dumps(pkg)

        proxy.fault = invalid
        with pytest.raises(Reject) as caught:
            pull_all(src, store, pull_route(src.connection), None)
    assert "title" in caught.value.message
    assert competencies(store) == {}


def test_a_framework_new_to_the_provider_is_pulled_whatever_its_publisher_date(peer: Peer, store: Store,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """lastChangeDateTime is the publisher's clock: a framework loaded onto the provider after
    the last pull may be dated years before the cursor's ``since``."""
    CaseAdapter().import_package(peer.store, T, orjson.dumps(SAMPLE))
    CaseAdapter().import_package(peer.store, T, orjson.dumps(ORDERING))
    src = source(peer, monkeypatch)
    sample = SAMPLE["CFDocument"]
    listed = peer.auth_client(T, ["competencies.readonly"]).get("/ims/case/v1p0/CFDocuments").json()["CFDocuments"]
    stamp = next(d["lastChangeDateTime"] for d in listed if d["identifier"] == sample["identifier"])
    cursor = orjson.dumps({"since": "2030-01-01T00:00:00.000Z", "documents": {sample["identifier"]: stamp}}).decode()
    pages, after = pull_all(src, store, pull_route(src.connection), cursor)
    assert len(pages) == 1 and pages[0].written > 0  # the ordering framework only
    docs = orjson.loads(after)
    assert docs["since"] == "2030-01-01T00:00:00.000Z" and set(docs["documents"]) == {sample["identifier"], ORDERING["CFDocument"]["identifier"]}
