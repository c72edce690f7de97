"""Changing a tenant's mastery rules, and the recompute each change starts.

A rule applies to one scope: a competency, a framework or the whole tenant (the most
specific wins, ``structure.TenantModel.rule``), and a scope has at most one active rule.
``RuleBook`` creates, replaces and deletes rules for the API (``gateway.api.mastery``) and the
CLI (``tessera mastery rules``) alike, with the same checks. A deletion is a retirement like
any other: the rule is written again with ``status = tobedeleted``, so it travels in the
change log and to routes.

Who made a change: the ``changes`` table has no actor column (and core tables change only by
migration), so every change writes its author into the rule itself, ``MasteryRule.updated_by``
(``client:<client id>`` from the API, ``cli:<user>`` from the command line). Each change-log
row of a rule carries the content hash of the version it wrote, and that version names who
wrote it; routed copies of the rule carry it too.

A change takes effect by recomputing what its scope affects: the rule's framework (a
competency's rule: the competency's framework, which holds its rollup ancestors), else the
tenant. ``recompute_scope`` says which; the CLI runs it in the foreground, the API in the
background through ``Recomputes``.

``Recomputes`` keeps its jobs in memory, per process, on purpose: a job is a thread of the
process that started it, and its progress (learners done of total, states written) changes
many times a second, which a table would turn into as many writes. The price: with several
API worker processes (``TESSERA_WORKERS`` > 1) only the process that started a recompute
knows it, and the others answer 404 for its id; a restart forgets finished jobs (the states
they wrote stay). Jobs of one tenant run one after the other in the order they were
started, so the last rule change's recompute is the one that writes last (two recomputes of
one tenant at once could let the older rule's results overwrite the newer's).
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import func, select

from gateway.errors import Conflict, ErrorDetail, NotFound, ValidationError
from gateway.model import MasteryRule, Status, pydantic_errors, utcnow
from gateway.store import tables as t

from .engine import MasteryEngine

if TYPE_CHECKING:
    from gateway.store import Store

#: what a caller may set on a rule (the rest is the record's: tenant, source, ids, status, author)
RULE_FIELDS = frozenset({"name", "method", "framework_id", "competency_id", "scale_id", "decay_weight", "n", "m", "at_level",
                         "min_evidence", "kind_weights", "rollup_share"})


def scope_key(rule: MasteryRule) -> str:
    """The rule's scope as text: a competency id, a framework id, or ``tenant``."""
    return str(rule.competency_id or rule.framework_id or "tenant")


def _scope_field(rule: MasteryRule) -> str:
    return "competency_id" if rule.competency_id else "framework_id"


