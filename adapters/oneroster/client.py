"""A OneRoster 1.2 / 1.1 REST consumer (``gateway.http``): pull a whole tenant from another provider.

Spec choices (OneRoster 1.2 Rostering REST/JSON binding, 1.1 REST binding section 3):

* collections are read in dependency order (orgs, academicSessions, courses, classes, users,
  enrollments), each with ``limit``/``offset`` paging. A ``Link: <...>; rel="next"`` header is
  followed as given; otherwise paging continues while ``X-Total-Count`` says there is more,
  or, without it, until an empty page.
* incremental pulls (``since``) send ``filter=dateLastModified>'<ISO 8601>'`` (binding
  section "Filtering"; URL-encoded by httpx). Records the provider marks ``tobedeleted`` keep
  that status; nothing else is retired. A full pull retires (marks ``tobedeleted``) the
  stored records of this source that the provider no longer lists, as a bulk CSV file does.
* every page is downloaded into a spool file first, then applied: the store's write
  transaction (SQLite's write lock) never waits on the network.
* every object goes through ``mapping.to_canonical``; ``pull`` applies the whole pull in ONE
  transaction with ``store.records.apply_batches`` (batches of ``BATCH`` records), so an
  invalid object anywhere changes nothing; ``pull_pages`` (the routing layer's) commits
  each batch on its own and says which collections are wholly committed. A reference to a record in neither the pull nor
  the store is held unresolved and listed in the summary's ``deviations`` (``pull_refs``,
  the rule of docs/oneroster-references.md); ``strict`` refuses it, and the pull with it.
* the next watermark is the largest ``dateLastModified`` seen (the provider's clock), but
  never later than the provider's ``Date`` when the download began (``PullSummary.started``):
  the collections are read one after another, so a record of an early collection changed
  while a later one was read carries a ``dateLastModified`` below the later collection's
  newest; a watermark past the start would let the next pull skip it. Capped at the start,
  the next pull re-reads the download's own window (the idempotent store counts it
  unchanged) and misses nothing. ``Date`` has whole seconds and is rounded down, which only
  re-reads more; a provider that sends no ``Date`` keeps the uncapped watermark.
* authentication: OAuth 1.0a one-legged HMAC-SHA256 signatures for 1.1 providers that use
  them (``oauth1=True``), or OAuth 2.0 client credentials (RFC 6749 4.4, client authenticated with HTTP
  Basic, 2.3.1), the token cached until shortly before it expires and fetched again once
  when the provider answers 401. The secret is held in memory only and never appears in an
  exception, a log line or a repr.
* failures: a provider's imsx_StatusInfo ``imsx_description`` is carried in the error; GETs
  that fail at the network level (or answer 429 or a transient 5xx) are retried up to
  ``RETRIES`` times with exponential backoff and full jitter, a ``Retry-After`` (seconds or
  an HTTP date, RFC 9110 10.2.3) setting the wait, as rate limiting SIS APIs ask; one
  longer than ``MAX_RETRY_AFTER`` ends the pull with an error (``gateway.http.retry``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from gateway.auth.outbound import ClientCredentials, json_or_none
from gateway.errors import (
    AuthError,
    ConfigError,
    Deviations,
    ErrorDetail,
    NotFound,
    UpstreamError,
    ValidationError,
)
from gateway.http import (
    BearerAuth,
    HttpClient,
    OAuth1Signature,
    RetryLater,
    RetryPolicy,
    Unreachable,
    UsesHttp,
)
from gateway.model import Record, Status, record_id

from .credentials import CredentialVault, secret_fields
from .demographics import demographics_to_canonical
from .mapping import to_canonical
from .pull_refs import PullRefs
from .values import format_datetime, normalize_version, parse_datetime, ref_id
from .vocab import WIRE_KINDS

API_PATHS = {"1.2": "/ims/oneroster/rostering/v1p2", "1.1": "/ims/oneroster/v1p1"}
#: collections in dependency order: a record only references records of earlier collections
#: (or, for orgs, sessions and users, of its own; see ``_batches``).
COLLECTIONS = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments")
PAGE_SIZE = 1000
BATCH = 5000
RETRIES = 3
MAX_ERRORS = 1000
#: longest Retry-After the client honours before it gives up on a provider (seconds)
MAX_RETRY_AFTER = 120.0


class ProviderError(UpstreamError):
    """The OneRoster provider answered with an error or something that is not OneRoster (502)."""


def provider_base(url: str, version: str = "1.2") -> tuple[str, str]:
    """``https://host`` or ``https://host/ims/oneroster/rostering/v1p2`` (or ``.../v1p1``) ->
    (API base without a trailing slash, OneRoster version)."""
    url = url.rstrip("/")
    for v, path in API_PATHS.items():
        if url.endswith(path):
            return url, v
    v = normalize_version(version)
    return url + API_PATHS[v], v


@dataclass
class PullSummary:
    version: str
    incremental: bool
    #: collection -> objects read from the provider
    counts: dict[str, int] = field(default_factory=dict)
    #: kind -> stored records the provider no longer lists, marked tobedeleted (full pulls)
    retired: dict[str, int] = field(default_factory=dict)
    #: collection -> tobedeleted objects for records never stored (nothing to do)
    ignored: dict[str, int] = field(default_factory=dict)
    result: Any = None
    #: the largest dateLastModified seen, capped at ``started``: the ``since`` of the next incremental pull
    watermark: datetime | None = None
    #: the provider's clock (its ``Date`` header) when the download began
    started: datetime | None = None
    #: "users field" -> objects whose password or other credential was dropped (``credentials``:
    #: a pull never stores one)
    dropped_credentials: dict[str, int] = field(default_factory=dict)
    #: what was normalised (tolerant): references held unresolved (``pull_refs``)
    deviations: Deviations = field(default_factory=Deviations)
    #: target kind -> distinct targets in neither the pull nor the store, held unresolved
    unresolved: dict[str, int] = field(default_factory=dict)

    @property
    def next_since(self) -> str | None:
        return format_datetime(self.watermark)


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header (RFC 9110 5.6.7) as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class OneRosterClient(UsesHttp):
    def __init__(
        self,
        base_url: str,
        *,
        version: str = "1.2",
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        scope: str | None = None,
        oauth1: bool = False,
        timeout: float = 60.0,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if (client_id is None) != (client_secret is None):
            raise ConfigError("give both an OAuth 2.0 client id and its secret, or neither")
        if oauth1 and client_id is None:
            raise ConfigError("OAuth 1.0a signing needs the consumer key (client id) and secret")
        self.base, self.version = provider_base(base_url, version)
        self._oauth1 = oauth1
        self._client_id = client_id
        # ClientCredentials refuses a missing token URL
        self._auth = (ClientCredentials(token_url, client_id, client_secret, scope)
                      if client_id is not None and client_secret is not None and not oauth1 else None)
        auth = None
        if oauth1 and client_id is not None and client_secret is not None:
            # OneRoster 1.1 section 2.2 / RFC 5849: one-legged HMAC-SHA256 over the exact URL, query included
            auth = OAuth1Signature(client_id, client_secret)
        elif self._auth is not None:
            auth = BearerAuth(self._auth)
        self.http = HttpClient(timeout=timeout, transport=transport, auth=auth,
                               retry=RetryPolicy(retries=RETRIES, backoff=backoff, retry_after_cap=MAX_RETRY_AFTER),
                               headers={"Accept": "application/json", "User-Agent": "tessera-oneroster-client"})

    def __repr__(self) -> str:
        return f"OneRosterClient({self.base!r}, client_id={self._client_id!r})"

    # --- HTTP -----------------------------------------------------------------------------------

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET a path under the API base (or an absolute URL from a Link header); turns failures
        into errors. Retries and the 401 -> new token -> retry once dance are ``gateway.http``'s."""
        url = path_or_url if "://" in path_or_url else f"{self.base}/{path_or_url.lstrip('/')}"
        what = url.split("?", 1)[0].removeprefix(self.base) or "/"
        try:
            r = self.http.get(url, params=params)
        except Unreachable as exc:
            raise ProviderError(f"the OneRoster provider at {self.base} could not be reached "
                                f"({exc.reason}, {exc.attempts} attempts)") from None
        except RetryLater as exc:
            raise ProviderError(f"the OneRoster provider at {self.base} asks to retry in {exc.seconds:.0f} s "
                                f"(HTTP {exc.status}); run the pull again later") from None
        if r.status_code == 401:
            if self._oauth1:
                raise AuthError(f"the OneRoster provider refused the OAuth 1.0a signature for {what}: {_status_description(r)}")
            if self._client_id is None:
                raise AuthError(f"the OneRoster provider asks for authorisation ({what}): give OAuth 2.0 client "
                                "credentials (--client-id, --client-secret-env, --token-url)")
            raise AuthError(f"the OneRoster provider refused the access token for {what}: {_status_description(r)}")
        if r.status_code == 404:
            raise NotFound(f"the OneRoster provider has no {what}: {_status_description(r)}")
        if r.status_code >= 400:
            raise ProviderError(f"the OneRoster provider answered HTTP {r.status_code} for {what}: {_status_description(r)}")
        return r

    # --- reading collections --------------------------------------------------------------------

    def collection(
        self,
        name: str,
        *,
        since: datetime | None = None,
        page_size: int = PAGE_SIZE,
        on_page: Callable[[str, int, int | None], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every object of one collection (``getAllOrgs``, ``getAllUsers``...), page by page."""
        params: dict[str, Any] | None = {"limit": page_size, "offset": 0}
        if since is not None:
            params["filter"] = f"dateLastModified>'{format_datetime(since)}'"  # type: ignore[index]
        url = name
        offset = 0
        previous: Any = None
        while True:
            r = self.get(url, params)
            if self.first_date is None:
                self.first_date = _http_date(r.headers.get("date"))
            body = json_or_none(r)
            items = body.get(name) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ProviderError(f"the OneRoster provider's {name} answer has no {name} array")
            total = r.headers.get("X-Total-Count", "").strip()
            total_n = int(total) if total.isdigit() else None
            first = ref_id(items[0].get("sourcedId")) if items and isinstance(items[0], dict) else None
            if first is not None and first == previous:
                raise ProviderError(f"the OneRoster provider answered the same {name} page again (offset {offset}): "
                                    "it does not seem to support offset paging")
            previous = first
            offset += len(items)
            yield from items
            if on_page:
                on_page(name, offset, total_n)
            if not items:
                return
            nxt = r.links.get("next", {}).get("url")
            if nxt:
                url, params = urljoin(str(r.url), nxt), None
            elif total_n is not None and offset >= total_n:
                return
            else:
                url, params = name, {**(params or {}), "limit": page_size, "offset": offset}
                if since is not None:
                    params["filter"] = f"dateLastModified>'{format_datetime(since)}'"

    #: the ``Date`` of the first answer of the running download (``_spooled``)
    first_date: datetime | None = None

    # --- the pull ---------------------------------------------------------------------------------

    def pull(
        self,
        store: Any,
        *,
        tenant: str,
        source: str = "sis",
        since: datetime | str | None = None,
        page_size: int = PAGE_SIZE,
        batch: int = BATCH,
        on_page: Callable[[str, int, int | None], None] | None = None,
        demographics: bool = False,
        strict: bool = False,
        collections: tuple[str, ...] = COLLECTIONS,
    ) -> PullSummary:
        """Read every collection and apply it in ONE transaction; returns the summary.

        ``demographics``: also read ``/demographics`` (the provider must grant
        roster-demographics.readonly) and keep each object on its user's Person, as a CSV
        import does. Incrementally, a changed demographics object whose user did not change
        updates the stored Person.

        References to records in neither the pull nor the store are held unresolved, each
        listed in ``summary.deviations`` (``pull_refs``); ``strict`` refuses them.

        ``collections``: read only these (in dependency order whatever the order given); a
        full pull then retires only records of their kinds."""
        unknown = sorted(set(collections) - set(COLLECTIONS))
        if unknown:
            raise ConfigError(f"unknown OneRoster collections {unknown}; known: {list(COLLECTIONS)}")
        collections = tuple(c for c in COLLECTIONS if c in collections)
        if isinstance(since, str):
            try:
                since = parse_datetime(since)
            except ValueError as exc:
                raise ValidationError(f"--since: {exc}") from None
        summary = PullSummary(version=self.version, incremental=since is not None, deviations=Deviations(strict=strict))
        with self._spooled(store, tenant, source, since, page_size, batch, on_page, demographics, collections, summary) as pull:
            summary.result = store.records.apply_batches(tenant, pull.batches(), within=pull.forget_credentials)
        if summary.watermark is None:
            summary.watermark = since  # nothing changed: the next pull starts from the same point
        return summary

    def pull_pages(
        self,
        store: Any,
        summary: PullSummary,
        *,
        tenant: str,
        source: str = "sis",
        since: datetime | None = None,
        page_size: int = PAGE_SIZE,
        batch: int = BATCH,
        demographics: bool = False,
        collections: tuple[str, ...] = COLLECTIONS,
        skip: tuple[str, ...] = (),
        select: Callable[[list[Record]], list[Record]] | None = None,
    ) -> Iterator[tuple[Any, tuple[str, ...]]]:
        """``pull``, but each batch of records committed in its own transaction: yields
        (its ``ApplyResult``, the collections wholly committed so far) after each commit, so
        a caller can store a cursor that covers only what is committed (the routing layer).
        Invalid data stops the pull at the batch that holds it (``ValidationError``) with
        the batches before it committed. ``skip``: collections committed by an interrupted
        earlier run of the same pull (read again for a full pull's retirement, not applied).
        ``select``: what of each batch to store (a route's ``orgs``); the rest is left out."""
        collections = tuple(c for c in COLLECTIONS if c in collections)
        summary.incremental = since is not None
        with self._spooled(store, tenant, source, since, page_size, batch, None, demographics, collections, summary) as pull:
            pull.skip = set(skip)
            for records in pull.batches():
                if select is not None:
                    records = select(records)
                    if not records:
                        continue
                result = store.records.apply(tenant, records)
                yield result, tuple(pull.done)
            with store.records.write_transaction() as conn:
                pull.forget_credentials(conn)
        if summary.watermark is None:
            summary.watermark = since

    @contextmanager
    def _spooled(self, store: Any, tenant: str, source: str, since: datetime | None, page_size: int, batch: int, on_page: Any,
                 demographics: bool, collections: tuple[str, ...], summary: PullSummary) -> Iterator[_Pull]:
        # Download first, into a spool file, then apply: the store's write transaction (on
        # SQLite, the database's write lock) must never wait on the network.
        with tempfile.TemporaryFile() as spool:
            self.first_date = None
            sizes: dict[str, int] = {}
            demo: dict[str, dict[str, Any]] = {}
            if demographics:
                for obj in self.collection("demographics", since=since, page_size=page_size, on_page=on_page):
                    sid = ref_id(obj.get("sourcedId")) if isinstance(obj, dict) else None
                    if sid is not None:
                        demo[sid] = obj
                summary.counts["demographics"] = len(demo)
            for name in collections:
                n = 0
                for obj in self.collection(name, since=since, page_size=page_size, on_page=on_page):
                    spool.write(orjson.dumps(obj) + b"\n")
                    n += 1
                sizes[name] = n
            spool.seek(0)
            summary.started = self.first_date
            pull = _Pull(self, store, tenant, source, since, page_size, batch, on_page, summary, spool, sizes)
            pull.collections = collections
            pull.demographics = demo
            yield pull


class _Pull:
    def __init__(self, client: OneRosterClient, store: Any, tenant: str, source: str, since: datetime | None,
                 page_size: int, batch: int, on_page: Any, summary: PullSummary, spool: Any, sizes: dict[str, int]) -> None:
        self.client, self.store, self.tenant, self.source, self.since = client, store, tenant, source, since
        self.page_size, self.batch, self.on_page, self.summary = page_size, batch, on_page, summary
        self.spool, self.sizes = spool, sizes
        self.errors: list[ErrorDetail] = []
        self.seen: dict[str, set[str]] = {}
        #: user sourcedId -> its demographics object, taken off as each user is converted
        self.demographics: dict[str, dict[str, Any]] = {}
        #: the users read: a pull never keeps a password, so any a CSV import kept sealed is stale
        self.users: list[str] = []
        self.refs = PullRefs(store, tenant, source, summary.deviations, self.error)
        summary.unresolved = self.refs.unresolved
        #: the collections read (``pull(collections=...)``)
        self.collections: tuple[str, ...] = COLLECTIONS
        #: collections an interrupted run committed: their ids are noted (retirement), not applied
        self.skip: set[str] = set()
        #: collections whose every batch was handed out (``pull_pages``: committed)
        self.done: list[str] = []

    def forget_credentials(self, conn: Any) -> None:
        """In the pull's transaction, after its records: the sealed credentials of the users it
        read go (``credentials``: what is kept reflects the last import of a user)."""
        vault = CredentialVault(self.store.engine)
        if self.users and vault.count(self.tenant, conn=conn):
            ids = {record_id(self.tenant, "person", self.source, sid) for sid in self.users}
            vault.writer(self.tenant, {rid: {""} for rid in ids}, {})(conn)

    def error(self, message: str, location: str, fld: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ErrorDetail(message, location=location, field=fld))

    def batches(self) -> Iterator[list[Record]]:
        """Records in batches that only reference earlier batches or the store. orgs and
        academicSessions (parents of their own kind, few) go as one batch each; users naming
        agents wait until the other users are applied."""
        for name in self.collections:
            kind = WIRE_KINDS[name]
            seen = self.seen.setdefault(kind, set())
            if name in self.skip:
                for obj in self.spooled(name):
                    sid = ref_id(obj.get("sourcedId")) if isinstance(obj, dict) else None
                    if sid is not None:
                        seen.add(sid)
                self.summary.counts[name] = self.sizes.get(name, 0)
                self.done.append(name)
                continue
            whole = name in ("orgs", "academicSessions")
            pending: list[Record] = []
            later: list[Record] = []
            n = 0
            for obj in self.spooled(name):
                n += 1
                rec = self.convert(name, kind, obj, seen)
                if rec is None:
                    continue
                (later if getattr(rec, "agent_ids", None) else pending).append(rec)
                if self.errors:
                    self.refs.settle(pending + later)  # its unresolved references too (strict)
                    pending.clear()  # nothing will be applied; keep reading to report every problem
                    later.clear()
                elif not whole and len(pending) >= self.batch:
                    pending = self.refs.settle(pending)
                    if not self.errors:
                        yield pending
                    pending = []
            self.summary.counts[name] = n
            if self.errors:
                continue
            if whole:
                if pending or later:
                    got = self.refs.settle(pending + later)
                    if not self.errors:
                        self.done.append(name)
                        yield got
                        continue
                if not self.errors:
                    self.done.append(name)
                continue
            rest = [c[i:i + self.batch] for c in (pending, later) for i in range(0, len(c), self.batch)]
            if not rest and not self.errors:
                self.done.append(name)
            for i, chunk in enumerate(rest):
                got = self.refs.settle(chunk)
                if not self.errors:
                    if i == len(rest) - 1:  # the collection's last batch: done once it is committed
                        self.done.append(name)
                    yield got
        if self.demographics:
            yield from self.stored_people_demographics()
        if self.errors:
            raise ValidationError("invalid OneRoster data from the provider; nothing was stored", errors=self.errors)
        if self.since is None:
            yield from self.retire_absent()

    def spooled(self, name: str) -> Iterator[Any]:
        """The downloaded objects of collection ``name`` (collections were spooled in order)."""
        for _ in range(self.sizes.get(name, 0)):
            yield orjson.loads(self.spool.readline())

    def convert(self, name: str, kind: str, obj: Any, seen: set[str]) -> Record | None:
        if not isinstance(obj, dict):
            self.error(f"not a OneRoster object: {str(obj)[:80]!r}", f"{name}")
            return None
        sid = ref_id(obj.get("sourcedId"))
        loc = f"{name} sourcedId {sid}"
        if sid is not None:
            if sid in seen:
                return None  # the provider listed it twice (data moved between pages): keep the first
            seen.add(sid)
        modified = obj.get("dateLastModified")
        if modified:
            try:
                dt = parse_datetime(modified)
            except ValueError:
                pass  # to_canonical reports it
            else:
                if self.summary.started is not None and dt > self.summary.started:
                    dt = self.summary.started  # changed during the download: the next pull reads it again
                if self.summary.watermark is None or dt > self.summary.watermark:
                    self.summary.watermark = dt
        deleted = obj.get("status") == "tobedeleted"
        if name == "users":
            if sid is not None:
                self.users.append(sid)
            for f in secret_fields(obj):
                key = f"users {f}"
                self.summary.dropped_credentials[key] = self.summary.dropped_credentials.get(key, 0) + 1
        try:
            rec = to_canonical(name, obj, tenant=self.tenant, source=self.source, version=self.client.version, location=loc)
            if name == "users" and sid is not None and sid in self.demographics:
                rec = self.with_demographics(rec, self.demographics.pop(sid))
            self.refs.note(rec, obj, loc)
            return rec
        except ValidationError as exc:
            if not deleted or not sid:
                for e in exc.errors or [ErrorDetail(str(exc))]:
                    self.error(e.message, e.location or loc, e.field)
                return None
        # a deletion may carry only sourcedId, status and dateLastModified: retire the stored record
        try:
            stored = self.store.records.get(self.tenant, kind, record_id(self.tenant, kind, self.source, sid))
        except NotFound:
            self.summary.ignored[name] = self.summary.ignored.get(name, 0) + 1
            return None
        upd: dict[str, Any] = {"status": Status.tobedeleted, "updated_at": None}
        if modified:
            try:
                upd["source_updated_at"] = parse_datetime(modified)
            except ValueError as exc:
                self.error(str(exc), loc, "dateLastModified")
        rec = stored.model_copy(update=upd)
        self.refs.note(rec, obj, loc)
        return rec

    def with_demographics(self, person: Record, obj: dict[str, Any]) -> Record:
        """``person`` carrying a demographics object (one marked tobedeleted clears them)."""
        if obj.get("status") == "tobedeleted":
            return person.model_copy(update={"demographics": None, "updated_at": None})
        loc = f"demographics sourcedId {obj.get('sourcedId')}"
        return person.model_copy(update={"demographics": demographics_to_canonical(obj, location=loc), "updated_at": None})

    def stored_people_demographics(self) -> Iterator[list[Record]]:
        """Demographics of users this pull did not list (an incremental pull where only the
        demographics changed): onto the stored Persons; of an unknown user, an error."""
        out: list[Record] = []
        for sid, obj in self.demographics.items():
            try:
                stored = self.store.records.get(self.tenant, "person", record_id(self.tenant, "person", self.source, sid))
                out.append(self.with_demographics(stored, obj))
            except NotFound:
                self.error(f"demographics for user {sid!r}, which is neither in this pull nor stored", f"demographics sourcedId {sid}",
                           "sourcedId")
            except ValidationError as exc:
                for e in exc.errors or [ErrorDetail(str(exc))]:
                    self.error(e.message, e.location or f"demographics sourcedId {sid}", e.field)
        for i in range(0, len(out), self.batch):
            if not self.errors:
                yield out[i:i + self.batch]

    def retire_absent(self) -> Iterator[list[Record]]:
        """Full pull: stored records of this source the provider no longer lists become tobedeleted."""
        for name in self.collections:
            kind = WIRE_KINDS[name]
            present = self.seen.get(kind, set())
            out: list[Record] = []
            for rec in self.store.records.iter_records(self.tenant, [kind]):
                if rec.source != self.source or rec.native_id in present or rec.status == Status.tobedeleted:
                    continue
                out.append(rec.model_copy(update={"status": Status.tobedeleted, "updated_at": None}))
            if out:
                self.summary.retired[kind] = len(out)
                for i in range(0, len(out), self.batch):
                    yield out[i:i + self.batch]


def _status_description(r: httpx.Response) -> str:
    """The imsx_description of an imsx_StatusInfo body (bare, wrapped, or a list of them)."""
    body = json_or_none(r)
    infos: list[Any] = []
    if isinstance(body, dict):
        infos.append(body)
        for key in ("imsx_StatusInfo", "imsx_statusInfo", "statusInfoSet", "imsx_statusInfoSet"):
            v = body.get(key)
            infos.extend(v if isinstance(v, list) else [v])
    elif isinstance(body, list):
        infos.extend(body)
    texts = [str(i["imsx_description"]) for i in infos if isinstance(i, dict) and i.get("imsx_description")]
    if texts:
        return "; ".join(texts)[:300]
    return r.reason_phrase or f"HTTP {r.status_code}"


__all__ = ["API_PATHS", "COLLECTIONS", "OneRosterClient", "ProviderError", "PullSummary", "provider_base"]
