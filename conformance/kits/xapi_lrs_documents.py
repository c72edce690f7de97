"""``xapi-lrs`` checks: the document resources (State, Activity Profile, Agent Profile):
storage, JSON merge on POST, id lists and ``since``, DELETE, required and malformed
parameters, and concurrency (ETags, If-Match / If-None-Match, 412 and 409).

The same checks run on each resource (ids ``XAPI-DOC-ST-*``, ``-AP-*``, ``-GP-*``), each
on fresh document ids; State's concurrency checks speak xAPI 2.0 (1.0.3 lets State go
without concurrency headers, Communication 3.1)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx

from ..kit import Fail, Session, Skip
from .xapi_lrs_common import C103, KIT, V2, X20, activity, agent, body_json, default_version, excerpt, expect, hv, versions


@dataclass(frozen=True)
class Res:
    code: str
    title: str
    path: str
    id_param: str
    activity: bool
    agent: bool
    registration: bool
    section: str
    #: ADL ids per behaviour
    adl: dict[str, tuple[str, ...]]

    def params(self, s: Session, doc_id: str | None = None, **extra: Any) -> dict[str, str]:
        p: dict[str, str] = {}
        if self.activity:
            p["activityId"] = activity(s, "docs")
        if self.agent:
            p["agent"] = json.dumps(agent(s, "doc-owner"))
        if doc_id is not None:
            p[self.id_param] = doc_id
        p.update({k: v for k, v in extra.items() if v is not None})
        return p


STATE = Res("ST", "State", "activities/state", "stateId", True, True, True, "2.3", {
    "put": ("XAPI-00190", "XAPI-00192", "XAPI-00217"), "merge": ("XAPI-00234", "XAPI-00183", "XAPI-00184"), "post_new": ("XAPI-00233", "XAPI-00189"),
    "post_nonjson": ("XAPI-00232",), "post_badjson": ("XAPI-00235", "XAPI-00229"), "list": ("XAPI-00193",), "since": ("XAPI-00195", "XAPI-00221"),
    "since_bad": ("XAPI-00204",), "delete": ("XAPI-00191", "XAPI-00187", "XAPI-00216"),
    "missing": ("XAPI-00207", "XAPI-00208", "XAPI-00209", "XAPI-00210", "XAPI-00211", "XAPI-00206", "XAPI-00212", "XAPI-00213", "XAPI-00215"),
    "bad_agent": ("XAPI-00196", "XAPI-00197", "XAPI-00198", "XAPI-00199"), "etag": (), "concurrency": (), "head": ("XAPI-00125",)})
ACTIVITY_PROFILE = Res("AP", "Activity Profile", "activities/profile", "profileId", True, False, False, "2.7", {
    "put": ("XAPI-00287", "XAPI-00293", "XAPI-00288"), "merge": ("XAPI-00308", "XAPI-00183", "XAPI-00184"), "post_new": ("XAPI-00310", "XAPI-00286", "XAPI-00292", "XAPI-00312"),
    "post_nonjson": ("XAPI-00309",), "post_badjson": ("XAPI-00314", "XAPI-00313", "XAPI-00284"), "list": ("XAPI-00289", "XAPI-00290"), "since": ("XAPI-00294", "XAPI-00303"),
    "since_bad": ("XAPI-00295",), "delete": ("XAPI-00285", "XAPI-00291"),
    "missing": ("XAPI-00296", "XAPI-00297", "XAPI-00298", "XAPI-00299", "XAPI-00300", "XAPI-00301", "XAPI-00302"),
    "bad_agent": (), "etag": ("XAPI-00322",), "concurrency": ("XAPI-00322",), "head": ("XAPI-00125",)})
AGENT_PROFILE = Res("GP", "Agent Profile", "agents/profile", "profileId", False, True, False, "2.6", {
    "put": ("XAPI-00273", "XAPI-00259", "XAPI-00269", "XAPI-00274"), "merge": ("XAPI-00279", "XAPI-00183", "XAPI-00184"), "post_new": ("XAPI-00280", "XAPI-00272", "XAPI-00283"),
    "post_nonjson": ("XAPI-00278",), "post_badjson": ("XAPI-00281",), "list": ("XAPI-00270",), "since": ("XAPI-00275", "XAPI-00268"),
    "since_bad": ("XAPI-00260",), "delete": ("XAPI-00271",),
    "missing": ("XAPI-00261", "XAPI-00262", "XAPI-00263", "XAPI-00264", "XAPI-00265", "XAPI-00266", "XAPI-00267"),
    "bad_agent": ("XAPI-00255", "XAPI-00256", "XAPI-00257", "XAPI-00258"), "etag": ("XAPI-00322",), "concurrency": ("XAPI-00322",), "head": ("XAPI-00125",)})
RESOURCES = (STATE, ACTIVITY_PROFILE, AGENT_PROFILE)

DOC = {"colour": "red", "size": {"w": 1, "h": 2}}


def _version_for(s: Session, res: Res, concurrency: bool = False) -> str:
    """The version a check speaks: State's concurrency rules are 2.0's."""
    if concurrency and res is STATE:
        if V2 not in versions(s):
            raise Skip("State is under concurrency control only in xAPI 2.0, which this LRS does not list")
        return V2
    return default_version(s)


def _req(s: Session, method: str, res: Res, params: dict[str, str], *, body: bytes | None = None, ctype: str | None = None,
         version: str | None = None, **headers: str) -> httpx.Response:
    h = hv(version or default_version(s))
    if ctype:
        h["Content-Type"] = ctype
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return s.request(method, res.path, params=params, content=body, headers=h)


def create(s: Session, res: Res, doc_id: str, doc: Any = DOC, *, version: str | None = None, **extra: Any) -> None:
    """PUTs a new JSON document (with If-None-Match: * as a careful client does)."""
    r = _req(s, "PUT", res, res.params(s, doc_id, **extra), body=json.dumps(doc).encode(), ctype="application/json",
             version=version, If_None_Match="*")
    expect(r, 204, what=f"PUT of a new {res.title} document")


def fetch(s: Session, res: Res, doc_id: str, *, version: str | None = None, **extra: Any) -> httpx.Response:
    return _req(s, "GET", res, res.params(s, doc_id, **extra), version=version)


def _new_id() -> str:
    return f"doc-{uuid.uuid4()}"


def _etag(r: httpx.Response) -> str:
    tag = r.headers.get("etag")
    if not tag:
        raise Fail(f"GET of the {r.request.url.path} document answered no ETag")
    return tag


def _register(res: Res) -> None:
    def check(n: str, desc: str, behaviour: str, req: str | None = None, required: bool = True) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
        return KIT.check(f"XAPI-DOC-{res.code}-{n}", req or f"{C103} {res.section}", f"{res.title}: {desc}",
                         requirement_ids=res.adl.get(behaviour, ()), required=required, tags=("documents",))

    @check("01", "PUT stores a document; GET answers 200 with the same bytes and Content-Type", "put")
    def _put_get(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id)
        r = fetch(s, res, doc_id)
        expect(r, 200)
        if body_json(r) != DOC:
            raise Fail(f"GET answered {excerpt(r)}, not the document PUT")
        if not r.headers.get("content-type", "").startswith("application/json"):
            raise Fail(f"Content-Type {r.headers.get('content-type')!r}, not application/json")
        raw = b"\x00\x01binary\xff"
        doc2 = _new_id()
        r = _req(s, "PUT", res, res.params(s, doc2), body=raw, ctype="application/octet-stream", If_None_Match="*")
        expect(r, 204, what="PUT of a binary document")
        r = fetch(s, res, doc2)
        expect(r, 200)
        if r.content != raw:
            raise Fail("a binary document came back changed")

    @check("02", "GET answers an ETag in quotes", "etag", f"{C103} 3.1.s4.b2")
    def _etag_quoted(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id)
        tag = _etag(fetch(s, res, doc_id))
        if not (tag.startswith('"') and tag.endswith('"')) or tag.startswith('W/'):
            raise Fail(f"ETag {tag!r} is not a strong, quoted entity tag")

    @check("03", "POST of a JSON object onto a JSON document merges their top-level properties", "merge", f"{C103} 2.2.s7")
    def _merge(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id, {"a": 1, "b": {"x": 1, "y": 2}})
        r = _req(s, "POST", res, res.params(s, doc_id), body=json.dumps({"b": {"z": 3}, "c": 3}).encode(), ctype="application/json")
        expect(r, 204, what="POST merge")
        got = body_json(fetch(s, res, doc_id))
        if got != {"a": 1, "b": {"z": 3}, "c": 3}:
            raise Fail(f"the merged document is {got}, expected {{'a': 1, 'b': {{'z': 3}}, 'c': 3}}")

    @check("04", "POST to a document that does not exist stores it", "post_new", f"{C103} 2.2.s7")
    def _post_new(s: Session) -> None:
        doc_id = _new_id()
        r = _req(s, "POST", res, res.params(s, doc_id), body=json.dumps({"n": 1}).encode(), ctype="application/json")
        expect(r, 204)
        if body_json(fetch(s, res, doc_id)) != {"n": 1}:
            raise Fail("the POSTed document was not stored")

    @check("05", "POST of JSON onto a document that is not JSON is a 400 and changes nothing", "post_nonjson", f"{C103} 2.2.s8.b1")
    def _post_nonjson(s: Session) -> None:
        doc_id = _new_id()
        r = _req(s, "PUT", res, res.params(s, doc_id), body=b"plain words", ctype="text/plain", If_None_Match="*")
        expect(r, 204, what="PUT of a text document")
        expect(_req(s, "POST", res, res.params(s, doc_id), body=b'{"a": 1}', ctype="application/json"), 400)
        if fetch(s, res, doc_id).content != b"plain words":
            raise Fail("the text document changed")

    @check("06", "POST of invalid JSON declared application/json is a 400", "post_badjson", f"{C103} 2.2.s8.b1")
    def _post_badjson(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id)
        expect(_req(s, "POST", res, res.params(s, doc_id), body=b'{"a": ', ctype="application/json"), 400)

    @check("07", "GET without a document id answers 200 and the array of stored ids", "list", f"{C103} {res.section}")
    def _list(s: Session) -> None:
        scope = f"list-{uuid.uuid4().hex[:8]}"
        extra = _scope(s, res, scope)
        ids = [_new_id(), _new_id()]
        for d in ids:
            create(s, res, d, **extra)
        r = _req(s, "GET", res, {**res.params(s, None, **extra)})
        expect(r, 200)
        got = body_json(r)
        if not isinstance(got, list) or sorted(got) != sorted(ids):
            raise Fail(f"the id list is {got!r}, expected {sorted(ids)}")

    @check("08", "GET of ids with since returns only the documents stored after it", "since", f"{C103} {res.section}")
    def _since(s: Session) -> None:
        extra = _scope(s, res, f"since-{uuid.uuid4().hex[:8]}")
        first, second = _new_id(), _new_id()
        create(s, res, first, **extra)
        # the kit's clock against the LRS's: 0.2 s either side tolerates an NTP-synced server
        time.sleep(0.2)
        stamp = _utc_now()
        time.sleep(0.2)
        create(s, res, second, **extra)
        r = _req(s, "GET", res, {**res.params(s, None, **extra), "since": stamp})
        expect(r, 200)
        if body_json(r) != [second]:
            raise Fail(f"since {stamp} returned {excerpt(r)}, expected [{second!r}]")

    @check("09", "GET of ids with a since that is not a timestamp is a 400", "since_bad", f"{C103} {res.section}")
    def _since_bad(s: Session) -> None:
        expect(_req(s, "GET", res, {**res.params(s), "since": "yesterday"}), 400)

    @check("10", "DELETE answers 204 and the document is gone (404)", "delete", f"{C103} {res.section}")
    def _delete(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id)
        expect(_req(s, "DELETE", res, res.params(s, doc_id)), 204)
        expect(fetch(s, res, doc_id), 404, what="GET after DELETE")

    @check("11", "A request missing a required parameter is a 400 (GET, PUT, POST, DELETE)", "missing", f"{C103} {res.section} table 1")
    def _missing(s: Session) -> None:
        doc_id = _new_id()
        required = [n for n in ("activityId", "agent") if n in res.params(s)]
        for method in ("GET", "PUT", "POST", "DELETE"):
            for name in required + ([res.id_param] if method in ("PUT", "POST") else []):
                p = res.params(s, doc_id)
                p.pop(name)
                body = b'{"a": 1}' if method in ("PUT", "POST") else None
                extra = {"If_None_Match": "*"} if method == "PUT" else {}
                r = _req(s, method, res, p, body=body, ctype="application/json" if body else None, **extra)
                if r.status_code != 400:
                    raise Fail(f"{method} without {name} answered {r.status_code}, not 400 ({excerpt(r)})")

    if res.agent:
        @check("12", "An agent parameter that is not a valid Agent is a 400 (GET, PUT, POST, DELETE)", "bad_agent", f"{C103} {res.section} table 1")
        def _bad_agent(s: Session) -> None:
            for method in ("GET", "PUT", "POST", "DELETE"):
                for bad in ('{"name": "no identifier"}', "mailto:learner@example.com"):
                    p = res.params(s, _new_id(), agent=bad)
                    body = b'{"a": 1}' if method in ("PUT", "POST") else None
                    r = _req(s, method, res, p, body=body, ctype="application/json" if body else None,
                             **({"If_None_Match": "*"} if method == "PUT" else {}))
                    if r.status_code != 400:
                        raise Fail(f"{method} with agent={bad} answered {r.status_code}, not 400")

    @check("13", "PUT with an If-Match that does not match is a 412 and changes nothing", "concurrency", f"{C103} 3.1.s4.b9; {X20} 4.1.4")
    def _if_match_wrong(s: Session) -> None:
        v = _version_for(s, res, True)
        doc_id = _new_id()
        create(s, res, doc_id, version=v)
        r = _req(s, "PUT", res, res.params(s, doc_id), body=b'{"changed": true}', ctype="application/json", version=v,
                 If_Match='"0000000000000000000000000000000000000000"')
        expect(r, 412)
        if body_json(fetch(s, res, doc_id, version=v)) != DOC:
            raise Fail("the document changed although the precondition failed")

    @check("14", "PUT with the current ETag in If-Match replaces the document", "concurrency", f"{C103} 3.1.s4.b5")
    def _if_match_right(s: Session) -> None:
        v = _version_for(s, res, True)
        doc_id = _new_id()
        create(s, res, doc_id, version=v)
        tag = _etag(fetch(s, res, doc_id, version=v))
        r = _req(s, "PUT", res, res.params(s, doc_id), body=b'{"changed": true}', ctype="application/json", version=v, If_Match=tag)
        expect(r, 204)
        if body_json(fetch(s, res, doc_id, version=v)) != {"changed": True}:
            raise Fail("the document was not replaced")
        after = _etag(fetch(s, res, doc_id, version=v))
        if after == tag:
            raise Fail("the ETag did not change with the content")

    @check("15", "PUT with If-None-Match: * onto an existing document is a 412; onto a new one it stores", "concurrency", f"{C103} 3.1.s4.b6")
    def _if_none_match(s: Session) -> None:
        v = _version_for(s, res, True)
        doc_id = _new_id()
        create(s, res, doc_id, version=v)
        r = _req(s, "PUT", res, res.params(s, doc_id), body=b'{"changed": true}', ctype="application/json", version=v, If_None_Match="*")
        expect(r, 412)
        if body_json(fetch(s, res, doc_id, version=v)) != DOC:
            raise Fail("the document changed although If-None-Match: * failed")

    @check("16", "PUT without If-Match or If-None-Match onto an existing document is a 409 and changes nothing", "concurrency", f"{C103} 3.1.s4.b13")
    def _conflict(s: Session) -> None:
        v = _version_for(s, res, True)
        doc_id = _new_id()
        create(s, res, doc_id, version=v)
        r = _req(s, "PUT", res, res.params(s, doc_id), body=b'{"changed": true}', ctype="application/json", version=v)
        expect(r, 409)
        if body_json(fetch(s, res, doc_id, version=v)) != DOC:
            raise Fail("the document changed although the PUT conflicted")

    @check("17", "xAPI 2.0: POST and DELETE with an If-Match that does not match are a 412", "concurrency", f"{X20} 4.1.4")
    def _v2_post_delete(s: Session) -> None:
        if V2 not in versions(s):
            raise Skip("the LRS does not list 2.0.0")
        doc_id = _new_id()
        create(s, res, doc_id, version=V2)
        wrong = '"0000000000000000000000000000000000000000"'
        expect(_req(s, "POST", res, res.params(s, doc_id), body=b'{"more": 1}', ctype="application/json", version=V2, If_Match=wrong), 412, what="POST with a wrong If-Match")
        expect(_req(s, "DELETE", res, res.params(s, doc_id), version=V2, If_Match=wrong), 412, what="DELETE with a wrong If-Match")
        if body_json(fetch(s, res, doc_id, version=V2)) != DOC:
            raise Fail("the document changed although the preconditions failed")

    @check("19", "HEAD of a document answers like GET (200, ETag) without a body", "head", f"{C103} 1.1")
    def _head(s: Session) -> None:
        doc_id = _new_id()
        create(s, res, doc_id)
        r = _req(s, "HEAD", res, res.params(s, doc_id))
        expect(r, 200)
        if r.content:
            raise Fail(f"HEAD answered a body of {len(r.content)} bytes")
        expect(_req(s, "HEAD", res, res.params(s, _new_id())), 404, what="HEAD of a document that does not exist")

    @check("18", "A parameter the resource does not define is a 400", "unknown", f"{C103} 3.2.s3.b7")
    def _unknown(s: Session) -> None:
        expect(_req(s, "GET", res, {**res.params(s, _new_id()), "colour": "blue"}), 400)


def _scope(s: Session, res: Res, tag: str) -> dict[str, Any]:
    """Extra parameters isolating a list: a registration for State, a fresh activity or agent otherwise."""
    if res is STATE:
        return {"registration": str(uuid.uuid4())}
    if res is ACTIVITY_PROFILE:
        return {"activityId": activity(s, tag)}
    return {"agent": json.dumps(agent(s, tag))}


def _utc_now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


for _res in RESOURCES:
    _register(_res)


# --------------------------------------------------------------------------- State only

def _st(n: str, desc: str, adl: tuple[str, ...], req: str = f"{C103} 2.3") -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return KIT.check(f"XAPI-DOC-ST-{n}", req, f"State: {desc}", requirement_ids=adl, tags=("documents",))


@_st("20", "documents are kept per registration: one stored under a registration is not found without it", ("XAPI-00218", "XAPI-00220", "XAPI-00227"))
def _registration_scope(s: Session) -> None:
    doc_id, reg = _new_id(), str(uuid.uuid4())
    create(s, STATE, doc_id, registration=reg)
    expect(fetch(s, STATE, doc_id, registration=reg), 200, what="GET with the registration")
    expect(fetch(s, STATE, doc_id, registration=str(uuid.uuid4())), 404, what="GET with another registration")
    r = _req(s, "POST", STATE, STATE.params(s, doc_id, registration=reg), body=b'{"more": 1}', ctype="application/json")
    expect(r, 204, what="POST with the registration")


@_st("21", "a registration that is not a UUID is a 400 (GET, PUT, POST, DELETE)", ("XAPI-00200", "XAPI-00201", "XAPI-00202", "XAPI-00203"))
def _registration_bad(s: Session) -> None:
    for method in ("GET", "PUT", "POST", "DELETE"):
        body = b'{"a": 1}' if method in ("PUT", "POST") else None
        r = _req(s, method, STATE, STATE.params(s, _new_id(), registration="not-a-uuid"), body=body, ctype="application/json" if body else None)
        if r.status_code != 400:
            raise Fail(f"{method} with registration=not-a-uuid answered {r.status_code}, not 400")


@_st("22", "DELETE without stateId deletes every document of the activity, agent and registration", ("XAPI-00194", "XAPI-00219"))
def _delete_all(s: Session) -> None:
    reg = str(uuid.uuid4())
    ids = [_new_id(), _new_id()]
    for d in ids:
        create(s, STATE, d, registration=reg)
    expect(_req(s, "DELETE", STATE, STATE.params(s, None, registration=reg)), 204)
    r = _req(s, "GET", STATE, STATE.params(s, None, registration=reg))
    expect(r, 200)
    if body_json(r) != []:
        raise Fail(f"after DELETE without stateId the ids are {excerpt(r)}")


@_st("23", "xAPI 1.0.3: PUT without concurrency headers is allowed for State", (), req=f"{C103} 3.1.s3")
def _state_free(s: Session) -> None:
    if "1.0.3" not in versions(s):
        raise Skip("the LRS does not list 1.0.3")
    doc_id = _new_id()
    for _ in range(2):
        r = _req(s, "PUT", STATE, STATE.params(s, doc_id), body=b'{"a": 1}', ctype="application/json", version="1.0.3")
        expect(r, 204, what="PUT of a State document without If-Match/If-None-Match")
