"""The CASE 1.0 provider API at /ims/case/v1p0 on a real server: endpoints, query parameters of
getAllCFDocuments, imsx_StatusInfo errors exactly as the binding's schema defines, and the round
trip (import -> CFPackages/{id} -> the original, field for field)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema
import orjson
import pytest

from adapters.case import SAMPLES, CaseAdapter
from adapters.case.equivalence import package_equivalent
from adapters.case.schema import published_schema

FIXTURES = Path(__file__).parent / "fixtures" / "case"
SAMPLE = FIXTURES / "opensalt-sample-framework.json"
ORDERING = FIXTURES / "opensalt-test-framework.json"
STATUS_INFO = Path(__file__).resolve().parents[1] / "schemas" / "case" / "case-v1p0-imsx-statusinfo.schema.json"
ADAPTER = CaseAdapter()
T = "district-a"
READ = ["competencies.readonly"]
P = "/ims/case/v1p0"


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def status_info_schema() -> dict[str, Any]:
    """imsx_StatusInfo.Type as the CASE 1.0 REST binding publishes it (schemas/case/README.md)."""
    return orjson.loads(STATUS_INFO.read_bytes())


def assert_status_info(r, status: int, minor: str | None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    jsonschema.validate(body, status_info_schema())
    assert body["imsx_codeMajor"] == "failure" and body["imsx_severity"] == "error" and body["imsx_description"]
    if minor is None:
        assert "imsx_codeMinor" not in body
    else:
        assert body["imsx_codeMinor"] == {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}]}


@pytest.fixture
def loaded(api):
    for path in (SAMPLE, ORDERING):
        ADAPTER.import_package(api.store, T, path.read_bytes())
    return api


@pytest.mark.parametrize("path", [SAMPLE, ORDERING], ids=["sample", "ordering"])
def test_a_package_imported_and_served_back_is_the_original_field_for_field(loaded, path: Path) -> None:
    original = load(path)
    r = loaded.auth_client(T, READ).get(f"{P}/CFPackages/{original['CFDocument']['identifier']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    served = r.json()
    diffs = package_equivalent(original, served)
    if path == SAMPLE:  # the three normalisations reported as warnings at import, and nothing else
        alias = [d for d in diffs if d.endswith((".educationalLevel: only in first", ".educationLevel: only in second"))]
        assert len(alias) == 32  # 16 items' educationalLevel served as educationLevel
        rest = [d for d in diffs if d not in alias]
        assert len(rest) == 5 and all(".sequenceNumber: '" in d or d.endswith(".description: only in first") for d in rest), diffs
    else:
        assert diffs == []
    assert jsonschema.Draft7Validator(published_schema()).is_valid(served)


def test_the_bundled_frameworks_round_trip_with_rubric_and_definitions(api) -> None:
    ADAPTER.load_demo(api.store, "demo")
    c = api.auth_client("demo", READ)
    for name in ("northwind-state-mathematics.json", "cedar-valley-mathematics.json"):
        original = load(SAMPLES / name)
        served = c.get(f"{P}/CFPackages/{original['CFDocument']['identifier']}").json()
        assert package_equivalent(original, served) == []


def test_a_served_package_follows_every_change_to_the_tenant(loaded) -> None:
    c = loaded.auth_client(T, READ)
    pkg = load(ORDERING)
    url = f"{P}/CFPackages/{pkg['CFDocument']['identifier']}"
    assert c.get(url).json()["CFItems"] and c.get(url).json() == c.get(url).json()  # built, then served again
    pkg["CFDocument"]["lastChangeDateTime"] = "2019-01-01T00:00:00+00:00"
    pkg["CFItems"][0]["fullStatement"] = "Revised"
    ADAPTER.import_package(loaded.store, T, orjson.dumps(pkg))
    served = c.get(url).json()
    assert package_equivalent(pkg, served) == []


def test_documents_list_pages_sorts_filters_and_selects_fields(loaded) -> None:
    c = loaded.auth_client(T, READ)
    r = c.get(f"{P}/CFDocuments")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "2"
    docs = r.json()["CFDocuments"]
    assert {d["title"] for d in docs} == {"What Standards Could Be", "ordering"}
    assert all(isinstance(d["CFPackageURI"], dict) and d["CFPackageURI"]["identifier"] == d["identifier"] for d in docs)

    r = c.get(f"{P}/CFDocuments", params={"limit": 1, "offset": 0, "sort": "title", "orderBy": "desc"})
    assert [d["title"] for d in r.json()["CFDocuments"]] == ["What Standards Could Be"]
    links = {part.split('rel="')[1].rstrip('"'): part.split(">")[0].lstrip("<") for part in r.headers["Link"].split(", ")}
    assert set(links) == {"next", "first", "last"}
    nxt = parse_qs(urlparse(links["next"]).query)
    assert nxt["offset"] == ["1"] and nxt["limit"] == ["1"] and nxt["sort"] == ["title"]
    r = c.get(f"{P}/CFDocuments", params={"limit": 1, "offset": 1, "sort": "title", "orderBy": "desc"})
    assert [d["title"] for d in r.json()["CFDocuments"]] == ["ordering"] and 'rel="prev"' in r.headers["Link"]

    r = c.get(f"{P}/CFDocuments", params={"filter": "creator='Brandon'"})
    assert [d["title"] for d in r.json()["CFDocuments"]] == ["ordering"]
    r = c.get(f"{P}/CFDocuments", params={"filter": "title~'standards' OR title='ordering'"})
    assert r.headers["X-Total-Count"] == "2"
    r = c.get(f"{P}/CFDocuments", params={"filter": "title~'standards' AND creator='Brandon'"})
    assert r.json()["CFDocuments"] == []
    r = c.get(f"{P}/CFDocuments", params={"fields": "identifier,title", "sort": "title"})
    assert [sorted(d) for d in r.json()["CFDocuments"]] == [["identifier", "title"]] * 2


def test_single_object_endpoints(loaded) -> None:
    c = loaded.auth_client(T, READ)
    sample = load(SAMPLE)
    item = sample["CFItems"][0]
    r = c.get(f"{P}/CFItems/{item['identifier']}")
    assert r.status_code == 200
    got = r.json()
    assert got["fullStatement"] == item["fullStatement"] and got["humanCodingScheme"] == item["humanCodingScheme"]
    assert got["CFDocumentURI"] == {"title": "What Standards Could Be", "identifier": sample["CFDocument"]["identifier"],
                                    "uri": sample["CFDocument"]["uri"]}  # CFItem.Type requires the link object
    doc = c.get(f"{P}/CFDocuments/{sample['CFDocument']['identifier']}").json()
    assert doc["title"] == "What Standards Could Be" and doc["CFPackageURI"]["uri"] == sample["CFDocument"]["CFPackageURI"]
    assoc = sample["CFAssociations"][0]
    got = c.get(f"{P}/CFAssociations/{assoc['identifier']}").json()
    assert got["associationType"] == "exactMatchOf" and got["originNodeURI"] == assoc["originNodeURI"]
    assert got["destinationNodeURI"] == assoc["destinationNodeURI"] and isinstance(got["CFDocumentURI"], dict)
    r = c.get(f"{P}/CFItemAssociations/{item['identifier']}").json()
    expected = {a["identifier"] for a in sample["CFAssociations"] if item["identifier"] in (a["originNodeURI"]["identifier"], a["destinationNodeURI"]["identifier"])}
    assert r["CFItem"]["identifier"] == item["identifier"] and {a["identifier"] for a in r["CFAssociations"]} == expected
    itype = sample["CFDefinitions"]["CFItemTypes"][0]
    got = c.get(f"{P}/CFItemTypes/{itype['identifier']}").json()
    assert got["CFItemTypes"][0]["identifier"] == itype["identifier"] and got["CFItemTypes"][0]["title"] == "Cluster"


def test_definition_and_rubric_endpoints_on_the_bundled_framework(api) -> None:
    ADAPTER.load_demo(api.store, "demo")
    c = api.auth_client("demo", READ)
    state = load(SAMPLES / "northwind-state-mathematics.json")
    defs = state["CFDefinitions"]
    concepts = c.get(f"{P}/CFConcepts/{defs['CFConcepts'][0]['identifier']}").json()["CFConcepts"]
    assert [x["hierarchyCode"] for x in concepts] == ["1", "1.1", "1.2"]  # the concept and its children
    assert c.get(f"{P}/CFSubjects/{defs['CFSubjects'][0]['identifier']}").json()["CFSubjects"][0]["title"] == "Mathematics"
    assert c.get(f"{P}/CFLicenses/{defs['CFLicenses'][0]['identifier']}").json()["title"] == "CC BY 4.0"
    grouping = defs["CFAssociationGroupings"][0]
    assert c.get(f"{P}/CFAssociationGroupings/{grouping['identifier']}").json() == grouping
    rubric = state["CFRubrics"][0]
    assert package_equivalent(rubric, c.get(f"{P}/CFRubrics/{rubric['identifier']}").json()) == []


def test_errors_are_imsx_status_info_exactly_as_the_binding_defines(loaded) -> None:
    anon = loaded.client()
    assert_status_info(anon.get(f"{P}/CFDocuments"), 401, "unauthorisedrequest")
    wrong_scope = loaded.auth_client(T, ["roster-core.readonly"])
    assert_status_info(wrong_scope.get(f"{P}/CFDocuments"), 403, "forbidden")
    c = loaded.auth_client(T, READ)
    assert_status_info(c.get(f"{P}/CFItems/{uuid.uuid4()}"), 404, "unknownobject")
    assert_status_info(c.get(f"{P}/CFPackages/{uuid.uuid4()}"), 404, "unknownobject")
    assert_status_info(c.get(f"{P}/CFItems/not-a-uuid"), 404, "invaliduuid")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"sort": "colour"}), 400, "invalid_sort_field")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"fields": "identifier,colour"}), 400, "invalid_selection_field")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"filter": "colour='red'"}), 400, "invalid_selection_field")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"filter": "title=ordering"}), 400, "invalid_selection_field")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"limit": 0}), 400, "invalid_selection_field")
    assert_status_info(c.get(f"{P}/CFDocuments", params={"orderBy": "up"}), 400, "invalid_selection_field")
    assert_status_info(c.post(f"{P}/CFDocuments"), 405, None)


def test_another_tenant_sees_none_of_it(loaded) -> None:
    other = loaded.auth_client("district-b", READ)
    sample = load(SAMPLE)
    assert other.get(f"{P}/CFDocuments").json() == {"CFDocuments": []}
    assert_status_info(other.get(f"{P}/CFPackages/{sample['CFDocument']['identifier']}"), 404, "unknownobject")
    assert_status_info(other.get(f"{P}/CFItems/{sample['CFItems'][0]['identifier']}"), 404, "unknownobject")
