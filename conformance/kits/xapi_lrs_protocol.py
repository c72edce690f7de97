"""``xapi-lrs`` checks: headers and version negotiation, authentication, error answers,
the About, Activities and Agents resources, attachments (multipart/mixed) and signed
statements."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from ..kit import Fail, Session, Skip
from .xapi_lrs_common import (
    C103,
    D103,
    KIT,
    V1,
    V2,
    VERSION_HEADER,
    X20,
    activity,
    agent,
    body_json,
    default_version,
    excerpt,
    expect,
    get_one,
    get_statements,
    hv,
    post_statements,
    statement,
    store,
    versions,
)


def _check(cid: str, req: str, desc: str, adl: tuple[str, ...] = (), required: bool = True, tags: tuple[str, ...] = ("protocol",)) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return KIT.check(cid, req, desc, requirement_ids=adl, required=required, tags=tags)


def _bare(s: Session, method: str, path: str, *, auth: Any = "same", **kw: Any) -> httpx.Response:
    """A request without the kit's default headers (and optionally other credentials)."""
    client = s.client
    url = client.base_url.join(path)
    request = client.build_request(method, url, **kw)
    request.headers.pop(VERSION_HEADER, None)
    for k, v in (kw.get("headers") or {}).items():
        request.headers[k] = v
    if auth == "same":
        response = _send(s, request, auth=client.auth)
    else:
        if auth is None:
            request.headers.pop("Authorization", None)
        response = _send(s, request, auth=auth)
    return response


def _send(s: Session, request: httpx.Request, auth: Any) -> httpx.Response:
    try:
        response = s.client.send(request, auth=auth) if auth is not None else s.client.send(request, auth=_NoAuth())
    except httpx.HTTPError as exc:
        raise Fail(f"{request.method} {request.url}: no answer ({type(exc).__name__}: {exc})") from exc
    from ..kit import _exchange  # the same record Session.request keeps

    s.exchanges.append(_exchange(response))
    return response


class _NoAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request):
        request.headers.pop("Authorization", None)
        yield request


# --------------------------------------------------------------------------- headers and versions

@_check("XAPI-HDR-001", f"{C103} 3.3.s3.b1", "Every answer carries X-Experience-API-Version: statements, documents, About, errors", ("XAPI-00333",))
def _version_everywhere(s: Session) -> None:
    answers = [
        get_statements(s, limit=1),
        get_statements(s, colour="blue"),
        post_statements(s, [statement(s, verb={"id": "no scheme"})]),
        s.get("about"),
        s.get("activities/state", params={"activityId": activity(s), "agent": json.dumps(agent(s)), "stateId": "absent"}, headers=hv(default_version(s))),
        s.get("activities", params={"activityId": activity(s)}, headers=hv(default_version(s))),
    ]
    for r in answers:
        if not r.headers.get(VERSION_HEADER):
            raise Fail(f"{r.request.method} {r.request.url.path} ({r.status_code}) has no {VERSION_HEADER} header")


@_check("XAPI-HDR-002", f"{C103} 3.3.s3.b1", "xAPI 1.0.x requests are answered with a 1.0.x version header (the latest patch, 1.0.3)", ("XAPI-00333",))
def _v1_answer(s: Session) -> None:
    if V1 not in versions(s):
        raise Skip("the LRS does not list 1.0.3")
    for sent in ("1.0.3", "1.0", "1.0.1"):
        r = get_statements(s, sent, limit=1)
        expect(r, 200, what=f"GET /statements with version {sent}")
        got = r.headers.get(VERSION_HEADER, "")
        if not got.startswith("1.0."):
            raise Fail(f"a {sent} request was answered with {VERSION_HEADER}: {got!r}")


@_check("XAPI-HDR-003", f"{X20} 4.1.5 (Versioning)", "xAPI 2.0 requests are answered with X-Experience-API-Version 2.0.0", ())
def _v2_answer(s: Session) -> None:
    if V2 not in versions(s):
        raise Skip("the LRS does not list 2.0.0")
    for sent in ("2.0.0", "2.0"):
        r = get_statements(s, sent, limit=1)
        expect(r, 200, what=f"GET /statements with version {sent}")
        if r.headers.get(VERSION_HEADER) != V2:
            raise Fail(f"a {sent} request was answered with {VERSION_HEADER}: {r.headers.get(VERSION_HEADER)!r}")


