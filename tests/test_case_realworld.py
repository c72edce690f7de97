"""CASE frameworks as real producers write them (issue 15, issue 21 item 5).

Tolerant by default: a deviation with one reading is normalised and reported (kind, JSON
path, count); ``--strict`` refuses it; what has two readings is refused in both modes. The
corpus is tests/fixtures/realworld/case/ (SOURCES.md there says where each deviation was
reported). Also: the CASE scope URIs at the token endpoint and in ``tessera clients create``,
``tessera validate case`` and ``import case --dry-run``.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from adapters.case import SAMPLES, CaseAdapter
from adapters.case.cf_package import parse_package
from gateway.auth import ClientStore
from gateway.errors import ValidationError
from gateway.store import Store

CORPUS = Path(__file__).parent / "fixtures" / "realworld" / "case"
ADAPTER = CaseAdapter()
T = "district-a"
DOC = "b1750dc6-f058-11e7-b894-8d445e7af8cb"  # every corpus file is a cut of OpenSALT's "ordering" framework
CORE = "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/core.readonly"
ALL = "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/all.readonly"

#: fixture -> (deviation kind, JSON path the warning names)
DEVIATIONS = {
    "duplicate-association": ("duplicate-object", "$.CFAssociations[3]"),
    "null-member": ("null-member", "$.CFDefinitions.CFItemTypes[0].description"),
    "sequence-number-string": ("number-as-string", "$.CFAssociations[1].sequenceNumber"),
    "educational-level-alias": ("member-alias", "$.CFItems[1].educationalLevel"),
    "definitions-singular-member": ("member-alias", "$.CFDefinitions.CFSubject"),
    "broken-tree-missing-parent": ("broken-tree", "$.CFAssociations[3].destinationNodeURI"),
    "broken-tree-orphan-child": ("broken-tree", "$.CFAssociations[3].originNodeURI"),
}
#: spec-valid spellings real producers use: accepted in strict mode, with no warning
VALID = sorted(p.stem for p in CORPUS.glob("valid-*.json"))
NORMALISED = [k for k, (kind, _) in DEVIATIONS.items() if kind != "broken-tree"]


def data(name: str) -> bytes:
    return (CORPUS / f"{name}.json").read_bytes()


def counts(store: Store, tenant: str = T) -> list[int]:
    return [store.records.count(tenant, k) for k in ("framework", "competency", "relation")]


def test_the_corpus_is_complete_and_documented() -> None:
    files = {p.stem for p in CORPUS.glob("*.json")}
    assert files == set(DEVIATIONS) | set(VALID) and len(VALID) >= 5
    sources = (CORPUS / "SOURCES.md").read_text()
    assert all(f"`{name}.json`" in sources for name in files)


# --- tolerant imports them with the right warning; strict refuses them ------------------------


@pytest.mark.parametrize("name", list(DEVIATIONS))
def test_tolerant_import_reports_the_deviation_and_stores_what_it_counts(store: Store, name: str) -> None:
    kind, path = DEVIATIONS[name]
    pkg, done = ADAPTER.import_package(store, T, data(name))
    assert pkg.deviations.counts == {kind: 1}
    (warning,) = pkg.deviations.items
    assert (warning.kind, warning.location) == (kind, path)
    assert pkg.deviations.as_dict()["warnings"][0]["location"] == path
    # the report's counts are what was stored
    assert counts(store) == [1, len(pkg.competencies), len(pkg.relations)]
    assert done.result.counts["relation"].created == len(pkg.relations)


@pytest.mark.parametrize("name", list(DEVIATIONS))
def test_strict_import_refuses_the_deviation_at_its_place_and_stores_nothing(store: Store, name: str) -> None:
    _, path = DEVIATIONS[name]
    with pytest.raises(ValidationError) as exc:
        ADAPTER.import_package(store, T, data(name), strict=True)
    assert path in {e.location for e in exc.value.errors}
    assert counts(store) == [0, 0, 0]


@pytest.mark.parametrize("name", VALID)
def test_spec_valid_variants_import_in_strict_mode_without_a_warning(store: Store, name: str) -> None:
    pkg, _ = ADAPTER.import_package(store, T, data(name), strict=True)
    assert not pkg.deviations and pkg.warnings == []
    assert counts(store) == [1, 3, len(pkg.relations)]


@pytest.mark.parametrize("name", NORMALISED)
def test_a_tolerant_import_exported_again_passes_strict(store: Store, name: str) -> None:
    ADAPTER.import_package(store, T, data(name))
    exported = orjson.dumps(ADAPTER.export_package(store, T, DOC))
    again = ADAPTER.check_package(store, "another-district", exported, strict=True)
    assert not again.deviations


def test_the_duplicate_is_collapsed_into_one_association() -> None:
    pkg = parse_package(data("duplicate-association"), tenant=T)
    assert len(pkg.relations) == 3 and len({r.native_id for r in pkg.relations}) == 3
    w = pkg.warnings[0]
    assert "$.CFAssociations[2]" in w.message and "$.CFAssociations[3]" in w.message  # both places named


def test_two_different_objects_under_one_identifier_are_refused_in_both_modes() -> None:
    pkg = orjson.loads(data("duplicate-association"))
    pkg["CFAssociations"][3]["sequenceNumber"] = 7  # same identifier, another object
    for strict in (False, True):
        with pytest.raises(ValidationError) as exc:
            parse_package(orjson.dumps(pkg), tenant=T, strict=strict)
        e = next(e for e in exc.value.errors if e.location == "$.CFAssociations[3].identifier")
        assert "duplicate identifier" in e.message and "$.CFAssociations[2]" in e.message


def test_items_definitions_and_rubric_criteria_listed_twice_are_collapsed_too() -> None:
    state = orjson.loads((SAMPLES / "northwind-state-mathematics.json").read_bytes())
    n_items, n_types = len(state["CFItems"]), len(state["CFDefinitions"]["CFItemTypes"])
    criteria = state["CFRubrics"][0]["CFRubricCriteria"]
    n_criteria = len(criteria)
    state["CFItems"].append(copy.deepcopy(state["CFItems"][4]))
    state["CFDefinitions"]["CFItemTypes"].append(copy.deepcopy(state["CFDefinitions"]["CFItemTypes"][0]))
    criteria.append(copy.deepcopy(criteria[0]))
    pkg = parse_package(orjson.dumps(state), tenant=T)
    assert pkg.deviations.counts == {"duplicate-object": 3}
    assert {w.location for w in pkg.warnings} == {
        f"$.CFItems[{n_items}]", f"$.CFDefinitions.CFItemTypes[{n_types}]", f"$.CFRubrics[0].CFRubricCriteria[{n_criteria}]"}
    assert len(pkg.competencies) == n_items and len(pkg.scales) == n_criteria
    case_ext = pkg.framework.extensions["case"]
    assert len(case_ext["definitions"]["CFItemTypes"]) == n_types
    assert len(case_ext["rubrics"][0]["CFRubricCriteria"]) == n_criteria
    with pytest.raises(ValidationError) as exc:
        parse_package(orjson.dumps(state), tenant=T, strict=True)
    assert {e.location for e in exc.value.errors} == {w.location for w in pkg.warnings}


# --- broken trees (issue 21 item 5) ------------------------------------------------------------


def test_a_broken_tree_is_kept_with_the_unresolved_end_and_resolves_when_the_parent_arrives(store: Store) -> None:
    pkg, _ = ADAPTER.import_package(store, T, data("broken-tree-missing-parent"))
    rel = next(r for r in pkg.relations if r.native_id == "e2b7a4c9-0d3f-4e6a-9b1c-5f8d2a6e7b10")
    assert rel.destination_id is None and str(rel.destination_guid) == "d3c1f6a2-5b7e-4f0a-8c2d-1e9b4a7f3c55"  # nothing invented
    assert "parent (destination)" in pkg.warnings[0].message
    # the parent's framework is imported: the same package now passes --strict
    parent = orjson.loads(data("valid-empty-optional-strings"))
    parent["CFDocument"].update(identifier="6f1e2d3c-4b5a-4697-8877-665544332211", title="parent framework")
    parent["CFDocument"].pop("CFPackageURI")
    parent["CFItems"] = [dict(parent["CFItems"][0], identifier="d3c1f6a2-5b7e-4f0a-8c2d-1e9b4a7f3c55", humanCodingScheme="F.0")]
    for it in parent["CFItems"]:
        it.pop("CFDocumentURI")
    parent["CFAssociations"] = []
    ADAPTER.import_package(store, T, orjson.dumps(parent), strict=True)
    again, _ = ADAPTER.import_package(store, T, data("broken-tree-missing-parent"), strict=True)
    assert not again.deviations
    # ... in that tenant only
    with pytest.raises(ValidationError):
        ADAPTER.check_package(store, "another-district", data("broken-tree-missing-parent"), strict=True)


def test_a_child_that_is_stored_already_is_no_broken_tree(store: Store) -> None:
    ADAPTER.import_package(store, T, (Path(__file__).parent / "fixtures" / "case" / "opensalt-test-framework.json").read_bytes())
    pkg = orjson.loads(data("broken-tree-orphan-child"))
    stored_child = "b7736b28-f058-11e7-9f95-a9b232acff4e"  # F.1 of the stored "ordering" framework
    pkg["CFDocument"]["identifier"] = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
    for it in pkg["CFItems"]:
        it.pop("CFDocumentURI")
        it["identifier"] = str(uuid.uuid5(uuid.NAMESPACE_URL, it["identifier"]))  # another framework's own items
    pkg["CFAssociations"] = [pkg["CFAssociations"][3]]
    a = pkg["CFAssociations"][0]
    a.pop("CFDocumentURI")
    a["originNodeURI"]["identifier"] = stored_child
    a["destinationNodeURI"]["identifier"] = pkg["CFItems"][0]["identifier"]
    checked = ADAPTER.check_package(store, T, orjson.dumps(pkg), strict=True)
    assert not checked.deviations and len(checked.outside) == 1


def test_crosswalks_to_other_frameworks_are_never_a_broken_tree(store: Store) -> None:
    pkg, _ = ADAPTER.import_package(store, T, data("valid-crosswalk-to-another-framework"), strict=True)
    assert not pkg.outside and any(r.type.value == "exact_match_of" and r.destination_id is None for r in pkg.relations)


# --- CASE scope URIs ------------------------------------------------------------------------------


def test_case_scope_uris_at_the_token_endpoint_read_the_case_provider(api) -> None:
    ADAPTER.import_package(api.store, T, data("valid-empty-optional-strings"))
    cid, secret = api.credentials(T, [CORE])  # stored as the scope it stands for
    assert ClientStore(api.store.engine).get(cid).scopes == ("competencies.readonly",)
    for asked in (CORE, ALL, f"{CORE} {ALL}"):
        r = httpx.post(f"{api.base_url}/oauth/token", data={"grant_type": "client_credentials", "scope": asked}, auth=(cid, secret))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == asked  # echoed as asked (RFC 6749 5.1)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["scope"] == "competencies.readonly"
        got = httpx.get(f"{api.base_url}/ims/case/v1p0/CFDocuments", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert got.status_code == 200 and [d["identifier"] for d in got.json()["CFDocuments"]] == [DOC]


def test_case_scope_uris_grant_nothing_a_client_does_not_hold_and_no_variant_is_invented(api) -> None:
    cid, secret = api.credentials(T, ["roster-core.readonly"])
    for asked in (CORE, CORE.replace("http://", "https://")):
        r = httpx.post(f"{api.base_url}/oauth/token", data={"grant_type": "client_credentials", "scope": asked}, auth=(cid, secret))
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    with pytest.raises(ValidationError):
        api.credentials(T, [CORE.replace("http://", "https://")])


def test_clients_create_takes_a_case_scope_uri(cli) -> None:
    cli("migrate")
    out = cli("clients", "create", "--tenant", T, "--scope", ALL).output
    assert "competencies.readonly" in out and "client_secret" in out


# --- tessera validate case, import --dry-run, export --------------------------------------------


def test_validate_case_prints_the_report_writes_nothing_and_exits_1_on_errors(cli, tmp_path: Path) -> None:
    cli("migrate")
    f = CORPUS / "duplicate-association.json"
    human = " ".join(cli("validate", "case", str(f), "--tenant", T).output.split())
    assert "duplicate-object" in human and "$.CFAssociations[2]" in human and "$.CFAssociations[3]" in human  # brackets kept
    doc = orjson.loads(cli("validate", "case", str(f), "--tenant", T, "--json").stdout)
    assert doc["valid"] is True and doc["errors"] == [] and doc["contents"]["relation"] == 3
    assert doc["deviations"]["counts"] == {"duplicate-object": 1}
    assert doc["deviations"]["warnings"][0]["location"] == "$.CFAssociations[3]"
    strict = cli("validate", "case", str(f), "--tenant", T, "--strict", "--json", code=1)
    sdoc = orjson.loads(strict.stdout)
    assert sdoc["valid"] is False and sdoc["errors"][0]["location"] == "$.CFAssociations[3]"
    text = " ".join(cli("validate", "case", str(f), "--tenant", T, "--strict", code=1).output.split())
    assert "$.CFAssociations[3]" in text and "would refuse it" in text
    broken = orjson.loads(cli("validate", "case", str(CORPUS / "broken-tree-orphan-child.json"), "--tenant", T, "--json").stdout)
    assert broken["deviations"]["counts"] == {"broken-tree": 1}
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert orjson.loads(cli("validate", "case", str(junk), "--json", code=1).stdout)["valid"] is False
    from gateway.wiring import open_store

    store = open_store(cli.url)
    assert counts(store) == [0, 0, 0]


def test_import_dry_run_reports_and_stores_nothing_then_the_export_validates_strictly(cli, tmp_path: Path) -> None:
    from gateway.wiring import open_store

    cli("migrate")
    f = str(CORPUS / "sequence-number-string.json")
    dry = " ".join(cli("import", "case", f, "--tenant", T, "--dry-run").output.split())  # as read, not as wrapped
    assert "number-as-string" in dry and "nothing written" in dry
    assert counts(open_store(cli.url)) == [0, 0, 0]
    with pytest.raises(ValidationError):
        cli("import", "case", f, "--tenant", T, "--dry-run", "--strict")
    done = " ".join(cli("import", "case", f, "--tenant", T).output.split())
    assert "number-as-string" in done and "$.CFAssociations[1].sequenceNumber" in done
    assert counts(open_store(cli.url)) == [1, 3, 3]
    out = tmp_path / "export.json"
    cli("export", "case", "--tenant", T, "--document", DOC, "-o", str(out))
    checked: dict[str, Any] = orjson.loads(cli("validate", "case", str(out), "--tenant", T, "--strict", "--json").stdout)
    assert checked["valid"] is True and checked["deviations"]["total"] == 0


def test_cli_prints_titles_file_names_and_paths_with_square_brackets_as_text(cli, tmp_path: Path) -> None:
    cli("migrate")
    pkg = orjson.loads(data("duplicate-association"))
    pkg["CFDocument"]["title"] = "Mathematics [K-8] [bold]draft[/bold]"
    f = tmp_path / "framework [v2].json"
    f.write_bytes(orjson.dumps(pkg))
    for args in (("import", "case", str(f), "--tenant", T, "--dry-run"), ("import", "case", str(f), "--tenant", T),
                 ("validate", "case", str(f), "--tenant", T)):
        shown = " ".join(cli(*args).output.split())
        assert "[K-8] [bold]draft[/bold]" in shown and "framework [v2].json" in shown and "$.CFAssociations[3]" in shown


def test_a_precedes_cycle_is_a_note_in_both_modes_never_a_refusal() -> None:
    pkg = orjson.loads(data("valid-empty-optional-strings"))
    items = pkg["CFItems"]
    for k, (a, b) in enumerate([(1, 2), (2, 1)]):
        pkg["CFAssociations"].append({
            "identifier": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cycle{k}")), "uri": f"https://x.example/{k}", "associationType": "precedes",
            "originNodeURI": {"title": "o", "identifier": items[a]["identifier"], "uri": items[a]["uri"]},
            "destinationNodeURI": {"title": "d", "identifier": items[b]["identifier"], "uri": items[b]["uri"]},
            "lastChangeDateTime": "2020-01-01T00:00:00Z"})
    for strict in (False, True):
        parsed = parse_package(orjson.dumps(pkg), tenant=T, strict=strict)
        assert not parsed.deviations and [n.kind for n in parsed.notes] == ["precedes-cycle"]
        assert "F.1" in parsed.warnings[0].message


def test_a_scope_uri_must_stand_for_a_declared_scope() -> None:
    from adapters.case import CASE_SCOPE_URIS
    from gateway.auth.scopes import declare
    from gateway.errors import ConfigError

    declare({}, uri_scopes=CASE_SCOPE_URIS)  # as the wiring does; declaring again is harmless
    with pytest.raises(ConfigError):
        declare({}, uri_scopes={"http://x.example/scope/a": "no-such.scope"})
    with pytest.raises(ConfigError):  # a URI already standing for another scope
        declare({}, uri_scopes={CORE: "roster-core.readonly"})
