"""Importing CASE frameworks into the store (SQLite and PostgreSQL): atomic, idempotent, updated in
place by identifier and lastChangeDateTime, soft deletes, replacedBy; the CLI; the demo data."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.case import CaseAdapter
from adapters.case.equivalence import package_equivalent
from gateway.errors import Conflict, ValidationError
from gateway.store import Store
from gateway.store.competencies import CompetencyRepository
from gateway.wiring import open_store

FIXTURES = Path(__file__).parent / "fixtures" / "case"
ORDERING = FIXTURES / "opensalt-test-framework.json"
SAMPLE = FIXTURES / "opensalt-sample-framework.json"
ADAPTER = CaseAdapter()
T = "district-a"


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def newer(pkg: dict[str, Any], stamp: str = "2019-02-01T00:00:00+00:00") -> dict[str, Any]:
    pkg["CFDocument"]["lastChangeDateTime"] = stamp
    return pkg


def test_a_rejected_package_stores_nothing(store: Store) -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][30]["identifier"] = "not-a-uuid"
    with pytest.raises(ValidationError):
        ADAPTER.import_package(store, T, orjson.dumps(pkg))
    assert [store.records.count(T, k) for k in ("framework", "competency", "relation")] == [0, 0, 0]


def test_import_then_reimport_changes_nothing_and_duplicates_nothing(store: Store) -> None:
    _, first = ADAPTER.import_package(store, T, ORDERING.read_bytes())
    assert first.result.counts["competency"].created == 65 and first.result.counts["relation"].created == 65
    assert not first.existed
    _, again = ADAPTER.import_package(store, T, ORDERING.read_bytes())
    assert again.existed and again.result.created == again.result.updated == 0 and again.retired == {}
    assert store.records.count(T, "competency") == 65


def test_a_newer_version_updates_in_place_and_records_what_changed(store: Store) -> None:
    ADAPTER.import_package(store, T, ORDERING.read_bytes())
    seq = max((c["seq"] for c in store.records.changes_since(T, 0, 100000)), default=0)
    pkg = newer(load(ORDERING))
    pkg["CFItems"][0]["fullStatement"] = "Final round (revised)"
    removed = pkg["CFItems"].pop(64)
    pkg["CFAssociations"] = [a for a in pkg["CFAssociations"]
                             if removed["identifier"] not in (a["originNodeURI"]["identifier"], a["destinationNodeURI"]["identifier"])]
    _, done = ADAPTER.import_package(store, T, orjson.dumps(pkg))
    assert done.existed and done.previous_published_at.isoformat() == "2018-01-03T07:35:38+00:00"
    assert done.retired == {"competency": 1, "relation": 1}
    assert done.result.counts["competency"].updated == 2  # the revised statement, the retired item
    assert done.result.counts["framework"].updated == 1
    assert store.records.count(T, "competency") == 65  # never duplicated, never hard-deleted
    changes = store.records.changes_since(T, seq, 1000)
    ops = {(c["record_kind"], c["op"]) for c in changes}
    assert ("competency", "deleted") in ops and ("competency", "updated") in ops
    repo = CompetencyRepository.of(store)
    gone = repo.competency_by_guid(T, uuid.UUID(removed["identifier"]))
    assert gone["status"] == "tobedeleted"  # still resolvable
    fw = repo.framework_by_guid(T, uuid.UUID(pkg["CFDocument"]["identifier"]))
    items, assocs, _ = repo.framework_contents(T, uuid.UUID(fw["id"]))
    assert len(items) == 64 and len(assocs) == 64  # the served package no longer has it
    served = ADAPTER.export_package(store, T, pkg["CFDocument"]["identifier"])
    assert package_equivalent(pkg, served) == []


def test_an_older_version_is_refused_unless_forced(store: Store) -> None:
    ADAPTER.import_package(store, T, orjson.dumps(newer(load(ORDERING))))
    older = load(ORDERING)
    older["CFItems"][0]["fullStatement"] = "stale"
    with pytest.raises(Conflict, match="newer version"):
        ADAPTER.import_package(store, T, orjson.dumps(older))
    repo = CompetencyRepository.of(store)
    assert repo.competency_by_guid(T, uuid.UUID(older["CFItems"][0]["identifier"]))["statement"] == "Final round"
    _, done = ADAPTER.import_package(store, T, orjson.dumps(older), force=True)
    assert done.result.counts["competency"].updated == 1
    assert repo.competency_by_guid(T, uuid.UUID(older["CFItems"][0]["identifier"]))["statement"] == "stale"


def test_replaced_items_stay_resolvable_through_replaced_by(store: Store) -> None:
    pkg = load(ORDERING)
    old, new = pkg["CFItems"][10], pkg["CFItems"][11]
    ADAPTER.import_package(store, T, orjson.dumps(pkg))
    v2 = newer(load(ORDERING))
    v2["CFItems"] = [i for i in v2["CFItems"] if i["identifier"] != old["identifier"]]
    v2["CFAssociations"] = [a for a in v2["CFAssociations"] if old["identifier"] not in (a["originNodeURI"]["identifier"], a["destinationNodeURI"]["identifier"])]
    v2["CFAssociations"].append({
        "identifier": "0f0f0f0f-1111-4222-8333-444455556666", "uri": "https://case.example/uri/0f0f0f0f-1111-4222-8333-444455556666",
        "associationType": "replacedBy", "lastChangeDateTime": "2019-02-01T00:00:00+00:00",
        "originNodeURI": {"title": old["humanCodingScheme"], "identifier": old["identifier"], "uri": old["uri"]},
        "destinationNodeURI": {"title": new["humanCodingScheme"], "identifier": new["identifier"], "uri": new["uri"]},
    })
    ADAPTER.import_package(store, T, orjson.dumps(v2))  # the replaced item is outside the package now: an external end
    repo = CompetencyRepository.of(store)
    stored_old = repo.competency_by_guid(T, uuid.UUID(old["identifier"]))
    assert stored_old["status"] == "tobedeleted"
    rels = repo.relations_of_competency(T, stored_old)
    assert [(r["type"], r["destination_id"]) for r in rels] == [("replaced_by", repo.competency_by_guid(T, uuid.UUID(new["identifier"]))["id"])]


def test_two_tenants_never_share_a_framework(store: Store) -> None:
    ADAPTER.import_package(store, "tenant-a", ORDERING.read_bytes())
    ADAPTER.import_package(store, "tenant-b", ORDERING.read_bytes())
    assert store.records.count("tenant-a", "competency") == store.records.count("tenant-b", "competency") == 65


def test_bundled_demo_frameworks_load_and_are_idempotent(store: Store) -> None:
    first = ADAPTER.load_demo(store, "demo")
    assert first.counts["competency"].created >= 900 and first.counts["proficiency_scale"].created == 3
    again = ADAPTER.load_demo(store, "demo")
    assert again.created == again.updated == 0


# --- the command line -------------------------------------------------------------------------


def test_cli_imports_a_file_and_exports_it_back(cli, tmp_path: Path) -> None:
    cli("migrate")
    out = cli("import", "case", str(SAMPLE), "--tenant", "t1").output
    assert "competency" in out and "16" in out and "sequenceNumber" in out  # the table and the warnings
    again = cli("import", "case", str(SAMPLE), "--tenant", "t1").output
    assert "updated in place" in again
    target = tmp_path / "out.json"
    cli("export", "case", "--tenant", "t1", "--document", "20c5134f-423d-4097-a971-3dd5152bf507", "-o", str(target))
    diffs = package_equivalent(load(SAMPLE), orjson.loads(target.read_bytes()))
    alias = [d for d in diffs if "educationalLevel" in d or "educationLevel" in d]  # 16 items' early spelling, normalised
    rest = [d for d in diffs if d not in alias]
    assert len(alias) == 32 and all("sequenceNumber" in d or "description" in d for d in rest) and len(rest) == 5


def test_cli_reports_a_bad_file_with_json_paths_and_stores_nothing(cli, tmp_path: Path) -> None:
    cli("migrate")
    from gateway.errors import TesseraError

    bad = load(ORDERING)
    bad["CFAssociations"][3]["associationType"] = "isCousinOf"
    path = tmp_path / "bad.json"
    path.write_bytes(orjson.dumps(bad))
    with pytest.raises(TesseraError) as exc:
        cli("import", "case", str(path), "--tenant", "t1")
    assert any(e.location == "bad.json $.CFAssociations[3].associationType" for e in exc.value.errors)
    store = open_store(cli.url)
    try:
        assert store.records.count("t1", "framework") == 0
    finally:
        store.dispose()
