"""Competency structure over CASE frameworks: children and ancestors (isChildOf), prerequisites
(precedes, cycles named), crosswalks (exactMatchOf, transitively, across frameworks), lookup by
code, text search; the repository on both stores and the /v1 router on a real server."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from adapters.case import SAMPLES, CaseAdapter
from gateway.errors import Conflict, NotFound
from gateway.store import Store
from gateway.store.competencies import CompetencyRepository

from .conftest import Api

ADAPTER = CaseAdapter()
T = "demo"
STATE = SAMPLES / "northwind-state-mathematics.json"
DISTRICT = SAMPLES / "cedar-valley-mathematics.json"


def load(path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


@pytest.fixture
def demo(store: Store) -> CompetencyRepository:
    ADAPTER.load_demo(store, T)
    return CompetencyRepository.of(store)


def code_of(repo: CompetencyRepository, code: str) -> uuid.UUID:
    (c,) = repo.by_code(T, code)
    return uuid.UUID(c["id"])


def codes(docs: list[dict[str, Any]]) -> list[str]:
    return [d["code"] for d in docs]


def test_children_come_in_sequence_order(demo: CompetencyRepository) -> None:
    assert codes(demo.children(T, code_of(demo, "NW.MATH.4.OA.A"))) == ["NW.MATH.4.OA.A.1", "NW.MATH.4.OA.A.2", "NW.MATH.4.OA.A.3"]


def test_ancestors_come_nearest_first(demo: CompetencyRepository) -> None:
    leaf = next(c for c in load(STATE)["CFItems"] if c["CFItemType"] == "Component")
    code = leaf["humanCodingScheme"]
    parts = code.split(".")
    expected = [".".join(parts[:n]) for n in range(len(parts) - 1, 2, -1)]  # standard, cluster, domain, grade
    assert codes(demo.ancestors(T, code_of(demo, code))) == expected


def test_prerequisites_follow_precedes_transitively_in_learning_order(demo: CompetencyRepository) -> None:
    pres = codes(demo.prerequisites(T, code_of(demo, "NW.MATH.5.OA.A.2")))
    assert {"NW.MATH.5.OA.A.1", "NW.MATH.4.OA.A.2", "NW.MATH.4.OA.A.1", "NW.MATH.K.OA.A.1"} <= set(pres)
    before = pres.index  # each comes after what it depends on
    assert before("NW.MATH.4.OA.A.1") < before("NW.MATH.4.OA.A.2")  # inside the cluster
    assert before("NW.MATH.4.OA.A.1") < before("NW.MATH.5.OA.A.1")  # the grade-to-grade progression
    assert before("NW.MATH.K.OA.A.1") < before("NW.MATH.1.OA.A.1") < before("NW.MATH.1.OA.A.2")
    assert "NW.MATH.5.OA.A.2" not in pres and "NW.MATH.5.OA.A.3" not in pres


def test_a_prerequisite_cycle_is_a_clear_error_naming_the_items(store: Store) -> None:
    pkg = load(DISTRICT)
    items = {i["humanCodingScheme"]: i for i in pkg["CFItems"]}
    a, b = items["CV.M4.03"], items["CV.M4.01"]
    pkg["CFAssociations"].append({  # 01 precedes 02 precedes 03 already: close the loop
        "identifier": "9a9a9a9a-0000-4000-8000-000000000001", "uri": "https://standards.cvusd.example/uri/loop",
        "associationType": "precedes", "lastChangeDateTime": "2026-06-15T09:30:00+00:00",
        "originNodeURI": {"title": "CV.M4.03", "identifier": a["identifier"], "uri": a["uri"]},
        "destinationNodeURI": {"title": "CV.M4.01", "identifier": b["identifier"], "uri": b["uri"]},
    })
    parsed, _ = ADAPTER.import_package(store, T, orjson.dumps(pkg))
    assert any("cycle" in w.message for w in parsed.warnings)
    repo = CompetencyRepository.of(store)
    with pytest.raises(Conflict) as exc:
        repo.prerequisites(T, code_of(repo, "CV.M4.02"))
    assert "cycle" in exc.value.detail
    for c in ("CV.M4.01", "CV.M4.02", "CV.M4.03"):
        assert c in exc.value.detail
    assert len(exc.value.errors) == 3


def test_a_district_framework_crosswalked_to_the_state_resolves_evidence_tagged_with_either(demo: CompetencyRepository, store: Store) -> None:
    state_item = next(c for c in load(STATE)["CFItems"] if c["humanCodingScheme"] == "NW.MATH.4.OA.A.1")
    # evidence tagged with the state standard's URI (an xAPI activity, an LTI line item...) resolves to it...
    ((kind, rid),) = store.records.lookup(T, "case", "case.uri", state_item["uri"], record_kind="competency")
    assert kind == "competency"
    # ...and counts for the district competency that restates it, and the other way round
    assert codes(demo.equivalents(T, rid)) == ["CV.M4.01"]
    assert codes(demo.equivalents(T, code_of(demo, "CV.M4.01"))) == ["NW.MATH.4.OA.A.1"]


def test_equivalents_are_transitive_whichever_framework_came_first(store: Store) -> None:
    third = load(DISTRICT)  # a second district restating the first district's competencies
    doc_id = "5e5e5e5e-0000-4000-8000-000000000000"
    third["CFDocument"].update(identifier=doc_id, uri=f"https://other.example/uri/{doc_id}", title="Other district")
    link = {"title": "Other district", "identifier": doc_id, "uri": third["CFDocument"]["uri"]}
    source_item = next(i for i in third["CFItems"] if i["humanCodingScheme"] == "CV.M4.01")
    new_id = "5e5e5e5e-0000-4000-8000-000000000001"
    third["CFItems"] = [{**source_item, "identifier": new_id, "uri": f"https://other.example/uri/{new_id}", "humanCodingScheme": "OD.1",
                         "CFDocumentURI": link}]
    third["CFAssociations"] = [{
        "identifier": "5e5e5e5e-0000-4000-8000-000000000002", "uri": "https://other.example/uri/a1", "associationType": "exactMatchOf",
        "lastChangeDateTime": "2026-06-15T09:30:00+00:00", "CFDocumentURI": link,
        "originNodeURI": {"title": "OD.1", "identifier": new_id, "uri": f"https://other.example/uri/{new_id}"},
        "destinationNodeURI": {"title": "CV.M4.01", "identifier": source_item["identifier"], "uri": source_item["uri"]},
    }]
    for path in (DISTRICT,):
        ADAPTER.import_package(store, T, path.read_bytes())
    ADAPTER.import_package(store, T, orjson.dumps(third))
    ADAPTER.import_package(store, T, STATE.read_bytes())  # the target of the first crosswalk arrives last
    repo = CompetencyRepository.of(store)
    assert sorted(codes(repo.equivalents(T, code_of(repo, "NW.MATH.4.OA.A.1")))) == ["CV.M4.01", "OD.1"]
    assert sorted(codes(repo.equivalents(T, code_of(repo, "OD.1")))) == ["CV.M4.01", "NW.MATH.4.OA.A.1"]


def test_search_matches_every_word_of_the_full_statement_best_first(demo: CompetencyRepository) -> None:
    found = demo.search(T, "proportional relationships", limit=50)
    assert found and all("proportional" in d["statement"].lower() and "relationships" in d["statement"].lower() for d in found)
    assert "proportional relationships" in found[0]["statement"].lower()
    assert demo.search(T, "PROPORTIONAL relationships", limit=50) == found
    assert demo.search(T, "zebra") == []
    state_fw = demo.framework_by_guid(T, uuid.UUID(load(STATE)["CFDocument"]["identifier"]))
    only_state = demo.search(T, "proportional relationships", framework_id=uuid.UUID(state_fw["id"]), limit=50)
    assert only_state and all(d["code"].startswith("NW.") for d in only_state) and len(only_state) < len(found)
    assert demo.search(T, "50%_") == []  # LIKE wildcards are taken literally


def test_unknown_competencies_are_not_found(demo: CompetencyRepository) -> None:
    with pytest.raises(NotFound):
        demo.children(T, uuid.uuid4())
    with pytest.raises(NotFound):
        demo.equivalents("other-tenant", code_of(demo, "CV.M4.01"))


# --- the router, on a real server ---------------------------------------------------------------


@pytest.fixture
def structure_api(api: Api) -> Api:
    """The gateway app, which mounts gateway.api.competencies, on a real port."""
    return api


def test_structure_endpoints(structure_api: Api) -> None:
    ADAPTER.load_demo(structure_api.store, T)
    repo = CompetencyRepository.of(structure_api.store)
    c = structure_api.auth_client(T, ["competencies.readonly"])
    cluster = code_of(repo, "NW.MATH.4.OA.A")
    r = c.get(f"/v1/competencies/{cluster}/children")
    assert r.status_code == 200 and r.json()["competency_id"] == str(cluster)
    assert codes(r.json()["items"]) == ["NW.MATH.4.OA.A.1", "NW.MATH.4.OA.A.2", "NW.MATH.4.OA.A.3"]
    assert codes(c.get(f"/v1/competencies/{cluster}/ancestors").json()["items"]) == ["NW.MATH.4.OA", "NW.MATH.4"]
    std = code_of(repo, "NW.MATH.4.OA.A.2")
    assert "NW.MATH.4.OA.A.1" in codes(c.get(f"/v1/competencies/{std}/prerequisites").json()["items"])
    assert codes(c.get(f"/v1/competencies/{code_of(repo, 'NW.MATH.4.OA.A.1')}/equivalents").json()["items"]) == ["CV.M4.01"]
    r = c.get("/v1/competency-search", params={"q": "unit rate", "limit": 3})
    assert r.status_code == 200 and 0 < len(r.json()["items"]) <= 3 and r.json()["q"] == "unit rate"
    assert codes(c.get("/v1/competencies", params={"code": "CV.M7.01"}).json()["items"]) == ["CV.M7.01"]  # lookup by code (v1)

    assert c.get(f"/v1/competencies/{uuid.uuid4()}/children").status_code == 404
    assert c.get("/v1/competency-search").status_code == 422
    assert c.get("/v1/competency-search", params={"q": "rate", "limit": 0}).status_code == 422
    assert structure_api.client().get(f"/v1/competencies/{cluster}/children").status_code == 401
    assert structure_api.auth_client(T, ["roster-core.readonly"]).get("/v1/competency-search", params={"q": "x"}).status_code == 403
    other = structure_api.auth_client("another-district", ["competencies.readonly"])
    assert other.get(f"/v1/competencies/{cluster}/equivalents").status_code == 404


def test_a_cycle_answers_409_naming_the_items(structure_api: Api) -> None:
    pkg = load(DISTRICT)
    items = {i["humanCodingScheme"]: i for i in pkg["CFItems"]}
    a, b = items["CV.M7.02"], items["CV.M7.01"]
    pkg["CFAssociations"].append({
        "identifier": "9a9a9a9a-0000-4000-8000-000000000002", "uri": "https://standards.cvusd.example/uri/loop7",
        "associationType": "precedes", "lastChangeDateTime": "2026-06-15T09:30:00+00:00",
        "originNodeURI": {"title": "CV.M7.02", "identifier": a["identifier"], "uri": a["uri"]},
        "destinationNodeURI": {"title": "CV.M7.01", "identifier": b["identifier"], "uri": b["uri"]},
    })
    ADAPTER.import_package(structure_api.store, T, orjson.dumps(pkg))
    repo = CompetencyRepository.of(structure_api.store)
    r = structure_api.auth_client(T, ["competencies.readonly"]).get(f"/v1/competencies/{code_of(repo, 'CV.M7.03')}/prerequisites")
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert "CV.M7.01" in r.json()["detail"] and "CV.M7.02" in r.json()["detail"]
