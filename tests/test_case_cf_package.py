"""CASE 1.0 CFPackage: parse, validate (schema + the rules it cannot express), map, emit.

Fixtures: two real OpenSALT frameworks (tests/fixtures/case/README.md) and the bundled samples.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from adapters.case import SAMPLES
from adapters.case.cf_package import CasePackage, find_cycles, parse_package
from adapters.case.emit import Emitter
from adapters.case.equivalence import package_equivalent
from adapters.case.schema import published_schema, schema, validator
from gateway.errors import MalformedInput, ValidationError
from gateway.model import RelationType

FIXTURES = Path(__file__).parent / "fixtures" / "case"
SAMPLE = FIXTURES / "opensalt-sample-framework.json"  # 16 items, 39 associations, OpenSALT quirks
ORDERING = FIXTURES / "opensalt-test-framework.json"  # 65 items, 65 isChildOf


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def rejected(pkg: dict[str, Any] | bytes, **kw: Any) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        parse_package(pkg if isinstance(pkg, bytes) else orjson.dumps(pkg), tenant="t1", **kw)
    return exc.value


def where(exc: ValidationError) -> set[str | None]:
    return {e.location for e in exc.errors}


def emit(pkg: CasePackage) -> dict[str, Any]:
    dump = lambda r: r.model_dump(mode="json", exclude_none=True)  # noqa: E731
    return Emitter().package(dump(pkg.framework), [dump(c) for c in pkg.competencies], [dump(r) for r in pkg.relations],
                             [dump(s) for s in pkg.scales])


# --- the real samples ---------------------------------------------------------------------------


def test_real_opensalt_framework_maps_to_framework_competencies_and_relations() -> None:
    pkg = parse_package(ORDERING.read_bytes(), tenant="t1")
    assert (len(pkg.competencies), len(pkg.relations), len(pkg.scales)) == (65, 65, 0)
    fw = pkg.framework
    assert fw.native_id == str(fw.guid) == "b1750dc6-f058-11e7-b894-8d445e7af8cb"
    assert fw.title == "ordering" and fw.creator == "Brandon"
    assert fw.published_at and fw.published_at.isoformat() == "2018-01-03T07:35:38+00:00"
    first = next(c for c in pkg.competencies if c.code == "F")
    assert (first.statement, first.short_statement, first.notes, first.language) == ("Final round", "", "Testing kms-2259", "en")
    assert first.framework_id == fw.id and str(first.guid) == first.native_id == "b77335d6-f058-11e7-829f-9f13c008aab5"
    assert {(i.system, i.kind) for i in first.identifiers} == {("case", "case.identifier"), ("case", "case.uri")}
    child = next(r for r in pkg.relations if r.native_id == "b779ed36-f058-11e7-9eeb-71f658e75816")
    assert child.type is RelationType.is_child_of and child.sequence == 1
    assert child.origin_id == next(c.id for c in pkg.competencies if c.code == "F.1") and child.destination_id == first.id
    top = next(r for r in pkg.relations if r.native_id == "b779c70c-f058-11e7-b74b-db02c749845a")
    assert top.destination_id is None and top.destination_guid == fw.guid  # a child of the document itself
    assert pkg.warnings == []


def test_opensalt_quirks_are_accepted_with_a_warning_each() -> None:
    pkg = parse_package(SAMPLE.read_bytes(), tenant="t1")
    assert (len(pkg.competencies), len(pkg.relations)) == (16, 39)
    found = {(w.location, w.field) for w in pkg.warnings}
    assert ("$.CFAssociations[15].sequenceNumber", "sequenceNumber") in found
    assert ("$.CFDefinitions.CFItemTypes[0].description", "description") in found
    assert ("$.CFItems[0].educationalLevel", "educationalLevel") in found
    # a count per kind: 3 nulls dropped, 2 numbers read from strings, 16 items' educationalLevel
    assert pkg.deviations.counts == {"null-member": 3, "number-as-string": 2, "member-alias": 16}
    assert len(pkg.warnings) == pkg.deviations.total == 21
    item = next(c for c in pkg.competencies if c.code == "CCSS.Math.Content.6.RP.A")
    assert item.education_levels == ["06"]  # OpenSALT's early spelling "educationalLevel"
    assert item.item_type == "Cluster" and item.extensions["case"]["CFItemTypeURI"]["title"] == "Cluster"
    external = [r for r in pkg.relations if r.type is RelationType.exact_match_of]
    assert len(external) == 16 and all(r.origin_id and r.destination_id is None and r.destination_guid for r in external)


def test_strict_mode_rejects_the_quirks_with_their_json_paths() -> None:
    exc = rejected(SAMPLE.read_bytes(), strict=True)
    assert "$.CFAssociations[15].sequenceNumber" in where(exc)
    assert "$.CFDefinitions.CFItemTypes[0].description" in where(exc)


@pytest.mark.parametrize("path", [SAMPLE, ORDERING], ids=["sample", "ordering"])
def test_emitting_the_parsed_package_gives_the_original_back(path: Path) -> None:
    original = load(path)
    back = emit(parse_package(path.read_bytes(), tenant="t1"))
    diffs = package_equivalent(original, back)
    if path == SAMPLE:  # exactly the three normalisations reported as warnings
        items = [it["identifier"] for it in original["CFItems"]]
        assert sorted(diffs) == sorted([
            *(f"$.CFItems[{i}].educationalLevel: only in first" for i in items),
            *(f"$.CFItems[{i}].educationLevel: only in second" for i in items),
            "$.CFAssociations[a7364b9e-91e7-4b09-875f-5eab0d3e6f7c].sequenceNumber: '1' != 1",
            "$.CFAssociations[fd349663-3904-4f28-b27d-9b07e6d0165c].sequenceNumber: '2' != 2",
            *(f"$.CFDefinitions.CFItemTypes[{i}].description: only in first" for i in (
                "25e51172-9ee2-4990-806f-1bceb32633d1", "5b5f9983-eabb-4661-aca4-9e0c81046772", "bbc1a9ba-640e-4bf2-a52c-b1cec75b4ee7")),
        ])
    else:
        assert diffs == []
    assert jsonschema.Draft7Validator(published_schema()).is_valid(back)


def test_bundled_samples_are_valid_and_carry_a_rubric_precedes_chains_and_a_crosswalk() -> None:
    state = parse_package((SAMPLES / "northwind-state-mathematics.json").read_bytes(), tenant="demo")
    district = parse_package((SAMPLES / "cedar-valley-mathematics.json").read_bytes(), tenant="demo")
    assert len(state.competencies) >= 300 and not state.warnings and not district.warnings
    assert sum(r.type is RelationType.precedes for r in state.relations) >= 100
    assert len(state.scales) == 3
    codes = {c.id: c.code for c in state.competencies}
    assert {codes[s.competency_id] for s in state.scales} == {"NW.MATH.4.OA.A.1", "NW.MATH.7.RP.B.3", "NW.MATH.7.EE.B.2"}
    state_guids = {c.guid for c in state.competencies}
    crosswalk = [r for r in district.relations if r.type is RelationType.exact_match_of]
    assert len(crosswalk) >= 50 and all(r.destination_guid in state_guids and r.destination_id is None for r in crosswalk)
    old = next(c for c in state.competencies if c.code == "NW.MATH.3.OA.A.9")
    assert old.deprecated and old.status_end_date is not None


def test_rubric_levels_become_a_scale_ranked_by_score() -> None:
    pkg = parse_package((SAMPLES / "northwind-state-mathematics.json").read_bytes(), tenant="demo")
    scale = pkg.scales[0]
    assert [lv.label for lv in scale.levels] == ["Beginning", "Developing", "Proficient", "Advanced"]
    assert [lv.min_scaled for lv in scale.levels] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert scale.level_for(0.7).label == "Proficient"
    assert scale.title == "Mathematical problem solving: Problem solving (NW.MATH.4.OA.A.1)"
    rubric = emit(pkg)["CFRubrics"]
    assert package_equivalent(load(SAMPLES / "northwind-state-mathematics.json")["CFRubrics"], rubric) == []


# --- bad input: each rejected with its JSON path, nothing partial -------------------------------


def test_input_that_is_not_json_is_malformed_and_names_the_position() -> None:
    with pytest.raises(MalformedInput) as exc:
        parse_package(b'{"CFDocument": {"identifier": ', tenant="t1")
    assert exc.value.errors[0].location == "$" and "line 1" in exc.value.errors[0].message


def test_a_package_that_is_not_an_object_is_rejected() -> None:
    exc = rejected(b"[1, 2]")
    assert exc.errors[0].location == "$" and "object" in exc.errors[0].message


def test_schema_violations_are_rejected_with_their_json_paths() -> None:
    pkg = load(ORDERING)
    del pkg["CFItems"][12]["fullStatement"]
    pkg["CFItems"][3]["educationLevel"] = 7
    pkg["CFExtras"] = []  # CFPackage admits no other member (an extra CFDocument member is allowed, and kept)
    exc = rejected(pkg)
    errs = {e.location: e for e in exc.errors}
    assert errs["$.CFItems[12].fullStatement"].message == "the required member 'fullStatement' is missing"
    assert errs["$.CFItems[12].fullStatement"].field == "fullStatement"
    assert "$.CFItems[3].educationLevel" in errs
    assert "is not a member CASE 1.0 defines" in errs["$.CFExtras"].message


def test_duplicate_identifiers_are_rejected_naming_both_json_paths() -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][5]["identifier"] = pkg["CFItems"][2]["identifier"]
    exc = rejected(pkg)
    e = next(e for e in exc.errors if e.location == "$.CFItems[5].identifier")
    assert "duplicate identifier" in e.message and "$.CFItems[2]" in e.message


def test_non_uuid_identifiers_are_rejected_with_their_json_paths() -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][0]["identifier"] = "item-0001"
    pkg["CFAssociations"][1]["identifier"] = "x" + pkg["CFAssociations"][1]["identifier"] + "x"  # the published pattern is unanchored
    exc = rejected(pkg)
    assert {"$.CFItems[0].identifier", "$.CFAssociations[1].identifier"} <= where(exc)
    assert all("is not a UUID" in e.message for e in exc.errors if e.field == "identifier")


def test_unknown_association_types_are_rejected_with_their_json_path() -> None:
    pkg = load(ORDERING)
    pkg["CFAssociations"][7]["associationType"] = "isCousinOf"
    exc = rejected(pkg)
    e = next(e for e in exc.errors if e.location == "$.CFAssociations[7].associationType")
    assert "unknown associationType 'isCousinOf'" in e.message and "exactMatchOf" in e.message


def test_association_with_both_ends_missing_is_rejected_with_its_json_path() -> None:
    pkg = load(ORDERING)
    a = pkg["CFAssociations"][4]
    a["originNodeURI"]["identifier"] = str(uuid.uuid4())
    a["destinationNodeURI"]["identifier"] = str(uuid.uuid4())
    exc = rejected(pkg)
    e = next(e for e in exc.errors if e.location == "$.CFAssociations[4]")
    assert "neither end" in e.message and a["originNodeURI"]["identifier"] in e.message


def test_association_pointing_outside_the_package_is_kept_as_an_external_reference() -> None:
    pkg = load(ORDERING)
    a = pkg["CFAssociations"][4]
    outside = str(uuid.uuid4())
    a["destinationNodeURI"] = {"title": "Elsewhere", "identifier": outside, "uri": f"https://case.example/uri/{outside}"}
    a["associationType"] = "exactMatchOf"
    rel = next(r for r in parse_package(orjson.dumps(pkg), tenant="t1").relations if r.native_id == a["identifier"])
    assert rel.destination_id is None and str(rel.destination_guid) == outside and rel.destination_uri.endswith(outside)
    assert rel.origin_id is not None


def test_uris_and_dates_must_be_well_formed() -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][0]["uri"] = "not a uri"
    pkg["CFItems"][1]["lastChangeDateTime"] = "yesterday"
    pkg["CFItems"][2]["statusStartDate"] = "2020-02-30"
    exc = rejected(pkg)
    errs = {e.location: e.message for e in exc.errors}
    assert "absolute URI" in errs["$.CFItems[0].uri"]
    assert "date-time" in errs["$.CFItems[1].lastChangeDateTime"]
    assert "date" in errs["$.CFItems[2].statusStartDate"]


def test_items_naming_another_document_are_rejected() -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][9]["CFDocumentURI"]["identifier"] = str(uuid.uuid4())
    assert "$.CFItems[9].CFDocumentURI" in where(rejected(pkg))


def test_rubric_back_references_must_name_their_parents() -> None:
    pkg = load(SAMPLES / "northwind-state-mathematics.json")
    crit = pkg["CFRubrics"][0]["CFRubricCriteria"][1]
    crit["rubricId"] = str(uuid.uuid4())
    crit["CFRubricCriterionLevels"][2]["rubricCriterionId"] = str(uuid.uuid4())
    locs = where(rejected(pkg))
    assert "$.CFRubrics[0].CFRubricCriteria[1].rubricId" in locs
    assert "$.CFRubrics[0].CFRubricCriteria[1].CFRubricCriterionLevels[2].rubricCriterionId" in locs


def test_canonical_limits_are_reported_against_the_case_member() -> None:
    pkg = load(ORDERING)
    pkg["CFItems"][6]["humanCodingScheme"] = "X" * 300
    e = next(e for e in rejected(pkg).errors if e.location == "$.CFItems[6].humanCodingScheme")
    assert e.field == "humanCodingScheme" and "255" in e.message


def test_every_problem_is_reported_at_once() -> None:
    pkg = load(ORDERING)
    for i in range(0, 40, 4):
        pkg["CFItems"][i]["identifier"] = f"bad-{i}"
    assert len(rejected(pkg).errors) == 10


def test_precedes_cycles_are_reported_as_warnings_naming_the_items() -> None:
    pkg = load(ORDERING)
    items = pkg["CFItems"]
    for k, (a, b) in enumerate([(0, 1), (1, 2), (2, 0)]):
        pkg["CFAssociations"].append({
            "identifier": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cycle{k}")), "uri": f"https://x.example/{k}", "associationType": "precedes",
            "originNodeURI": {"title": "o", "identifier": items[a]["identifier"], "uri": items[a]["uri"]},
            "destinationNodeURI": {"title": "d", "identifier": items[b]["identifier"], "uri": items[b]["uri"]},
            "lastChangeDateTime": "2020-01-01T00:00:00Z"})
    parsed = parse_package(orjson.dumps(pkg), tenant="t1")
    assert any("cycle" in w.message and items[0]["humanCodingScheme"] in w.message for w in parsed.warnings)
    assert find_cycles({1: [2], 2: [3], 3: [1]}) == [[1, 2, 3, 1]]


# --- the compiled predicate agrees with jsonschema ----------------------------------------------

MUTATIONS = [
    lambda o: o.pop("identifier", None),
    lambda o: o.update(identifier="nope"),
    lambda o: o.update(identifier=o.get("identifier", "").upper()),
    lambda o: o.update(uri="has space"),
    lambda o: o.update(uri=42),
    lambda o: o.update(lastChangeDateTime="2020-01-01"),
    lambda o: o.update(lastChangeDateTime="2020-01-01T10:00:00+0130"),
    lambda o: o.update(statusStartDate="2020-01-01T00:00:00"),
    lambda o: o.update(statusStartDate=None),
    lambda o: o.update(educationLevel="05"),
    lambda o: o.update(educationLevel=[5]),
    lambda o: o.update(conceptKeywords=None),
    lambda o: o.update(sequenceNumber=1.0),
    lambda o: o.update(sequenceNumber=True),
    lambda o: o.update(sequenceNumber="3"),
    lambda o: o.update(associationType="isCousinOf"),
    lambda o: o.update(originNodeURI={"title": "t", "identifier": "not-a-uuid-is-fine-here", "uri": "urn:x:y"}),
    lambda o: o.update(originNodeURI={"title": "t", "uri": "urn:x:y"}),
    lambda o: o.update(CFItemTypeURI={"title": "t", "identifier": "x", "uri": "urn:x"}),
    lambda o: o.update(CFDocumentURI="anything goes here"),
    lambda o: o.update(licenseURI=None),
    lambda o: o.update(subject="Math"),
    lambda o: o.update(subject=[1]),
    lambda o: o.update(extra={"a": 1}),
]


def test_the_compiled_validator_agrees_with_jsonschema_on_mutated_objects() -> None:
    v = validator()
    full = schema()
    checker = jsonschema.Draft7Validator(full, format_checker=v.root.validator.format_checker)
    bases = [load(ORDERING), load(SAMPLES / "cedar-valley-mathematics.json"), load(SAMPLES / "northwind-state-mathematics.json")]
    checked = 0
    for base in bases:
        for member in ("CFItems", "CFAssociations"):
            unit = v.elements[member]
            for el in base[member][:3]:
                for m in MUTATIONS:
                    obj = copy.deepcopy(el)
                    m(obj)
                    assert unit.predicate(obj) == unit.validator.is_valid(obj), (member, obj)
                    checked += 1
        for m in MUTATIONS:
            pkg = {k: v_ for k, v_ in copy.deepcopy(base).items() if k in ("CFDocument", "CFDefinitions")}
            m(pkg["CFDocument"])
            assert v.root.predicate(pkg) == checker.is_valid(pkg), pkg["CFDocument"]
            checked += 1
    assert checked > 200
