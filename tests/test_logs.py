"""Structured JSON logs with a request id, and redaction (gateway.logs).

The flow tests capture everything the real server logs (through ``gateway.logs.configure``,
as ``tessera serve`` installs it) while a client does ordinary and wrong things, then read
every line: each must be JSON, request-scoped lines must carry the request id, and no line
may hold a credential or a student's personal data.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.logs import JsonFormatter, RedactingFilter, TextFormatter, configure, redact, request_id
from gateway.model import record_id

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.")
REQUEST_SCOPED = ("tessera.access", "tessera.api")


class Captured:
    def __init__(self, buf: io.StringIO) -> None:
        self.buf = buf

    def lines(self) -> list[str]:
        return [line for line in self.buf.getvalue().splitlines() if line.strip()]

    def wait_for_access(self, *request_ids: str, timeout: float = 5.0) -> None:
        """The access line is written after the response has gone out: wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            logged = {rec.get("request_id") for rec in self.records() if rec["logger"] == "tessera.access"}
            if set(request_ids) <= logged or time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"log line is not JSON: {line!r}")
        return out


def _capture(level: str) -> Iterator[Captured]:
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "oauthlib", "httpx", "httpcore")
    saved = {n: (lg.level, list(lg.handlers), lg.propagate, lg.disabled) for n in names for lg in [logging.getLogger(n)]}
    buf = io.StringIO()
    configure(level, "json", stream=buf)
    # the test's own HTTP client logs its requests too; those lines are not the server's
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    try:
        yield Captured(buf)
    finally:
        for n, (level_, handlers, propagate, disabled) in saved.items():
            lg = logging.getLogger(n)
            lg.setLevel(level_)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled


@pytest.fixture
def server_log() -> Iterator[Captured]:
    """Everything logged in this process at INFO (the default), as JSON lines."""
    yield from _capture("INFO")


@pytest.fixture(params=["INFO", "DEBUG"])
def any_level_log(request: pytest.FixtureRequest) -> Iterator[Captured]:
    yield from _capture(request.param)


# --- a realistic flow --------------------------------------------------------------------------

GIVEN, FAMILY, EMAIL = "Zebulon", "Quixotic", "zebulon.quixotic@example.org"
BIRTH = "2011-07-19"


def test_a_realistic_flow_logs_no_credentials_and_no_personal_data(any_level_log, api):
    cid, secret = api.credentials("district-9", ["roster.readonly", "records.write"])
    school = str(record_id("district-9", "org", "sis", "school-1"))
    pupil = {
        "kind": "person", "source": "sis", "native_id": "stu-77", "given_name": GIVEN, "family_name": FAMILY,
        "email": EMAIL, "username": "zquixotic", "demographics": {"birth_date": BIRTH},
        "roles": [{"role": "student", "org_id": school, "primary": True}],
    }
    school_rec = {"kind": "org", "source": "sis", "native_id": "school-1", "name": "Lincoln Middle School", "type": "school"}
    answers = []
    with api.client() as c:
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret))
        assert r.status_code == 200
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        answers.append(r)
        answers.append(c.post("/v1/batches", json={"records": [school_rec, pupil]}, headers=auth))
        assert answers[-1].status_code == 201
        answers.append(c.get("/v1/people", headers=auth))
        assert GIVEN in answers[-1].text
        answers.append(c.get(f"/v1/people/{record_id('district-9', 'person', 'sis', 'stu-77')}", headers=auth))
        assert answers[-1].status_code == 200
        # a bad token: the real one with its signature altered
        answers.append(c.get("/v1/people", headers={"Authorization": f"Bearer {token[:-6]}AAAAAA"}))
        assert answers[-1].status_code == 401
        # a token request with a wrong secret, in HTTP Basic and in the body
        answers.append(c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret[::-1])))
        answers.append(c.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret[:-1]}))
        assert [a.status_code for a in answers[-2:]] == [401, 400]  # RFC 6749 5.2: Basic 401, body credentials 400
        # credentials and personal data where they do not belong: query strings, invalid records
        answers.append(c.get("/v1/people", params={"access_token": token, "given_name": GIVEN, "email": EMAIL}, headers=auth))
        assert answers[-1].status_code == 422
        answers.append(c.post("/v1/batches", json={"records": [{**pupil, "nickname": FAMILY, "email": "no email " + EMAIL}]}, headers=auth))
        assert answers[-1].status_code == 422
        answers.append(c.post(f"/oauth/token?client_secret={secret}", data={"grant_type": "client_credentials"}, auth=(cid, secret)))
        assert answers[-1].status_code == 400
        answers.append(c.post("/oauth/token", json={"grant_type": "client_credentials", "client_secret": secret}))
        assert answers[-1].status_code == 415

    any_level_log.wait_for_access(*(a.headers["x-request-id"] for a in answers))
    lines = any_level_log.lines()
    records = any_level_log.records()  # every line is JSON
    assert lines
    forbidden = {
        "the client secret": secret, "the wrong secrets": secret[::-1], "a truncated secret": secret[:-1],
        "the access token": token, "the token's signature": token.rsplit(".", 1)[1][:20],
        "the token's payload": token.split(".")[1][:20], "the given name": GIVEN, "the family name": FAMILY,
        "the email": EMAIL, "the email's local part": "zebulon.quixotic", "the username": "zquixotic",
        "the birth date": BIRTH,
    }
    for line in lines:
        for what, value in forbidden.items():
            assert value not in line, f"{what} is in the log: {line}"
        assert not JWT_LIKE.search(line), f"a JWT is in the log: {line}"

    # request-scoped lines carry the request id the client was given
    scoped = [rec for rec in records if rec["logger"] in REQUEST_SCOPED]
    assert all(rec.get("request_id") for rec in scoped), [rec for rec in scoped if not rec.get("request_id")]
    access = {rec["request_id"]: rec for rec in records if rec["logger"] == "tessera.access"}
    for a in answers:
        rid = a.headers["x-request-id"]
        assert rid in access, f"no access line for {a.request.method} {a.request.url.path}"
        assert access[rid]["status"] == a.status_code
        assert access[rid]["path"] == a.request.url.path
        assert access[rid]["method"] == a.request.method
        assert isinstance(access[rid]["duration_ms"], (int, float))
    refused = [rec for rec in records if rec.get("oauth_error") == "invalid_client"]
    assert len(refused) == 2 and all(rec["request_id"] in access for rec in refused)


