"""LTI Assignment and Grade Services 2.0, platform side: line items, scores and results.

Every score a tool posts becomes canonical Evidence (DESIGN section 2): the learner is
the user the tool was launched for (``userId`` is the ``sub`` of Tessera's id_token, the
canonical Person id), the activity is the line item, and the competency comes from the
line item's Alignment, which Tessera makes when a line item's ``resourceId`` or ``tag``
names a CASE competency (its CASE identifier or URI). The evidence id derives from
(line item, user, score timestamp), so the same score posted twice is one evidence.

Rules taken from AGS 2.0:

- 3.2 line items: ``label`` and ``scoreMaximum`` (> 0) are required; ``resourceLinkId``,
  ``resourceId``, ``tag`` filter the container; media types
  ``application/vnd.ims.lis.v2.lineitemcontainer+json`` and ``...lineitem+json``.
- 3.4 scores: ``userId``, ``timestamp``, ``activityProgress`` and ``gradingProgress`` are
  required, ``scoreMaximum`` whenever ``scoreGiven`` is; a score older than the one on
  record must not update the result (answered 409, as the spec allows).
- 3.3 results: the latest result per user, ``application/vnd.ims.lis.v2.resultcontainer+json``.

What becomes evidence (a choice; the spec leaves the platform's use of progress open):
a ``FullyGraded`` score with ``scoreGiven`` is assessment evidence with that score; any
other score whose ``activityProgress`` is ``Submitted`` or ``Completed`` is completion
evidence; the rest (Initialized, Started, InProgress without a final grade) only update
the result. ``scoreGiven`` above ``scoreMaximum`` (extra credit, allowed by 3.4.6) is
kept as raw with ``scaled`` capped at 1.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticError
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from gateway.api.context import AppContext
from gateway.auth import Principal
from gateway.errors import (
    Conflict,
    ErrorDetail,
    MalformedInput,
    NotFound,
    UnsupportedMediaType,
    ValidationError,
)
from gateway.model import (
    CASE_IDENTIFIER_KINDS,
    ActivityRef,
    Alignment,
    Evidence,
    Provenance,
    Score,
    Status,
    utcnow,
)
from gateway.model.base import Timestamp
from gateway.model.evidence import EvidenceKind
from gateway.store.group_commit import GroupCommit

from ..claims import AGS_SCOPES
from .common import platform_issuer
from .tables import lti_line_items, lti_results

SCOPE_LINEITEM, SCOPE_LINEITEM_READ, SCOPE_RESULT_READ, SCOPE_SCORE = AGS_SCOPES
LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
UUID_IN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class LineItemIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    label: str = Field(min_length=1, max_length=1024)
    scoreMaximum: float = Field(gt=0)
    resourceId: str | None = Field(default=None, max_length=1024)
    resourceLinkId: str | None = Field(default=None, max_length=255)
    tag: str | None = Field(default=None, max_length=1024)
    startDateTime: Timestamp | None = None
    endDateTime: Timestamp | None = None


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userId: str = Field(min_length=1, max_length=255)
    scoreGiven: float | None = Field(default=None, ge=0)
    scoreMaximum: float | None = Field(default=None, gt=0)
    comment: str | None = None
    timestamp: Timestamp
    activityProgress: Literal["Initialized", "Started", "InProgress", "Submitted", "Completed"]
    gradingProgress: Literal["FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"]

    @model_validator(mode="after")
    def _maximum(self) -> ScoreIn:
        if self.scoreGiven is not None and self.scoreMaximum is None:
            raise ValueError("scoreMaximum is required when scoreGiven is present (AGS 2.0 3.4.6)")
        return self


@dataclass(frozen=True)
class LineItem:
    id: uuid.UUID
    tenant: str
    client_id: str
    context_id: uuid.UUID
    label: str
    score_maximum: float
    resource_id: str | None
    resource_link_id: str | None
    tag: str | None
    start_at: datetime | None
    end_at: datetime | None
    competency_id: uuid.UUID | None
    alignment_id: uuid.UUID | None


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedInput("the body is not JSON") from None
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        errors = [ErrorDetail(e["msg"], location="body", field=".".join(str(p) for p in e["loc"]) or None) for e in exc.errors()]
        raise ValidationError(f"the {model.__name__.removesuffix('In').lower()} is invalid", errors=errors) from None


def _media_type(request: Request, *expected: str) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in expected:
        raise UnsupportedMediaType(f"this resource takes {expected[0]}, not {ctype or 'no content type'}")


class LineItems:
    """Line items and results of one tenant, and the records made from them."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.engine = ctx.store.engine
        li, res = lti_line_items, lti_results
        # AGS 2.0 3.4: a score is for a member of the line item's context. Canvas and Moodle
        # refuse a score for anyone else (Canvas: 422 "User not found in course"); the
        # membership comes with the line item in the same query, so it costs no round trip.
        member = ctx.store.memberships.active_member(
            tenant=li.c.tenant, section_id=li.c.context_id, person_id=bindparam("person")
        ).label("member")
        self._target_query = (
            select(li, res.c.timestamp.label("last_timestamp"), member)
            .outerjoin(res, (res.c.line_item_id == li.c.id) & (res.c.user_id == bindparam("user_id")))
            .where(li.c.id == bindparam("lid"), li.c.tenant == bindparam("tenant"), li.c.client_id == bindparam("client_id"),
                   li.c.context_id == bindparam("context_id"))
        )
        key = (res.c.line_item_id == bindparam("k_lid")) & (res.c.user_id == bindparam("k_user"))
        self._last = select(res.c.timestamp).where(key)
        self._scores = GroupCommit(ctx.store.records)
        self._insert_result = insert(res)
        self._update_result = update(res).where(key).values(
            {c: bindparam(f"v_{c}") for c in ("score_given", "score_maximum", "comment", "activity_progress", "grading_progress", "timestamp", "evidence_id")}
        )

    # --- competencies ---

    def competency_named(self, tenant: str, *names: str | None) -> uuid.UUID | None:
        """The competency a resourceId or tag names: its CASE URI or identifier (a URI that
        ends in the identifier counts too, as CASE URIs do)."""
        for name in names:
            if not name:
                continue
            values = [name, *(m.lower() for m in UUID_IN.findall(name))]
            found = self.ctx.store.identities.first_carrying(tenant, "competency", CASE_IDENTIFIER_KINDS, values)
            if found is not None:
                return found
        return None

    # --- line items ---

    def create(self, principal: Principal, context_id: uuid.UUID, item: LineItemIn, previous: LineItem | None = None) -> LineItem:
        """Create (or replace ``previous``) a line item with its Alignment, in one transaction.

        The Alignment follows the line item: made when its resourceId or tag names a
        competency, moved when they name another, marked ``tobedeleted`` when they name
        none any more."""
        tenant = principal.tenant
        lid = previous.id if previous else uuid.uuid4()
        competency = self.competency_named(tenant, item.resourceId, item.tag)
        records = []
        if competency is not None:
            records.append(_alignment(principal, lid, competency))
        elif previous is not None and previous.competency_id is not None:
            records.append(_alignment(principal, lid, previous.competency_id, Status.tobedeleted))
        row = {
            "tenant": tenant, "client_id": principal.client_id, "context_id": context_id, "label": item.label,
            "score_maximum": item.scoreMaximum, "resource_id": item.resourceId, "resource_link_id": item.resourceLinkId,
            "tag": item.tag, "start_at": item.startDateTime, "end_at": item.endDateTime, "competency_id": competency,
            "alignment_id": records[0].id if competency is not None else None,
        }

        def write(conn: Connection) -> None:
            if previous is None:
                conn.execute(insert(lti_line_items).values(id=lid, created_at=utcnow(), **row))
            else:
                conn.execute(update(lti_line_items).where(lti_line_items.c.id == lid).values(**row))

        self.ctx.store.records.apply(tenant, records, within=write)
        return self.get(principal, context_id, lid)

    def get(self, principal: Principal, context_id: uuid.UUID, lid: uuid.UUID) -> LineItem:
        """The tool's line item in this context; NotFound for anyone else's."""
        return self._target(principal, context_id, lid, None)[0]

    def _target(self, principal: Principal, context_id: uuid.UUID, lid: uuid.UUID, user_id: str | None) -> tuple[LineItem, datetime | None]:
        """The line item and, for ``user_id``, the timestamp of the result on record: one
        query, built once (the score path runs it for every score). A ``user_id`` that is not
        an active member of the context is refused (422, naming userId)."""
        person = _person_id(user_id) if user_id is not None else None
        params = {"lid": lid, "tenant": principal.tenant, "client_id": principal.client_id, "context_id": context_id,
                  "user_id": user_id, "person": person}
        with self.engine.connect() as conn:
            row = conn.execute(self._target_query, params).first()
        if row is None:
            raise NotFound(f"no line item {lid} in this context")
        if user_id is not None and not row.member:
            raise _not_member()
        return _line_item(row), row.last_timestamp

    def list(self, principal: Principal, context_id: uuid.UUID, filters: dict[str, str], limit: int, offset: int) -> list[LineItem]:
        li = lti_line_items
        q = select(li).where(li.c.tenant == principal.tenant, li.c.client_id == principal.client_id, li.c.context_id == context_id)
        for param, col in (("resource_link_id", li.c.resource_link_id), ("resource_id", li.c.resource_id), ("tag", li.c.tag)):
            if param in filters:
                q = q.where(col == filters[param])
        q = q.order_by(li.c.created_at, li.c.id).offset(offset).limit(limit + 1)
        with self.engine.connect() as conn:
            return [_line_item(r) for r in conn.execute(q)]

    def delete(self, principal: Principal, item: LineItem) -> None:
        """Delete a line item and its results; its Alignment is marked ``tobedeleted`` and
        the evidence made from its scores stays (evidence is append-only)."""
        records = [_alignment(principal, item.id, item.competency_id, Status.tobedeleted)] if item.competency_id else []

        def write(conn: Connection) -> None:
            conn.execute(delete(lti_results).where(lti_results.c.line_item_id == item.id))
            conn.execute(delete(lti_line_items).where(lti_line_items.c.id == item.id))

        self.ctx.store.records.apply(principal.tenant, records, within=write)

    # --- scores and results ---

    def post_score(self, principal: Principal, context_id: uuid.UUID, item_id: uuid.UUID, score: ScoreIn, payload: bytes,
                   lineitem_url: str) -> None:
        """AGS 2.0 3.4: record the result; make the evidence; both in one transaction.

        A score with the timestamp already on record is a re-delivery and changes nothing
        (the evidence id derives from that timestamp, so it is the same evidence)."""
        item, last = self._target(principal, context_id, item_id, score.userId)
        if last == score.timestamp:
            return
        if last is not None and score.timestamp < last:
            raise _older(last)
        tenant, source = principal.tenant, _source(principal.client_id)
        evidence = _evidence(tenant, source, item, score, payload, f"{lineitem_url}/{item.id}")
        result = {
            "score_given": score.scoreGiven, "score_maximum": score.scoreMaximum, "comment": score.comment,
            "activity_progress": score.activityProgress, "grading_progress": score.gradingProgress,
            "timestamp": score.timestamp, "evidence_id": evidence.id if evidence else None,
        }
        key = {"k_lid": item.id, "k_user": score.userId}

        def write(conn: Connection) -> None:
            # checked again under the write transaction: another request may have won the race
            now = conn.scalar(self._last, key)
            if now is None:
                conn.execute(self._insert_result, {"line_item_id": item.id, "user_id": score.userId, **result})
            elif score.timestamp < now:
                raise _older(now)
            else:
                conn.execute(self._update_result, {**key, **{f"v_{k}": v for k, v in result.items()}})

        self._scores.submit(tenant, [evidence] if evidence is not None else [], write)

    def results(self, item: LineItem, user_id: str | None, limit: int, offset: int) -> list[Any]:
        res = lti_results
        q = select(res).where(res.c.line_item_id == item.id)
        if user_id:
            q = q.where(res.c.user_id == user_id)
        q = q.order_by(res.c.user_id).offset(offset).limit(limit + 1)
        with self.engine.connect() as conn:
            return list(conn.execute(q))


