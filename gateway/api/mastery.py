"""The learner-facing canonical API: mastery with its explanation, what comes next, the
profile, learning plans; and the tenant's mastery rules and recompute.

Rules: ``POST`` creates one per scope (409 when the scope has one), ``PUT``/``DELETE
/mastery/rules/{id}`` replace or retire it (``gateway.mastery.rules.RuleBook``); each change
starts a recompute of the states the rule decides in a background thread and answers with
it (``Link: rel=monitor``, ``GET /mastery/recomputes/{id}``: status, learners done of total,
states written). ``POST /mastery/recompute`` still recomputes in the request.

Who sees what: a system client is governed by its scopes (``mastery.readonly`` to read,
``mastery.write`` to edit plans and rules). A client bound to a person (``tessera clients
create --person ID``: a learner's, guardian's or teacher's app) additionally sees only the
learners it stands in a relation to: itself, a learner listing it among their agents
(guardian), or a learner in a section it teaches; only teachers edit plans. Other learners
answer 404, exactly like an unknown id, so ids cannot be probed.

Include it in ``gateway/api/app.py`` with ``app.include_router(mastery.build_router(ctx))``.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..auth import Principal
from ..errors import ErrorDetail, MalformedInput, NotFound, ScopeError, ValidationError
from ..mastery.attach import engine_of
from ..mastery.learners import Learners
from ..mastery.rules import RULE_FIELDS, RuleBook, recomputes_of
from ..model import LearningPlan, MasteryRule, Record, Status, pydantic_errors
from ..store import tables as t
from .context import AppContext

READ, WRITE = "mastery.readonly", "mastery.write"
PLAN_FIELDS = {"title", "plan_status", "targets", "pathway", "author", "notes"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise MalformedInput(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedInput("the body must be a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValidationError("unknown fields", errors=[ErrorDetail(f"not allowed; allowed: {', '.join(sorted(allowed))}", field=k) for k in unknown])
    return doc


def plan_id_of(plan: LearningPlan) -> uuid.UUID:
    """A validated record always has its id (the model derives it when it is not given)."""
    if plan.id is None:
        raise TypeError("a learning plan without an id")
    return plan.id


def _validate(cls: type[Record], doc: dict[str, Any]) -> Any:
    from pydantic import ValidationError as PydanticValidationError

    try:
        return cls.model_validate(doc)
    except PydanticValidationError as exc:
        raise ValidationError(f"invalid {cls.KIND.replace('_', ' ')}", errors=pydantic_errors(exc)) from None


def _uuid_param(request: Request, name: str) -> uuid.UUID | None:
    v = request.query_params.get(name)
    if v is None:
        return None
    try:
        return uuid.UUID(v)
    except ValueError:
        raise ValidationError("invalid query", errors=[ErrorDetail("must be a UUID", location="query", field=name)]) from None


def build_router(ctx: AppContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["mastery"])
    learners = Learners(ctx.store)
    book = RuleBook(engine_of(ctx.store))
    jobs = recomputes_of(book.engine)
    read, write = Depends(ctx.require(READ)), Depends(ctx.require(WRITE))

    def visible(principal: Principal, learner_id: uuid.UUID, *, edit: bool = False) -> None:
        if principal.person_id is None:
            return
        rel = learners.relation(principal.tenant, principal.person_id, learner_id)
        if rel is None:
            raise NotFound("no such learner", errors=[ErrorDetail(f"{learner_id} is not known in this tenant", field="learner_id")])
        if edit and rel != "teacher":
            raise ScopeError("only a learner's teachers edit their plans", required=[WRITE])

    @router.get("/learners/{learner_id}/mastery", summary="The learner's mastery states (optionally one framework's)")
    def states(learner_id: uuid.UUID, request: Request, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        fw = _uuid_param(request, "framework_id")
        with ctx.store.engine.connect() as conn:
            learners._require(conn, principal.tenant, t.people, learner_id, "learner_id")
            found = learners.states(conn, principal.tenant, learner_id)
            model = engine_of(ctx.store).model(conn, principal.tenant)
        items = [orjson.loads(s.model_dump_json(exclude_none=True)) for c, s in sorted(found.items(), key=lambda kv: str(kv[0]))
                 if fw is None or model.framework_of.get(c) == fw]
        return _json({"learner_id": str(learner_id), "items": items})

    @router.get("/learners/{learner_id}/mastery/{competency_id}", summary="One state and why: rule, scale, every evidence item and its weight")
    def explain(learner_id: uuid.UUID, competency_id: uuid.UUID, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        return _json(learners.explain(principal.tenant, learner_id, competency_id))

    @router.get("/learners/{learner_id}/next", summary="Next competencies: prerequisites mastered, not yet mastered")
    def next_up(learner_id: uuid.UUID, request: Request, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        items = learners.next_competencies(principal.tenant, learner_id, _uuid_param(request, "framework_id"))
        return _json({"learner_id": str(learner_id), "items": items})

    @router.get("/learners/{learner_id}/profile", summary="Framework trees with states, evidence trail, next competencies, pace")
    def profile(learner_id: uuid.UUID, request: Request, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        return _json(learners.profile(principal.tenant, learner_id, _uuid_param(request, "framework_id")))

    # --- plans -------------------------------------------------------------------------------

    def plans_of(tenant: str, learner_id: uuid.UUID) -> list[str]:
        page = ctx.store.records.page(tenant, "learning_plan", limit=500, filters={"learner_id": learner_id, "status": "active"})
        return page.items

    def plan_record(principal: Principal, learner_id: uuid.UUID, native_id: str, doc: dict[str, Any]) -> LearningPlan:
        plan = _validate(LearningPlan, {**doc, "tenant": principal.tenant, "source": "api", "native_id": native_id, "learner_id": str(learner_id)})
        learners.check_plan(plan)
        return plan

    def stored_plan(principal: Principal, learner_id: uuid.UUID, plan_id: uuid.UUID) -> LearningPlan:
        plan = ctx.store.records.get(principal.tenant, "learning_plan", plan_id)
        if not isinstance(plan, LearningPlan) or plan.learner_id != learner_id or plan.status is not Status.active:
            raise NotFound("no such plan for this learner", errors=[ErrorDetail(f"{plan_id}", field="plan_id")])
        return plan

    @router.get("/learners/{learner_id}/plans", summary="The learner's learning plans")
    def list_plans(learner_id: uuid.UUID, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        with ctx.store.engine.connect() as conn:
            learners._require(conn, principal.tenant, t.people, learner_id, "learner_id")
        return Response('{"items":[' + ",".join(plans_of(principal.tenant, learner_id)) + "]}", media_type="application/json")

    @router.post("/learners/{learner_id}/plans", status_code=201, summary="Set a learning plan (teachers)")
    async def create_plan(learner_id: uuid.UUID, request: Request, principal: Principal = write) -> Response:
        visible(principal, learner_id, edit=True)
        plan = plan_record(principal, learner_id, uuid.uuid4().hex, await _body(request, PLAN_FIELDS))
        ctx.store.records.apply(principal.tenant, [plan])
        return Response(ctx.store.records.get_json(principal.tenant, "learning_plan", plan_id_of(plan)), status_code=201,
                        media_type="application/json", headers={"Location": f"/v1/learners/{learner_id}/plans/{plan.id}"})

    @router.get("/learners/{learner_id}/plans/{plan_id}", summary="One learning plan")
    def get_plan(learner_id: uuid.UUID, plan_id: uuid.UUID, principal: Principal = read) -> Response:
        visible(principal, learner_id)
        stored_plan(principal, learner_id, plan_id)
        return Response(ctx.store.records.get_json(principal.tenant, "learning_plan", plan_id), media_type="application/json")

    @router.put("/learners/{learner_id}/plans/{plan_id}", summary="Replace a learning plan (teachers)")
    async def put_plan(learner_id: uuid.UUID, plan_id: uuid.UUID, request: Request, principal: Principal = write) -> Response:
        visible(principal, learner_id, edit=True)
        old = stored_plan(principal, learner_id, plan_id)
        plan = plan_record(principal, learner_id, old.native_id, await _body(request, PLAN_FIELDS))
        ctx.store.records.apply(principal.tenant, [plan])
        return Response(ctx.store.records.get_json(principal.tenant, "learning_plan", plan_id_of(plan)), media_type="application/json")

    @router.delete("/learners/{learner_id}/plans/{plan_id}", status_code=204, summary="Withdraw a learning plan (teachers)")
    def delete_plan(learner_id: uuid.UUID, plan_id: uuid.UUID, principal: Principal = write) -> Response:
        visible(principal, learner_id, edit=True)
        old = stored_plan(principal, learner_id, plan_id)
        ctx.store.records.apply(principal.tenant, [old.model_copy(update={"status": Status.tobedeleted, "updated_at": None})])
        return Response(status_code=204)

    # --- rules and recompute -------------------------------------------------------------------

    @router.get("/mastery/rules", summary="The tenant's mastery rules (the defaults apply where none is set)")
    def rules(principal: Principal = read) -> Response:
        page = ctx.store.records.page(principal.tenant, "mastery_rule", limit=500, filters={"status": "active"})
        return Response('{"items":[' + ",".join(page.items) + "]}", media_type="application/json")

    def by(principal: Principal) -> str:
        return f"client:{principal.client_id}"

    def changed(rule: MasteryRule, principal: Principal, action: str, status: int, location: str | None = None) -> Response:
        """The stored rule and the recompute its change started (``Link: rel=monitor``)."""
        job = jobs.start(principal.tenant, book.recompute_scope(principal.tenant, rule), reason=f"rule {rule.id} {action}")
        monitor = f"/v1/mastery/recomputes/{job.id}"
        headers = {"Location": location or monitor, "Link": f'<{monitor}>; rel="monitor"'}
        assert rule.id is not None  # a stored record always has its id
        body = {"rule": orjson.loads(ctx.store.records.get_json(principal.tenant, "mastery_rule", rule.id)), "recompute": job.as_json()}
        return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)

    @router.post("/mastery/rules", status_code=201, summary="Set the rule of the tenant, a framework or one competency; recomputes its states")
    async def set_rule(request: Request, principal: Principal = write) -> Response:
        rule = book.create(principal.tenant, await _body(request, set(RULE_FIELDS)), by=by(principal))
        return changed(rule, principal, "created", 201, location=f"/v1/mastery/rules/{rule.id}")

    @router.get("/mastery/rules/{rule_id}", summary="One mastery rule")
    def get_rule(rule_id: uuid.UUID, principal: Principal = read) -> Response:
        book.get(principal.tenant, rule_id)  # 404 unless active and the tenant's
        return Response(ctx.store.records.get_json(principal.tenant, "mastery_rule", rule_id), media_type="application/json")

    @router.put("/mastery/rules/{rule_id}", status_code=202, summary="Replace a rule (same scope); recomputes its states")
    async def put_rule(rule_id: uuid.UUID, request: Request, principal: Principal = write) -> Response:
        rule = book.replace(principal.tenant, rule_id, await _body(request, set(RULE_FIELDS)), by=by(principal))
        return changed(rule, principal, "replaced", 202)

    @router.delete("/mastery/rules/{rule_id}", status_code=202, summary="Delete a rule (the next one up applies); recomputes its states")
    def delete_rule(rule_id: uuid.UUID, principal: Principal = write) -> Response:
        rule = book.delete(principal.tenant, rule_id, by=by(principal))
        return changed(rule, principal, "deleted", 202)

    @router.get("/mastery/recomputes/{job_id}", summary="A recompute a rule change started: status, learners done of total, states written")
    def recompute_status(job_id: uuid.UUID, principal: Principal = read) -> Response:
        job = jobs.get(principal.tenant, job_id)
        if job is None:
            raise NotFound("no such recompute", errors=[ErrorDetail(
                f"{job_id} is not known to this server process (recomputes are kept in memory by the process that started them, "
                "and not across restarts)", field="job_id")])
        return _json(job.as_json())

    @router.post("/mastery/recompute", summary="Recompute every state of the tenant (or one framework) from its evidence")
    async def recompute(request: Request, principal: Principal = write) -> Response:
        raw = await request.body()
        doc = await _body(request, {"framework_id"}) if raw.strip() else {}
        fw = None
        if doc.get("framework_id"):
            try:
                fw = uuid.UUID(str(doc["framework_id"]))
            except ValueError:
                raise ValidationError("invalid body", errors=[ErrorDetail("must be a UUID", field="framework_id")]) from None
        from starlette.concurrency import run_in_threadpool

        report = await run_in_threadpool(engine_of(ctx.store).recompute, principal.tenant, framework_id=fw)
        return _json(report.__dict__)

    return router