@_check("XAPI-HDR-004", f"{C103} 3.3.s4.b1", "A request without X-Experience-API-Version to a resource other than About is a 400", ("XAPI-00321", "XAPI-00331"))
def _no_version(s: Session) -> None:
    r = _bare(s, "GET", "statements", params={"limit": "1"})
    expect(r, 400, what="GET /statements without a version header")
    r = _bare(s, "POST", "statements", content=json.dumps(statement(s)).encode(), headers={"Content-Type": "application/json"})
    expect(r, 400, what="POST /statements without a version header")


@_check("XAPI-HDR-005", f"{C103} 3.3.s4.b2", "A request naming a version the LRS does not speak (3.0.0, 0.95) is a 400", ())
def _unknown_version(s: Session) -> None:
    for v in ("3.0.0", "0.95", "banana"):
        r = get_statements(s, v, limit=1)
        if r.status_code != 400:
            raise Fail(f"a request with {VERSION_HEADER}: {v} answered {r.status_code}, not 400")


@_check("XAPI-HDR-006", f"{C103} 2.8.s5.b4", "About answers without an X-Experience-API-Version request header", ("XAPI-00321",))
def _about_without(s: Session) -> None:
    expect(_bare(s, "GET", "about"), 200, what="GET /about without a version header")


@_check("XAPI-HDR-007", f"{D103} 2.4.10; {C103} 3.3", "A statement whose version is 2.0.0 sent as xAPI 1.0.3 is a 400", ("XAPI-00101",))
def _version_mismatch(s: Session) -> None:
    if V1 not in versions(s):
        raise Skip("the LRS does not list 1.0.3")
    expect(post_statements(s, [statement(s, version="2.0.0")], V1), 400)


# --------------------------------------------------------------------------- authentication and errors

@_check("XAPI-AUTH-001", f"{C103} 4.0", "A request without credentials is a 401", ("XAPI-00334",), tags=("auth",))
def _no_creds(s: Session) -> None:
    r = _bare(s, "GET", "statements", auth=None, headers=hv(default_version(s)))
    expect(r, 401)


@_check("XAPI-AUTH-002", f"{C103} 4.0", "A request with wrong credentials is a 401", ("XAPI-00334",), tags=("auth",))
def _bad_creds(s: Session) -> None:
    r = _bare(s, "GET", "statements", auth=httpx.BasicAuth("conformance-nobody", "wrong-" + uuid.uuid4().hex), headers=hv(default_version(s)))
    expect(r, 401)


@_check("XAPI-AUTH-003", f"{C103} 4.0", "HTTP Basic credentials are accepted on every resource", ("XAPI-00335",), tags=("auth",))
def _basic(s: Session) -> None:
    if s.target.basic is None and not s.target.client_id:
        raise Skip("no HTTP Basic credentials given (--basic)")
    expect(get_statements(s, limit=1), 200)
    expect(s.get("activities/state", params={"activityId": activity(s), "agent": json.dumps(agent(s))}, headers=hv(default_version(s))), 200, what="GET State ids")


@_check("XAPI-ERR-001", f"{C103} 3.2", "A 400 answer explains what is wrong (a non-empty message)", (), required=False, tags=("errors",))
def _message(s: Session) -> None:
    r = post_statements(s, [statement(s, verb={"id": "no scheme"})])
    expect(r, 400)
    if not r.text.strip():
        raise Fail("the 400 answer has an empty body")


@_check("XAPI-ERR-002", f"{C103} 3.1.s4.b13", "A 409 on a document explains the situation", (), required=False, tags=("errors",))
def _conflict_message(s: Session) -> None:
    params = {"activityId": activity(s), "profileId": f"doc-{uuid.uuid4()}"}
    r = s.put("activities/profile", params=params, content=b'{"a": 1}', headers=hv(default_version(s), **{"Content-Type": "application/json", "If-None-Match": "*"}))
    expect(r, 204, what="PUT of a new Activity Profile document")
    r = s.put("activities/profile", params=params, content=b'{"a": 2}', headers=hv(default_version(s), **{"Content-Type": "application/json"}))
    expect(r, 409)
    if not r.text.strip():
        raise Fail("the 409 answer has an empty body")


