"""The canonical NDJSON adapter: the registry seam end to end (parse, emit, router, CLI)."""

from __future__ import annotations

import orjson
import pytest

from adapters.base import Adapter, discover
from adapters.ndjson import NdjsonAdapter
from gateway.errors import ConfigError, MalformedInput, ValidationError
from gateway.store import Store

from .factories import roster

ADAPTER = NdjsonAdapter()


def lines(records) -> bytes:
    return b"".join(ADAPTER.emit(records))


def test_the_adapter_is_discovered_through_its_entry_point() -> None:
    registry = discover()
    assert isinstance(registry.get("ndjson"), Adapter)
    with pytest.raises(ConfigError, match="no adapter named 'edfi'; installed: .*'ndjson'"):
        registry.get("edfi")


def test_emit_then_parse_is_lossless() -> None:
    batch = roster(3)
    back = ADAPTER.parse(lines(batch), tenant="t1")
    assert [r.model_dump() for r in back] == [r.model_dump() for r in batch]


def test_every_bad_line_is_reported_with_its_line_number_and_field() -> None:
    good = lines(roster(1)).splitlines()
    person = orjson.loads(good[3])
    person["roles"][0]["role"] = "studnt"
    bad = [
        good[0],
        b"{not json",
        orjson.dumps({**person}),
        b"",
        orjson.dumps({"kind": "pet", "tenant": "t1"}),
        orjson.dumps({**orjson.loads(good[0]), "tenant": "t2"}),
    ]
    with pytest.raises(ValidationError) as exc:
        ADAPTER.parse(b"\n".join(bad), tenant="t1")
    found = {(e.location, e.field) for e in exc.value.errors}
    assert ("line 2", None) in found
    assert ("line 3", "roles[0].role") in found
    assert ("line 5", "kind") in found
    assert ("line 6", "tenant") in found


def test_input_that_is_not_json_at_all_is_malformed() -> None:
    with pytest.raises(MalformedInput):
        ADAPTER.parse(b"this is,a csv\nfile,really", tenant="t1")


def test_import_is_all_or_nothing(store: Store) -> None:
    payload = lines(roster(3)) + b'{"kind":"org","tenant":"t1"}\n'
    with pytest.raises(ValidationError):
        store.records.apply("t1", ADAPTER.parse(payload, tenant="t1"))
    assert store.records.count("t1", "org") == 0


def test_bundled_demo_district_loads_and_is_idempotent(store: Store) -> None:
    first = ADAPTER.load_demo(store, "demo")
    assert first.counts["person"].created >= 300
    assert first.counts["evidence"].created >= 1000
    again = ADAPTER.load_demo(store, "demo")
    assert again.created == again.updated == 0


def test_http_import_and_streamed_export_round_trip(api) -> None:
    writer = api.auth_client("t1", ["records.write"])
    payload = lines(roster(4))
    r = writer.post("/ndjson/records", content=payload, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == len(payload.splitlines())

    r = writer.post("/ndjson/records", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 415

    reader = api.auth_client("t1", ["roster-core.readonly"])
    r = reader.get("/ndjson/records")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    exported = ADAPTER.parse(r.content, tenant="t1")
    assert sorted(str(x.id) for x in exported) == sorted(str(x.id) for x in ADAPTER.parse(payload, tenant="t1"))

    assert reader.get("/ndjson/records", params={"kind": "evidence"}).status_code == 403
    assert reader.get("/ndjson/records", params={"kind": "pets"}).status_code == 422
    other = api.auth_client("t2", ["roster-core.readonly"])
    assert other.get("/ndjson/records").content == b""
