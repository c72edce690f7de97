"""LTI 1.1: OAuth 1.0a signed launches (tool role) and Basic Outcomes POX in both roles.

The LMS and the LTI 1.1 tool on the other side are built here with oauthlib's client (an
independent signer) and lxml; the LMS's outcome service is a real ASGI app on a real port.
The POX documents follow the Basic Outcomes 1.1 examples (replaceResult of 0.92)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request, Response
from lxml import etree
from oauthlib.oauth1 import SIGNATURE_TYPE_AUTH_HEADER, Client
from oauthlib.oauth1.rfc5849 import signature

from adapters.lti.lti11 import Credentials, OutcomesClient, issue_sourcedid
from adapters.lti.lti11_pox import POX_NS, pox_response
from gateway.api.context import AppContext
from gateway.auth.oauth1 import body_hash
from gateway.auth.sealed import ENV_KEY
from tests import factories as f
from tests.conftest import Api, serve
from tests.test_oauth1 import BodyHashClient

KEY, SECRET = "lms-key", "lms-secret-value"
TOOL_KEY, TOOL_SECRET = "tool-key", "tool-secret-value"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
NS = {"x": POX_NS}


@pytest.fixture(autouse=True)
def _tool_page_not_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the tool's own launched page: the web console is off (a launch's
    console sign-in is tested in tests/test_console_auth.py)."""
    monkeypatch.setenv("TESSERA_CONSOLE__ENABLED", "false")


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sealing key from the environment: on PostgreSQL the key file would otherwise land in
    the working directory (there is no database file to put it next to)."""
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())


def launch_params(**over: str) -> dict[str, str]:
    p = {
        "lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0", "resource_link_id": "rl-11",
        "user_id": "u-lms-9", "roles": "Learner", "lis_person_name_given": "Ada", "lis_person_name_family": "King",
        "context_id": "ctx-11", "context_title": "Algebra", "launch_presentation_return_url": "https://lms.example.edu/return",
    }
    p.update(over)
    return {k: v for k, v in p.items() if v}


def post_launch(api: Api, params: dict[str, str], secret: str = SECRET) -> Any:
    url = f"{api.base_url}/lti11/launch"
    from urllib.parse import urlencode

    uri, headers, body = Client(KEY, client_secret=secret).sign(url, "POST", body=urlencode(params), headers=FORM)
    with api.client() as c:
        return c.post(uri, content=body, headers=headers)


@pytest.fixture
def creds(api: Api) -> Credentials:
    c = Credentials(api.store.engine)
    c.add("t1", KEY, SECRET, role="tool", name="District LMS")
    return c


# --- launch, tool role ------------------------------------------------------------------------


def test_a_signed_launch_records_the_learner_and_shows_their_view(api: Api, creds: Credentials) -> None:
    r = post_launch(api, launch_params())
    assert r.status_code == 200, r.text
    assert "my competencies" in r.text
    (hit,) = api.store.records.lookup("t1", f"lti11:{KEY}", "lti.sub", "u-lms-9")
    person = api.store.records.get("t1", "person", hit[1])
    assert (person.given_name, person.family_name) == ("Ada", "King")
    assert api.store.records.count("t1", "enrollment") == 1


def test_the_secret_is_sealed_in_the_database(api: Api, creds: Credentials) -> None:
    with api.store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT secret_sealed FROM oauth1_consumers").scalar()
    assert SECRET not in stored


def test_bad_launches_are_refused_and_record_nothing(api: Api, creds: Credentials, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tessera.lti"):
        r = post_launch(api, launch_params(), secret="wrong-secret")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("OAuth ")
        assert 'oauth_problem="signature_invalid"' in r.headers["www-authenticate"]
        # a verified launch that lacks resource_link_id goes back with lti_errormsg
        r = post_launch(api, launch_params(resource_link_id=""))
        assert r.status_code == 302
        assert r.headers["location"].startswith("https://lms.example.edu/return?lti_errormsg=")
        r = post_launch(api, launch_params(lti_message_type="ContentItemSelectionRequest", launch_presentation_return_url=""))
        assert r.status_code == 400 and "lti_message_type" in r.text
    assert SECRET not in caplog.text and "oauth_signature" not in caplog.text
    assert api.store.records.count("t1", "person") == 0


def test_a_replayed_launch_is_refused(api: Api, creds: Credentials) -> None:
    from urllib.parse import urlencode

    url = f"{api.base_url}/lti11/launch"
    uri, headers, body = Client(KEY, client_secret=SECRET).sign(url, "POST", body=urlencode(launch_params()), headers=FORM)
    with api.client() as c:
        assert c.post(uri, content=body, headers=headers).status_code == 200
        again = c.post(uri, content=body, headers=headers)
    assert again.status_code == 401 and 'oauth_problem="nonce_used"' in again.headers["www-authenticate"]


# --- outcomes, tool role: Tessera sends to the LMS ---------------------------------------------


class Lms:
    """An LTI 1.1 consumer's outcome service: checks the signature and the body hash itself."""

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.seen: list[str] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/outcomes")
        async def outcomes(request: Request) -> Response:
            body = await request.body()
            params = dict(signature.collect_parameters(headers=dict(request.headers), exclude_oauth_signature=False))
            base = signature.signature_base_string(
                "POST", signature.base_string_uri(str(request.url)),
                signature.normalize_parameters(signature.collect_parameters(headers=dict(request.headers))),
            )
            ok = signature.sign_hmac_sha1_with_client(base, Client(KEY, client_secret=SECRET)) == params["oauth_signature"]
            if not ok or params.get("oauth_body_hash") != body_hash(body):
                return Response(status_code=401)
            doc = etree.fromstring(body)
            op = etree.QName(doc.find("x:imsx_POXBody", NS)[0]).localname[: -len("Request")]
            self.seen.append(op)
            sid = doc.findtext(".//x:sourcedId", namespaces=NS)
            if op == "replaceResult":
                self.scores[sid] = float(doc.findtext(".//x:textString", namespaces=NS))
            elif op == "deleteResult":
                self.scores.pop(sid, None)
            mid = doc.findtext(".//x:imsx_messageIdentifier", namespaces=NS)
            return Response(pox_response(op, mid, score=self.scores.get(sid)), media_type="application/xml")

        return app