@_check("XAPI-ERR-003", f"{C103} 3.2", "The LRS answers 400 for a malformed request, never 422 or 500", (), tags=("errors",))
def _no_422(s: Session) -> None:
    for r in (post_statements(s, {"actor": 1}), get_statements(s, limit="many"), get_statements(s, ascending="perhaps")):
        if r.status_code != 400:
            raise Fail(f"{r.request.method} {r.request.url} answered {r.status_code}, not 400")


# --------------------------------------------------------------------------- About, Activities, Agents

@_check("XAPI-ABOUT-001", f"{C103} 2.8", "GET /about answers 200 with 'version', an array of strings", ("XAPI-00315", "XAPI-00318", "XAPI-00319"), tags=("about",))
def _about(s: Session) -> None:
    r = s.get("about")
    expect(r, 200)
    v = body_json(r).get("version")
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise Fail(f"About's version is {v!r}, not a non-empty array of strings")


@_check("XAPI-ABOUT-002", f"{C103} 2.8.s5.b1.b1", "About lists 1.0.3 or 2.0.0, and only well-formed versions", ("XAPI-00316", "XAPI-00317"), tags=("about",))
def _about_versions(s: Session) -> None:
    v = body_json(s.get("about")).get("version") or []
    if not ({V1, V2} & set(v)):
        raise Fail(f"About lists {v}, neither 1.0.3 nor 2.0.0")
    bad = [x for x in v if x not in ("0.9", "0.95", "1.0.0") and not (x.startswith(("1.0.", "2.0.")) and x.split(".")[-1].isdigit())]
    if bad:
        raise Fail(f"About lists versions that do not exist: {bad}")


@_check("XAPI-ABOUT-003", f"{C103} 2.8", "About's extensions, when present, are an object", (), tags=("about",))
def _about_ext(s: Session) -> None:
    ext = body_json(s.get("about")).get("extensions", {})
    if not isinstance(ext, dict):
        raise Fail(f"About's extensions are {ext!r}")


@_check("XAPI-ACT-001", f"{C103} 2.5", "GET /activities answers the Activity with the definition the LRS knows", ("XAPI-00251", "XAPI-00252", "XAPI-00253"), tags=("activities",))
def _activities(s: Session) -> None:
    act = activity(s, "described")
    store(s, statement(s, object={"objectType": "Activity", "id": act, "definition": {"name": {"en-US": "Described"}}}))
    r = s.get("activities", params={"activityId": act}, headers=hv(default_version(s)))
    expect(r, 200)
    got = body_json(r)
    if got.get("id") != act or got.get("objectType", "Activity") != "Activity":
        raise Fail(f"GET /activities answered {excerpt(r)}")
    if ((got.get("definition") or {}).get("name") or {}).get("en-US") != "Described":
        raise Fail("the Activity lost its definition's name")


@_check("XAPI-ACT-002", f"{C103} 2.5.s1.table1.row1", "GET /activities without activityId is a 400", ("XAPI-00250",), tags=("activities",))
def _activities_missing(s: Session) -> None:
    expect(s.get("activities", headers=hv(default_version(s))), 400)


@_check("XAPI-ACT-003", f"{C103} 2.5", "The Activity merges what every statement says about it (two languages)", ("XAPI-00251",), required=False, tags=("activities",))
def _activities_merge(s: Session) -> None:
    act = activity(s, "bilingual")
    store(s, statement(s, object={"objectType": "Activity", "id": act, "definition": {"name": {"en-US": "Hello"}}}))
    store(s, statement(s, object={"objectType": "Activity", "id": act, "definition": {"name": {"fr-FR": "Bonjour"}}}))
    name = ((body_json(s.get("activities", params={"activityId": act}, headers=hv(default_version(s)))).get("definition") or {}).get("name")) or {}
    if name.get("fr-FR") != "Bonjour":
        raise Fail(f"the Activity's name is {name}, missing the later language")


