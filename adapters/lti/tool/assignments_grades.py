"""LTI Assignment and Grade Services 2.0, tool side: mastery into the platform's gradebook.

Each Tessera competency gets a line item (AGS 3.2) tagged with it: ``resourceId`` is the
competency's CASE identifier and ``tag`` marks the column as a Tessera competency
(``COMPETENCY_TAG``; ``deep_link`` puts the same on the columns a platform creates), so finding "the column for this competency" is one
filtered GET (3.2.4 query parameters ``resource_id`` and ``tag``) and never creates a
duplicate. A learner's mastery goes in as a score (3.4: ``scoreGiven`` of
``scoreMaximum``, ``activityProgress`` Completed, ``gradingProgress`` FullyGraded, a
timestamp with sub-second precision); results are read back from the result service
(3.3). Every call carries the service's own media type and an access token for the scope
it needs, and is only made when the launch's AGS claim granted that scope.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import Principal
from gateway.errors import UpstreamError, ValidationError
from gateway.model import utcnow

from ..claims import C_AGS, SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_SCORE
from ..claims import SCOPE_RESULT_READONLY as SCOPE_RESULT
from .contexts import launch_context
from .message_launch import Launch
from .platforms import Platform
from .roster import sub_system
from .service_auth import ServiceAuth

if TYPE_CHECKING:
    from gateway.api.context import AppContext

LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"
#: the line item tag that marks a gradebook column as a Tessera competency (AGS 3.2 tag)
COMPETENCY_TAG = "tessera:competency"
#: the points a competency column is out of: mastery 0..1 is posted as 0..MASTERY_POINTS
MASTERY_POINTS = 100
MAX_PAGES = 1000


def competency_ref(doc: dict[str, Any]) -> str:
    """A competency's CASE identifier (the line item's resourceId): the CFItem URI, else
    its GUID, else Tessera's id."""
    return str(doc.get("uri") or doc.get("guid") or doc["id"])


def competency_label(doc: dict[str, Any]) -> str:
    return ((doc.get("code") + ": " if doc.get("code") else "") + doc["statement"])[:255]


@dataclass(frozen=True)
class AgsEndpoint:
    """The AGS claim of a launch (AGS 3.1): granted scopes and the service URLs."""

    scopes: frozenset[str]
    lineitems: str | None
    lineitem: str | None

    @classmethod
    def from_launch(cls, launch: Launch) -> AgsEndpoint:
        claim = launch.claim(C_AGS)
        if not claim:
            raise ValidationError("the launch carries no AGS endpoint claim: the platform offers no gradebook here")
        scopes = claim.get("scope") if isinstance(claim.get("scope"), list) else []
        return cls(frozenset(s for s in scopes if isinstance(s, str)), claim.get("lineitems"), claim.get("lineitem"))


def _below(url: str, segment: str, query: dict[str, str] | None = None) -> str:
    """``{lineitem}/scores``: the path grows, the line item URL's own query stays (AGS 3.4)."""
    parts = urlsplit(url)
    q = "&".join(x for x in (parts.query, urlencode(query or {})) if x)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + segment, query=q))


def _json(r: httpx.Response, what: str) -> Any:
    if r.status_code not in (200, 201):
        raise UpstreamError(f"the platform's {what} answered HTTP {r.status_code}")
    try:
        return orjson.loads(r.content)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"the platform's {what} did not answer JSON") from None