def _alignment(principal: Principal, lid: uuid.UUID, competency: uuid.UUID, status: Status = Status.active) -> Alignment:
    source = _source(principal.client_id)
    return Alignment(tenant=principal.tenant, source=source, native_id=f"lineitem:{lid}", target_system=source,
                     target_kind="line_item", target_id=str(lid), competency_id=competency, status=status)


def _person_id(user_id: str) -> uuid.UUID | None:
    """The Person a userId names: the ``sub`` this platform puts in its launches is the id."""
    try:
        return uuid.UUID(user_id)
    except ValueError:
        return None


def _not_member() -> ValidationError:
    return ValidationError("unknown user", errors=[ErrorDetail(
        "userId is not an active member of this context (a user this platform launched into it)", location="body", field="userId")])


def _older(last: datetime) -> Conflict:
    return Conflict(f"a score with a later timestamp ({last.isoformat()}) is already on record for this user")


def _source(client_id: str) -> str:
    return f"lti-tool:{client_id}"[:128]


def _line_item(row: Any) -> LineItem:
    return LineItem(row.id, row.tenant, row.client_id, row.context_id, row.label, row.score_maximum, row.resource_id,
                    row.resource_link_id, row.tag, row.start_at, row.end_at, row.competency_id, row.alignment_id)