@_check("XAPI-AGT-001", f"{C103} 2.4", "GET /agents answers a Person object with arrays of the agent's identifiers", ("XAPI-00248", "XAPI-00236", "XAPI-00237", "XAPI-00239", "XAPI-00244", "XAPI-00246", "XAPI-00245"), tags=("agents",))
def _agents(s: Session) -> None:
    who = agent(s, "person")
    store(s, statement(s, actor=who))
    r = s.get("agents", params={"agent": json.dumps(who)}, headers=hv(default_version(s)))
    expect(r, 200)
    got = body_json(r)
    if got.get("objectType") != "Person":
        raise Fail(f"objectType is {got.get('objectType')!r}, not Person")
    for key in ("name", "mbox", "mbox_sha1sum", "openid", "account"):
        if key in got and not isinstance(got[key], list):
            raise Fail(f"Person.{key} is not an array")
    if who["mbox"] not in (got.get("mbox") or []):
        raise Fail(f"Person.mbox {got.get('mbox')} does not hold {who['mbox']}")


@_check("XAPI-AGT-002", f"{C103} 2.4.s2.table1.row1", "GET /agents without agent, or with an agent that is not valid, is a 400", ("XAPI-00243", "XAPI-00249"), tags=("agents",))
def _agents_bad(s: Session) -> None:
    expect(s.get("agents", headers=hv(default_version(s))), 400, what="GET /agents without agent")
    expect(s.get("agents", params={"agent": '{"name": "no identifier"}'}, headers=hv(default_version(s))), 400, what="GET /agents with an agent without IFI")


@_check("XAPI-AGT-003", f"{C103} 2.4", "GET /agents for an agent the LRS has never seen still answers a Person with that agent's identifier", ("XAPI-00247",), tags=("agents",))
def _agents_unknown(s: Session) -> None:
    who = {"objectType": "Agent", "mbox": f"mailto:never-seen.{uuid.uuid4().hex[:8]}@conformance.tessera.example"}
    r = s.get("agents", params={"agent": json.dumps(who)}, headers=hv(default_version(s)))
    expect(r, 200)
    got = body_json(r)
    if got.get("objectType") != "Person" or who["mbox"] not in (got.get("mbox") or []):
        raise Fail(f"GET /agents for an unknown agent answered {excerpt(r)}")


@_check("XAPI-HDR-008", f"{C103} 3.3.s3.b1; 4.0", "401 answers carry X-Experience-API-Version too", ("XAPI-00333",))
def _version_on_401(s: Session) -> None:
    r = _bare(s, "GET", "statements", auth=None, headers=hv(default_version(s)))
    expect(r, 401)
    if not r.headers.get(VERSION_HEADER):
        raise Fail(f"the 401 answer has no {VERSION_HEADER} header")


@_check("XAPI-HDR-009", f"{C103} 1.5", "A statement POSTed as application/json; charset=utf-8 is accepted", ())
def _charset(s: Session) -> None:
    st = statement(s)
    r = s.post("statements", content=json.dumps([st]).encode(), headers=hv(default_version(s), **{"Content-Type": "application/json; charset=utf-8"}))
    expect(r, 200)


# --------------------------------------------------------------------------- attachments

TEXT = b"Conformance attachment: hello, LRS.\n"
USAGE = "http://conformance.tessera.example/usage/notes"


def _attachment(content: bytes = TEXT, **over: Any) -> dict[str, Any]:
    a = {"usageType": USAGE, "display": {"en-US": "notes"}, "contentType": "text/plain", "length": len(content),
         "sha2": hashlib.sha256(content).hexdigest()}
    a.update(over)
    return a


def _multipart(parts: list[tuple[dict[str, str], bytes]], boundary: str = "conformance-boundary-7f3a") -> bytes:
    out = b""
    for headers, body in parts:
        out += f"--{boundary}\r\n".encode()
        for k, v in headers.items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _statement_part(st: Any) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps(st).encode()


def _file_part(content: bytes = TEXT, sha2: str | None = None, ctype: str = "text/plain", encoding: str | None = "binary") -> tuple[dict[str, str], bytes]:
    h = {"Content-Type": ctype, "X-Experience-API-Hash": sha2 or hashlib.sha256(content).hexdigest()}
    if encoding:
        h["Content-Transfer-Encoding"] = encoding
    return h, content


