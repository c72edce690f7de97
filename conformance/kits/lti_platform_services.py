"""Kit ``lti-1.3-platform`` (``lti_platform`` says what it covers and its options), second
part: AGS 2.0 (line items, scores, results, paging, media types, scopes), NRPS 2.0
(membership container, paging, role filter) and the platform's OpenID configuration
(Dynamic Registration 1.0 3.3), all through the launch and service tokens of
``lti_platform_launch``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from ..kit import Fail, Session, Skip
from .lti_common import (
    C_AGS,
    C_NRPS,
    LINEITEM,
    LINEITEMS,
    MEMBERSHIPS,
    RESULTS,
    ROLE,
    SCOPE_LINEITEM,
    SCOPE_LINEITEM_READ,
    SCOPE_NRPS,
    SCOPE_RESULT,
    SCOPE_SCORE,
    option,
)
from .lti_platform_launch import AGS, CORE, KIT, NRPS, SF, _claims, _h, _o, _str

# --- AGS 2.0 --------------------------------------------------------------------------------


def _lineitems_url(s: Session) -> str:
    url = option(s.target, "lineitems_url")
    if url:
        return url
    claim = _claims(s).get(C_AGS)
    if not isinstance(claim, dict) or not claim.get("lineitems"):
        raise Skip("the launch carries no AGS lineitems URL (give --option lineitems_url=...)")
    return claim["lineitems"]


def _user(s: Session) -> str:
    uid = option(s.target, "score_user_id") or _claims(s).get("sub")
    if not uid:
        raise Skip("no user to post scores for (an anonymous launch: give --option score_user_id=...)")
    return uid


def _with_query(url: str, **q: Any) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(q)


def _below(url: str, segment: str, **q: Any) -> str:
    base, _, query = url.partition("?")
    out = base.rstrip("/") + "/" + segment + (f"?{query}" if query else "")
    return _with_query(out, **q) if q else out


def _create(s: Session, label: str, **extra: Any) -> httpx.Response:
    body = {"label": label, "scoreMaximum": 10, **extra}
    return s.post(_lineitems_url(s), content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM, "Accept": LINEITEM}))


def _items(s: Session) -> list[dict[str, Any]]:
    """Two line items the kit made (one tagged, one with a resourceId), once."""
    if "items" not in s.state:
        run, made = s.state["run"], []
        for n, extra in enumerate(({"tag": f"kit-tag-{run}", "resourceId": f"kit-res-{run}"}, {"tag": f"kit-other-{run}"})):
            r = _create(s, f"Kit item {n + 1}", **extra)
            if r.status_code not in (200, 201):
                s.state["items"] = f"creating a line item answered HTTP {r.status_code} {r.text[:200]!r}"
                break
            made.append(r.json())
        else:
            s.state["items"] = made
    if isinstance(s.state["items"], str):
        raise Fail(s.state["items"])
    return s.state["items"]


def _ctype(r: httpx.Response) -> str:
    return r.headers.get("content-type", "").split(";")[0].strip()


def _status(r: httpx.Response, *ok: int) -> None:
    if r.status_code not in ok:
        raise Fail(f"{r.request.method} {r.request.url}: HTTP {r.status_code} {r.text[:200]!r}")


@KIT.check("LTI-PLAT-AGS-001", f"{AGS} 3.2.4", "GET on the line item container answers a JSON array as application/vnd.ims.lis.v2.lineitemcontainer+json")
def ags_container(s: Session) -> None:
    r = s.get(_lineitems_url(s), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r, 200)
    if _ctype(r) != LINEITEMS or not isinstance(r.json(), list):
        raise Fail(f"Content-Type {_ctype(r)!r}, body {r.text[:100]!r}")


@KIT.check("LTI-PLAT-AGS-002", f"{AGS} 3.2.5", "POSTing a line item creates it: 201/200 with its id (a URL), label, scoreMaximum, tag and resourceId")
def ags_create(s: Session) -> None:
    item, run = _items(s)[0], s.state["run"]
    if not str(item.get("id", "")).startswith(("https://", "http://")):
        raise Fail(f"id {item.get('id')!r}")
    want = {"label": "Kit item 1", "scoreMaximum": 10, "tag": f"kit-tag-{run}", "resourceId": f"kit-res-{run}"}
    wrong = {k: item.get(k) for k, v in want.items() if item.get(k) != v}
    if wrong:
        raise Fail(f"the created line item differs: {wrong}")


@KIT.check("LTI-PLAT-AGS-003", f"{AGS} 3.2.7", "GET on a line item's id answers it as application/vnd.ims.lis.v2.lineitem+json")
def ags_get(s: Session) -> None:
    item = _items(s)[0]
    r = s.get(item["id"], headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    _status(r, 200)
    if _ctype(r) != LINEITEM or r.json().get("label") != item["label"]:
        raise Fail(f"Content-Type {_ctype(r)!r}, label {r.json().get('label')!r}")


@KIT.check("LTI-PLAT-AGS-004", f"{AGS} 3.2.8", "PUT on a line item updates it, and a GET shows the update")
def ags_put(s: Session) -> None:
    item = _items(s)[0]
    body = {**{k: v for k, v in item.items()}, "label": "Kit item 1 renamed"}
    r = s.put(item["id"], content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM, "Accept": LINEITEM}))
    _status(r, 200)
    again = s.get(item["id"], headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    if again.json().get("label") != "Kit item 1 renamed":
        raise Fail(f"after PUT the label is {again.json().get('label')!r}")
    item["label"] = "Kit item 1 renamed"


@KIT.check("LTI-PLAT-AGS-005", f"{AGS} 3.2.4 (tag, resource_id)", "The container filters by tag and by resource_id")
def ags_filter(s: Session) -> None:
    first, run = _items(s)[0], s.state["run"]
    for q in ({"tag": f"kit-tag-{run}"}, {"resource_id": f"kit-res-{run}"}):
        r = s.get(_with_query(_lineitems_url(s), **q), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
        _status(r, 200)
        ids = [i.get("id") for i in r.json()]
        if ids != [first["id"]]:
            raise Fail(f"filter {q} answered {ids}, want only {first['id']}")


@KIT.check("LTI-PLAT-AGS-006", f"{AGS} 3.2.4.1 (paging)", "limit=1 pages the container with Link rel=next; the next page holds another line item")
def ags_paging(s: Session) -> None:
    _items(s)
    r = s.get(_with_query(_lineitems_url(s), limit=1), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r, 200)
    nxt = r.links.get("next", {}).get("url")
    if len(r.json()) != 1 or not nxt:
        raise Fail(f"limit=1 answered {len(r.json())} items, Link {r.headers.get('link')!r}")
    r2 = s.get(urljoin(str(r.request.url), nxt), headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEMS))
    _status(r2, 200)
    if not r2.json() or r2.json()[0].get("id") == r.json()[0].get("id"):
        raise Fail("the next page repeats the first page's line item")


def _bad_item(id: str, what: str, body: dict[str, Any]) -> None:
    @KIT.check(id, f"{AGS} 3.2", f"A line item with {what} is refused (4xx)")
    def run(s: Session) -> None:
        _items(s)
        r = s.post(_lineitems_url(s), content=json.dumps(body), headers=_h(s, [SCOPE_LINEITEM], **{"Content-Type": LINEITEM}))
        if not 400 <= r.status_code < 500:
            raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


_bad_item("LTI-PLAT-AGS-007", "no label", {"scoreMaximum": 10})
_bad_item("LTI-PLAT-AGS-008", "scoreMaximum 0", {"label": "Kit zero", "scoreMaximum": 0})


def _ts(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).isoformat(timespec="microseconds")


def _score(s: Session, item: dict[str, Any], body: dict[str, Any], content_type: str = "application/vnd.ims.lis.v1.score+json") -> httpx.Response:
    return s.post(_below(item["id"], "scores"), content=json.dumps(body), headers=_h(s, [SCOPE_SCORE], **{"Content-Type": content_type}))


def _good_score(s: Session, given: float = 7, delta: float = 0.0) -> dict[str, Any]:
    return {"userId": _user(s), "scoreGiven": given, "scoreMaximum": 10, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "timestamp": _ts(delta), "comment": "conformance kit"}


def _scored(s: Session) -> dict[str, Any]:
    item = _items(s)[0]
    if "scored" not in s.state:
        r = _score(s, item, _good_score(s))
        s.state["scored"] = r.status_code
        if r.status_code not in (200, 201, 202, 204):
            raise Fail(f"a valid score answered HTTP {r.status_code} {r.text[:200]!r}")
    elif s.state["scored"] not in (200, 201, 202, 204):
        raise Fail(f"a valid score answered HTTP {s.state['scored']}")
    return item


def _results(s: Session, item: dict[str, Any], **q: Any) -> httpx.Response:
    return s.get(_below(item["id"], "results", **q), headers=_h(s, [SCOPE_RESULT], Accept=RESULTS))


@KIT.check("LTI-PLAT-AGS-009", f"{AGS} 3.4", "A valid score POSTed to {lineitem}/scores is accepted (200/201/202/204)")
def ags_score(s: Session) -> None:
    _scored(s)


@KIT.check("LTI-PLAT-AGS-010", f"{AGS} 3.3", "GET {lineitem}/results answers application/vnd.ims.lis.v2.resultcontainer+json with the user's result")
def ags_results(s: Session) -> None:
    item = _scored(s)
    r = _results(s, item)
    _status(r, 200)
    if _ctype(r) != RESULTS:
        raise Fail(f"Content-Type {_ctype(r)!r}")
    mine = [x for x in r.json() if x.get("userId") == _user(s)]
    if not mine:
        raise Fail(f"no result for {_user(s)}")
    res = mine[0]
    if not isinstance(res.get("resultScore"), (int, float)) or abs(res["resultScore"] / float(res.get("resultMaximum") or 1) - 0.7) > 1e-6:
        raise Fail(f"result {res!r} is not 7 of 10")
    if res.get("scoreOf") not in (None, item["id"]):
        raise Fail(f"scoreOf {res.get('scoreOf')!r}")


@KIT.check("LTI-PLAT-AGS-011", f"{AGS} 3.3.4 (user_id)", "results?user_id= answers only that user's result")
def ags_results_user(s: Session) -> None:
    item = _scored(s)
    r = _results(s, item, user_id=_user(s))
    _status(r, 200)
    if [x.get("userId") for x in r.json()] != [_user(s)]:
        raise Fail(f"user_id filter answered {[x.get('userId') for x in r.json()]}")


def _bad_score(id: str, what: str, change: Callable[[dict[str, Any]], dict[str, Any]], requirement: str) -> None:
    @KIT.check(id, requirement, f"A score with {what} is refused (4xx)")
    def run(s: Session) -> None:
        item = _scored(s)
        r = _score(s, item, change(_good_score(s, delta=1)))
        if not 400 <= r.status_code < 500:
            raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


def _without(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda b: {k: v for k, v in b.items() if k not in keys}


_bad_score("LTI-PLAT-AGS-012", "no timestamp", _without("timestamp"), f"{AGS} 3.4.4")
_bad_score("LTI-PLAT-AGS-013", "no userId", _without("userId"), f"{AGS} 3.4.1")
_bad_score("LTI-PLAT-AGS-014", "activityProgress 'Finished'", lambda b: {**b, "activityProgress": "Finished"}, f"{AGS} 3.4.5")
_bad_score("LTI-PLAT-AGS-015", "gradingProgress 'Done'", lambda b: {**b, "gradingProgress": "Done"}, f"{AGS} 3.4.6")
_bad_score("LTI-PLAT-AGS-016", "scoreGiven but no scoreMaximum", _without("scoreMaximum"), f"{AGS} 3.4.2-3.4.3")


@KIT.check("LTI-PLAT-AGS-017", f"{AGS} 3.4 (timestamp order)", "A score older than the one on record does not replace it")
def ags_older(s: Session) -> None:
    item = _scored(s)
    newer = _score(s, item, _good_score(s, given=9, delta=5))
    _status(newer, 200, 201, 202, 204)
    _score(s, item, _good_score(s, given=1, delta=-3600))
    r = _results(s, item, user_id=_user(s))
    _status(r, 200)
    got = [x.get("resultScore") for x in r.json()]
    if not got or abs(float(got[0]) / float(r.json()[0].get("resultMaximum") or 1) - 0.9) > 1e-6:
        raise Fail(f"after an older score the result is {r.json()!r}, want 9 of 10")


@KIT.check("LTI-PLAT-AGS-018", f"{AGS} 3.1 (scopes) / {SF} 4.1", "A token with only lineitem.readonly cannot create a line item (401/403)")
def ags_readonly(s: Session) -> None:
    _items(s)
    r = s.post(_lineitems_url(s), content=json.dumps({"label": "Kit forbidden", "scoreMaximum": 1}),
               headers=_h(s, [SCOPE_LINEITEM_READ], **{"Content-Type": LINEITEM}))
    if r.status_code not in (401, 403):
        raise Fail(f"HTTP {r.status_code} {r.text[:200]!r}")


@KIT.check("LTI-PLAT-AGS-019", f"{AGS} 3.1 (scopes)", "A token with only the score scope cannot read results (401/403)")
def ags_score_only(s: Session) -> None:
    item = _scored(s)
    r = s.get(_below(item["id"], "results"), headers=_h(s, [SCOPE_SCORE], Accept=RESULTS))
    if r.status_code not in (401, 403):
        raise Fail(f"HTTP {r.status_code}")


@KIT.check("LTI-PLAT-AGS-020", f"{AGS} 3.2 / RFC 6750 3.1", "The container refuses a call without a token, or with a made-up one (401)")
def ags_no_token(s: Session) -> None:
    url = _lineitems_url(s)
    for headers in ({}, {"Authorization": "Bearer kit-made-up-token"}):
        r = s.get(url, headers={"Accept": LINEITEMS, **headers})
        if r.status_code != 401:
            raise Fail(f"{'no token' if not headers else 'a made-up token'}: HTTP {r.status_code}")


@KIT.check("LTI-PLAT-AGS-021", f"{AGS} 3.2.9", "DELETE on a line item removes it: 2xx, then GET answers 404")
def ags_delete(s: Session) -> None:
    r = _create(s, "Kit item to delete", tag=f"kit-delete-{s.state['run']}")
    _status(r, 200, 201)
    url = r.json()["id"]
    d = s.delete(url, headers=_h(s, [SCOPE_LINEITEM]))
    _status(d, 200, 202, 204)
    g = s.get(url, headers=_h(s, [SCOPE_LINEITEM], Accept=LINEITEM))
    if g.status_code != 404:
        raise Fail(f"GET after DELETE: HTTP {g.status_code}")


@KIT.check("LTI-PLAT-AGS-022", f"{AGS} 3.4 (media type)", "A score sent as text/plain is refused (415 or 400)", required=False)
def ags_score_type(s: Session) -> None:
    item = _scored(s)
    r = _score(s, item, _good_score(s, delta=2), content_type="text/plain")
    if r.status_code not in (400, 406, 415):
        raise Fail(f"HTTP {r.status_code}")


# --- NRPS 2.0 -------------------------------------------------------------------------------


def _members_url(s: Session) -> str:
    url = option(s.target, "memberships_url")
    if url:
        return url
    claim = _claims(s).get(C_NRPS)
    if not isinstance(claim, dict) or not claim.get("context_memberships_url"):
        raise Skip("the launch carries no NRPS context_memberships_url (give --option memberships_url=...)")
    return claim["context_memberships_url"]


def _nrps(s: Session, url: str | None = None, token_scopes: list[str] | None = None) -> httpx.Response:
    return s.get(url or _members_url(s), headers=_h(s, token_scopes or [SCOPE_NRPS], Accept=MEMBERSHIPS))


def _all_members(s: Session) -> list[dict[str, Any]]:
    if "members" not in s.state:
        r = _nrps(s)
        _status(r, 200)
        members, url, seen = list(r.json().get("members") or []), r.links.get("next", {}).get("url"), 0
        while url and seen < 50:
            r = _nrps(s, urljoin(str(r.request.url), url))
            _status(r, 200)
            members += r.json().get("members") or []
            url, seen = r.links.get("next", {}).get("url"), seen + 1
        s.state["members"] = members
    return s.state["members"]


@KIT.check("LTI-PLAT-NRPS-001", f"{NRPS} 2.2", "The membership container answers 200 as application/vnd.ims.lti-nrps.v2.membershipcontainer+json")
def nrps_container(s: Session) -> None:
    r = _nrps(s)
    _status(r, 200)
    if _ctype(r) != MEMBERSHIPS:
        raise Fail(f"Content-Type {_ctype(r)!r}")


@KIT.check("LTI-PLAT-NRPS-002", f"{NRPS} 2.2", "The container has id, context.id and a members array")
def nrps_shape(s: Session) -> None:
    body = _nrps(s).json()
    if not isinstance(body, dict) or not body.get("id") or not isinstance(body.get("context"), dict) or not body["context"].get("id") \
            or not isinstance(body.get("members"), list):
        raise Fail(f"container {str(body)[:200]}")


@KIT.check("LTI-PLAT-NRPS-003", f"{NRPS} 2.2 / 2.3", "Every member has user_id, a roles array of strings and a valid status")
def nrps_members(s: Session) -> None:
    for m in _all_members(s):
        if not _str(m.get("user_id")) or not isinstance(m.get("roles"), list) or not all(isinstance(r, str) for r in m["roles"]):
            raise Fail(f"member {m!r}")
        if m.get("status", "Active") not in ("Active", "Inactive", "Deleted"):
            raise Fail(f"status {m.get('status')!r}")


@KIT.check("LTI-PLAT-NRPS-004", f"{NRPS} 2.3 / {CORE} 5.3.6", "The launched user is a member, under the same user_id as the id_token's sub")
def nrps_launched(s: Session) -> None:
    sub = _claims(s).get("sub")
    if not sub:
        raise Skip("an anonymous launch: no sub to find")
    if sub not in [m.get("user_id") for m in _all_members(s)]:
        raise Fail(f"sub {sub!r} is not among the members")


@KIT.check("LTI-PLAT-NRPS-005", f"{NRPS} 2.4.2 (paging)", "limit=1 pages the membership with Link rel=next, and the pages together are the whole membership")
def nrps_paging(s: Session) -> None:
    everyone = _all_members(s)
    if len(everyone) < 2:
        raise Skip("the context has fewer than two members: nothing to page")
    r = _nrps(s, _with_query(_members_url(s), limit=1))
    _status(r, 200)
    got, url, hops = list(r.json().get("members") or []), r.links.get("next", {}).get("url"), 0
    if len(got) != 1 or not url:
        raise Fail(f"limit=1 answered {len(got)} members with Link {r.headers.get('link')!r}")
    while url and hops < len(everyone) + 2:
        r = _nrps(s, urljoin(str(r.request.url), url))
        _status(r, 200)
        got += r.json().get("members") or []
        url, hops = r.links.get("next", {}).get("url"), hops + 1
    if sorted(str(m.get("user_id")) for m in got) != sorted(str(m.get("user_id")) for m in everyone):
        raise Fail(f"paged {len(got)} members, the whole membership has {len(everyone)}")


@KIT.check("LTI-PLAT-NRPS-006", f"{NRPS} 2.4.1 (role)", "role=Learner answers only members holding the Learner role")
def nrps_role(s: Session) -> None:
    learner = ROLE + "Learner"
    if not any(learner in m.get("roles", []) for m in _all_members(s)):
        raise Skip("no learner in the context")
    r = _nrps(s, _with_query(_members_url(s), role=learner))
    _status(r, 200)
    members = r.json().get("members") or []
    if not members or any(learner not in m.get("roles", []) and "Learner" not in m.get("roles", []) for m in members):
        raise Fail(f"role filter answered roles {[m.get('roles') for m in members]}")


@KIT.check("LTI-PLAT-NRPS-007", f"{NRPS} 2.1 / {SF} 4.1", "Memberships are refused without a token, and with a token lacking the NRPS scope (401/403)")
def nrps_scope(s: Session) -> None:
    url = _members_url(s)
    r = s.get(url, headers={"Accept": MEMBERSHIPS})
    if r.status_code != 401:
        raise Fail(f"no token: HTTP {r.status_code}")
    r = _nrps(s, url, token_scopes=[SCOPE_SCORE])
    if r.status_code not in (401, 403):
        raise Fail(f"a score-only token: HTTP {r.status_code}")



# --- the platform's OpenID configuration (LTI Dynamic Registration 1.0 3.3) -------------------


def _openid(s: Session) -> dict[str, Any]:
    url = option(s.target, "openid_configuration_url")
    if not url:
        raise Skip("no openid_configuration_url option")
    if "openid" not in s.state:
        r = s.get(url)
        try:
            s.state["openid"] = r.json() if r.status_code == 200 else f"HTTP {r.status_code}"
        except ValueError:
            s.state["openid"] = "not JSON"
    if not isinstance(s.state["openid"], dict):
        raise Fail(f"the OpenID configuration answered {s.state['openid']}")
    return s.state["openid"]


DR = "LTI Dynamic Registration 1.0 3.3 / OpenID Connect Discovery 3"


@KIT.check("LTI-PLAT-CONF-001", DR, "The OpenID configuration names the platform's issuer, and the same endpoints and JWKS the kit was given")
def conf_endpoints(s: Session) -> None:
    c = _openid(s)
    want = {"issuer": _o(s, "issuer"), "authorization_endpoint": _o(s, "auth_url"), "token_endpoint": _o(s, "token_url"),
            "jwks_uri": _o(s, "jwks_url")}
    wrong = {k: c.get(k) for k, v in want.items() if c.get(k) != v}
    if wrong:
        raise Fail(f"differs from the options: {wrong}")


@KIT.check("LTI-PLAT-CONF-002", DR, "It offers private_key_jwt client authentication and RS256 for it and for id_tokens")
def conf_algs(s: Session) -> None:
    c = _openid(s)
    if "private_key_jwt" not in (c.get("token_endpoint_auth_methods_supported") or []):
        raise Fail(f"token_endpoint_auth_methods_supported {c.get('token_endpoint_auth_methods_supported')!r}")
    for k in ("token_endpoint_auth_signing_alg_values_supported", "id_token_signing_alg_values_supported"):
        if "RS256" not in (c.get(k) or []):
            raise Fail(f"{k} {c.get(k)!r}")


@KIT.check("LTI-PLAT-CONF-003", DR, "It supports response type id_token and the openid scope")
def conf_types(s: Session) -> None:
    c = _openid(s)
    if "id_token" not in (c.get("response_types_supported") or []) or "openid" not in (c.get("scopes_supported") or []):
        raise Fail(f"response_types_supported {c.get('response_types_supported')!r}, scopes_supported {c.get('scopes_supported')!r}")


@KIT.check("LTI-PLAT-CONF-004", DR, "It carries the LTI platform configuration with LtiResourceLinkRequest among messages_supported")
def conf_lti(s: Session) -> None:
    lti = _openid(s).get("https://purl.imsglobal.org/spec/lti-platform-configuration")
    if not isinstance(lti, dict) or not lti.get("product_family_code"):
        raise Fail(f"lti-platform-configuration {lti!r}")
    types = [m.get("type") for m in lti.get("messages_supported") or [] if isinstance(m, dict)]
    if "LtiResourceLinkRequest" not in types:
        raise Fail(f"messages_supported {types}")


for _check in KIT.checks:  # the group a check belongs to, from its id: login, launch, bad, dl, token, ags, nrps, ...
    _check.tags = (*_check.tags, _check.id.split("-")[2].lower())