class AgsClient:
    def __init__(self, auth: ServiceAuth, platform: Platform, endpoint: AgsEndpoint) -> None:
        self.auth, self.platform, self.endpoint = auth, platform, endpoint

    def _need(self, *any_of: str) -> str:
        for scope in any_of:
            if scope in self.endpoint.scopes:
                return scope
        raise ValidationError(f"the platform did not grant the AGS scope {any_of[0]}")

    def _container(self) -> str:
        if not self.endpoint.lineitems:
            raise ValidationError("the AGS claim has no lineitems URL: Tessera cannot manage columns here")
        return self.endpoint.lineitems

    def _pages(self, url: str, scope: str, accept: str, what: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged container, following Link rel="next" (AGS 3.2.4.1)."""
        for _ in range(MAX_PAGES):
            r = self.auth.request(self.platform, [scope], "GET", url, headers={"Accept": accept})
            items = _json(r, what)
            if not isinstance(items, list):
                raise UpstreamError(f"the platform's {what} is not a JSON array")
            yield from (i for i in items if isinstance(i, dict))
            nxt = r.links.get("next", {}).get("url")
            if not nxt:
                return
            url = nxt
        raise UpstreamError(f"the platform's {what} has more than {MAX_PAGES} pages")

    def line_items(self, *, resource_id: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        scope = self._need(SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY)
        query = {k: v for k, v in (("resource_id", resource_id), ("tag", tag)) if v}
        url = self._container()
        if query:
            parts = urlsplit(url)
            url = urlunsplit(parts._replace(query="&".join(x for x in (parts.query, urlencode(query)) if x)))
        return list(self._pages(url, scope, LINEITEMS, "line item container"))

    def create_line_item(self, *, label: str, resource_id: str, tag: str, score_maximum: float = MASTERY_POINTS,
                         resource_link_id: str | None = None) -> dict[str, Any]:
        """AGS 3.2.5: POST a new line item to the container."""
        scope = self._need(SCOPE_LINEITEM)
        item: dict[str, Any] = {"label": label, "scoreMaximum": score_maximum, "resourceId": resource_id, "tag": tag}
        if resource_link_id:
            item["resourceLinkId"] = resource_link_id
        r = self.auth.request(self.platform, [scope], "POST", self._container(), content=orjson.dumps(item),
                              headers={"Content-Type": LINEITEM, "Accept": LINEITEM})
        made = _json(r, "line item container")
        if not isinstance(made, dict) or not isinstance(made.get("id"), str):
            raise UpstreamError("the platform's new line item has no id")
        return made

    def competency_line_item(self, competency_ref: str, label: str, tag: str) -> dict[str, Any]:
        """The competency's column: found by resource_id + tag, created when missing."""
        found = self.line_items(resource_id=competency_ref, tag=tag)
        return found[0] if found else self.create_line_item(label=label, resource_id=competency_ref, tag=tag)

    def post_score(self, line_item_url: str, user_id: str, score_given: float, score_maximum: float, *,
                   comment: str | None = None, timestamp: datetime | None = None) -> None:
        """AGS 3.4: publish one learner's score to a line item."""
        scope = self._need(SCOPE_SCORE)
        score: dict[str, Any] = {
            "userId": user_id, "scoreGiven": score_given, "scoreMaximum": score_maximum,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded",
            "timestamp": (timestamp or utcnow()).isoformat(timespec="microseconds"),
        }
        if comment:
            score["comment"] = comment
        r = self.auth.request(self.platform, [scope], "POST", _below(line_item_url, "scores"), idempotent=True, content=orjson.dumps(score),
                              headers={"Content-Type": SCORE})
        if r.status_code not in (200, 201, 202, 204):
            raise UpstreamError(f"the platform's score service answered HTTP {r.status_code}")

    def post_mastery(self, competency_ref: str, label: str, tag: str, user_id: str, value: float) -> dict[str, Any]:
        """A learner's mastery (0..1) of a competency, into the competency's column."""
        if not 0.0 <= value <= 1.0:
            raise ValidationError("mastery is a value between 0 and 1")
        item = self.competency_line_item(competency_ref, label, tag)
        maximum = float(item.get("scoreMaximum") or MASTERY_POINTS)
        self.post_score(item["id"], user_id, round(value * maximum, 4), maximum)
        return item

    def results(self, line_item_url: str, *, user_id: str | None = None) -> list[dict[str, Any]]:
        """AGS 3.3: the results of a line item (one learner's with ``user_id``)."""
        scope = self._need(SCOPE_RESULT)
        url = _below(line_item_url, "results", {"user_id": user_id} if user_id else None)
        return list(self._pages(url, scope, RESULTS, "result service"))


class MasteryIn(BaseModel):
    """A learner's mastery of a competency, to post to the platform's gradebook."""

    model_config = ConfigDict(extra="forbid")

    person_id: uuid.UUID
    competency_id: uuid.UUID
    value: float = Field(ge=0.0, le=1.0, description="mastery, 0..1")


def post_mastery(ctx: AppContext, auth: ServiceAuth, tenant: str, platform_id: uuid.UUID, context_id: str, body: MasteryIn) -> dict[str, Any]:
    """Mastery of one learner into the competency's column of one LMS course."""
    lc = launch_context(ctx, tenant, platform_id, context_id)
    if not lc.ags_lineitems:
        raise ValidationError("the platform offered no gradebook (AGS lineitems) in this context")
    doc = orjson.loads(ctx.store.records.get_json(tenant, "competency", body.competency_id))
    person = ctx.store.records.get(tenant, "person", body.person_id)
    system = sub_system(lc.platform)
    user_id = next((i.value for i in person.identifiers if i.kind == "lti.sub" and i.system == system), None)
    if user_id is None:
        raise ValidationError("this person has never launched Tessera from this platform: the platform's user id is unknown")
    client = AgsClient(auth, lc.platform, AgsEndpoint(lc.ags_scopes, lc.ags_lineitems, None))
    item = client.post_mastery(competency_ref(doc), competency_label(doc), COMPETENCY_TAG, user_id, body.value)
    return {"line_item": item["id"], "user_id": user_id, "score_given": round(body.value * float(item.get("scoreMaximum") or MASTERY_POINTS), 4)}


def build_router(ctx: AppContext, auth: ServiceAuth) -> APIRouter:
    router = APIRouter(tags=["lti"])
    admin = Depends(ctx.require("admin"))

    @router.post("/v1/lti/platforms/{platform_id}/contexts/{context_id}/scores",
                 summary="Post a learner's mastery to the LMS gradebook of a course (LTI AGS)")
    def scores(platform_id: uuid.UUID, context_id: str, body: MasteryIn, principal: Principal = admin) -> dict[str, Any]:
        return post_mastery(ctx, auth, principal.tenant, platform_id, context_id, body)

    return router


__all__ = ["COMPETENCY_TAG", "MASTERY_POINTS", "AgsClient", "AgsEndpoint", "MasteryIn", "build_router", "competency_ref", "post_mastery"]
