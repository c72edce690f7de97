"""The OneRoster REST consumer against a mocked remote provider (respx mocks only that peer):
paging, incremental pulls with the dateLastModified filter, OAuth 2.0 client credentials,
imsx_StatusInfo errors, all-or-nothing application, and `tessera import oneroster --url`."""

from __future__ import annotations

import base64
import email.utils
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from adapters.oneroster.client import (
    COLLECTIONS,
    OneRosterClient,
    ProviderError,
    provider_base,
)
from gateway.errors import (
    AuthError,
    NotFound,
    TesseraError,
    ValidationError,
)
from gateway.model import Status, record_id
from gateway.store import Store
from gateway.wiring import open_store

SITE = "https://sis.provider.example"
BASE = f"{SITE}/ims/oneroster/rostering/v1p2"
TOKEN_URL = f"{SITE}/oauth/token"
SECRET = "s3cr3t-value-never-shown"
T = "t1"
MODIFIED = "2026-01-10T08:00:00.000Z"


# --- factories-style builders of OneRoster 1.2 REST objects ------------------------------------------


def ref(kind: str, sid: str) -> dict[str, str]:
    return {"sourcedId": sid, "type": kind}


def wire_org(sid: str = "d1", **kw) -> dict:
    return {"sourcedId": sid, "status": "active", "dateLastModified": MODIFIED, "name": f"Org {sid}", "type": "district", **kw}


def wire_session(sid: str = "y1", **kw) -> dict:
    return {"sourcedId": sid, "status": "active", "dateLastModified": MODIFIED, "title": "2025-2026", "type": "schoolYear",
            "startDate": "2025-08-01", "endDate": "2026-06-30", "schoolYear": "2026", **kw}


def wire_course(sid: str = "c1", org: str = "d1", **kw) -> dict:
    return {"sourcedId": sid, "status": "active", "dateLastModified": MODIFIED, "title": f"Course {sid}", "org": ref("org", org), **kw}


def wire_class(sid: str = "k1", course: str = "c1", school: str = "d1", **kw) -> dict:
    return {"sourcedId": sid, "status": "active", "dateLastModified": MODIFIED, "title": f"Class {sid}", "classType": "scheduled",
            "course": ref("course", course), "school": ref("org", school), "terms": [ref("academicSession", "y1")], **kw}


def wire_user(sid: str, org: str = "d1", **kw) -> dict:
    return {"sourcedId": sid, "status": "active", "dateLastModified": MODIFIED, "enabledUser": True, "givenName": "Ada",
            "familyName": f"Lovelace {sid}", "roles": [{"roleType": "primary", "role": "student", "org": ref("org", org)}], **kw}


def wire_enrollment(user: str, cls: str = "k1", school: str = "d1", **kw) -> dict:
    return {"sourcedId": f"{cls}:{user}", "status": "active", "dateLastModified": MODIFIED, "user": ref("user", user),
            "class": ref("class", cls), "school": ref("org", school), "role": "student", **kw}


def roster(n_users: int = 5) -> dict[str, list[dict]]:
    users = [wire_user(f"u{i}") for i in range(n_users)]
    return {
        "orgs": [wire_org("d1"), wire_org("s1", type="school", parent=ref("org", "d1"))],
        "academicSessions": [wire_session()],
        "courses": [wire_course()],
        "classes": [wire_class()],
        "users": users,
        "enrollments": [wire_enrollment(u["sourcedId"]) for u in users],
    }


# --- the mocked remote provider ----------------------------------------------------------------------


class Provider:
    """A OneRoster provider: every collection paged with limit/offset and X-Total-Count;
    optionally asks for a bearer token; records every query it answered."""

    def __init__(self, mock: respx.MockRouter, data: dict[str, list[dict]], *, token: str | None = None,
                 link: bool = False, total: bool = True) -> None:
        self.data, self.token, self.link, self.total = data, token, link, total
        #: the provider's clock, sent as ``Date`` (none when None)
        self.date: str | None = None
        self.queries: list[tuple[str, dict[str, list[str]]]] = []
        self.raw: list[str] = []
        for name in (*COLLECTIONS, "demographics"):
            mock.get(f"{BASE}/{name}").mock(side_effect=lambda r, name=name: self.answer(name, r))

    def answer(self, name: str, request: httpx.Request) -> httpx.Response:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return httpx.Response(401, json={"imsx_codeMajor": "failure", "imsx_severity": "error",
                                             "imsx_description": "token needed"})
        q = parse_qs(request.url.query.decode())
        self.queries.append((name, q))
        self.raw.append(request.url.query.decode())
        limit, offset = int(q.get("limit", ["100"])[0]), int(q.get("offset", ["0"])[0])
        items = self.data.get(name, [])
        page = items[offset:offset + limit]
        headers = {"X-Total-Count": str(len(items))} if self.total else {}
        if self.date:
            headers["Date"] = self.date
        if self.link and offset + limit < len(items):
            headers["Link"] = f'<{BASE}/{name}?limit={limit}&offset={offset + limit}>; rel="next"'
        return httpx.Response(200, json={name: page}, headers=headers)