def test_access_line_never_holds_the_query_string(server_log, api):
    with api.client() as c:
        c.get("/healthz", params={"email": EMAIL, "q": GIVEN}, headers={"X-Request-ID": "q-1"})
    server_log.wait_for_access("q-1")
    [line] = [rec for rec in server_log.records() if rec.get("request_id") == "q-1"]
    assert line["path"] == "/healthz" and line["status"] == 200
    assert "?" not in json.dumps(line) and GIVEN not in json.dumps(line)


def test_unhandled_error_is_logged_once_with_the_request_id_it_answers_with(server_log, api, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection to server lost")

    token = api.token("t1", ["roster-core.readonly"])
    monkeypatch.setattr(api.store.records, "page", broken)
    with api.client() as c:
        r = c.get("/v1/people", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "boom-1"
    server_log.wait_for_access("boom-1")
    errors = [rec for rec in server_log.records() if rec["level"] == "error"]
    assert len(errors) == 1, errors
    assert errors[0]["request_id"] == "boom-1"
    assert "RuntimeError: connection to server lost" in errors[0]["exc"]
    [access] = [rec for rec in server_log.records() if rec.get("request_id") == "boom-1" and rec["logger"] == "tessera.access"]
    assert access["status"] == 500


# --- the formatters ------------------------------------------------------------------------------


def _format(formatter: logging.Formatter, msg: str, *args: Any, exc: bool = False, **extra: Any) -> str:
    exc_info = None
    if exc:
        try:
            raise ValueError("client_secret=s3cr3t-in-exception")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("tessera.test", logging.INFO, __file__, 1, msg, args or None, exc_info)
    record.__dict__.update(extra)
    RedactingFilter().filter(record)
    return formatter.format(record)


def test_json_formatter_writes_one_json_object_per_line_with_the_request_id():
    token = request_id.set("rid-42")
    try:
        line = _format(JsonFormatter(), "imported %d records", 12, batch_id="b-1", counts={"person": 12})
    finally:
        request_id.reset(token)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["msg"] == "imported 12 records"
    assert doc["request_id"] == "rid-42"
    assert doc["level"] == "info" and doc["logger"] == "tessera.test"
    assert doc["batch_id"] == "b-1" and doc["counts"] == {"person": 12}
    assert "ts" in doc


def test_json_formatter_leaves_out_request_id_outside_a_request():
    assert "request_id" not in json.loads(_format(JsonFormatter(), "worker started"))


def test_json_formatter_redacts_messages_arguments_extras_and_exceptions():
    line = _format(
        JsonFormatter(), "token refused for %s", "Authorization: Bearer abcdefghijkl",
        exc=True, form='client_secret="s3cr3t with spaces"&grant_type=client_credentials',
    )
    doc = json.loads(line)  # still JSON after redaction
    for leaked in ("abcdefghijkl", "s3cr3t"):
        assert leaked not in line
    assert "grant_type=client_credentials" in doc["form"]
    assert "ValueError" in doc["exc"]


def test_text_formatter_redacts_and_names_the_request_id():
    token = request_id.set("rid-7")
    try:
        line = _format(TextFormatter(), "password=hunter2 for user %s", "42")
    finally:
        request_id.reset(token)
    assert "hunter2" not in line
    assert "[rid-7]" in line and "user 42" in line


# --- redact --------------------------------------------------------------------------------------

SAMPLE_JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
    ".eyJzdWIiOiJ0c3JfMTIzIiwidGVuYW50IjoidDEifQ"
    ".c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmUtYW5kLW1vcmU"
)
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "q2Zk9xw0b3V6Y3RmYWtla2V5bWF0ZXJpYWw=\n"
    "-----END PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer abc123def456ghi789", "abc123def456ghi789"),
        ("authorization: bearer abc123def456ghi789", "abc123def456ghi789"),
        ("Authorization: Basic dHNyX2FiYzpzM2NyM3Qtc2VjcmV0", "dHNyX2FiYzpzM2NyM3Qtc2VjcmV0"),
        (f"got token {SAMPLE_JWT} from the platform", SAMPLE_JWT.split(".")[2]),
        (f"Bearer {SAMPLE_JWT}", SAMPLE_JWT.split(".")[1]),
        (f"https://tool.example/launch?id_token={SAMPLE_JWT}&state=1", SAMPLE_JWT.split(".")[0]),
        ("grant_type=client_credentials&client_secret=Zm9vYmFyYmF6&scope=x", "Zm9vYmFyYmF6"),
        ("client_secret: Zm9vYmFyYmF6", "Zm9vYmFyYmF6"),
        ('{"client_secret": "Zm9vYmFyYmF6"}', "Zm9vYmFyYmF6"),
        ('{"password": "hunter2"}', "hunter2"),
        ("{'password': 'hunter2'}", "hunter2"),
        ('{"password": "correct horse battery staple"}', "horse battery staple"),
        ('{"password": "a,b}c d"}', "b}c d"),
        ('{"refresh_token": "opaque-refresh-value"}', "opaque-refresh-value"),
        ('"{\\"password\\": \\"hunter2 x\\"}"', "hunter2"),
        ("password=hunter2", "hunter2"),
        (PEM, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"),
        (f"loaded key {PEM} ok", "q2Zk9xw0b3V6Y3RmYWtla2V5bWF0ZXJpYWw="),
        ('{"private_key": "' + PEM.replace("\n", "\\n") + '"}', "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"),
        ("private_key=" + PEM, "q2Zk9xw0b3V6Y3RmYWtla2V5bWF0ZXJpYWw="),
    ],
)
def test_redact_masks_credentials(text, secret):
    out = redact(text)
    assert secret not in out, out
    assert "redacted" in out


