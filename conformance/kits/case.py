"""The ``case-1.0`` kit: a CASE 1.0 provider (1EdTech Competencies and Academic Standards
Exchange, REST/JSON binding, ``/ims/case/v1p0``), read-only as the binding is.

``tessera conformance run case-1.0 --base-url https://case.example --client-id ID --client-secret-env ENV``

``--base-url`` is the server root or the ``/ims/case/v1p0`` base itself. Credentials are
OAuth 2.0 client credentials (token endpoint ``--token-url``, default ``{root}/oauth/token``),
asked for with the CASE Network scope ``.../scope/core.readonly``; without credentials the
provider is taken as public and the authentication checks are skipped. Options:
``document`` (the CFDocument whose package is checked; default the first listed),
``other_scope`` (a scope the client holds that does not read CASE: the 403 check),
``max_package_items`` (how many items/associations get their single-object endpoints
called; default 25).

The kit only reads: it never writes to the provider.

Over 600 lines because it is one binding's checks in one list, each a few lines, sharing
the package walk (``package``, ``_every_object``, ``_refs``) at the end of the module.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..kit import Fail, Kit, Session, Skip, Target

PREFIX = "/ims/case/v1p0"
SCOPE_CORE = "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/core.readonly"
SCOPE_ALL = "http://purl.imsglobal.org/casenetwork/case/v1p0/scope/all.readonly"
REST = "CASE 1.0 REST/JSON binding"
INFO = "CASE 1.0 Information Model"
ASSOCIATION_TYPES = {
    "isChildOf", "isPeerOf", "isPartOf", "exactMatchOf", "precedes", "isRelatedTo", "replacedBy", "exemplar", "hasSkillLevel",
    "isTranslationOf",
}
DEFINITION_KINDS = {"CFConcepts": True, "CFSubjects": True, "CFItemTypes": True, "CFLicenses": False, "CFAssociationGroupings": False}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _roots(target: Target) -> tuple[str, str]:
    """(server root, CASE base) from ``--base-url``."""
    base = target.base_url.rstrip("/")
    if base.endswith(PREFIX):
        return base[: -len(PREFIX)], base
    return base, base + PREFIX


class _ClientCredentials(httpx.Auth):
    """OAuth 2.0 client credentials (RFC 6749 4.4) as an httpx auth flow: the first request
    fetches a token for the kit's scope, later ones reuse it. A refused grant leaves the
    requests without a token (their 401s then say so; ``setup`` reports the refusal)."""

    requires_response_body = True

    def __init__(self, target: Target) -> None:
        root, _ = _roots(target)
        self.url = target.token_url or f"{root}/oauth/token"
        self.scope = target.options.get("scope", SCOPE_CORE)
        self.basic = "Basic " + base64.b64encode(f"{target.client_id}:{target.client_secret}".encode()).decode()
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request):  # noqa: ANN201 - a generator of requests and responses
        if self.token is None:
            answer = yield httpx.Request("POST", self.url, data={"grant_type": "client_credentials", "scope": self.scope},
                                         headers={"Authorization": self.basic, "Accept": "application/json"})
            try:
                self.token = str(answer.json()["access_token"]) if answer.status_code == 200 else None
            except (ValueError, KeyError, TypeError):
                self.token = None
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _client(target: Target) -> httpx.Client:
    _, base = _roots(target)
    auth = _ClientCredentials(target) if target.client_id and target.client_secret else None
    return httpx.Client(base_url=base + "/", timeout=target.timeout, headers={"Accept": "application/json"}, auth=auth)


def _token(s: Session, scope: str | None) -> httpx.Response:
    root, _ = _roots(s.target)
    url = s.target.token_url or f"{root}/oauth/token"
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    assert s.target.client_id and s.target.client_secret
    return s.post(url, data=data, auth=(s.target.client_id, s.target.client_secret))


def _bearer(s: Session, scope: str | None) -> str:
    r = _token(s, scope)
    if r.status_code != 200:
        raise Fail(f"the token endpoint refused a client-credentials grant for scope {scope!r}: {r.status_code} {r.text[:200]}")
    try:
        return str(r.json()["access_token"])
    except (ValueError, KeyError, TypeError):
        raise Fail(f"the token answer has no access_token: {r.text[:200]}") from None


def _setup(s: Session) -> None:
    """With credentials: the token endpoint must grant the kit's scope (the client's auth
    flow asks for the same token again on its first request)."""
    s.state["auth"] = bool(s.target.client_id and s.target.client_secret)
    if s.state["auth"]:
        _bearer(s, s.target.options.get("scope", SCOPE_CORE))


KIT = Kit(name="case-1.0", title="CASE 1.0 provider", spec="1EdTech CASE 1.0 (REST/JSON binding)", client=_client, setup=_setup,
          writes="nothing: the kit only reads the provider's frameworks")


def check(cid: str, req: str, desc: str, required: bool = True, tags: tuple[str, ...] = ()) -> Callable[[Callable[[Session], None]], Callable[[Session], None]]:
    return KIT.check(cid, req, desc, required=required, tags=tags)


# --------------------------------------------------------------------------- helpers

def _json(r: httpx.Response, status: int = 200) -> Any:
    if r.status_code != status:
        raise Fail(f"GET {r.request.url.path} answered {r.status_code}, expected {status} ({r.text[:300]})")
    if not r.headers.get("content-type", "").startswith("application/json"):
        raise Fail(f"GET {r.request.url.path}: Content-Type {r.headers.get('content-type')!r}, not application/json")
    try:
        return r.json()
    except ValueError:
        raise Fail(f"GET {r.request.url.path}: the answer is not JSON ({r.text[:200]})") from None


def documents(s: Session) -> list[dict[str, Any]]:
    docs = s.state.get("documents")
    if docs is None:
        body = _json(s.get("CFDocuments"))
        docs = body.get("CFDocuments") if isinstance(body, dict) else None
        if not isinstance(docs, list):
            raise Fail(f"GET /CFDocuments is not a CFDocumentSet (an object with a CFDocuments array): {str(body)[:200]}")
        s.state["documents"] = docs
    if not docs:
        raise Skip("the provider lists no CFDocuments")
    return docs


def document_id(s: Session) -> str:
    wanted = s.target.options.get("document")
    if wanted:
        return wanted
    return str(documents(s)[0].get("identifier"))


def package(s: Session) -> dict[str, Any]:
    pkg = s.state.get("package")
    if isinstance(pkg, str):
        raise Fail(pkg)
    if pkg is None:
        try:
            body = _json(s.get(f"CFPackages/{document_id(s)}"))
            if not isinstance(body, dict) or not isinstance(body.get("CFDocument"), dict):
                raise Fail(f"GET /CFPackages/{document_id(s)} is not a CFPackage (no CFDocument object)")
        except Fail as exc:
            s.state["package"] = f"the package could not be read: {exc}"
            raise
        s.state["package"] = pkg = body
    return pkg


def items(s: Session) -> list[dict[str, Any]]:
    return [i for i in package(s).get("CFItems") or [] if isinstance(i, dict)]


def associations(s: Session) -> list[dict[str, Any]]:
    return [a for a in package(s).get("CFAssociations") or [] if isinstance(a, dict)]


def sample(objs: list[dict[str, Any]], s: Session) -> list[dict[str, Any]]:
    n = int(s.target.options.get("max_package_items", "25"))
    if len(objs) <= n:
        return objs
    step = len(objs) / n
    return [objs[int(i * step)] for i in range(n)]


def _status_info(r: httpx.Response, status: int, minors: Iterable[str] | None) -> None:
    """An imsx_StatusInfo error answer: ``status``, codeMajor failure, severity error, and
    (when ``minors``) one of those codeMinor values."""
    if r.status_code != status:
        raise Fail(f"GET {r.request.url.path}: expected {status}, got {r.status_code} ({r.text[:200]})")
    try:
        body = r.json()
    except ValueError:
        raise Fail(f"the {status} answer is not JSON: {r.text[:200]}") from None
    if not isinstance(body, dict) or body.get("imsx_codeMajor") != "failure" or body.get("imsx_severity") != "error":
        raise Fail(f"the {status} answer is not an imsx_StatusInfo with codeMajor failure and severity error: {str(body)[:300]}")
    if minors is not None:
        fields = ((body.get("imsx_codeMinor") or {}).get("imsx_codeMinorField")) or []
        values = {f.get("imsx_codeMinorFieldValue") for f in fields if isinstance(f, dict)}
        if not values & set(minors):
            raise Fail(f"the {status} answer's codeMinor is {sorted(v for v in values if v)}, expected {' or '.join(minors)}")


def _ts(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _all_nodes(s: Session) -> dict[str, dict[str, Any]]:
    pkg = package(s)
    nodes = {str(i.get("identifier")).lower(): i for i in items(s)}
    nodes[str(pkg["CFDocument"].get("identifier")).lower()] = pkg["CFDocument"]
    return nodes


# --------------------------------------------------------------------------- CFDocuments

@check("CASE-DOC-001", f"{REST} getAllCFDocuments", "GET /CFDocuments answers 200 with a CFDocumentSet", tags=("documents",))
def _list(s: Session) -> None:
    documents(s)


@check("CASE-DOC-002", f"{INFO} CFDocument", "Every listed CFDocument has identifier, uri, creator, title and lastChangeDateTime", tags=("documents",))
def _doc_fields(s: Session) -> None:
    for d in documents(s):
        missing = [k for k in ("identifier", "uri", "creator", "title", "lastChangeDateTime") if not d.get(k)]
        if missing:
            raise Fail(f"CFDocument {d.get('identifier')} lacks {', '.join(missing)}")
        if not _ts(d["lastChangeDateTime"]):
            raise Fail(f"CFDocument {d['identifier']}: lastChangeDateTime {d['lastChangeDateTime']!r} is not ISO 8601")


@check("CASE-DOC-003", f"{REST} getCFDocument", "GET /CFDocuments/{id} answers the listed document", tags=("documents",))
def _one(s: Session) -> None:
    for d in documents(s)[:5]:
        got = _json(s.get(f"CFDocuments/{d['identifier']}"))
        if got.get("identifier") != d["identifier"] or got.get("title") != d.get("title"):
            raise Fail(f"GET /CFDocuments/{d['identifier']} answered another document: {str(got)[:200]}")


@check("CASE-DOC-004", f"{REST} 3.2 (paging)", "GET /CFDocuments answers X-Total-Count, the number of documents", tags=("paging",))
def _total(s: Session) -> None:
    r = s.get("CFDocuments")
    total = r.headers.get("x-total-count")
    if total is None or not total.isdigit():
        raise Fail(f"X-Total-Count is {total!r}")
    answered = len(_json(r).get("CFDocuments") or [])
    if int(total) < answered or (int(total) > answered and 'rel="next"' not in r.headers.get("link", "") and answered < 100):
        raise Fail(f"X-Total-Count {total}, but {answered} documents were answered on a page that is not limited")


@check("CASE-DOC-005", f"{REST} 3.2 (paging)", "limit and offset page through every document once; X-Total-Count stays the total", tags=("paging",))
def _paging(s: Session) -> None:
    everything = [str(d.get("identifier")) for d in documents(s)]
    seen: list[str] = []
    offset = 0
    while offset <= len(everything) + 1:
        r = s.get("CFDocuments", params={"limit": 1, "offset": offset})
        page = _json(r).get("CFDocuments") or []
        if len(page) > 1:
            raise Fail(f"limit=1 answered {len(page)} documents")
        if r.headers.get("x-total-count") != str(len(everything)):
            raise Fail(f"X-Total-Count is {r.headers.get('x-total-count')!r} on a page, the list has {len(everything)}")
        if not page:
            break
        seen.append(str(page[0].get("identifier")))
        offset += 1
    if sorted(seen) != sorted(everything):
        raise Fail(f"paging one by one gave {seen}, the list has {everything}")


@check("CASE-DOC-006", f"{REST} 3.2 (paging)", "A page that is not the last has a Link header with rel=\"next\"", required=False, tags=("paging",))
def _link(s: Session) -> None:
    if len(documents(s)) < 2:
        raise Skip("one document: no next page")
    link = s.get("CFDocuments", params={"limit": 1}).headers.get("link", "")
    if 'rel="next"' not in link:
        raise Fail(f"Link is {link!r}")


@check("CASE-DOC-007", f"{REST} 3.2; imsx_StatusInfo", "A limit or offset that is not a non-negative integer is a 400 with imsx_StatusInfo", tags=("paging", "errors"))
def _bad_limit(s: Session) -> None:
    for params in ({"limit": "-1"}, {"limit": "many"}, {"offset": "-5"}):
        _status_info(s.get("CFDocuments", params=params), 400, ("invalid_selection_field", "invalid_data"))


@check("CASE-DOC-008", f"{REST} 3.3 (sorting)", "sort=title&orderBy=asc|desc orders the documents by title", tags=("documents",))
def _sort(s: Session) -> None:
    up = [d.get("title") for d in _json(s.get("CFDocuments", params={"sort": "title", "orderBy": "asc"})).get("CFDocuments") or []]
    down = [d.get("title") for d in _json(s.get("CFDocuments", params={"sort": "title", "orderBy": "desc"})).get("CFDocuments") or []]
    if up != sorted(up, key=lambda t: str(t).lower()) and up != sorted(up):
        raise Fail(f"orderBy=asc gave {up}")
    if down != list(reversed(up)):
        raise Fail(f"orderBy=desc gave {down}, not the reverse of {up}")


@check("CASE-DOC-009", f"{REST} 3.3; imsx_StatusInfo", "sort on a field CFDocument does not have is a 400 with codeMinor invalid_sort_field", tags=("errors",))
def _bad_sort(s: Session) -> None:
    _status_info(s.get("CFDocuments", params={"sort": "colour"}), 400, ("invalid_sort_field",))


@check("CASE-DOC-010", f"{REST} 3.5 (field selection)", "fields=identifier,title answers only those fields", tags=("documents",))
def _fields(s: Session) -> None:
    for d in _json(s.get("CFDocuments", params={"fields": "identifier,title"})).get("CFDocuments") or []:
        if set(d) - {"identifier", "title"}:
            raise Fail(f"fields=identifier,title answered {sorted(d)}")


@check("CASE-DOC-011", f"{REST} 3.4 (filtering)", "filter=title='...' answers the document with that title", tags=("documents",))
def _filter(s: Session) -> None:
    doc = documents(s)[0]
    title = str(doc.get("title")).replace("'", "")
    if title != doc.get("title"):
        raise Skip("the first title holds a quote")
    got = _json(s.get("CFDocuments", params={"filter": f"title='{title}'"})).get("CFDocuments") or []
    if doc["identifier"] not in [d.get("identifier") for d in got] or any(d.get("title") != title for d in got):
        raise Fail(f"filter on title {title!r} answered {[d.get('title') for d in got]}")


@check("CASE-DOC-012", f"{REST} getAllCFDocuments (limit minimum 1)", "limit=0 is a 400 with codeMinor invalid_selection_field", tags=("paging", "errors"))
def _limit_zero(s: Session) -> None:
    _status_info(s.get("CFDocuments", params={"limit": "0"}), 400, ("invalid_selection_field",))


@check("CASE-DOC-013", f"{REST} 3.2 (paging)", "An offset past the end answers 200 with no documents and the same X-Total-Count", tags=("paging",))
def _offset_past(s: Session) -> None:
    n = len(documents(s))
    r = s.get("CFDocuments", params={"offset": str(n + 10)})
    if _json(r).get("CFDocuments"):
        raise Fail(f"offset {n + 10} answered documents")
    if r.headers.get("x-total-count") != str(n):
        raise Fail(f"X-Total-Count is {r.headers.get('x-total-count')!r} past the end, the list has {n}")


@check("CASE-DOC-014", f"{REST} 3.4; imsx_StatusInfo", "filter on a field CFDocument does not have is a 400 with codeMinor invalid_selection_field", tags=("errors",))
def _bad_filter(s: Session) -> None:
    _status_info(s.get("CFDocuments", params={"filter": "colour='red'"}), 400, ("invalid_selection_field",))


@check("CASE-DOC-015", f"{REST} 3.5; imsx_StatusInfo", "fields naming a field CFDocument does not have is a 400 with codeMinor invalid_selection_field", tags=("errors",))
def _bad_fields(s: Session) -> None:
    _status_info(s.get("CFDocuments", params={"fields": "identifier,colour"}), 400, ("invalid_selection_field",))


# --------------------------------------------------------------------------- CFPackages

@check("CASE-PKG-001", f"{REST} getCFPackage", "GET /CFPackages/{id} answers the CFDocument with its CFItems and CFAssociations", tags=("package",))
def _pkg(s: Session) -> None:
    pkg = package(s)
    for key in ("CFItems", "CFAssociations"):
        if key in pkg and not isinstance(pkg[key], list):
            raise Fail(f"{key} is not an array")
    if not items(s):
        raise Fail("the package has no CFItems")


@check("CASE-PKG-002", f"{REST} getCFPackage", "The package's CFDocument is the one /CFDocuments/{id} answers", tags=("package",))
def _pkg_doc(s: Session) -> None:
    doc = _json(s.get(f"CFDocuments/{document_id(s)}"))
    mine = package(s)["CFDocument"]
    for k in ("identifier", "uri", "title", "creator", "lastChangeDateTime"):
        if doc.get(k) != mine.get(k):
            raise Fail(f"{k}: /CFDocuments says {doc.get(k)!r}, the package {mine.get(k)!r}")


@check("CASE-PKG-003", f"{INFO} CFItem", "Every CFItem names the package's document in CFDocumentURI", tags=("package",))
def _item_doc(s: Session) -> None:
    want = str(package(s)["CFDocument"].get("identifier")).lower()
    bad = [i.get("identifier") for i in items(s) if str((i.get("CFDocumentURI") or {}).get("identifier", "")).lower() != want]
    if bad:
        raise Fail(f"{len(bad)} items name another document (first {bad[0]})")


@check("CASE-PKG-004", f"{INFO} CFAssociation", "Every association's origin is in the package, and both ends of isChildOf are", tags=("package", "associations"))
def _ends(s: Session) -> None:
    nodes = _all_nodes(s)
    for a in associations(s):
        origin = str((a.get("originNodeURI") or {}).get("identifier", "")).lower()
        dest = str((a.get("destinationNodeURI") or {}).get("identifier", "")).lower()
        if origin not in nodes:
            raise Fail(f"association {a.get('identifier')}: origin {origin} is not in the package")
        if a.get("associationType") == "isChildOf" and dest not in nodes:
            raise Fail(f"isChildOf {a.get('identifier')}: destination {dest} is not in the package")
        if not (a.get("destinationNodeURI") or {}).get("uri"):
            raise Fail(f"association {a.get('identifier')}: destinationNodeURI has no uri")


@check("CASE-PKG-005", f"{INFO} CFAssociation isChildOf", "isChildOf forms a tree: every item with a parent reaches the document without cycles; "
       "an item outside the tree is still an end of some association", tags=("package", "associations"))
def _tree(s: Session) -> None:
    doc = str(package(s)["CFDocument"].get("identifier")).lower()
    parents: dict[str, list[str]] = {}
    ends: set[str] = set()
    for a in associations(s):
        origin = str((a.get("originNodeURI") or {}).get("identifier", "")).lower()
        dest = str((a.get("destinationNodeURI") or {}).get("identifier", "")).lower()
        ends |= {origin, dest}
        if a.get("associationType") == "isChildOf":
            parents.setdefault(origin, []).append(dest)
    for item in items(s):
        node, seen = str(item.get("identifier")).lower(), set()
        if node not in parents:
            if node not in ends:
                raise Fail(f"item {item.get('identifier')} is in no association: nothing reaches it")
            continue
        while node != doc:
            if node in seen:
                raise Fail(f"item {item.get('identifier')}: isChildOf cycle through {node}")
            seen.add(node)
            up = parents.get(node)
            if not up:
                raise Fail(f"item {item.get('identifier')}: its isChildOf chain stops at {node}, the document is not reached")
            node = up[0]


@check("CASE-PKG-006", f"{INFO} CFItem, CFAssociation", "Every object has a UUID identifier (document, items, associations, definitions, rubrics)", tags=("identifiers",))
def _uuids(s: Session) -> None:
    for kind, obj in _every_object(s):
        ident = str(obj.get("identifier", ""))
        if not _UUID.match(ident):
            raise Fail(f"{kind} identifier {ident!r} is not a UUID")


@check("CASE-PKG-007", f"{INFO} identifiers", "Identifiers are unique in the package", tags=("identifiers",))
def _unique(s: Session) -> None:
    seen: dict[str, str] = {}
    for kind, obj in _every_object(s):
        ident = str(obj.get("identifier", "")).lower()
        if ident in seen:
            raise Fail(f"identifier {ident} is both a {seen[ident]} and a {kind}")
        seen[ident] = kind


@check("CASE-PKG-008", f"{INFO} LinkURI", "Every uri is absolute, and a reference's uri is the uri of the object it names", tags=("identifiers",))
def _uris(s: Session) -> None:
    own = {str(o.get("identifier", "")).lower(): o.get("uri") for _, o in _every_object(s)}
    for kind, obj in _every_object(s):
        if not _absolute(obj.get("uri")):
            raise Fail(f"{kind} {obj.get('identifier')}: uri {obj.get('uri')!r} is not an absolute URI")
        for key, ref in _refs(obj):
            ident = str(ref.get("identifier", "")).lower()
            if ident in own and ref.get("uri") != own[ident]:
                raise Fail(f"{kind} {obj.get('identifier')}.{key}: uri {ref.get('uri')!r}, the object's own uri is {own[ident]!r}")


@check("CASE-PKG-009", f"{INFO} CFAssociation.associationType", "associationType values are from the CASE vocabulary", tags=("associations",))
def _types(s: Session) -> None:
    for a in associations(s):
        t = a.get("associationType")
        if t not in ASSOCIATION_TYPES and not str(t).startswith("ext:"):
            raise Fail(f"association {a.get('identifier')}: associationType {t!r}")


@check("CASE-PKG-010", f"{INFO} CFItem, CFAssociation", "Items and associations carry their required fields and ISO 8601 lastChangeDateTime", tags=("package",))
def _required_fields(s: Session) -> None:
    for i in items(s):
        missing = [k for k in ("identifier", "uri", "fullStatement", "lastChangeDateTime", "CFDocumentURI") if not i.get(k)]
        if missing or not _ts(i.get("lastChangeDateTime")):
            raise Fail(f"CFItem {i.get('identifier')}: missing {missing or 'a valid lastChangeDateTime'}")
    for a in associations(s):
        missing = [k for k in ("identifier", "uri", "associationType", "originNodeURI", "destinationNodeURI", "lastChangeDateTime") if not a.get(k)]
        if missing or not _ts(a.get("lastChangeDateTime")):
            raise Fail(f"CFAssociation {a.get('identifier')}: missing {missing or 'a valid lastChangeDateTime'}")


@check("CASE-PKG-011", f"{INFO} CFDefinitions", "References to item types, licenses, subjects, concepts and groupings resolve to the package's CFDefinitions", tags=("package",))
def _definitions_resolve(s: Session) -> None:
    defs = package(s).get("CFDefinitions")
    if not isinstance(defs, dict):
        raise Skip("the package has no CFDefinitions")
    known = {str(d.get("identifier", "")).lower() for kind in DEFINITION_KINDS for d in defs.get(kind) or []}
    for kind, obj in _every_object(s):
        for key, ref in _refs(obj):
            if key in ("CFItemTypeURI", "licenseURI", "subjectURI", "conceptKeywordsURI", "CFAssociationGroupingURI"):
                if str(ref.get("identifier", "")).lower() not in known:
                    raise Fail(f"{kind} {obj.get('identifier')}.{key} names {ref.get('identifier')}, not in CFDefinitions")


@check("CASE-PKG-012", f"{INFO} CFPackageAssociation.sequenceNumber", "sequenceNumber, where given, is an integer, and siblings under one parent do not repeat it", required=False, tags=("associations",))
def _sequence(s: Session) -> None:
    seen: dict[tuple[str, Any], str] = {}
    for a in associations(s):
        if "sequenceNumber" not in a:
            continue
        n = a["sequenceNumber"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise Fail(f"association {a.get('identifier')}: sequenceNumber {n!r} is not an integer")
        if a.get("associationType") == "isChildOf":
            key = (str((a.get("destinationNodeURI") or {}).get("identifier", "")).lower(), n)
            if key in seen:
                raise Fail(f"associations {seen[key]} and {a.get('identifier')} share sequenceNumber {n} under one parent")
            seen[key] = str(a.get("identifier"))


# --------------------------------------------------------------------------- single objects

@check("CASE-ITEM-001", f"{REST} getCFItem", "GET /CFItems/{id} answers the package's item", tags=("items",))
def _items(s: Session) -> None:
    for i in sample(items(s), s):
        got = _json(s.get(f"CFItems/{i['identifier']}"))
        for k in ("identifier", "uri", "fullStatement", "lastChangeDateTime"):
            if got.get(k) != i.get(k):
                raise Fail(f"CFItem {i['identifier']}.{k}: {got.get(k)!r}, the package says {i.get(k)!r}")


@check("CASE-ASSOC-001", f"{REST} getCFAssociation", "GET /CFAssociations/{id} answers the package's association", tags=("associations",))
def _assocs(s: Session) -> None:
    for a in sample(associations(s), s):
        got = _json(s.get(f"CFAssociations/{a['identifier']}"))
        for k in ("identifier", "associationType", "originNodeURI", "destinationNodeURI"):
            if got.get(k) != a.get(k):
                raise Fail(f"CFAssociation {a['identifier']}.{k}: {got.get(k)!r}, the package says {a.get(k)!r}")


@check("CASE-ASSOC-002", f"{REST} getCFItemAssociations", "GET /CFItemAssociations/{id} answers the item and every association it is an end of", tags=("associations",))
def _item_assocs(s: Session) -> None:
    by_item: dict[str, set[str]] = {}
    for a in associations(s):
        for end in ("originNodeURI", "destinationNodeURI"):
            by_item.setdefault(str((a.get(end) or {}).get("identifier", "")).lower(), set()).add(str(a.get("identifier")).lower())
    for i in sample(items(s), s)[:10]:
        body = _json(s.get(f"CFItemAssociations/{i['identifier']}"))
        if str((body.get("CFItem") or {}).get("identifier", "")).lower() != str(i["identifier"]).lower():
            raise Fail(f"CFItemAssociations/{i['identifier']} has no CFItem of that id")
        got = {str(a.get("identifier")).lower() for a in body.get("CFAssociations") or []}
        want = by_item.get(str(i["identifier"]).lower(), set())
        if not want <= got:
            raise Fail(f"CFItemAssociations/{i['identifier']} misses {sorted(want - got)[:3]}")


@check("CASE-RUB-001", f"{REST} getCFRubric", "GET /CFRubrics/{id} answers the package's rubric", tags=("rubrics",))
def _rubrics(s: Session) -> None:
    rubrics = [r for r in package(s).get("CFRubrics") or [] if isinstance(r, dict)]
    if not rubrics:
        raise Skip("the package has no CFRubrics")
    for r in rubrics[:5]:
        got = _json(s.get(f"CFRubrics/{r['identifier']}"))
        if got.get("identifier") != r["identifier"] or got.get("title") != r.get("title"):
            raise Fail(f"CFRubrics/{r['identifier']} answered {str(got)[:200]}")


def _definition_check(kind: str, as_set: bool) -> None:
    @check(f"CASE-DEF-{kind[2:].upper()}", f"{REST} get{kind[:-1]}", f"GET /{kind}/{{id}} answers the package's definition" + (" in a set" if as_set else ""),
           tags=("definitions",))
    def run(s: Session) -> None:
        defs = (package(s).get("CFDefinitions") or {}).get(kind) or []
        if not defs:
            raise Skip(f"the package's CFDefinitions has no {kind}")
        for d in defs[:5]:
            body = _json(s.get(f"{kind}/{d['identifier']}"))
            got = body
            if as_set:
                if not isinstance(body.get(kind), list):
                    raise Fail(f"/{kind}/{d['identifier']} is not a set: no {kind} array")
                got = next((x for x in body[kind] if str(x.get("identifier")).lower() == str(d["identifier"]).lower()), {})
            if got.get("identifier") != d["identifier"] or got.get("title") != d.get("title"):
                raise Fail(f"/{kind}/{d['identifier']} answered {str(body)[:200]}")


for _kind, _as_set in DEFINITION_KINDS.items():
    _definition_check(_kind, _as_set)


@check("CASE-URI-001", f"{INFO} uri", "A uri on the provider's own host resolves to the same object", required=False, tags=("identifiers",))
def _resolve(s: Session) -> None:
    host = urlsplit(str(s.client.base_url)).netloc
    local = [(k, o) for k, o in _every_object(s) if urlsplit(str(o.get("uri", ""))).netloc == host][:5]
    if not local:
        raise Skip("no uri points at the provider's host")
    for kind, obj in local:
        r = s.get(obj["uri"])
        if r.status_code != 200 or str(r.json().get("identifier", "")).lower() != str(obj.get("identifier")).lower():
            raise Fail(f"{kind} uri {obj['uri']} answered {r.status_code} {r.text[:200]}")


# --------------------------------------------------------------------------- errors and auth

ENDPOINTS = ("CFDocuments", "CFPackages", "CFItems", "CFAssociations", "CFItemAssociations", "CFRubrics", *DEFINITION_KINDS)


@check("CASE-ERR-001", f"{REST} 404 imsx_StatusInfo", "An unknown UUID on every endpoint is a 404 imsx_StatusInfo with codeMinor unknownobject", tags=("errors",))
def _unknown(s: Session) -> None:
    for ep in ENDPOINTS:
        _status_info(s.get(f"{ep}/{uuid.uuid4()}"), 404, ("unknownobject",))


@check("CASE-ERR-002", f"{REST} 404 imsx_StatusInfo", "An id that is not a UUID is a 404 with codeMinor invaliduuid (or unknownobject)", tags=("errors",))
def _not_uuid(s: Session) -> None:
    for ep in ("CFItems", "CFPackages", "CFAssociations"):
        _status_info(s.get(f"{ep}/not-a-uuid"), 404, ("invaliduuid", "unknownobject"))


@check("CASE-ERR-003", f"{REST} imsx_StatusInfo", "Error answers are application/json", tags=("errors",))
def _error_type(s: Session) -> None:
    r = s.get(f"CFItems/{uuid.uuid4()}")
    if not r.headers.get("content-type", "").startswith("application/json"):
        raise Fail(f"the 404's Content-Type is {r.headers.get('content-type')!r}")


def _anonymous(s: Session, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = s.client.build_request("GET", path, headers=headers)
    try:
        r = s.client.send(request, auth=None)  # not the client's own token
    except httpx.HTTPError as exc:
        raise Fail(f"GET {path}: no answer ({exc})") from exc
    from ..kit import _exchange

    s.exchanges.append(_exchange(r))
    return r


@check("CASE-AUTH-001", f"{REST} 401 imsx_StatusInfo", "A request without a token is a 401 with codeMinor unauthorisedrequest", tags=("auth",))
def _no_token(s: Session) -> None:
    if not s.state.get("auth"):
        raise Skip("no credentials given: the provider is taken as public")
    _status_info(_anonymous(s, "CFDocuments", None), 401, ("unauthorisedrequest",))


@check("CASE-AUTH-002", f"{REST} 401 imsx_StatusInfo", "A request with an invalid token is a 401", tags=("auth",))
def _bad_token(s: Session) -> None:
    if not s.state.get("auth"):
        raise Skip("no credentials given: the provider is taken as public")
    _status_info(_anonymous(s, f"CFPackages/{document_id(s)}", "not-a-valid-token"), 401, None)


@check("CASE-SCOPE-001", "CASE Network 2 scopes", "A token granted for the scope .../scope/core.readonly reads CFDocuments and CFPackages", tags=("scopes",))
def _core(s: Session) -> None:
    if not s.state.get("auth"):
        raise Skip("no credentials given")
    token = _bearer(s, SCOPE_CORE)
    for path in ("CFDocuments", f"CFPackages/{document_id(s)}"):
        r = _anonymous(s, path, token)
        if r.status_code != 200:
            raise Fail(f"GET /{path} with a core.readonly token answered {r.status_code}")


@check("CASE-SCOPE-002", "CASE Network 2 scopes", "A token granted for the scope .../scope/all.readonly reads CFDocuments", tags=("scopes",))
def _all(s: Session) -> None:
    if not s.state.get("auth"):
        raise Skip("no credentials given")
    r = _anonymous(s, "CFDocuments", _bearer(s, SCOPE_ALL))
    if r.status_code != 200:
        raise Fail(f"GET /CFDocuments with an all.readonly token answered {r.status_code}")


@check("CASE-SCOPE-003", f"{REST} 403 imsx_StatusInfo", "A token without a CASE scope is a 403 with codeMinor forbidden", tags=("scopes",))
def _forbidden(s: Session) -> None:
    other = s.target.options.get("other_scope")
    if not s.state.get("auth") or not other:
        raise Skip("needs credentials and --option other_scope=SCOPE (a scope the client holds that does not read CASE)")
    _status_info(_anonymous(s, "CFDocuments", _bearer(s, other)), 403, ("forbidden",))


@check("CASE-SCOPE-004", "RFC 6749 5.2", "The token endpoint refuses a scope the client was not granted (400 invalid_scope)", tags=("scopes",))
def _invalid_scope(s: Session) -> None:
    if not s.state.get("auth"):
        raise Skip("no credentials given")
    r = _token(s, "http://conformance.tessera.example/scope/never-granted")
    if r.status_code != 400 or "invalid_scope" not in r.text:
        raise Fail(f"a token for a scope never granted answered {r.status_code} {r.text[:200]}")


@check("CASE-HTTP-001", f"{REST} (read-only)", "The provider is read-only: POST /CFDocuments is refused (405)", required=False, tags=("errors",))
def _read_only(s: Session) -> None:
    r = s.post("CFDocuments", json={})
    if r.status_code not in (405, 404, 403):
        raise Fail(f"POST /CFDocuments answered {r.status_code}")


# --------------------------------------------------------------------------- package walking

def _every_object(s: Session) -> list[tuple[str, dict[str, Any]]]:
    pkg = package(s)
    out: list[tuple[str, dict[str, Any]]] = [("CFDocument", pkg["CFDocument"])]
    out += [("CFItem", i) for i in items(s)]
    out += [("CFAssociation", a) for a in associations(s)]
    for kind in DEFINITION_KINDS:
        out += [(kind[:-1], d) for d in (pkg.get("CFDefinitions") or {}).get(kind) or [] if isinstance(d, dict)]
    out += [("CFRubric", r) for r in pkg.get("CFRubrics") or [] if isinstance(r, dict)]
    return out


def _refs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The LinkURI references an object holds (objects with identifier and uri)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key, value in obj.items():
        vals = value if isinstance(value, list) else [value]
        for v in vals:
            if isinstance(v, dict) and "identifier" in v and "uri" in v and key.endswith("URI"):
                out.append((key, v))
    return out


def _absolute(uri: Any) -> bool:
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    return bool(parts.scheme and (parts.netloc or parts.scheme in ("urn", "tag")))
