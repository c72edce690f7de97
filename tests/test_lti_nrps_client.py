"""The NRPS client: a context's membership, paged with Link rel="next", into canonical
Person + Enrollment records in one transaction. The platform's membership service and
token endpoint are external peers, mocked with respx; the member document is the NRPS 2.0
specification's example (section 2.3), joined to a OneRoster person by lis_person_sourcedid."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
import respx

from adapters.lti.claims import C_NRPS
from adapters.lti.tool.message_launch import Launch
from adapters.lti.tool.names_roles import MEMBERSHIPS, NrpsClient, memberships_url
from adapters.lti.tool.platforms import PlatformIn, PlatformStore
from adapters.lti.tool.service_auth import ServiceAuth
from gateway.api.context import AppContext
from gateway.auth import Auth
from gateway.config import Settings
from gateway.errors import UpstreamError, ValidationError
from gateway.http import HttpClient
from gateway.store import Store
from tests import factories as f

TOKEN_URL = "https://platform.example.edu/token"
URL = "https://lms.example.com/sections/2923/memberships"
ISS = "https://platform.example.edu"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
CONTEXT = {"id": "2923-abc", "label": "CPS 435", "title": "CPS 435 Learning Analytics"}
# NRPS 2.0, 2.3: the specification's example member
JANE = {
    "status": "Active", "name": "Jane Q. Public", "picture": "https://platform.example.edu/jane.jpg", "given_name": "Jane",
    "family_name": "Doe", "middle_name": "Marie", "email": "jane@platform.example.edu",
    "user_id": "0ae836b9-7fc9-4060-006f-27b2066ac545", "lis_person_sourcedid": "59254-6782-12ab", "roles": [INSTRUCTOR],
}
PAGE_2 = [
    {"status": "Active", "user_id": "learner-1", "given_name": "Lin", "family_name": "Ma", "roles": [LEARNER]},
    {"status": "Inactive", "user_id": "learner-2", "name": "Sam Roe", "roles": [LEARNER]},
]


def container(members: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": URL, "context": CONTEXT, "members": members}


@pytest.fixture
def world(store: Store) -> Any:
    auth = Auth.build(store.engine, issuer="tessera", token_ttl_seconds=3600)
    ctx = AppContext(Settings(database_url="sqlite://"), store, auth)
    p = PlatformStore(store.engine).add("t1", PlatformIn(
        name="LMS", issuer=ISS, client_id="c1", deployment_ids=["d1"], auth_login_url=f"{ISS}/auth",
        token_url=TOKEN_URL, jwks_url=f"{ISS}/jwks",
    ))
    with respx.mock(assert_all_called=False) as mock, HttpClient() as http:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "tok", "expires_in": 3600}))
        yield mock, NrpsClient(ctx, ServiceAuth(auth.keys, http)), p


def serve_pages(mock: respx.MockRouter, second: Any) -> respx.Route:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == MEMBERSHIPS and request.headers["authorization"] == "Bearer tok"
        if "page=2" in str(request.url):
            return second if isinstance(second, httpx.Response) else httpx.Response(200, json=container(second))
        return httpx.Response(200, json=container([JANE]), headers={"Link": f'<{URL}?page=2>; rel="next"'})

    return mock.get(url__startswith=URL).mock(side_effect=answer)


def test_memberships_become_people_and_enrollments_joined_to_the_roster(world: Any, store: Store) -> None:
    mock, nrps, p = world
    school = f.org()
    jane = f.person("59254-6782-12ab", school)
    store.records.apply("t1", [school, jane])
    route = serve_pages(mock, PAGE_2)
    result = nrps.sync(p, URL)
    assert route.call_count == 2
    assert result.counts["enrollment"].created == 3 and result.counts["person"].created == 2
    # Jane is the roster's person, now also known by her LTI user_id
    assert store.records.lookup("t1", ISS, "lti.sub", JANE["user_id"]) == [("person", jane.id)]
    enrollments = {e["person_id"]: e for e in map(orjson.loads, store.records.page("t1", "enrollment").items)}
    assert enrollments[str(jane.id)]["role"] == "teacher"
    (lin,) = store.records.lookup("t1", ISS, "lti.sub", "learner-1")
    (sam,) = store.records.lookup("t1", ISS, "lti.sub", "learner-2")
    assert enrollments[str(lin[1])]["role"] == "student" and enrollments[str(lin[1])]["status"] == "active"
    assert enrollments[str(sam[1])]["status"] == "tobedeleted"
    assert store.records.get("t1", "person", sam[1]).given_name == "Sam"
    section = store.records.get("t1", "section", uuid.UUID(enrollments[str(lin[1])]["section_id"]))
    assert section.native_id == "2923-abc" and section.title == "CPS 435 Learning Analytics"
    again = nrps.sync(p, URL)
    assert again.created == 0 and again.updated == 0


@pytest.mark.parametrize("second", [httpx.Response(500), [{"status": "Active", "roles": [LEARNER]}], httpx.Response(200, json={"x": 1})])
def test_a_broken_page_records_nothing(world: Any, store: Store, second: Any) -> None:
    mock, nrps, p = world
    serve_pages(mock, second)
    with pytest.raises(UpstreamError):
        nrps.sync(p, URL)
    assert store.records.count("t1", "person") == 0 and store.records.count("t1", "enrollment") == 0


def test_the_memberships_url_comes_from_the_launch(world: Any) -> None:
    _, _, p = world
    assert memberships_url(Launch(p, {C_NRPS: {"context_memberships_url": URL, "service_versions": ["2.0"]}})) == URL
    with pytest.raises(ValidationError):
        memberships_url(Launch(p, {}))