def _post_multipart(s: Session, body: bytes, ctype: str = "multipart/mixed; boundary=conformance-boundary-7f3a", version: str | None = None) -> httpx.Response:
    return s.post("statements", content=body, headers=hv(version or default_version(s), **{"Content-Type": ctype}))


def _att_check(cid: str, req: str, desc: str, adl: tuple[str, ...] = ()) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return _check(cid, req, desc, adl, tags=("attachments",))


@_att_check("XAPI-ATT-001", f"{C103} 1.5.2; {D103} 2.4.11", "A statement with its attachment in multipart/mixed is stored; GET attachments=true answers it back",
            ("XAPI-00167", "XAPI-00025"))
def _att_roundtrip(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    r = _post_multipart(s, _multipart([_statement_part([st]), _file_part()]))
    expect(r, 200, what="POST multipart/mixed with an attachment")
    r = get_one(s, st["id"], attachments="true")
    expect(r, 200)
    ctype = r.headers.get("content-type", "")
    if not ctype.startswith("multipart/mixed") or "boundary=" not in ctype:
        raise Fail(f"GET attachments=true answered Content-Type {ctype!r}, not multipart/mixed with a boundary")
    if TEXT not in r.content or hashlib.sha256(TEXT).hexdigest().encode() not in r.content:
        raise Fail("the attachment's content or its X-Experience-API-Hash is not in the multipart answer")


@_att_check("XAPI-ATT-002", f"{C103} 2.1.3.s1.table1.row13", "GET attachments=false (the default) answers JSON with the attachment metadata only", ("XAPI-00161",))
def _att_false(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part()])), 200, what="POST multipart/mixed")
    r = get_one(s, st["id"])
    if not r.headers.get("content-type", "").startswith("application/json"):
        raise Fail(f"Content-Type {r.headers.get('content-type')!r}")
    atts = body_json(r).get("attachments") or []
    if len(atts) != 1 or atts[0].get("sha2") != hashlib.sha256(TEXT).hexdigest():
        raise Fail(f"the attachment metadata came back as {atts}")


@_att_check("XAPI-ATT-003", f"{C103} 1.5.1", "application/json with an attachment that has a fileUrl is accepted without its content", ("XAPI-00129",))
def _att_fileurl(s: Session) -> None:
    store(s, statement(s, attachments=[_attachment(fileUrl="http://conformance.tessera.example/files/notes.txt")]))


@_att_check("XAPI-ATT-004", f"{C103} 1.5.1", "application/json with an attachment lacking both fileUrl and content is a 400", ("XAPI-00129",))
def _att_missing(s: Session) -> None:
    expect(post_statements(s, [statement(s, attachments=[_attachment()])]), 400)


@_att_check("XAPI-ATT-005", f"{C103} 1.5.2.s2.b2", "multipart/mixed without a boundary parameter is a 400", ("XAPI-00131",))
def _att_no_boundary(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part()]), ctype="multipart/mixed"), 400)


@_att_check("XAPI-ATT-006", f"{C103} 1.5.2.s2.b2.b1", "multipart/mixed whose first part is not application/json is a 400", ("XAPI-00134",))
def _att_first_part(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([({"Content-Type": "text/plain"}, json.dumps([st]).encode()), _file_part()])), 400)


@_att_check("XAPI-ATT-007", f"{C103} 1.5.2.s2.b2", "An attachment part without X-Experience-API-Hash is a 400", ("XAPI-00132",))
def _att_no_hash(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([_statement_part([st]), ({"Content-Type": "text/plain", "Content-Transfer-Encoding": "binary"}, TEXT)])), 400)


@_att_check("XAPI-ATT-008", f"{C103} 1.5.2.s1.b4", "An attachment part whose hash matches no attachment of the statements is a 400", ("XAPI-00128", "XAPI-00132"))
def _att_wrong_hash(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    other = b"other content"
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part(other)])), 400)


@_att_check("XAPI-ATT-009", f"{C103} 1.5.2.s2.b2", "xAPI 1.0.3: an attachment part without Content-Transfer-Encoding: binary is a 400", ("XAPI-00135",))
def _att_encoding(s: Session) -> None:
    if V1 not in versions(s):
        raise Skip("the LRS does not list 1.0.3")
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part(encoding=None)]), version=V1), 400)


