"""xAPI document resources over real HTTP: State, Activity Profile, Agent Profile.

Each test names the rule of xAPI 1.0.3 Communication (2.2 documents, 2.3 State, 2.6 Agent
Profile, 2.7 Activity Profile, 3.1 Concurrency, 3.2 errors) or of xAPI 2.0 it checks. The
merge example is the spec's own (2.2.s7).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

AGENT = {"objectType": "Agent", "mbox": "mailto:learner@example.com"}
ACTIVITY = "http://www.example.com/activities/1"
V1 = {"X-Experience-API-Version": "1.0.3"}
V2 = {"X-Experience-API-Version": "2.0.0"}


@pytest.fixture
def lrs(api) -> httpx.Client:
    cid, secret = api.credentials("t1", ["xapi/all"])
    c = api.client()
    c.auth = httpx.BasicAuth(cid, secret)
    c.headers.update(V1)
    return c


def state(**extra) -> dict:
    return {"activityId": ACTIVITY, "agent": json.dumps(AGENT), "stateId": "bookmark", **extra}


def etag(r: httpx.Response) -> str:
    return r.headers["etag"]


# --- State (2.3) -------------------------------------------------------------------------------


def test_state_put_then_get_returns_the_document_with_its_content_type_etag_and_last_modified(lrs):
    body = b"page=7"
    assert lrs.put("/xapi/activities/state", params=state(), content=body, headers={"Content-Type": "text/plain"}).status_code == 204
    r = lrs.get("/xapi/activities/state", params=state())
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"].startswith("text/plain")
    # 3.1.s4.b2, b4: SHA-1 hex of the content, in quotes
    assert etag(r) == f'"{hashlib.sha1(body).hexdigest()}"'
    assert parsedate_to_datetime(r.headers["last-modified"]).year >= 2024
    assert r.headers["x-experience-api-version"] == "1.0.3"


def test_head_answers_like_get_without_a_body(lrs):
    lrs.put("/xapi/activities/state", params=state(), json={"a": 1})
    r = lrs.head("/xapi/activities/state", params=state())
    assert r.status_code == 200 and r.content == b"" and etag(r).startswith('"')


def test_unknown_state_is_404(lrs):
    assert lrs.get("/xapi/activities/state", params=state(stateId="nope")).status_code == 404


def test_post_merges_top_level_properties_as_in_the_spec_example(lrs):
    # Communication 2.2.s7: {"x":"foo","y":"bar"} + {"x":"bash","z":"faz"}
    assert lrs.post("/xapi/activities/state", params=state(), json={"x": "foo", "y": "bar"}).status_code == 204
    assert lrs.post("/xapi/activities/state", params=state(), json={"x": "bash", "z": "faz"}).status_code == 204
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"x": "bash", "y": "bar", "z": "faz"}


def test_post_merge_replaces_nested_objects_whole(lrs):
    lrs.post("/xapi/activities/state", params=state(), json={"car": {"make": "Ford", "model": "Escape"}, "driver": "Dale"})
    lrs.post("/xapi/activities/state", params=state(), json={"car": {"make": "Dodge"}})
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"car": {"make": "Dodge"}, "driver": "Dale"}


@pytest.mark.parametrize(
    ("stored", "posted"),
    [(b"plain text", b'{"a": 1}'), (b'{"a": 1}', b"[1, 2]"), (b"[1]", b'{"a": 1}')],
)
def test_post_merge_needs_two_json_objects_and_changes_nothing_otherwise(lrs, stored, posted):
    ctype = "application/json" if stored.startswith((b"{", b"[")) else "text/plain"
    lrs.put("/xapi/activities/state", params=state(), content=stored, headers={"Content-Type": ctype})
    r = lrs.post("/xapi/activities/state", params=state(), content=posted, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"]
    assert lrs.get("/xapi/activities/state", params=state()).content == stored


def test_registration_is_part_of_the_address(lrs):
    reg = str(uuid.uuid4())
    lrs.put("/xapi/activities/state", params=state(registration=reg), json={"with": "registration"})
    lrs.put("/xapi/activities/state", params=state(), json={"without": True})
    assert lrs.get("/xapi/activities/state", params=state(registration=reg)).json() == {"with": "registration"}
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"without": True}
    other = str(uuid.uuid4())
    assert lrs.get("/xapi/activities/state", params=state(registration=other)).status_code == 404


def test_state_ids_list_and_since_keeps_only_later_changes(lrs):
    params = state()
    del params["stateId"]
    lrs.put("/xapi/activities/state", params=state(stateId="s1"), json={})
    time.sleep(0.05)
    since = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    lrs.put("/xapi/activities/state", params=state(stateId="s2"), json={})
    everything = lrs.get("/xapi/activities/state", params=params)
    assert everything.status_code == 200 and sorted(everything.json()) == ["s1", "s2"]
    assert lrs.get("/xapi/activities/state", params={**params, "since": since}).json() == ["s2"]
    r = lrs.get("/xapi/activities/state", params={**params, "since": "not a time"})
    assert r.status_code == 400 and "since" in r.json()["message"]


def test_state_delete_without_state_id_deletes_the_whole_context(lrs):
    for sid in ("a", "b"):
        lrs.put("/xapi/activities/state", params=state(stateId=sid), json={})
    lrs.put("/xapi/activities/state", params=state(stateId="c", activityId="http://www.example.com/other"), json={})
    scope = state()
    del scope["stateId"]
    assert lrs.delete("/xapi/activities/state", params=scope).status_code == 204
    assert lrs.get("/xapi/activities/state", params=scope).json() == []
    assert lrs.get("/xapi/activities/state", params=state(stateId="c", activityId="http://www.example.com/other")).status_code == 200


def test_state_put_without_headers_overwrites_in_1_0_3_but_is_409_in_2_0(lrs):
    assert lrs.put("/xapi/activities/state", params=state(stateId="fresh"), json={}, headers=V2).status_code == 204
    lrs.put("/xapi/activities/state", params=state(), json={"v": 1})
    assert lrs.put("/xapi/activities/state", params=state(), json={"v": 2}).status_code == 204
    r = lrs.put("/xapi/activities/state", params=state(), json={"v": 3}, headers=V2)
    assert r.status_code == 409 and "If-Match" in r.json()["message"]
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"v": 2}


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"activityId": None}, "activityId"),
        ({"activityId": "not an iri"}, "activityId"),
        ({"agent": None}, "agent"),
        ({"agent": "not JSON"}, "agent"),
        ({"agent": "true"}, "agent"),
        ({"agent": json.dumps({"objectType": "Agent", "mbox": "mailto:a@b.c", "openid": "http://x.example"})}, "agent"),
        ({"registration": "not-a-uuid"}, "registration"),
        ({"stateId": None}, "stateId"),
        ({"unknown": "1"}, "unknown"),
    ],
)
def test_bad_parameters_are_400_with_a_message_naming_them(lrs, params, word):
    query = {k: v for k, v in {**state(), **params}.items() if v is not None}
    r = lrs.put("/xapi/activities/state", params=query, json={})
    assert r.status_code == 400
    assert word in r.json()["message"]


def test_since_is_not_a_parameter_of_a_put(lrs):
    r = lrs.put("/xapi/activities/state", params=state(since="2020-01-01T00:00:00Z"), json={})
    assert r.status_code == 400 and "since" in r.json()["message"]


# --- Concurrency (3.1) -------------------------------------------------------------------------


def profile(**extra) -> dict:
    return {"activityId": ACTIVITY, "profileId": "settings", **extra}


CREATE = {"If-None-Match": "*"}


def test_profile_put_without_concurrency_headers_is_400_for_a_new_document(lrs):
    # 3.1.s3.b1: the client MUST send If-Match or If-None-Match (ADL conformance XAPI-00273)
    r = lrs.put("/xapi/activities/profile", params=profile(), json={"v": 1})
    assert r.status_code == 400 and "If-Match" in r.json()["message"]
    assert lrs.get("/xapi/activities/profile", params=profile()).status_code == 404


def test_profile_put_onto_an_existing_document_without_headers_is_409(lrs):
    assert lrs.put("/xapi/activities/profile", params=profile(), json={"v": 1}, headers=CREATE).status_code == 204
    r = lrs.put("/xapi/activities/profile", params=profile(), json={"v": 2})
    assert r.status_code == 409
    assert lrs.get("/xapi/activities/profile", params=profile()).json() == {"v": 1}


def test_if_match_with_the_current_etag_succeeds_and_a_stale_one_is_412(lrs):
    lrs.put("/xapi/activities/profile", params=profile(), json={"v": 1}, headers=CREATE)
    first = etag(lrs.get("/xapi/activities/profile", params=profile()))
    assert lrs.put("/xapi/activities/profile", params=profile(), json={"v": 2}, headers={"If-Match": first}).status_code == 204
    r = lrs.put("/xapi/activities/profile", params=profile(), json={"v": 3}, headers={"If-Match": first})
    assert r.status_code == 412
    assert lrs.post("/xapi/activities/profile", params=profile(), json={"w": 1}, headers={"If-Match": first}).status_code == 412
    assert lrs.delete("/xapi/activities/profile", params=profile(), headers={"If-Match": first}).status_code == 412
    assert lrs.get("/xapi/activities/profile", params=profile()).json() == {"v": 2}


def test_if_match_is_compared_without_regard_to_hex_case(lrs):
    lrs.put("/xapi/activities/profile", params=profile(), json={"v": 1}, headers=CREATE)
    tag = etag(lrs.get("/xapi/activities/profile", params=profile())).upper()
    assert lrs.put("/xapi/activities/profile", params=profile(), json={"v": 2}, headers={"If-Match": tag}).status_code == 204


def test_if_none_match_star_creates_only(lrs):
    assert lrs.put("/xapi/activities/profile", params=profile(), json={"v": 1}, headers={"If-None-Match": "*"}).status_code == 204
    r = lrs.put("/xapi/activities/profile", params=profile(), json={"v": 2}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    assert lrs.get("/xapi/activities/profile", params=profile()).json() == {"v": 1}


def test_if_match_on_a_missing_document_is_412(lrs):
    r = lrs.put("/xapi/activities/profile", params=profile(), json={}, headers={"If-Match": '"' + "0" * 40 + '"'})
    assert r.status_code == 412


def test_state_honours_if_match_in_2_0(lrs):
    lrs.put("/xapi/activities/state", params=state(), json={"v": 1})
    r = lrs.put("/xapi/activities/state", params=state(), json={"v": 2}, headers={**V2, "If-Match": '"1234"'})
    assert r.status_code == 412
    tag = etag(lrs.get("/xapi/activities/state", params=state(), headers=V2))
    assert lrs.put("/xapi/activities/state", params=state(), json={"v": 2}, headers={**V2, "If-Match": tag}).status_code == 204


# --- Agent Profile (2.6), Activity Profile (2.7) -----------------------------------------------


def test_agent_profile_round_trip_and_id_list(lrs):
    params = {"agent": json.dumps(AGENT), "profileId": "prefs"}
    assert lrs.put("/xapi/agents/profile", params=params, json={"lang": "en"}, headers=CREATE).status_code == 204
    assert lrs.get("/xapi/agents/profile", params=params).json() == {"lang": "en"}
    ids = lrs.get("/xapi/agents/profile", params={"agent": json.dumps(AGENT)})
    assert ids.json() == ["prefs"] and "last-modified" in ids.headers
    # the same agent written with its properties in another order is the same agent
    same = {"agent": json.dumps({"mbox": "mailto:learner@example.com"}), "profileId": "prefs"}
    assert lrs.get("/xapi/agents/profile", params=same).json() == {"lang": "en"}
    assert lrs.delete("/xapi/agents/profile", params=params).status_code == 204
    assert lrs.get("/xapi/agents/profile", params=params).status_code == 404


def test_activity_profile_delete_needs_a_profile_id(lrs):
    r = lrs.delete("/xapi/activities/profile", params={"activityId": ACTIVITY})
    assert r.status_code == 400 and "profileId" in r.json()["message"]


def test_activity_profile_rejects_an_agent_parameter(lrs):
    r = lrs.get("/xapi/activities/profile", params={"activityId": ACTIVITY, "agent": json.dumps(AGENT)})
    assert r.status_code == 400 and "agent" in r.json()["message"]


# --- auth, tenants, versions -------------------------------------------------------------------


def test_documents_need_credentials(api):
    with api.client() as c:
        r = c.get("/xapi/activities/state", params=state(), headers=V1)
    assert r.status_code == 401


def test_version_header_is_required(lrs):
    del lrs.headers["X-Experience-API-Version"]
    assert lrs.get("/xapi/activities/state", params=state()).status_code == 400


def test_tenants_do_not_see_each_others_documents(api, lrs):
    lrs.put("/xapi/activities/state", params=state(), json={"secret": 1})
    cid, secret = api.credentials("t2", ["xapi/all"])
    with api.client() as other:
        r = other.get("/xapi/activities/state", params=state(), headers=V1, auth=(cid, secret))
    assert r.status_code == 404


def test_a_bearer_token_without_the_state_scope_is_403(api):
    cid, secret = api.credentials("t1", ["xapi/statements/read"])
    with api.client() as c:
        r = c.get("/xapi/activities/state", params=state(), headers=V1, auth=(cid, secret))
    assert r.status_code == 403


def test_upper_case_base_path_works_too(lrs):
    lrs.put("/xAPI/activities/state", params=state(), json={"v": 1})
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"v": 1}


def test_alternate_request_syntax_reaches_the_state_resource(lrs):
    # Communication 1.3: POST ?method=PUT, parameters and headers as form fields, the document as "content"
    authorization = next(lrs.auth.auth_flow(httpx.Request("GET", "http://lrs"))).headers["Authorization"]
    form = {**state(), "Authorization": authorization, "X-Experience-API-Version": "1.0.3",
            "Content-Type": "application/json", "content": '{"alt": true}'}
    r = httpx.post(f"{str(lrs.base_url).rstrip('/')}/xapi/activities/state", params={"method": "PUT"}, data=form)
    assert r.status_code == 204, r.text
    assert lrs.get("/xapi/activities/state", params=state()).json() == {"alt": True}