class RuleBook:
    """A store's mastery rules: read, create, replace, delete, each checked the same way."""

    def __init__(self, engine: MasteryEngine) -> None:
        self.engine = engine
        self.store = engine.store

    def active(self, tenant: str) -> list[MasteryRule]:
        page = self.store.records.page(tenant, "mastery_rule", limit=500, filters={"status": Status.active.value})
        return [MasteryRule.model_validate_json(doc) for doc in page.items]

    def get(self, tenant: str, rule_id: uuid.UUID) -> MasteryRule:
        """The tenant's active rule; NotFound for an unknown, deleted or other tenant's id alike."""
        try:
            rule = self.store.records.get(tenant, "mastery_rule", rule_id)
        except NotFound:
            rule = None
        if not isinstance(rule, MasteryRule) or rule.status is not Status.active:
            raise NotFound("no such mastery rule", errors=[ErrorDetail(f"{rule_id} is not a rule of this tenant", field="rule_id")])
        return rule

    def for_scope(self, tenant: str, rule: MasteryRule) -> MasteryRule | None:
        return next((o for o in self.active(tenant) if (o.framework_id, o.competency_id) == (rule.framework_id, rule.competency_id)), None)

    def build(self, tenant: str, doc: dict[str, Any], *, by: str, source: str = "api", native_id: str | None = None) -> MasteryRule:
        """A validated rule from ``doc`` (the caller's fields only), errors in the API's shape."""
        from pydantic import ValidationError as PydanticValidationError

        unknown = sorted(set(doc) - RULE_FIELDS)
        if unknown:
            raise ValidationError("unknown fields", errors=[
                ErrorDetail(f"not allowed; allowed: {', '.join(sorted(RULE_FIELDS))}", field=k) for k in unknown])
        scope = doc.get("competency_id") or doc.get("framework_id") or "tenant"
        try:
            rule = MasteryRule.model_validate({**doc, "tenant": tenant, "source": source, "native_id": native_id or f"rule:{scope}",
                                               "updated_by": by})
        except PydanticValidationError as exc:
            raise ValidationError("invalid mastery rule", errors=pydantic_errors(exc)) from None
        self._check_level(tenant, rule)
        return rule

    def _check_level(self, tenant: str, rule: MasteryRule) -> None:
        if rule.at_level is None:
            return
        with self.store.engine.connect() as conn:
            model = self.engine.model(conn, tenant)
        probe = rule.competency_id or next((c for c, f in model.framework_of.items() if f == rule.framework_id), None)
        scale = model.scales.get(rule.scale_id) if rule.scale_id else (model.scale(probe, model.rule(probe)) if probe else None)
        if scale is not None and scale.get(rule.at_level) is None:
            raise ValidationError("invalid mastery rule", errors=[ErrorDetail(
                f"not a level of the scale '{scale.title}' ({', '.join(lv.code for lv in scale.levels)})", field="at_level")])

    def create(self, tenant: str, doc: dict[str, Any], *, by: str) -> MasteryRule:
        """A new rule; Conflict when its scope has one already (replace that one instead)."""
        rule = self.build(tenant, doc, by=by)
        other = self.for_scope(tenant, rule)
        if other is not None and other.id != rule.id:
            raise Conflict("a rule for this scope exists already: replace it (PUT /v1/mastery/rules/{id}) or delete it",
                           errors=[ErrorDetail(f"rule {other.id}", field=_scope_field(rule))])
        return self._write(tenant, rule)

    def replace(self, tenant: str, rule_id: uuid.UUID, doc: dict[str, Any], *, by: str) -> MasteryRule:
        """The rule ``rule_id`` replaced by ``doc`` (every field; those left out take their
        defaults), which must name the same scope."""
        old = self.get(tenant, rule_id)
        rule = self.build(tenant, doc, by=by, source=old.source, native_id=old.native_id)
        if (rule.framework_id, rule.competency_id) != (old.framework_id, old.competency_id):
            raise ValidationError("invalid mastery rule", errors=[ErrorDetail(
                f"a replacement keeps the rule's scope ({scope_key(old)}): delete the rule and create one for the other scope",
                field=_scope_field(rule) if (rule.framework_id or rule.competency_id) else _scope_field(old))])
        return self._write(tenant, rule.model_copy(update={"id": old.id}))

    def set(self, tenant: str, doc: dict[str, Any], *, by: str) -> tuple[MasteryRule, bool]:
        """Create the rule of ``doc``'s scope, or replace the one there is: (rule, created)."""
        probe = self.build(tenant, doc, by=by)
        old = self.for_scope(tenant, probe)
        if old is None:
            return self._write(tenant, probe), True
        assert old.id is not None  # a stored record always has its id
        return self.replace(tenant, old.id, doc, by=by), False

    def delete(self, tenant: str, rule_id: uuid.UUID, *, by: str) -> MasteryRule:
        """Retire the rule (``tobedeleted``, kept with who deleted it); its scope falls back to
        the next rule up (framework, tenant, the default)."""
        old = self.get(tenant, rule_id)
        return self._write(tenant, old.model_copy(update={"status": Status.tobedeleted, "updated_at": None, "updated_by": by}))

    def _write(self, tenant: str, rule: MasteryRule) -> MasteryRule:
        assert rule.id is not None
        self.store.records.apply(tenant, [rule])
        stored = self.store.records.get(tenant, "mastery_rule", rule.id)
        assert isinstance(stored, MasteryRule)
        return stored

    def recompute_scope(self, tenant: str, rule: MasteryRule) -> uuid.UUID | None:
        """The framework whose states the rule decides (None: the whole tenant). A
        competency's rule: its framework, where its rollup ancestors are; an unknown
        competency (none of the tenant's active ones): the tenant."""
        if rule.framework_id is not None:
            return rule.framework_id
        if rule.competency_id is not None:
            with self.store.engine.connect() as conn:
                return self.engine.model(conn, tenant).framework_of.get(rule.competency_id)
        return None