@pytest.mark.parametrize(
    "text",
    [
        '{"password": "correct horse battery staple", "user": "u-1"}',
        '{"client_secret": "s3cr3t", "grant_type": "client_credentials"}',
        '{"msg": "password: \\"x y\\"", "n": 1}',
        '{"private_key": "' + PEM.replace("\n", "\\n") + '", "kid": "k1"}',
    ],
)
def test_redact_keeps_json_valid_and_the_other_members(text):
    doc = json.loads(redact(text))
    for key in ("user", "grant_type", "n", "kid"):
        if key in json.loads(text):
            assert doc[key] == json.loads(text)[key]


@pytest.mark.parametrize(
    "text",
    [
        "token request refused",
        "GET /v1/people 200",
        "POST /oauth/token 401",
        "imported 250 records for tenant district-9",
        "basic checks passed",
        "rotated signing key 1f2e3d4c5b6a7980",
        f"request {uuid.UUID(int=7)} done",
    ],
)
def test_redact_leaves_ordinary_lines_alone(text):
    assert redact(text) == text


def test_redacting_filter_cleans_the_record_before_any_handler_sees_it():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    log = logging.getLogger(f"tessera.test.{uuid.uuid4().hex}")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("token request body: %s", "grant_type=client_credentials&client_secret=abcdEFGH1234")
        try:
            raise RuntimeError(f"upstream said Authorization: Bearer {SAMPLE_JWT}")
        except RuntimeError:
            log.exception("call failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "abcdEFGH1234" not in out
    assert SAMPLE_JWT.split(".")[1] not in out
    assert "client_secret=[redacted]" in out and "RuntimeError" in out