def test_tessera_sends_replace_read_and_delete_to_the_lms(api: Api, creds: Credentials) -> None:
    lms = Lms()
    with serve(lms.app()) as base:
        r = post_launch(api, launch_params(lis_outcome_service_url=f"{base}/outcomes", lis_result_sourcedid="sid-42"))
        assert r.status_code == 200
        (hit,) = api.store.records.lookup("t1", f"lti11:{KEY}", "lti.sub", "u-lms-9")
        ctx = AppContext(api.settings, api.store, None)  # type: ignore[arg-type]
        client = OutcomesClient(ctx)
        client.replace("t1", hit[1], "rl-11", 0.92)
        assert lms.scores == {"sid-42": 0.92}
        assert client.read("t1", hit[1], "rl-11") == 0.92
        client.delete("t1", hit[1], "rl-11")
        assert lms.scores == {} and lms.seen == ["replaceResult", "readResult", "deleteResult"]
        from gateway.errors import NotFound, ValidationError

        with pytest.raises(ValidationError):
            client.replace("t1", hit[1], "rl-11", 1.5)
        with pytest.raises(NotFound):
            client.replace("t1", uuid.uuid4(), "rl-11", 0.5)


# --- outcomes, consumer role: an LTI 1.1 tool sends to Tessera ----------------------------------


def replace_xml(sourcedid: str, score: str, message_id: str = "999999123") -> bytes:
    # Basic Outcomes 1.1, 6.1.1 example, with our sourcedId
    return f"""<?xml version = "1.0" encoding = "UTF-8"?>
<imsx_POXEnvelopeRequest xmlns="{POX_NS}">
  <imsx_POXHeader><imsx_POXRequestHeaderInfo><imsx_version>V1.0</imsx_version>
    <imsx_messageIdentifier>{message_id}</imsx_messageIdentifier></imsx_POXRequestHeaderInfo></imsx_POXHeader>
  <imsx_POXBody><replaceResultRequest><resultRecord><sourcedGUID><sourcedId>{sourcedid}</sourcedId></sourcedGUID>
    <result><resultScore><language>en</language><textString>{score}</textString></resultScore></result>
  </resultRecord></replaceResultRequest></imsx_POXBody>
</imsx_POXEnvelopeRequest>""".encode()


