"""OneRoster's routing roles (``gateway.routing.protocol``): pull a provider, push to a gradebook.

``oneroster.rest.client`` (Source): an incremental pull of a OneRoster 1.2 / 1.1 REST
provider with ``client.OneRosterClient``, the path ``tessera import oneroster --url`` takes.

* Cursor: JSON ``{"since": "<ISO 8601, ms, Z>", "version": "1.2"}``: the largest
  ``dateLastModified`` the provider has shown (the provider's clock, never ours); during a
  run also ``partial`` (below). No ``since`` (or a cursor of another OneRoster version): a full pull, which also retires (tombstones) the
  records of this connection's system the provider no longer lists.
* Overlap: the pull asks for ``dateLastModified>'since - overlap_seconds'`` (option,
  default ``OVERLAP_SECONDS``), with millisecond precision, never a day: a record the
  provider committed in the same instant as the last one seen, but after that page was
  read, is still read. What the overlap re-reads is unchanged and the idempotent store
  counts it so.
* Orgs: a route's ``orgs`` keeps only those orgs and what hangs off them
  (``gateway.routing.orgs.OrgScope.select``: the orgs below them, their classes, the people
  with a role there and their enrollments; the orgs above and the courses those own come
  along so that references resolve); the rest is read and left out.
* Deletions: objects the provider marks ``tobedeleted`` become tombstones (the stored
  record keeps ``status: tobedeleted``); a full pull retires what is no longer listed.
* Order: orgs, academicSessions, courses, classes, users, enrollments (the client's
  ``COLLECTIONS``, the dependency order); a route naming kinds reads only their
  collections (and a full pull retires only records of those kinds).
* Commits: page by page. The client downloads every page into a spool file first (a write
  transaction never waits on the network; a truncated or malformed page raises ``Retry``
  before anything is written), then commits the records in batches in dependency order,
  each batch in its own transaction (``OneRosterClient.pull_pages``), and a ``PageResult``
  follows each commit. Its cursor covers only what is committed: ``{"since": <last
  finished pull>, "version", "partial": {"since": <this run's>, "done": [collections wholly
  committed], "watermark"}}``. A run that stops (crash, failure, invalid data: ``Reject``)
  leaves that cursor; the next run repeats the same pull (same ``since``), skips the
  collections committed (an incremental pull does not read them again; a full pull lists
  them again without applying them, to retire what the provider no longer lists) and reads
  the interrupted collection again whole: what was committed of it is counted unchanged by
  the idempotent store, so nothing is lost and nothing applied twice. When the pull ends,
  the cursor is the largest ``dateLastModified`` seen, without ``partial``, but never past
  the provider's ``Date`` when the download began (``client``: a record of an early
  collection changed while a later one was read is read again, never skipped).

``oneroster.gradebook`` (Destination): mastery and evidence into a OneRoster 1.2 gradebook
service as ``assessmentResults``.

* One ``assessmentLineItem`` per competency, ``sourcedId`` ``tessera-competency-<id>``,
  created on demand (GET, then PUT when it answers 404), carrying the competency's CASE
  identifier in ``learningObjectiveSet`` (source ``CASE``) so the gradebook can align it.
* A ``mastery_state`` is PUT as ``assessmentResults/tessera-mastery-<record id>``; an
  ``evidence`` item as ``assessmentResults/tessera-evidence-<record id>``. PUT by a
  sourcedId derived from the record id is idempotent: a retried delivery replaces the
  object with itself. A tombstone (``tobedeleted``, voided evidence) is PUT with status
  ``tobedeleted``.
* ``score``: mastery value x ``score_maximum`` (option, default 100); ``textScore`` the
  level; evidence: its scaled score (or raw within min..max) on the same scale.
* The student is the learner's ``sourcedId`` (its native id); a learner or competency the
  gradebook does not know yet (400 naming an unknown object, 404, 409) is
  ``WaitForDependency``; other 4xx ``Reject``; 5xx, 429, transport errors ``Retry``.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson

from gateway.errors import ConfigError, NotFound
from gateway.model import Status, utcnow
from gateway.routing.orgs import OrgScope
from gateway.routing.protocol import Connection, Delivery, PageResult, Reject, Route, WaitForDependency
from gateway.routing.remote import SharedHttp, as_failure, call, token_url

from .values import format_datetime, normalize_version, parse_datetime

#: seconds re-read before the cursor's ``since`` (option ``overlap_seconds``)
OVERLAP_SECONDS = 5.0
GRADEBOOK_PATHS = {"1.2": "/ims/oneroster/gradebook/v1p2"}
SCORE_MAXIMUM = 100.0
#: deviations of a pull carried on its sync run
MAX_REPORTED = 50


# --- cursor ---------------------------------------------------------------------------------------


def read_cursor(cursor: str | None, version: str) -> datetime | None:
    """The ``since`` of a cursor of this OneRoster version; None: a full pull."""
    return read_state(cursor, version)[0]


def read_state(cursor: str | None, version: str) -> tuple[datetime | None, dict[str, Any] | None]:
    """(``since`` of the last finished pull, the interrupted run's ``partial`` or None)."""
    if not cursor:
        return None, None
    try:
        doc = orjson.loads(cursor)
        if doc.get("version") not in (None, version):
            return None, None
        since = parse_datetime(doc["since"]) if doc.get("since") else None
        partial = doc.get("partial")
        if partial is not None:
            partial = {"since": parse_datetime(partial["since"]) if partial.get("since") else None,
                       "done": [str(c) for c in partial.get("done") or []],
                       "watermark": parse_datetime(partial["watermark"]) if partial.get("watermark") else None}
        return since, partial
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        raise ConfigError(f"the route's cursor is not a OneRoster cursor: {cursor[:80]!r}") from None


def make_cursor(since: datetime | None, version: str, partial: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"since": format_datetime(since) if since is not None else None, "version": version}
    if partial is not None:
        doc["partial"] = {"since": format_datetime(partial["since"]) if partial.get("since") else None,
                          "done": list(partial["done"]),
                          "watermark": format_datetime(partial["watermark"]) if partial.get("watermark") else None}
    return orjson.dumps(doc).decode()


def _latest(*values: datetime | None) -> datetime | None:
    found = [v for v in values if v is not None]
    return max(found) if found else None


# --- Source ---------------------------------------------------------------------------------------


class RosterSource:
    """``oneroster.rest.client``: see the module docstring."""

    def __init__(self, connection: Connection) -> None:
        if not connection.base_url:
            raise ConfigError(f"connection {connection.name!r}: a OneRoster provider needs base_url")
        self.connection = connection
        opts = connection.options
        self.version = normalize_version(str(opts.get("version", "1.2")))
        self.oauth1 = bool(opts.get("oauth1", False))
        try:
            self.overlap = timedelta(seconds=float(opts.get("overlap_seconds", OVERLAP_SECONDS)))
            self.page_size = int(opts.get("page_size", 1000))
        except (TypeError, ValueError):
            raise ConfigError(f"connection {connection.name!r}: overlap_seconds and page_size are numbers") from None
        self.transport: Any = None  # tests may hand an httpx transport

    def client(self) -> Any:
        from .client import OneRosterClient

        c = self.connection
        cid = c.secret("client_id", required=False)
        secret = c.secret("client_secret", required=False)
        tok = None if self.oauth1 or cid is None else token_url(c)
        scope = c.options.get("scope")
        return OneRosterClient(str(c.base_url), version=self.version, client_id=cid, client_secret=secret, token_url=tok,
                               scope=str(scope) if scope else None, oauth1=self.oauth1,
                               timeout=float(c.options.get("timeout", 60.0)), transport=self.transport)

    @staticmethod
    def collections(route: Route) -> tuple[str, ...]:
        """The collections of the route's kinds (all of them when it names none)."""
        from .client import COLLECTIONS
        from .vocab import WIRE_KINDS

        if not route.kinds:
            return COLLECTIONS
        wanted = tuple(c for c in COLLECTIONS if WIRE_KINDS[c] in route.kinds)
        if not wanted:
            raise Reject(f"route {route.name!r}: none of its kinds {list(route.kinds)} is a OneRoster rostering collection's "
                         f"({sorted(WIRE_KINDS.values())})")
        return wanted

    def pull(self, store: Any, route: Route, cursor: str | None) -> Iterator[PageResult]:
        from .client import PullSummary

        collections = self.collections(route)
        previous, partial = read_state(cursor, self.version)
        if partial is not None:  # an interrupted run: the same listing again, its committed collections skipped
            since, done, mark = partial["since"], [c for c in partial["done"] if c in collections], partial["watermark"]
        else:
            since, done, mark = (previous - self.overlap if previous is not None else None), [], None
        # incremental: the committed collections are not read again; full: they are listed
        # again (not applied) for the retirement of what the provider no longer lists
        fetch = collections if since is None else tuple(c for c in collections if c not in done)
        what = f"pull from the OneRoster provider {self.connection.name!r}"
        summary = PullSummary(version=self.version, incremental=since is not None)
        scope = OrgScope(store, route.tenant, route.orgs) if route.orgs else None
        try:
            with self.client() as client:
                pages = client.pull_pages(store, summary, tenant=route.tenant, source=self.connection.system, since=since,
                                          page_size=self.page_size, demographics=bool(self.connection.options.get("demographics")),
                                          collections=fetch, skip=tuple(done) if since is None else (),
                                          select=scope.select if scope is not None else None)
                while True:
                    try:
                        result, finished = next(pages)
                    except StopIteration:
                        break
                    state = {"since": since, "done": sorted(set(done) | set(finished), key=collections.index),
                             "watermark": _latest(mark, summary.watermark if summary.watermark != since else None)}
                    yield PageResult(cursor=make_cursor(previous, self.version, state), read=result.created + result.updated + result.unchanged,
                                     written=result.created + result.updated, unchanged=result.unchanged)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a DeliveryFailure kind
            raise as_failure(exc, what) from None
        seen = _latest(mark, summary.watermark)
        if since is not None and seen is not None and seen <= since:
            seen = None
        # the cursor never moves back: nothing newer than the overlap read keeps the old one
        new = _latest(seen, previous)
        page = PageResult(cursor=make_cursor(new, self.version) if new is not None else make_cursor(None, self.version),
                          deleted=sum(summary.retired.values()))
        for d in summary.deviations.items[:MAX_REPORTED]:  # references held unresolved, and the like
            page.errors.append({"message": d.message, "location": d.location or "", "field": d.field or ""})
        yield page


# --- Destination ----------------------------------------------------------------------------------

#: how a gradebook says that an object the result references is not there (Tessera: "no such
#: user in this batch or the store"; the binding's codeMinor ``unknownobject``)
_UNKNOWN = re.compile(r"no such|unknownobject|unknown (?:object|reference|user|student)|does not exist", re.I)


def gradebook_base(url: str) -> str:
    url = url.rstrip("/")
    path = GRADEBOOK_PATHS["1.2"]
    return url if url.endswith(path) else url + path


def result_id(delivery: Delivery) -> str:
    return f"tessera-{'mastery' if delivery.record_kind == 'mastery_state' else 'evidence'}-{delivery.record_id}"


def line_item_id(competency_id: uuid.UUID) -> str:
    return f"tessera-competency-{competency_id}"


class GradebookDestination:
    """``oneroster.gradebook``: see the module docstring."""

    kinds = frozenset({"mastery_state", "evidence"})

    def __init__(self, connection: Connection) -> None:
        if not connection.base_url:
            raise ConfigError(f"connection {connection.name!r}: a OneRoster gradebook needs base_url")
        self.connection = connection
        self.base = gradebook_base(connection.base_url)
        self.maximum = float(connection.options.get("score_maximum", SCORE_MAXIMUM))
        self.http = SharedHttp(connection)
        self._items: set[str] = set()  # line items known to exist at the gradebook
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def deliver(self, store: Any, delivery: Delivery) -> None:
        rec: Any = delivery.record  # a MasteryState or an Evidence
        if rec is None:
            return  # the record is gone from the store: nothing left to say about it
        tenant = delivery.route.tenant
        deleted = rec.status == Status.tobedeleted or bool(getattr(rec, "voided", False))
        competency_id = getattr(rec, "competency_id", None)
        if competency_id is None:
            return  # evidence not aligned to a competency yet: it has no column
        try:
            person = store.records.get(tenant, "person", rec.learner_id)
            competency = orjson.loads(store.records.get_json(tenant, "competency", competency_id))
        except NotFound as exc:
            raise WaitForDependency(f"{delivery.record_kind} {delivery.record_id}: {exc}", depends_on=str(exc)) from None
        item = line_item_id(competency_id)
        self.ensure_line_item(item, competency)
        if delivery.record_kind == "mastery_state":
            value = rec.value
            score = round(value * self.maximum, 4) if value is not None else None
            text = rec.level
            when = rec.computed_at
            status = "fully graded" if value is not None else "not submitted"
        else:
            sc = rec.score
            score = None
            if sc is not None and sc.scaled is not None:
                score = round(float(sc.scaled) * self.maximum, 4)
            elif sc is not None and sc.raw is not None and sc.min is not None and sc.max is not None and sc.max > sc.min:
                score = round((sc.raw - sc.min) / (sc.max - sc.min) * self.maximum, 4)
            elif sc is not None and sc.raw is not None:
                score = float(sc.raw)
            text = rec.level
            when = rec.observed_at
            status = "fully graded"
        sid = result_id(delivery)
        obj: dict[str, Any] = {
            "sourcedId": sid,
            "status": "tobedeleted" if deleted else "active",
            "dateLastModified": format_datetime(utcnow()),
            "assessmentLineItem": {"sourcedId": item, "type": "assessmentLineItem"},
            "student": {"sourcedId": person.native_id, "type": "user"},
            "scoreDate": format_datetime(when or utcnow()),
            "scoreStatus": status,
        }
        if score is not None:
            obj["score"] = score
        if text:
            obj["textScore"] = str(text)
        self.put("assessmentResults", sid, "assessmentResult", obj, f"PUT assessmentResults/{sid}")

    def ensure_line_item(self, sid: str, competency: dict[str, Any]) -> None:
        if sid in self._items:
            return
        r = call(self.http(), "GET", f"{self.base}/assessmentLineItems/{sid}", f"GET assessmentLineItems/{sid}", ok=(404,))
        if r.status_code == 404:
            ident = str(competency.get("guid") or competency.get("uri") or competency["id"])
            title = (f"{competency['code']}: " if competency.get("code") else "") + str(competency.get("statement") or ident)
            obj = {
                "sourcedId": sid, "status": "active", "dateLastModified": format_datetime(utcnow()), "title": title[:255],
                "resultValueMin": 0, "resultValueMax": self.maximum,
                "learningObjectiveSet": [{"source": "CASE", "learningObjectiveIds": [ident]}],
            }
            self.put("assessmentLineItems", sid, "assessmentLineItem", obj, f"PUT assessmentLineItems/{sid}")
        self._items.add(sid)

    def put(self, collection: str, sid: str, key: str, obj: dict[str, Any], what: str) -> None:
        r = call(self.http(), "PUT", f"{self.base}/{collection}/{sid}", what, ok=(400, 404, 422),
                 content=orjson.dumps({key: obj}), headers={"Content-Type": "application/json"})
        if r.status_code in (400, 404, 422):
            failure = as_failure_of(r, what)
            raise failure


def as_failure_of(r: Any, what: str) -> Exception:
    """A 400/404/422 that names an unknown object waits for it; anything else is refused."""
    from gateway.routing.protocol import failure_from_response

    failure = failure_from_response(r, what)
    assert failure is not None
    body = (failure.response or "")
    if r.status_code == 404 or _UNKNOWN.search(body):
        return WaitForDependency(failure.message + " (an object it references is not there yet)", status=failure.status,
                                 request=failure.request, response=failure.response)
    return failure


def source_role(connection: Connection) -> RosterSource:
    return RosterSource(connection)


def gradebook_role(connection: Connection) -> GradebookDestination:
    return GradebookDestination(connection)


ROLES = {"oneroster.rest.client": source_role, "oneroster.gradebook": gradebook_role}

__all__ = ["OVERLAP_SECONDS", "ROLES", "GradebookDestination", "RosterSource", "make_cursor", "read_cursor"]