def _evidence(tenant: str, source: str, item: LineItem, score: ScoreIn, payload: bytes, lineitem_url: str) -> Evidence | None:
    graded = score.gradingProgress == "FullyGraded" and score.scoreGiven is not None
    done = score.activityProgress in ("Submitted", "Completed")
    if not graded and not done:
        return None
    learner = _person_id(score.userId)
    if learner is None:
        raise _not_member()
    native = f"{item.id}:{score.userId}:{score.timestamp.isoformat()}"
    value = None
    if graded:
        assert score.scoreGiven is not None and score.scoreMaximum is not None
        if score.scoreGiven <= score.scoreMaximum:
            value = Score(raw=score.scoreGiven, min=0, max=score.scoreMaximum)
        else:
            value = Score(raw=score.scoreGiven, min=0, scaled=1.0)
    return Evidence(
        tenant=tenant, source=source, native_id=native, learner_id=learner,
        competency_id=item.competency_id, alignment_id=item.alignment_id,
        activity=ActivityRef(system=source, id=lineitem_url, title=item.label[:1024]),
        evidence_kind=EvidenceKind.assessment if graded else EvidenceKind.completion,
        score=value, completion=True if done else None, observed_at=score.timestamp,
        provenance=Provenance(standard="lti-ags", version="2.0", system=source, native_id=native,
                              payload_sha256=hashlib.sha256(payload).hexdigest(), received_at=utcnow()),
        extensions={"lti": {"gradingProgress": score.gradingProgress, "activityProgress": score.activityProgress,
                            **({"scoreMaximum": score.scoreMaximum} if score.scoreMaximum is not None else {}),
                            **({"comment": score.comment} if score.comment else {})}},
    )


