"""LTI Names and Role Provisioning Services 2.0, Tessera as platform: memberships of a
context from the canonical roster, role mapping and paging (Link rel=next)."""

from __future__ import annotations

import httpx

from tests.test_lti_platform import AGS, NRPS, ToolKey, register, seed, service_token

CONTAINER = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def _client(api, store, scopes=(NRPS,)) -> tuple[httpx.Client, dict]:
    data = seed(store, n=5)
    key = ToolKey()
    tool = register(store, key)
    http = httpx.Client(headers={"Authorization": f"Bearer {service_token(api, tool, key, list(scopes))}"}, timeout=30)
    return http, {**data, "url": f"{api.base_url}/lti/platform/nrps/contexts/{data['section'].id}/memberships"}


def test_membership_container_lists_the_roster_with_lis_roles(api, store) -> None:
    http, data = _client(api, store)
    r = http.get(data["url"])
    assert r.status_code == 200 and r.headers["content-type"] == CONTAINER
    body = r.json()
    sec = data["section"]
    assert body["id"] == data["url"] and body["context"] == {"id": str(sec.id), "title": sec.title, "label": sec.title}
    by_user = {m["user_id"]: m for m in body["members"]}
    assert set(by_user) == {str(p.id) for p in data["students"]} | {str(data["teacher"].id)}
    student = by_user[str(data["students"][0].id)]
    assert student["status"] == "Active" and student["roles"][0] == LEARNER
    assert student["lis_person_sourcedid"] == data["students"][0].native_id and student["family_name"] == data["students"][0].family_name
    assert by_user[str(data["teacher"].id)]["roles"][0] == INSTRUCTOR


def test_role_filter_and_paging_with_link_next(api, store) -> None:
    http, data = _client(api, store)
    teachers = http.get(data["url"], params={"role": INSTRUCTOR}).json()["members"]
    assert [m["user_id"] for m in teachers] == [str(data["teacher"].id)]
    seen, url, pages = [], data["url"] + "?limit=2&role=" + LEARNER.replace("#", "%23"), 0
    while url:
        r = http.get(url)
        pages += 1
        seen += [m["user_id"] for m in r.json()["members"]]
        link = r.headers.get("link")
        url = link.split(">")[0].lstrip("<") if link else None
        assert not link or 'rel="next"' in link
    bad = http.get(data["url"], params={"limit": "0"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "limit"
    assert pages == 3 and sorted(seen) == sorted(str(p.id) for p in data["students"]) and len(seen) == len(set(seen))


def test_nrps_needs_its_scope_and_the_tenants_section(api, store) -> None:
    http, data = _client(api, store, scopes=(AGS + "score",))
    r = http.get(data["url"])
    assert r.status_code == 403 and r.headers["content-type"] == "application/json" and "message" in r.json()
    assert httpx.get(data["url"]).status_code == 401
    seed(store, tenant="t2")
    key = ToolKey()
    other = register(store, key, tenant="t2")
    foreign = httpx.Client(headers={"Authorization": f"Bearer {service_token(api, other, key, [NRPS])}"})
    assert foreign.get(data["url"]).status_code == 404