def learners_to_recompute(store: Store, tenant: str) -> int:
    """How many learners a recompute of ``tenant`` goes through (those with evidence that counts)."""
    ev = t.evidence
    q = select(func.count(func.distinct(ev.c.learner_id))).where(
        ev.c.tenant == tenant, ev.c.voided.is_(False), ev.c.superseded_by.is_(None), ev.c.status == Status.active.value,
        ev.c.competency_id.is_not(None))
    with store.engine.connect() as conn:
        return int(conn.scalar(q) or 0)


@dataclass
class RecomputeJob:
    """One recompute started by a rule change, as ``GET /v1/mastery/recomputes/{id}`` shows it."""

    id: uuid.UUID
    tenant: str
    framework_id: uuid.UUID | None
    reason: str
    status: str = "queued"  # queued | running | done | failed
    learners_total: int | None = None
    learners_done: int = 0
    states: int = 0
    states_written: int = 0
    states_retired: int = 0
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        def at(d: datetime | None) -> str | None:
            return d.isoformat().replace("+00:00", "Z") if d is not None else None

        return {
            "id": str(self.id), "status": self.status, "reason": self.reason,
            "scope": {"framework_id": str(self.framework_id)} if self.framework_id else {"tenant": self.tenant},
            "learners": {"done": self.learners_done, "total": self.learners_total},
            "states": self.states, "states_written": self.states_written, "states_retired": self.states_retired,
            "created_at": at(self.created_at), "started_at": at(self.started_at), "finished_at": at(self.finished_at),
            "error": self.error, "href": f"/v1/mastery/recomputes/{self.id}",
        }


class Recomputes:
    """The recomputes this process started, each run in a background thread (one thread per
    tenant, jobs in order). In memory: the module docstring says why and what that costs."""

    #: finished jobs kept for their status (the oldest finished are forgotten first)
    KEEP = 1000

    def __init__(self, engine: MasteryEngine) -> None:
        self._engine = weakref.ref(engine)  # the registry hangs off the engine: no cycle keeping it alive
        self._jobs: OrderedDict[uuid.UUID, RecomputeJob] = OrderedDict()
        self._runners: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def start(self, tenant: str, framework_id: uuid.UUID | None, *, reason: str) -> RecomputeJob:
        job = RecomputeJob(uuid.uuid4(), tenant, framework_id, reason)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.KEEP:
                oldest = next((k for k, j in self._jobs.items() if j.status in ("done", "failed")), None)
                if oldest is None:
                    break
                del self._jobs[oldest]
            runner = self._runners.get(tenant)
            if runner is None:
                runner = self._runners[tenant] = ThreadPoolExecutor(1, thread_name_prefix=f"recompute-{tenant}")
        runner.submit(self.run, job)
        return job

    def get(self, tenant: str, job_id: uuid.UUID) -> RecomputeJob | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def run(self, job: RecomputeJob) -> None:
        job.status, job.started_at = "running", utcnow()

        def advance(n: int) -> None:
            job.learners_done += n

        try:
            engine = self._engine()
            if engine is None:
                raise RuntimeError("the store was closed")
            job.learners_total = learners_to_recompute(engine.store, job.tenant)
            report = engine.recompute(job.tenant, framework_id=job.framework_id, progress=advance)
        except Exception as exc:  # the job reports it; the thread lives on for the next job
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        else:
            job.states, job.states_written, job.states_retired = report.states, report.written, report.retired
            job.learners_done = report.learners
            job.status = "done"
        finally:
            job.finished_at = utcnow()

    def wait(self, job_id: uuid.UUID, timeout: float = 60.0) -> RecomputeJob:
        """Block until the job has finished (tests, embedding programs)."""
        import time

        deadline = time.monotonic() + timeout
        job = self._jobs[job_id]
        while job.status in ("queued", "running"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"recompute {job_id} still {job.status} after {timeout} s")
            time.sleep(0.02)
        return job


_RECOMPUTES: WeakKeyDictionary[MasteryEngine, Recomputes] = WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def recomputes_of(engine: MasteryEngine) -> Recomputes:
    """The one job registry of an engine (so of a store, ``attach.engine_of``)."""
    with _REGISTRY_LOCK:
        jobs = _RECOMPUTES.get(engine)
        if jobs is None:
            jobs = _RECOMPUTES[engine] = Recomputes(engine)
        return jobs


__all__ = ["RULE_FIELDS", "RecomputeJob", "Recomputes", "RuleBook", "learners_to_recompute", "recomputes_of", "scope_key"]
