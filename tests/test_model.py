"""The canonical model: ids, validation rules and error locations (DESIGN section 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticError

from gateway import PROJECT_ROOT
from gateway.errors import ValidationError
from gateway.model import (
    RECORD_TYPES,
    Evidence,
    MasteryRule,
    Person,
    ProficiencyScale,
    Relation,
    Score,
    json_schemas,
    parse_record,
    record_id,
)

from .factories import competency, evidence, framework, org, person

BASE = {"tenant": "t1", "source": "sis"}


def test_id_is_uuid5_of_tenant_kind_source_and_native_id_so_reingest_is_idempotent() -> None:
    a = person("u1", org())
    b = person("u1", org())
    assert a.id == b.id == record_id("t1", "person", "sis", "u1")
    assert a.id.version == 5
    assert person("u1", org(tenant="t2"), tenant="t2").id != a.id  # tenants never share ids
    assert record_id("t1", "section", "sis", "u1") != a.id  # OneRoster sourcedIds are unique per type only


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20), st.text(max_size=40), st.text(max_size=300))
def test_record_id_is_exactly_uuid5_of_the_joined_key(tenant: str, kind: str, source: str, native_id: str) -> None:
    """``record_id`` computes uuid5 by hand for speed: it must stay bit for bit what
    ``uuid.uuid5`` gives, or every stored id would change."""
    from gateway.model.base import RECORD_NAMESPACE

    mine = record_id(tenant, kind, source, native_id)
    ref = uuid.uuid5(RECORD_NAMESPACE, f"{tenant}\x1f{kind}\x1f{source}\x1f{native_id}")
    assert mine == ref and str(mine) == str(ref) and hash(mine) == hash(ref)
    assert (mine.version, mine.variant) == (5, uuid.RFC_4122)


def test_a_given_id_that_does_not_match_the_natural_key_is_rejected() -> None:
    with pytest.raises(PydanticError, match="does not match"):
        Person(**BASE, native_id="u1", given_name="A", family_name="B", id=uuid.uuid4())


def test_unknown_fields_are_rejected_everywhere() -> None:
    with pytest.raises(PydanticError, match="Extra inputs"):
        Person(**BASE, native_id="u1", given_name="A", family_name="B", firstName="A")


def _property_names(node: object) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for v in node.values():
            names |= _property_names(v)
    elif isinstance(node, list):
        for v in node:
            names |= _property_names(v)
    return names


def test_no_standard_field_names_leak_into_the_canonical_model() -> None:
    names = _property_names(json_schemas())
    assert {"given_name", "learner_id", "statement"} <= names
    for wire in ("sourcedId", "givenName", "dateLastModified", "CFItem", "fullStatement", "lineItem", "mbox", "humanCodingScheme"):
        assert wire not in names, wire


def test_parse_record_dispatches_on_kind_and_locates_every_error() -> None:
    rec = parse_record({"kind": "org", **BASE, "native_id": "o1", "name": "X", "type": "district"})
    assert type(rec).__name__ == "Org"
    with pytest.raises(ValidationError) as exc:
        parse_record(
            {"kind": "person", **BASE, "native_id": "u1", "given_name": "A", "family_name": "B",
             "roles": [{"role": "studnt", "org_id": str(uuid.uuid4())}], "grades": ["5"]},
            location="line 7",
        )
    fields = {e.field for e in exc.value.errors}
    assert {"roles[0].role", "grades"} <= fields
    assert all(e.location == "line 7" for e in exc.value.errors)


def test_validation_errors_never_echo_the_input_value() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_record({"kind": "person", **BASE, "native_id": "u1", "given_name": "A", "family_name": "B", "email": "Zebulon at home"})
    assert "Zebulon" not in str(exc.value)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_record({"kind": "pet", **BASE, "native_id": "x"})


@pytest.mark.parametrize(("raw", "lo", "hi", "msg"), [(11, 0, 10, "above max"), (-1, 0, 10, "below min"), (5, 10, 0, "greater than max")])
def test_score_bounds(raw: float, lo: float, hi: float, msg: str) -> None:
    with pytest.raises(PydanticError, match=msg):
        Score(raw=raw, min=lo, max=hi)


def test_score_is_scaled_from_raw_min_max_when_not_given() -> None:
    assert Score(raw=15, min=0, max=20).scaled == 0.75
    assert Score(raw=3, min=0, max=20, scaled=0.5).scaled == 0.5  # a source's own scaled score wins
    with pytest.raises(PydanticError):
        Score(scaled=1.5)


def test_evidence_keeps_provenance_and_timestamps_are_timezone_aware() -> None:
    ev = evidence("e1", person("u1", org()), observed_at=datetime(2026, 10, 1, 12, 0))
    assert ev.observed_at.tzinfo is not None
    assert ev.provenance.standard == "xapi"
    with pytest.raises(PydanticError, match="payload_sha256"):
        Evidence.model_validate({**ev.model_dump(), "provenance": {**ev.provenance.model_dump(), "payload_sha256": "xyz"}})


def test_proficiency_scale_thresholds_must_not_overlap() -> None:
    levels = [
        {"code": "1", "label": "Beginning", "rank": 1, "min_scaled": 0.0},
        {"code": "2", "label": "Developing", "rank": 2, "min_scaled": 0.6},
        {"code": "3", "label": "Proficient", "rank": 3, "min_scaled": 0.5},
    ]
    with pytest.raises(PydanticError, match="overlap"):
        ProficiencyScale(**BASE, native_id="s", title="S", levels=levels)
    levels[2]["min_scaled"] = 0.8
    scale = ProficiencyScale(**BASE, native_id="s", title="S", levels=levels)
    assert scale.level_for(0.65).label == "Developing"
    assert scale.level_for(0.8).label == "Proficient"


@pytest.mark.parametrize(
    ("params", "msg"),
    [
        ({"method": "n_of_m", "n": 4, "m": 3, "at_level": "3"}, "cannot exceed"),
        ({"method": "decaying_average"}, "decay_weight"),
        ({"method": "decaying_average", "decay_weight": 1.5}, "less than or equal to 1"),
        ({"method": "n_of_m", "n": 1}, "n, m and at_level"),
    ],
)
def test_mastery_rule_rejects_impossible_parameters(params: dict, msg: str) -> None:
    with pytest.raises(PydanticError, match=msg):
        MasteryRule(**BASE, native_id="r", name="rule", **params)


def test_relation_needs_both_ends_but_allows_external_references() -> None:
    fw = framework()
    c = competency("c1", fw)
    Relation(**BASE, native_id="r1", type="exact_match_of", origin_id=c.id, destination_uri="https://case.example.org/uri/abc")
    with pytest.raises(PydanticError, match="destination needs"):
        Relation(**BASE, native_id="r2", type="precedes", origin_id=c.id)


def test_committed_canonical_schemas_are_current(tmp_path: Path) -> None:
    """`tessera schemas export` output is committed; this fails when the model changed without it."""
    from gateway.model import export_schemas

    fresh = {p.name: p.read_text() for p in export_schemas(tmp_path)}
    committed_dir = PROJECT_ROOT / "schemas" / "canonical"
    committed = {p.name: p.read_text() for p in committed_dir.glob("*.schema.json")}
    assert set(fresh) == {f"{k}.schema.json" for k in RECORD_TYPES}
    stale = sorted(name for name in fresh if committed.get(name) != fresh[name])
    assert not stale, f"schemas/canonical is stale for {stale}: run `tessera schemas export`"
    assert set(committed) == set(fresh), "schemas/canonical has files for kinds that no longer exist"