def op_xml(op: str, sourcedid: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?><imsx_POXEnvelopeRequest xmlns="{POX_NS}"><imsx_POXHeader>
<imsx_POXRequestHeaderInfo><imsx_version>V1.0</imsx_version><imsx_messageIdentifier>m-{op}</imsx_messageIdentifier>
</imsx_POXRequestHeaderInfo></imsx_POXHeader><imsx_POXBody><{op}Request><resultRecord><sourcedGUID><sourcedId>{sourcedid}</sourcedId>
</sourcedGUID></resultRecord></{op}Request></imsx_POXBody></imsx_POXEnvelopeRequest>""".encode()


def send(api: Api, body: bytes, secret: str = TOOL_SECRET) -> tuple[int, Any, Any]:
    url = f"{api.base_url}/lti11/outcomes"
    client = BodyHashClient(TOOL_KEY, client_secret=secret, signature_type=SIGNATURE_TYPE_AUTH_HEADER, body=body)
    uri, headers, _ = client.sign(url, "POST", headers={"Content-Type": "application/xml"})
    with api.client() as c:
        r = c.post(uri, content=body, headers=headers)
    doc = etree.fromstring(r.content)
    return r.status_code, doc, r


def code(doc: Any) -> str:
    return doc.findtext(".//x:imsx_codeMajor", namespaces=NS)


@pytest.fixture
def issued(api: Api) -> tuple[str, Any]:
    school = f.org()
    learner = f.person("u1", school)
    fw = f.framework()
    comp = f.competency("C1", fw)
    api.store.records.apply("t1", [school, learner, fw, comp])
    Credentials(api.store.engine).add("t1", TOOL_KEY, TOOL_SECRET, role="consumer", name="Quiz tool")
    sid = issue_sourcedid(api.store.engine, "t1", TOOL_KEY, learner.id, "https://quiz.example/q/1", comp.id)
    return sid, (learner, comp)


def test_replace_read_and_delete_result_become_evidence(api: Api, issued: tuple[str, Any]) -> None:
    sid, (learner, comp) = issued
    status, doc, r = send(api, replace_xml(sid, "0.92"))
    assert status == 200 and r.headers["content-type"].startswith("application/xml")
    assert code(doc) == "success"
    assert doc.findtext(".//x:imsx_messageRefIdentifier", namespaces=NS) == "999999123"
    assert doc.find(".//x:replaceResultResponse", NS) is not None
    (first,) = [api.store.records.get("t1", "evidence", uuid.UUID(__import__("orjson").loads(d)["id"])) for d in api.store.records.page("t1", "evidence").items]
    assert first.learner_id == learner.id and first.competency_id == comp.id
    assert first.score.scaled == pytest.approx(0.92) and first.provenance.standard == "lti11-outcomes"
    status, doc, _ = send(api, op_xml("readResult", sid))
    assert code(doc) == "success" and doc.findtext(".//x:readResultResponse//x:textString", namespaces=NS) == "0.92"
    send(api, replace_xml(sid, "0.5", message_id="2"))
    assert api.store.records.get("t1", "evidence", first.id).superseded_by is not None
    status, doc, _ = send(api, op_xml("deleteResult", sid))
    assert code(doc) == "success"
    docs = [__import__("orjson").loads(d) for d in api.store.records.page("t1", "evidence").items]
    assert sorted(d["voided"] for d in docs) == [False, True]
    status, doc, _ = send(api, op_xml("readResult", sid))
    # Basic Outcomes 6.1.2: with no result, readResult answers an empty textString
    assert doc.findtext(".//x:readResultResponse//x:textString", namespaces=NS) == ""


@pytest.mark.parametrize(
    ("body", "major"),
    [
        (b"<not-xml", "failure"),
        (b'<?xml version="1.0"?><imsx_POXEnvelopeRequest xmlns="urn:wrong"/>', "failure"),
        ("replace-1.5", "failure"),
        ("replace-abc", "failure"),
        ("unknown-sourcedid", "failure"),
        ("readMembership", "unsupported"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "failure"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one backend: the POX body is refused before any write; outcomes are stored on both backends by the good-outcome tests
def test_malformed_pox_gets_a_failure_status_and_records_nothing(api: Api, issued: tuple[str, Any], body: Any, major: str) -> None:
    sid, _ = issued
    body = {
        "replace-1.5": replace_xml(sid, "1.5"), "replace-abc": replace_xml(sid, "abc"),
        "unknown-sourcedid": replace_xml("made-up", "0.5"), "readMembership": op_xml("readMembership", sid),
    }.get(body, body)
    status, doc, _ = send(api, body)
    assert status == 200 and code(doc) == major
    assert doc.findtext(".//x:imsx_severity", namespaces=NS) == "error"
    assert b"root:" not in etree.tostring(doc)
    assert api.store.records.count("t1", "evidence") == 0


def test_a_badly_signed_outcome_is_a_401_with_an_oauth_challenge(api: Api, issued: tuple[str, Any]) -> None:
    sid, _ = issued
    status, doc, r = send(api, replace_xml(sid, "0.9"), secret="wrong")
    assert status == 401 and r.headers["www-authenticate"] == 'OAuth realm="tessera-lti11", oauth_problem="signature_invalid"'
    assert code(doc) == "failure"
    assert api.store.records.count("t1", "evidence") == 0


# --- managing keys --------------------------------------------------------------------------------


def test_consumer_keys_are_managed_by_admins_per_tenant_and_secrets_shown_once(api: Api) -> None:
    with api.auth_client("t1", ["admin"]) as c:
        made = c.post("/v1/lti/consumers", json={"consumer_key": "k-api", "name": "LMS"})
        assert made.status_code == 201 and len(made.json()["secret"]) >= 32
        given = c.post("/v1/lti/consumers", json={"consumer_key": "k-given", "secret": "a-long-enough-secret", "role": "consumer"})
        assert "secret" not in given.json()
        listed = c.get("/v1/lti/consumers").json()["consumers"]
        assert sorted(x["consumer_key"] for x in listed) == ["k-api", "k-given"]
        assert all("secret" not in x for x in listed)
        assert c.post("/v1/lti/consumers", json={"consumer_key": "k-api"}).status_code == 409
        assert c.post("/v1/lti/consumers", json={"consumer_key": "k3", "role": "admin"}).status_code == 422
    with api.auth_client("t2", ["admin"]) as other:
        assert other.get("/v1/lti/consumers").json() == {"consumers": []}
        assert other.delete("/v1/lti/consumers/k-api").status_code == 404
    with api.auth_client("t1", ["evidence.readonly"]) as weak:
        assert weak.get("/v1/lti/consumers").status_code == 403
    with api.auth_client("t1", ["admin"]) as c:
        assert c.delete("/v1/lti/consumers/k-api").status_code == 204


def test_the_cli_adds_lists_and_removes_consumer_keys(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import out

    monkeypatch.setattr(out, "_width", 300)
    cli("migrate")
    monkeypatch.setenv("LMS_SECRET", "from-the-environment-secret")
    r = cli("lti", "consumers", "add", "lms-1", "--secret-env", "LMS_SECRET", "--tenant", "t1")
    assert "from-the-environment-secret" not in r.output
    r = cli("lti", "consumers", "add", "lms-2", "--tenant", "t1")
    assert "shown once" in r.output
    listed = cli("lti", "consumers", "list").output
    assert "lms-1" in listed and "lms-2" in listed and "from-the-environment-secret" not in listed
    cli("lti", "consumers", "remove", "lms-1", "--tenant", "t1")
    assert "lms-1" not in cli("lti", "consumers", "list").output


def test_a_resent_replace_result_is_stored_once(api: Api, issued: tuple[str, Any]) -> None:
    sid, _ = issued
    for _ in range(2):
        _, doc, _ = send(api, replace_xml(sid, "0.8", message_id="same-message"))
        assert code(doc) == "success"
    assert api.store.records.count("t1", "evidence") == 1


def test_an_outcome_for_a_learner_the_store_lacks_is_a_pox_failure(api: Api, issued: tuple[str, Any]) -> None:
    ghost = issue_sourcedid(api.store.engine, "t1", TOOL_KEY, uuid.uuid4(), "https://quiz.example/q/2")
    _, doc, _ = send(api, replace_xml(ghost, "0.4", message_id="m-ghost"))
    assert code(doc) == "failure" and doc.findtext(".//x:imsx_messageRefIdentifier", namespaces=NS) == "m-ghost"
    assert api.store.records.count("t1", "evidence") == 0
