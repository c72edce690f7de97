"""Which tenant a canonical record is for: one rule for NDJSON imports (file, CLI, HTTP) and
``POST /v1/batches`` (issue 21 item 12, ``gateway.model.tenancy``), and a demo file that
loads into any tenant."""

from __future__ import annotations

import orjson
import pytest

from adapters.ndjson import SAMPLES, NdjsonAdapter
from gateway.api.v1 import parse_batch
from gateway.errors import ValidationError
from gateway.model import record_id
from gateway.store import Store

from .factories import roster

ADAPTER = NdjsonAdapter()
DEMO = SAMPLES / "demo-district.ndjson"


def _dicts(records, *, drop: tuple[str, ...] = ()) -> list[dict]:
    out = []
    for rec in records:
        d = rec.model_dump(mode="json", exclude_none=True)
        for key in drop:
            d.pop(key, None)
        out.append(d)
    return out


def _ndjson(objs: list[dict]) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | None, str]]:
    return [(e.field, e.message) for e in exc.value.errors]


def test_a_record_without_tenant_is_the_imports_in_ndjson_as_in_batches() -> None:
    objs = _dicts(roster(2, tenant="t1"), drop=("tenant",))
    from_file = ADAPTER.parse(_ndjson(objs), tenant="t1")
    from_batch = parse_batch({"records": objs}, tenant="t1")
    assert [r.model_dump(mode="json", exclude_none=True) for r in from_file] == _dicts(roster(2, tenant="t1"))
    assert [r.model_dump(mode="json", exclude_none=True) for r in from_batch] == _dicts(roster(2, tenant="t1"))


def test_a_record_naming_another_tenant_is_refused_alike_and_the_message_names_both() -> None:
    objs = _dicts(roster(1, tenant="t2"))
    with pytest.raises(ValidationError) as from_file:
        ADAPTER.parse(_ndjson(objs), tenant="t1")
    with pytest.raises(ValidationError) as from_batch:
        parse_batch({"records": objs}, tenant="t1")
    assert _errors(from_file) == _errors(from_batch)
    field, message = _errors(from_file)[0]
    assert field == "tenant" and "'t2'" in message and "'t1'" in message and "None" not in message


def test_a_file_whose_records_name_no_tenant_loads_into_any_tenant_references_and_all(store: Store) -> None:
    """The ids of tenant-less records are labels: each record gets the id of the tenant it is
    written to, and the references to the label follow it."""
    objs = _dicts(roster(3, tenant="somewhere-else"), drop=("tenant",))
    records = ADAPTER.parse(_ndjson(objs), tenant="t9")
    by_kind = {}
    for rec in records:
        assert rec.tenant == "t9"
        assert rec.id == record_id("t9", rec.kind, rec.source, rec.native_id)
        by_kind.setdefault(rec.kind, []).append(rec)
    people = {p.id for p in by_kind["person"]}
    assert {e.person_id for e in by_kind["enrollment"]} == people
    assert {e.section_id for e in by_kind["enrollment"]} == {by_kind["section"][0].id}
    result = store.records.apply("t9", records)
    assert result.created == len(records)


def test_the_same_labels_work_in_a_batch() -> None:
    objs = _dicts(roster(2, tenant="somewhere-else"), drop=("tenant",))
    records = parse_batch({"records": objs}, tenant="t1")
    enrollment = next(r for r in records if r.kind == "enrollment")
    assert enrollment.person_id in {r.id for r in records if r.kind == "person"}


def test_a_record_that_names_its_tenant_keeps_its_id_check() -> None:
    obj = _dicts(roster(1, tenant="t1"))[0]
    obj["id"] = str(record_id("t1", "org", "sis", "another"))
    with pytest.raises(ValidationError, match="rejected"):
        ADAPTER.parse(_ndjson([obj]), tenant="t1")


def test_the_demo_file_names_no_tenant() -> None:
    for line in DEMO.read_bytes().splitlines():
        assert "tenant" not in orjson.loads(line)


@pytest.mark.parametrize("tenant", ["demo", "district-42"])
def test_the_demo_district_loads_into_any_tenant_whole_and_idempotently(store: Store, tenant: str) -> None:
    first = ADAPTER.load_demo(store, tenant)
    assert first.created == len(DEMO.read_bytes().splitlines())
    assert first.counts["person"].created >= 300 and first.counts["enrollment"].created > 0
    again = ADAPTER.load_demo(store, tenant)
    assert again.created == again.updated == 0
    assert store.records.count(tenant, "evidence") >= 1000


def test_the_cli_imports_the_demo_file_into_a_tenant_named_on_the_command_line(cli) -> None:
    cli("migrate")
    printed = cli("import", "ndjson", str(DEMO), "--tenant", "pine-ridge").stdout
    assert "tenant: pine-ridge" in printed
    from gateway.wiring import open_store

    store = open_store(cli.url)
    try:
        assert store.records.count("pine-ridge", "person") >= 300
    finally:
        store.dispose()


def test_http_ndjson_import_takes_tenantless_records_for_the_callers_tenant(api) -> None:
    objs = _dicts(roster(2, tenant="elsewhere"), drop=("tenant",))
    with api.auth_client("t1", ["records.write", "roster-core.readonly"]) as c:
        r = c.post("/ndjson/records", content=_ndjson(objs), headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        b = c.post("/v1/batches", json={"records": objs})
        assert b.status_code == 201, b.text
        assert b.json()["unchanged"] == len(objs)  # the same records, by the same rule
        people = c.get("/v1/people")
        assert people.status_code == 200 and len(people.json()["items"]) == 2