def _wire(item: LineItem, url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": url, "label": item.label, "scoreMaximum": item.score_maximum}
    for key, value in (("resourceId", item.resource_id), ("resourceLinkId", item.resource_link_id), ("tag", item.tag)):
        if value is not None:
            out[key] = value
    if item.start_at:
        out["startDateTime"] = item.start_at.isoformat()
    if item.end_at:
        out["endDateTime"] = item.end_at.isoformat()
    return out


def _json(body: Any, media_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


def _paging(request: Request) -> tuple[int, int]:
    try:
        limit = int(request.query_params.get("limit", "100"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise ValidationError("bad paging", errors=[ErrorDetail("limit and offset must be integers", location="query")]) from None
    if not 1 <= limit <= 1000 or offset < 0:
        raise ValidationError("bad paging", errors=[ErrorDetail("limit must be 1..1000 and offset >= 0", location="query")])
    return limit, offset


def _next_link(request: Request, limit: int, offset: int) -> dict[str, str]:
    url = request.url.include_query_params(limit=limit, offset=offset + limit)
    return {"Link": f'<{url}>; rel="next"'}


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(tags=["lti ags"])
    store = LineItems(ctx)
    read_items = ctx.require(SCOPE_LINEITEM, SCOPE_LINEITEM_READ)
    write_items = ctx.require(SCOPE_LINEITEM)
    scores = ctx.require(SCOPE_SCORE)
    results = ctx.require(SCOPE_RESULT_READ)
    base = "/lti/platform/ags/contexts/{context_id}/lineitems"

    def container_url(request: Request, context_id: uuid.UUID) -> str:
        return f"{platform_issuer(ctx, request)}/lti/platform/ags/contexts/{context_id}/lineitems"

    def context(principal: Principal, context_id: uuid.UUID) -> uuid.UUID:
        ctx.store.records.get_json(principal.tenant, "section", context_id)  # NotFound for other tenants' sections
        return context_id

    @router.get(base, summary="AGS 2.0 line item container")
    async def list_items(context_id: uuid.UUID, request: Request) -> Response:
        principal = await read_items(request)
        limit, offset = _paging(request)
        filters = {k: v for k, v in request.query_params.items() if k in ("resource_link_id", "resource_id", "tag")}
        items = await run_in_threadpool(lambda: store.list(principal, context(principal, context_id), filters, limit, offset))
        url = container_url(request, context_id)
        headers = _next_link(request, limit, offset) if len(items) > limit else None
        return _json([_wire(i, f"{url}/{i.id}") for i in items[:limit]], LINEITEM_CONTAINER, headers=headers)

    @router.post(base, summary="AGS 2.0: create a line item")
    async def create_item(context_id: uuid.UUID, request: Request) -> Response:
        principal = await write_items(request)
        _media_type(request, LINEITEM, "application/json")
        item = _parse(LineItemIn, await request.body())
        created = await run_in_threadpool(lambda: store.create(principal, context(principal, context_id), item))
        url = f"{container_url(request, context_id)}/{created.id}"
        return _json(_wire(created, url), LINEITEM, 201, {"Location": url})

    @router.get(base + "/{item_id}", summary="AGS 2.0: one line item")
    async def get_item(context_id: uuid.UUID, item_id: uuid.UUID, request: Request) -> Response:
        principal = await read_items(request)
        item = await run_in_threadpool(store.get, principal, context_id, item_id)
        return _json(_wire(item, f"{container_url(request, context_id)}/{item.id}"), LINEITEM)

    @router.put(base + "/{item_id}", summary="AGS 2.0: update a line item")
    async def put_item(context_id: uuid.UUID, item_id: uuid.UUID, request: Request) -> Response:
        principal = await write_items(request)
        _media_type(request, LINEITEM, "application/json")
        item = _parse(LineItemIn, await request.body())
        previous = await run_in_threadpool(store.get, principal, context_id, item_id)
        updated = await run_in_threadpool(store.create, principal, context_id, item, previous)
        return _json(_wire(updated, f"{container_url(request, context_id)}/{updated.id}"), LINEITEM)

    @router.delete(base + "/{item_id}", summary="AGS 2.0: delete a line item")
    async def delete_item(context_id: uuid.UUID, item_id: uuid.UUID, request: Request) -> Response:
        principal = await write_items(request)
        await run_in_threadpool(lambda: store.delete(principal, store.get(principal, context_id, item_id)))
        return Response(status_code=204)

    @router.post(base + "/{item_id}/scores", summary="AGS 2.0: publish a score (becomes Evidence)")
    async def post_score(context_id: uuid.UUID, item_id: uuid.UUID, request: Request) -> Response:
        principal = await scores(request)
        _media_type(request, SCORE, "application/json")
        payload = await request.body()
        score = _parse(ScoreIn, payload)
        url = container_url(request, context_id)

        await run_in_threadpool(store.post_score, principal, context_id, item_id, score, payload, url)
        return Response(status_code=204)

    @router.get(base + "/{item_id}/results", summary="AGS 2.0: results of a line item")
    async def get_results(context_id: uuid.UUID, item_id: uuid.UUID, request: Request) -> Response:
        principal = await results(request)
        limit, offset = _paging(request)
        item = await run_in_threadpool(store.get, principal, context_id, item_id)
        rows = await run_in_threadpool(store.results, item, request.query_params.get("user_id"), limit, offset)
        url = f"{container_url(request, context_id)}/{item.id}"
        body = [_result(r, url) for r in rows[:limit]]
        headers = _next_link(request, limit, offset) if len(rows) > limit else None
        return _json(body, RESULT_CONTAINER, headers=headers)

    return router


def _result(row: Any, lineitem_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"{lineitem_url}/results/{row.user_id}", "scoreOf": lineitem_url, "userId": row.user_id}
    if row.score_given is not None:
        out["resultScore"] = row.score_given
        out["resultMaximum"] = row.score_maximum
    if row.comment:
        out["comment"] = row.comment
    return out