@_att_check("XAPI-ATT-010", f"{C103} 1.5", "A request with attachments and a Content-Type other than application/json or multipart/mixed is a 400", ("XAPI-00127",))
def _att_ctype(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part()]), ctype="multipart/form-data; boundary=conformance-boundary-7f3a"), 400)


@_att_check("XAPI-ATT-011", f"{C103} 1.5.2", "PUT with multipart/mixed stores the statement and its attachment (204)", ("XAPI-00143",))
def _att_put(s: Session) -> None:
    st = statement(s, attachments=[_attachment()])
    r = s.put("statements", params={"statementId": st["id"]}, content=_multipart([_statement_part(st), _file_part()]),
              headers=hv(default_version(s), **{"Content-Type": "multipart/mixed; boundary=conformance-boundary-7f3a"}))
    expect(r, 204)
    r = get_one(s, st["id"], attachments="true")
    if TEXT not in r.content:
        raise Fail("the attachment PUT with its statement is not returned")


# --------------------------------------------------------------------------- signed statements

SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(payload: dict[str, Any], alg: str = "RS256") -> bytes:
    header = _b64(json.dumps({"alg": alg}).encode())
    body = _b64(json.dumps(payload).encode())
    return f"{header}.{body}.{_b64(b'not-a-real-signature-' + alg.encode())}".encode()


def _signed(s: Session, *, alg: str = "RS256", tamper: bool = False) -> tuple[dict[str, Any], bytes]:
    st = statement(s)
    payload = dict(st)
    if tamper:
        payload["verb"] = {"id": "http://adlnet.gov/expapi/verbs/attempted"}
    token = _jws(payload, alg)
    st["attachments"] = [{"usageType": SIGNATURE, "display": {"en-US": "signature"}, "contentType": "application/octet-stream",
                          "length": len(token), "sha2": hashlib.sha256(token).hexdigest()}]
    body = _multipart([_statement_part([st]), _file_part(token, ctype="application/octet-stream")])
    return st, body


@_check("XAPI-SIG-001", f"{D103} 2.6", "A signed statement (JWS attachment whose payload is the statement) is accepted", ("XAPI-00115",), tags=("signed",))
def _signed_ok(s: Session) -> None:
    _st, body = _signed(s)
    expect(_post_multipart(s, body), 200)


@_check("XAPI-SIG-002", f"{D103} 2.6.s4.b3", "A signature whose payload is not the statement is a 400", ("XAPI-00116",), tags=("signed",))
def _signed_tampered(s: Session) -> None:
    _st, body = _signed(s, tamper=True)
    expect(_post_multipart(s, body), 400)


@_check("XAPI-SIG-003", f"{D103} 2.6.s4.b4", "A signature with an algorithm other than RS256/RS384/RS512 is a 400", ("XAPI-00117",), tags=("signed",))
def _signed_alg(s: Session) -> None:
    _st, body = _signed(s, alg="HS256")
    expect(_post_multipart(s, body), 400)


@_check("XAPI-SIG-004", f"{D103} 2.6.s4.b1", "A signature attachment that is not a JWS is a 400", ("XAPI-00115",), tags=("signed",))
def _signed_garbage(s: Session) -> None:
    st = statement(s)
    token = b"this is not a JWS"
    st["attachments"] = [{"usageType": SIGNATURE, "display": {"en-US": "signature"}, "contentType": "application/octet-stream",
                          "length": len(token), "sha2": hashlib.sha256(token).hexdigest()}]
    expect(_post_multipart(s, _multipart([_statement_part([st]), _file_part(token, ctype="application/octet-stream")])), 400)


@_att_check("XAPI-ATT-012", f"{C103} 2.1.3.s1.table1.row13", "GET attachments=true of a statement without attachments is multipart/mixed with the statement first", ("XAPI-00167",))
def _att_none(s: Session) -> None:
    st = statement(s)
    store(s, st)
    r = get_one(s, st["id"], attachments="true")
    expect(r, 200)
    ctype = r.headers.get("content-type", "")
    if not ctype.startswith("multipart/mixed"):
        raise Fail(f"Content-Type {ctype!r}, not multipart/mixed")
    if st["id"].encode() not in r.content:
        raise Fail("the statement is not in the multipart answer")