def token_route(mock: respx.MockRouter, tokens: list[str]) -> respx.Route:
    issued = iter(tokens)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization", "") != "Basic " + base64.b64encode(f"client-1:{SECRET}".encode()).decode():
            return httpx.Response(401, json={"error": "invalid_client"})
        assert parse_qs(request.content.decode())["grant_type"] == ["client_credentials"]
        return httpx.Response(200, json={"access_token": next(issued), "token_type": "Bearer", "expires_in": 3600})

    return mock.post(TOKEN_URL).mock(side_effect=answer)


def client(**kw) -> OneRosterClient:
    return OneRosterClient(SITE, backoff=0, **kw)


# --- tests -------------------------------------------------------------------------------------------


def test_the_base_url_may_be_the_site_or_the_rostering_api() -> None:
    assert provider_base(SITE + "/") == provider_base(BASE + "/") == (BASE, "1.2")
    assert provider_base(SITE, "1.1") == provider_base(f"{SITE}/ims/oneroster/v1p1") == (f"{SITE}/ims/oneroster/v1p1", "1.1")


@pytest.mark.parametrize("link", [False, True], ids=["x-total-count", "link-next"])
@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_paging_across_several_pages_stores_every_object_once(store: Store, respx_mock: respx.MockRouter, link: bool) -> None:
    data = roster(7)
    provider = Provider(respx_mock, data, link=link)
    with client() as c:
        summary = c.pull(store, tenant=T, source="sis", page_size=3, batch=4)
    assert summary.counts == {name: len(items) for name, items in data.items()}
    assert summary.result.created == sum(len(items) for items in data.values())
    assert store.records.count(T, "person") == 7 and store.records.count(T, "enrollment") == 7
    user_offsets = [q["offset"][0] for name, q in provider.queries if name == "users"]
    assert user_offsets == ["0", "3", "6"]
    assert summary.next_since == MODIFIED and not summary.incremental


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_without_a_total_count_paging_stops_on_an_empty_page(store: Store, respx_mock: respx.MockRouter) -> None:
    provider = Provider(respx_mock, roster(4), total=False)
    with client() as c:
        summary = c.pull(store, tenant=T, page_size=2)
    assert summary.counts["users"] == 4
    assert [q["offset"][0] for name, q in provider.queries if name == "users"] == ["0", "2", "4"]


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_second_full_pull_is_unchanged_and_retires_what_the_provider_no_longer_lists(store: Store, respx_mock: respx.MockRouter) -> None:
    data = roster(3)
    Provider(respx_mock, data)
    with client() as c:
        c.pull(store, tenant=T)
        data["enrollments"] = data["enrollments"][:2]
        again = c.pull(store, tenant=T)
    assert again.result.created == 0 and again.retired == {"enrollment": 1}
    gone = store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "k1:u2"))
    assert gone.status == Status.tobedeleted


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_the_watermark_never_passes_the_providers_clock_when_the_download_began(store: Store, respx_mock: respx.MockRouter) -> None:
    # The collections are read one after another: an org changed while the users were read
    # is newer than the orgs page but older than a user changed at the same time. A
    # watermark at that user's dateLastModified would make the next pull skip the org.
    data = roster(2)
    provider = Provider(respx_mock, data)
    provider.date = "Sat, 10 Jan 2026 09:00:00 GMT"
    data["users"][0]["dateLastModified"] = "2026-01-10T09:00:07.250Z"  # changed during the download
    with client() as c:
        summary = c.pull(store, tenant=T)
        assert summary.started == datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
        assert summary.next_since == "2026-01-10T09:00:00.000Z"
        # the next pull reads from the start of the last download (less the routing layer's overlap)
        provider.date = "Sat, 10 Jan 2026 10:00:00 GMT"
        provider.queries.clear()
        c.pull(store, tenant=T, since=summary.next_since)
    assert {q["filter"][0] for _, q in provider.queries} == {"dateLastModified>'2026-01-10T09:00:00.000Z'"}
    # a provider that sends no Date keeps the newest dateLastModified seen, as before
    provider.date = None
    with client() as c:
        assert c.pull(store, tenant=T).next_since == "2026-01-10T09:00:07.250Z"


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_incremental_pull_sends_the_date_last_modified_filter_and_applies_deletions(store: Store, respx_mock: respx.MockRouter) -> None:
    data = roster(3)
    provider = Provider(respx_mock, data)
    with client() as c:
        c.pull(store, tenant=T)
        later = "2026-02-01T09:30:00.000Z"
        provider.data = {
            "users": [wire_user("u0", givenName="Adele", dateLastModified=later)],
            "enrollments": [{"sourcedId": "k1:u1", "status": "tobedeleted", "dateLastModified": later},
                            {"sourcedId": "never-seen", "status": "tobedeleted", "dateLastModified": later}],
        }
        provider.queries.clear()
        summary = c.pull(store, tenant=T, since=MODIFIED)
    assert {q["filter"][0] for _, q in provider.queries} == {f"dateLastModified>'{MODIFIED}'"}
    assert "filter=dateLastModified%3E%272026-01-10T08%3A00%3A00.000Z%27" in provider.raw[-1]
    assert summary.incremental and summary.next_since == later and summary.retired == {}
    assert summary.ignored == {"enrollments": 1}
    assert store.records.get(T, "person", record_id(T, "person", "sis", "u0")).given_name == "Adele"
    assert store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "k1:u1")).status == Status.tobedeleted
    # not listed in the delta: untouched (no bulk retirement in incremental mode)
    assert store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "k1:u2")).status == Status.active


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_the_token_is_fetched_once_reused_and_fetched_again_once_on_401(store: Store, respx_mock: respx.MockRouter,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider = Provider(respx_mock, roster(4), token="tok-1")
    tokens = token_route(respx_mock, ["tok-1", "tok-2"])
    with client(client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL) as c:
        c.pull(store, tenant=T, page_size=2)
        assert tokens.call_count == 1
        provider.token = "tok-2"  # the provider revokes tok-1
        c.pull(store, tenant=T, page_size=2)
        assert SECRET not in repr(c)
    assert tokens.call_count == 2
    assert SECRET not in caplog.text and base64.b64encode(f"client-1:{SECRET}".encode()).decode() not in caplog.text


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_token_refused_twice_is_an_auth_error_without_the_secret(store: Store, respx_mock: respx.MockRouter) -> None:
    Provider(respx_mock, roster(1), token="never")
    tokens = token_route(respx_mock, ["tok-1", "tok-2", "tok-3"])
    with client(client_id="client-1", client_secret=SECRET, token_url=TOKEN_URL) as c, pytest.raises(AuthError) as exc:
        c.pull(store, tenant=T)
    assert tokens.call_count == 2 and SECRET not in str(exc.value) and SECRET not in repr(exc.value)
    assert store.records.count(T, "org") == 0


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_provider_imsx_errors_are_reported_with_their_description(store: Store, respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{BASE}/orgs").mock(return_value=httpx.Response(400, json={
        "imsx_codeMajor": "failure", "imsx_severity": "error", "imsx_description": "filter field dateLastModified not supported",
        "imsx_CodeMinor": {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": "TargetEndSystem",
                                                     "imsx_codeMinorFieldValue": "invalid_filter_field"}]}}))
    respx_mock.get(f"{BASE}/courses").mock(return_value=httpx.Response(404, json={"imsx_description": "Unknown Object"}))
    with client() as c:
        with pytest.raises(ProviderError, match="filter field dateLastModified not supported"):
            c.pull(store, tenant=T, since=MODIFIED)
        with pytest.raises(NotFound, match="Unknown Object"):
            list(c.collection("courses"))


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_network_errors_are_retried_three_times_then_reported(respx_mock: respx.MockRouter) -> None:
    flaky = respx_mock.get(f"{BASE}/orgs").mock(side_effect=[httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                                             httpx.Response(200, json={"orgs": [wire_org()]}, headers={"X-Total-Count": "1"})])
    down = respx_mock.get(f"{BASE}/users").mock(side_effect=httpx.ConnectError("refused"))
    with client() as c:
        assert [o["sourcedId"] for o in c.collection("orgs")] == ["d1"]
        with pytest.raises(ProviderError, match="could not be reached"):
            list(c.collection("users"))
    assert flaky.call_count == 3 and down.call_count == 4


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_demographics_are_pulled_onto_their_users_only_when_asked(store: Store, respx_mock: respx.MockRouter) -> None:
    data = roster(3)
    data["demographics"] = [{"sourcedId": "u1", "status": "active", "dateLastModified": MODIFIED, "birthDate": "2014-03-02",
                             "sex": "female", "hispanicOrLatinoEthnicity": "true"}]
    provider = Provider(respx_mock, data)
    with client() as c:
        c.pull(store, tenant=T)
    assert "demographics" not in {name for name, _ in provider.queries}  # not asked: not read
    u1 = store.records.get(T, "person", record_id(T, "person", "sis", "u1"))
    assert u1.demographics is None
    with client() as c:
        summary = c.pull(store, tenant=T, demographics=True)
    assert summary.counts["demographics"] == 1
    u1 = store.records.get(T, "person", record_id(T, "person", "sis", "u1"))
    assert str(u1.demographics.birth_date) == "2014-03-02" and u1.demographics.hispanic_or_latino is True
    # incremental: only the demographics changed; the stored user takes them
    later = "2026-10-01T00:00:00.000Z"
    data["users"], data["enrollments"] = [], []
    data["demographics"] = [{**data["demographics"][0], "dateLastModified": later, "birthDate": "2014-03-09"}]
    with client() as c:
        c.pull(store, tenant=T, since=MODIFIED, demographics=True)
    u1 = store.records.get(T, "person", record_id(T, "person", "sis", "u1"))
    assert str(u1.demographics.birth_date) == "2014-03-09"
    # demographics of a user the provider never listed: refused, nothing stored
    data["demographics"] = [{"sourcedId": "nobody", "status": "active", "dateLastModified": later, "sex": "male"}]
    with client() as c, pytest.raises(ValidationError) as e:
        c.pull(store, tenant=T, since=MODIFIED, demographics=True)
    assert any(d.location == "demographics sourcedId nobody" for d in e.value.errors)


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_429_is_retried_after_the_wait_the_provider_asks_for(respx_mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 6585 4 / RFC 9110 10.2.3: Too Many Requests with Retry-After (seconds or an HTTP
    date) is waited out, not reported; a wait beyond MAX_RETRY_AFTER ends the pull clearly."""
    import gateway.http.retry as mod  # the client sleeps through gateway.http

    slept: list[float] = []
    monkeypatch.setattr(mod.time, "sleep", slept.append)
    ok = httpx.Response(200, json={"orgs": [wire_org()]}, headers={"X-Total-Count": "1"})
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    orgs = respx_mock.get(f"{BASE}/orgs").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(429, headers={"Retry-After": later}), ok])
    respx_mock.get(f"{BASE}/users").mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"}))
    with client() as c:
        assert [o["sourcedId"] for o in c.collection("orgs")] == ["d1"]
        with pytest.raises(ProviderError, match="asks to retry in 3600 s"):
            list(c.collection("users"))
    assert orgs.call_count == 3
    assert slept[0] == 7 and 25 < slept[1] <= 30


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_strict_an_enrollment_to_an_unknown_user_stores_nothing(store: Store, respx_mock: respx.MockRouter) -> None:
    data = roster(3)  # tolerant: held unresolved (test_oneroster_pull_refs)
    data["enrollments"].append(wire_enrollment("ghost"))
    Provider(respx_mock, data)
    with client() as c, pytest.raises(ValidationError, match="enrollments sourcedId k1:ghost.*'ghost'"):
        c.pull(store, tenant=T, batch=2, strict=True)
    for kind in ("org", "academic_session", "course", "section", "person", "enrollment"):
        assert store.records.count(T, kind) == 0


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_an_invalid_object_is_reported_with_where_it_is_and_stores_nothing(store: Store, respx_mock: respx.MockRouter) -> None:
    data = roster(2)
    data["users"][1]["roles"][0]["role"] = "studnt"
    Provider(respx_mock, data)
    with client() as c, pytest.raises(TesseraError, match="users sourcedId u1"):
        c.pull(store, tenant=T)
    assert store.records.count(T, "org") == 0


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_a_provider_that_ignores_offset_is_an_error_not_an_endless_loop(respx_mock: respx.MockRouter) -> None:
    respx_mock.get(f"{BASE}/orgs").mock(return_value=httpx.Response(200, json={"orgs": [wire_org("d1"), wire_org("d2")]}))
    with client() as c, pytest.raises(ProviderError, match="same orgs page"):
        list(c.collection("orgs", page_size=2))


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_oauth1_requests_carry_a_valid_hmac_sha256_signature_over_the_query(store: Store, respx_mock: respx.MockRouter) -> None:
    """OneRoster 1.1 section 2.2: OAuth 1.0a, one-legged; RFC 5849 3.4 signature base string."""
    from oauthlib.common import Request
    from oauthlib.oauth1.rfc5849 import signature

    base11 = f"{SITE}/ims/oneroster/v1p1"
    checked = []

    def answer(name: str, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization", "")
        req = Request(str(request.url), "GET", headers={"Authorization": auth})
        params = signature.collect_parameters(uri_query=request.url.query.decode(), headers={"Authorization": auth},
                                              exclude_oauth_signature=True)
        req.params = params
        req.signature = dict(signature.collect_parameters(headers={"Authorization": auth}, exclude_oauth_signature=False))["oauth_signature"]
        ok = 'oauth_signature_method="HMAC-SHA256"' in auth and signature.verify_hmac_sha256(req, SECRET)
        checked.append(ok)
        if not ok:
            return httpx.Response(401, json={"imsx_description": "bad signature"})
        q = parse_qs(request.url.query.decode())
        items = roster(2)[name] if name != "users" else [
            {**u, "role": "student", "orgs": [ref("org", "d1")], "enabledUser": "true", "username": u["sourcedId"]} for u in roster(2)["users"]]
        offset = int(q["offset"][0])
        return httpx.Response(200, json={name: items[offset:]}, headers={"X-Total-Count": str(len(items))})

    for name in COLLECTIONS:
        respx_mock.get(f"{base11}/{name}").mock(side_effect=lambda r, name=name: answer(name, r))
    with OneRosterClient(base11, client_id="client-1", client_secret=SECRET, oauth1=True, backoff=0) as c:
        summary = c.pull(store, tenant=T, since="2026-01-01T00:00:00Z")
        assert SECRET not in repr(c)
    assert checked and all(checked) and summary.version == "1.1" and store.records.count(T, "enrollment") == 2


# --- tessera import oneroster --url ------------------------------------------------------------------


@respx.mock(assert_all_mocked=True, assert_all_called=False)
def test_cli_pulls_a_provider_with_client_credentials_and_prints_the_watermark(cli, monkeypatch: pytest.MonkeyPatch,
                                                                               respx_mock: respx.MockRouter) -> None:
    cli("migrate")
    Provider(respx_mock, roster(3), token="tok-1")
    token_route(respx_mock, ["tok-1"])
    monkeypatch.setenv("OR_SECRET", SECRET)
    result = cli("import", "oneroster", "--url", SITE, "--tenant", T, "--client-id", "client-1",
                 "--client-secret-env", "OR_SECRET", "--token-url", TOKEN_URL)
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and f"watermark: {MODIFIED}" in result.output and "users=3" in result.output
    store = open_store(cli.url)
    try:
        assert store.records.count(T, "enrollment") == 3
    finally:
        store.dispose()


def test_cli_takes_secrets_only_from_the_environment(cli) -> None:
    cli("migrate")
    with pytest.raises(TesseraError, match="NOT_SET_VAR"):
        cli("import", "oneroster", "--url", SITE, "--client-id", "c", "--client-secret-env", "NOT_SET_VAR", "--token-url", TOKEN_URL)
    result = cli("import", "oneroster", "--url", SITE, "--client-id", "c", code=None)
    assert result.exit_code != 0 and "client-secret-env" in result.output
    result = cli("import", "oneroster", "--url", SITE, "--client-secret", SECRET, code=None)
    assert result.exit_code != 0 and "No such option" in result.output


def test_cli_wants_a_package_or_a_url(cli, tmp_path: Path) -> None:
    cli("migrate")
    result = cli("import", "oneroster", code=None)
    assert result.exit_code != 0 and "--url" in result.output
