"""LTI's routing roles (``gateway.routing.protocol``), Tessera as the tool of an LMS that
registered it (``tool.platforms``) and launched it from its courses (``tool.contexts``):

``lti.ags`` (Destination, kind ``mastery_state``): a learner's mastery as a score in the
competency's gradebook column (``tool.assignments_grades``), in every LMS context of the
platform whose section the learner is enrolled in and whose launch offered AGS.

* Options: ``platform`` (the registered platform's id, required), ``context_id`` (only that
  LMS context), ``score_maximum`` (a new column's points, default 100).
* The column: one line item per (context, competency), found by ``resource_id`` (the
  competency's CASE identifier) and ``tag`` ``tessera:competency`` (AGS 3.2.4), created
  when missing (3.2.5), remembered per process afterwards: created once.
* The score (3.4): ``scoreGiven`` = value x the column's ``scoreMaximum``, Completed /
  FullyGraded, and ``timestamp`` = the mastery state's ``computed_at``: a retried delivery
  carries the same timestamp, so the platform keeps one score (a platform that refuses a
  score not newer than the one it holds answers 409 or 400 naming the timestamp: that
  is the same score already there, and counts as delivered).
* The LMS user is the learner's ``lti.sub`` for the platform (left by a launch or an NRPS
  pull); a learner the LMS has never named waits (``WaitForDependency``). A learner in no
  launched context of the platform has nothing to deliver. A mastery state without a value,
  a tombstone, or a record gone, sends nothing (AGS has no "remove a score" call).
* Tokens: client_credentials with Tessera's signed JWT assertion (``tool.service_auth``).

``lti.nrps`` (Source): the full membership of every context of the platform whose launch
offered NRPS (or ``context_id``), pulled with ``tool.names_roles.NrpsClient``, applied in one
transaction per context (one ``PageResult`` each, after its commit), and diffed against the
stored enrollments of the platform in that section: a member no longer listed becomes a
tombstone (``tobedeleted``), as an Inactive/Deleted member does. No cursor: NRPS has no
"changed since"; every pull is a full one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import select

from gateway.errors import ConfigError, NotFound, TesseraError
from gateway.model import Status
from gateway.routing.protocol import Connection, Delivery, PageResult, Reject, Route, WaitForDependency, failure_from_response
from gateway.routing.remote import as_failure

from .claims import SCOPE_SCORE
from .tool import tables as tt
from .tool.contexts import LaunchContext

#: the signing key's token lifetime is not used for client assertions (5 minutes, fixed)
_TOKEN_TTL = 3600


def _contexts(store: Any, tenant: str, platform_id: uuid.UUID, context_id: str | None) -> list[LaunchContext]:
    from .tool.platforms import PlatformStore

    platform = PlatformStore(store.engine).get(tenant, platform_id)
    c = tt.contexts
    q = select(c).where(c.c.platform_id == platform.id)
    if context_id:
        q = q.where(c.c.context_id == context_id)
    with store.engine.connect() as conn:
        rows = conn.execute(q.order_by(c.c.context_id)).all()
    return [LaunchContext(platform, r.context_id, r.section_id, r.ags_lineitems, frozenset(orjson.loads(r.ags_scopes)), r.nrps_url)
            for r in rows]


class _Lti:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        try:
            self.platform_id = uuid.UUID(str(connection.options["platform"]))
        except (KeyError, ValueError):
            raise ConfigError(f"connection {connection.name!r}: option platform (the registered platform's id) is required") from None
        context = connection.options.get("context_id")
        self.context_id = str(context) if context else None
        self._auth: Any = None
        self._lock = threading.Lock()

    def auth(self, store: Any) -> Any:
        from gateway.auth.keys import KeyStore
        from gateway.http import NO_RETRY, HttpClient

        from .tool.service_auth import ServiceAuth

        with self._lock:
            if self._auth is None or self._auth.keys.engine is not store.engine:
                timeout = float(self.connection.options.get("timeout", 30.0))
                self._auth = ServiceAuth(KeyStore(store.engine, token_ttl_seconds=_TOKEN_TTL), HttpClient(timeout=timeout, retry=NO_RETRY))
            return self._auth

    def close(self) -> None:
        """Close the HTTP connection pool (the engine calls it when it drops this object)."""
        with self._lock:
            auth, self._auth = self._auth, None
        if auth is not None:
            auth.http.close()

    def contexts(self, store: Any, tenant: str) -> list[LaunchContext]:
        try:
            return _contexts(store, tenant, self.platform_id, self.context_id)
        except NotFound as exc:
            raise Reject(f"connection {self.connection.name!r}: {exc}") from None


class AgsDestination(_Lti):
    """``lti.ags``: see the module docstring."""

    kinds = frozenset({"mastery_state"})

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.maximum = float(connection.options.get("score_maximum", 100))
        self._items: dict[tuple[str, str, str], dict[str, Any]] = {}  # (platform, context, competency) -> line item

    def deliver(self, store: Any, delivery: Delivery) -> None:
        from .tool.assignments_grades import COMPETENCY_TAG, AgsClient, AgsEndpoint, competency_label, competency_ref
        from .tool.roster import sub_system

        rec: Any = delivery.record  # a MasteryState
        if rec is None or rec.status == Status.tobedeleted or rec.value is None:
            return
        tenant = delivery.route.tenant
        contexts = [c for c in self.contexts(store, tenant) if c.ags_lineitems and c.section_id is not None]
        sections = self.sections_of(store, tenant, rec.learner_id)
        targets = [c for c in contexts if c.section_id in sections]
        if not targets:
            return  # the learner is in no course of this LMS that offered a gradebook
        try:
            person = store.records.get(tenant, "person", rec.learner_id)
            doc = orjson.loads(store.records.get_json(tenant, "competency", rec.competency_id))
        except NotFound as exc:
            raise WaitForDependency(f"mastery {delivery.record_id}: {exc}") from None
        auth = self.auth(store)
        for lc in targets:
            system = sub_system(lc.platform)
            user = next((i.value for i in person.identifiers if i.kind == "lti.sub" and i.system == system), None)
            if user is None:
                raise WaitForDependency(f"mastery {delivery.record_id}: the LMS has not named this learner yet (no launch, no "
                                        f"roster pull from {lc.platform.issuer})", depends_on=f"person {person.id}")
            client = AgsClient(auth, lc.platform, AgsEndpoint(lc.ags_scopes, lc.ags_lineitems, None))
            key = (str(lc.platform.id), lc.context_id, str(rec.competency_id))
            what = f"AGS context {lc.context_id}"
            try:
                item = self._items.get(key)
                if item is None:
                    ref, label = competency_ref(doc), competency_label(doc)
                    found = client.line_items(resource_id=ref, tag=COMPETENCY_TAG)
                    item = found[0] if found else client.create_line_item(label=label, resource_id=ref, tag=COMPETENCY_TAG,
                                                                         score_maximum=self.maximum)
                    self._items[key] = item
            except TesseraError as exc:
                raise as_failure(exc, f"{what}: the competency's line item") from None
            self.post_score(auth, lc, item, user, rec, what)

    def post_score(self, auth: Any, lc: LaunchContext, item: dict[str, Any], user: str, rec: Any, what: str) -> None:
        from .tool.assignments_grades import SCORE, _below

        if SCOPE_SCORE not in lc.ags_scopes:
            raise Reject(f"{what}: the platform did not grant the AGS score scope")
        maximum = float(item.get("scoreMaximum") or self.maximum)
        score = {
            "userId": user, "scoreGiven": round(float(rec.value) * maximum, 4), "scoreMaximum": maximum,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": rec.computed_at.isoformat(timespec="microseconds"),
        }
        try:
            r = auth.request(lc.platform, [SCOPE_SCORE], "POST", _below(item["id"], "scores"), content=orjson.dumps(score),
                             headers={"Content-Type": SCORE}, idempotent=True)
        except TesseraError as exc:
            raise as_failure(exc, f"{what}: POST score") from None
        if r.status_code == 409 or (r.status_code == 400 and b"timestamp" in r.content.lower()):
            return  # a score with this timestamp (or a newer one) is there already
        failure = failure_from_response(r, f"{what}: POST score")
        if failure is not None:
            raise failure

    @staticmethod
    def sections_of(store: Any, tenant: str, person_id: uuid.UUID) -> set[uuid.UUID]:
        out: set[uuid.UUID] = set()
        cursor = None
        while True:
            page = store.records.page(tenant, "enrollment", limit=500, cursor=cursor, filters={"person_id": person_id})
            for doc in page.items:
                e = orjson.loads(doc)
                if e.get("status") != "tobedeleted":
                    out.add(uuid.UUID(e["section_id"]))
            if not page.next_cursor:
                return out
            cursor = page.next_cursor


class NrpsSource(_Lti):
    """``lti.nrps``: see the module docstring."""

    def pull(self, store: Any, route: Route, cursor: str | None) -> Iterator[PageResult]:
        from .tool.names_roles import NrpsClient
        from .tool.roster import sub_system

        tenant = route.tenant
        contexts = [c for c in self.contexts(store, tenant) if c.nrps_url]
        client = NrpsClient(SimpleNamespace(store=store), self.auth(store))  # type: ignore[arg-type]
        for lc in contexts:
            what = f"NRPS context {lc.context_id}"
            try:
                context, members = client.pages(lc.platform, str(lc.nrps_url))
                records = client.records(lc.platform, context, members)
            except TesseraError as exc:
                raise as_failure(exc, what) from None
            system = sub_system(lc.platform)
            listed = {(r.kind, r.native_id) for r in records}
            sections = {r.id for r in records if r.kind == "section"} or ({lc.section_id} if lc.section_id else set())
            gone = []
            for section_id in sections:
                cur = None
                while True:
                    page = store.records.page(tenant, "enrollment", limit=500, cursor=cur, filters={"section_id": section_id})
                    for doc in page.items:
                        e = orjson.loads(doc)
                        if e["source"] == system and e.get("status") != "tobedeleted" and ("enrollment", e["native_id"]) not in listed:
                            gone.append(store.records.get(tenant, "enrollment", uuid.UUID(e["id"])))
                    if not page.next_cursor:
                        break
                    cur = page.next_cursor
            tombstones = [g.model_copy(update={"status": Status.tobedeleted, "updated_at": None}) for g in gone]
            try:
                result = store.records.apply(tenant, records + tombstones)
            except TesseraError as exc:
                raise as_failure(exc, what) from None
            yield PageResult(cursor=None, read=len(members), written=result.created + result.updated, unchanged=result.unchanged,
                             deleted=len(tombstones))


def ags_role(connection: Connection) -> AgsDestination:
    return AgsDestination(connection)


def nrps_role(connection: Connection) -> NrpsSource:
    return NrpsSource(connection)


ROLES = {"lti.ags": ags_role, "lti.nrps": nrps_role}

__all__ = ["ROLES", "AgsDestination", "NrpsSource"]
