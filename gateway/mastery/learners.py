"""One learner's view: states with their explanation, what comes next, the profile, plans.

- **explain**: a state with the rule, the scale and every evidence item that counted, in
  words a teacher can read ("Developing (0.63): ...; Proficient needs 0.75").
- **next competencies**: the zone of proximal development: not yet mastered, every
  prerequisite (``precedes``) mastered, and either reachable from a mastered prerequisite
  or already being worked on; a crosswalk equivalent's mastery counts. Sorted by position
  in the learning progression.
- **profile**: the learner's frameworks as trees with states, the evidence trail, next
  competencies and pace (competencies newly mastered per week).
- **plans**: targets must lie in the learner's frameworks (those of their courses'
  competencies, or where they have evidence).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select

from gateway.errors import ErrorDetail, NotFound, ValidationError
from gateway.model import LearningPlan, MasteryState, Status, utcnow
from gateway.store import Store
from gateway.store import tables as t

from .attach import engine_of
from .structure import TenantModel

ACTIVE = Status.active.value
PACE_WEEKS = 8


class Learners:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- lookups ---------------------------------------------------------------------------------

    def _require(self, conn: Connection, tenant: str, table: Any, rid: uuid.UUID, field: str) -> dict[str, Any]:
        row = conn.execute(select(table.c.data).where(table.c.tenant == tenant, table.c.id == rid, table.c.status == ACTIVE)).first()
        if row is None:
            raise NotFound(f"no such {field.removesuffix('_id')}", errors=[ErrorDetail(f"{rid} is not known in this tenant", field=field)])
        return orjson.loads(row[0])

    def states(self, conn: Connection, tenant: str, learner: uuid.UUID) -> dict[uuid.UUID, MasteryState]:
        ms = t.mastery_states
        q = select(ms.c.data).where(ms.c.tenant == tenant, ms.c.learner_id == learner, ms.c.status == ACTIVE)
        return {s.competency_id: s for s in (MasteryState.model_validate_json(d) for (d,) in conn.execute(q))}

    def frameworks_of(self, conn: Connection, tenant: str, learner: uuid.UUID, model: TenantModel) -> set[uuid.UUID]:
        """Frameworks of the learner's courses' competencies, and of anything they have evidence on."""
        out: set[uuid.UUID] = set()
        en, sec, crs = t.enrollments, t.sections, t.courses
        q = (
            select(crs.c.data)
            .join(sec, sec.c.course_id == crs.c.id)
            .join(en, en.c.section_id == sec.c.id)
            .where(en.c.tenant == tenant, en.c.person_id == learner, en.c.status == ACTIVE)
        )
        for (data,) in conn.execute(q):
            for cid in orjson.loads(data).get("competency_ids", []):
                fw = model.framework_of.get(uuid.UUID(cid))
                if fw is not None:
                    out.add(fw)
        ev = t.evidence
        for (cid,) in conn.execute(select(ev.c.competency_id).where(ev.c.tenant == tenant, ev.c.learner_id == learner,
                                                                    ev.c.competency_id.is_not(None)).distinct()):
            fw = model.framework_of.get(cid)
            if fw is not None:
                out.add(fw)
        return out

    def relation(self, tenant: str, person: uuid.UUID, learner: uuid.UUID) -> str | None:
        """How ``person`` stands to ``learner``: "self", "guardian" (listed among the learner's
        agents), "teacher" (teaches a section the learner is enrolled in), or None."""
        if person == learner:
            return "self"
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.people.c.data).where(t.people.c.tenant == tenant, t.people.c.id == learner)).first()
            if row is not None and str(person) in orjson.loads(row[0]).get("agent_ids", []):
                return "guardian"
            en = t.enrollments
            mine = en.alias("mine")
            q = (
                select(en.c.id)
                .join(mine, and_(mine.c.section_id == en.c.section_id, mine.c.tenant == en.c.tenant))
                .where(en.c.tenant == tenant, en.c.person_id == learner, en.c.status == ACTIVE,
                       mine.c.person_id == person, mine.c.role == "teacher", mine.c.status == ACTIVE)
                .limit(1)
            )
            if conn.execute(q).first() is not None:
                return "teacher"
        return None

    # --- explain -----------------------------------------------------------------------------------

    def explain(self, tenant: str, learner: uuid.UUID, competency: uuid.UUID) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            self._require(conn, tenant, t.people, learner, "learner_id")
            comp = self._require(conn, tenant, t.competencies, competency, "competency_id")
            model = engine_of(self.store).model(conn, tenant)
            rule = model.rule(competency)
            scale = model.scale(competency, rule)
            state = self.states(conn, tenant, learner).get(competency)
            body: dict[str, Any] = {
                "learner_id": str(learner),
                "competency": {"id": str(competency), "code": comp.get("code"), "statement": comp.get("statement")},
                "scale": {"title": scale.title, "levels": [
                    {"code": lv.code, "label": lv.label, "min_scaled": lv.min_scaled, "mastery": lv.mastery} for lv in scale.levels
                ]},
                "rule": {"name": rule.name, "method": rule.method.value, **rule.parameters(),
                         "kind_weights": rule.kind_weights, "rule_id": str(rule.rule_id) if rule.rule_id else None},
            }
            if state is None:
                body.update(state=None, explanation="No evidence on this competency (or its crosswalk equivalents) yet.")
                return body
            body["state"] = orjson.loads(state.model_dump_json(exclude_none=True))
            ev_ids = [c.evidence_id for c in state.contributions if c.evidence_id is not None]
            evidence = {}
            if ev_ids:
                ev = t.evidence
                for (data,) in conn.execute(select(ev.c.data).where(ev.c.tenant == tenant, ev.c.id.in_(ev_ids))):
                    doc = orjson.loads(data)
                    evidence[doc["id"]] = {k: doc.get(k) for k in ("observed_at", "evidence_kind", "score", "level", "success", "activity", "provenance")}
            body["contributions"] = [
                {**c.model_dump(mode="json", exclude_none=True), **({"evidence": evidence.get(str(c.evidence_id))} if c.evidence_id else {})}
                for c in state.contributions
            ]
            body["explanation"] = _sentence(state, scale, rule.name)
            return body

    # --- what comes next ---------------------------------------------------------------------------

    def next_competencies(self, tenant: str, learner: uuid.UUID, framework: uuid.UUID | None = None, limit: int = 20) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            self._require(conn, tenant, t.people, learner, "learner_id")
            model = engine_of(self.store).model(conn, tenant)
            states = self.states(conn, tenant, learner)
            frameworks = {framework} if framework is not None else self.frameworks_of(conn, tenant, learner, model)
            return self._next(conn, tenant, model, states, frameworks, limit)

    def _next(self, conn: Connection, tenant: str, model: TenantModel, states: dict[uuid.UUID, MasteryState],
              frameworks: set[uuid.UUID], limit: int) -> list[dict[str, Any]]:
        def mastered(c: uuid.UUID) -> bool:
            return any(states[e].mastered for e in model.group(c) if e in states)

        candidates = []
        for c, fw in model.framework_of.items():
            if fw not in frameworks or model.children.get(c) or mastered(c):
                continue  # parents are reached through their children
            prereqs = model.prerequisites.get(c, [])
            if not all(mastered(p) for p in prereqs):
                continue
            if not prereqs and c not in states:
                continue  # an untouched start of a progression is not "next" by itself
            candidates.append((c, prereqs))
        candidates.sort(key=lambda cp: (_position(model, cp[0]), str(cp[0])))
        picked = candidates[:limit]
        details = self._competencies(conn, tenant, [c for c, _ in picked])
        out = []
        for c, prereqs in picked:
            st = states.get(c)
            out.append({
                **details.get(c, {"id": str(c)}),
                "reason": "prerequisites mastered" if prereqs else "in progress",
                "prerequisites": [str(p) for p in prereqs],
                "progression_position": _position(model, c),
                "state": {"level": st.level, "value": st.value} if st else None,
            })
        return out

    def _competencies(self, conn: Connection, tenant: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        if not ids:
            return {}
        comps = t.competencies
        out = {}
        for (data,) in conn.execute(select(comps.c.data).where(comps.c.tenant == tenant, comps.c.id.in_(ids))):
            doc = orjson.loads(data)
            out[uuid.UUID(doc["id"])] = {k: doc.get(k) for k in ("id", "code", "short_statement", "statement", "framework_id") if doc.get(k)}
        return out

    # --- profile -----------------------------------------------------------------------------------

    def profile(self, tenant: str, learner: uuid.UUID, framework: uuid.UUID | None = None, trail: int = 25) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            person = self._require(conn, tenant, t.people, learner, "learner_id")
            model = engine_of(self.store).model(conn, tenant)
            states = self.states(conn, tenant, learner)
            frameworks = {framework} if framework is not None else self.frameworks_of(conn, tenant, learner, model)
            in_scope = [c for c, fw in model.framework_of.items() if fw in frameworks]
            details = self._competencies(conn, tenant, in_scope)
            trees = []
            fws = t.frameworks
            for fw_id in sorted(frameworks, key=str):
                row = conn.execute(select(fws.c.data).where(fws.c.tenant == tenant, fws.c.id == fw_id)).first()
                roots = [c for c in in_scope if model.framework_of[c] == fw_id and not any(
                    model.framework_of.get(p) == fw_id for p in model.parents.get(c, ()))]
                title = orjson.loads(row[0]).get("title") if row else None
                trees.append({"framework_id": str(fw_id), "title": title,
                              "competencies": [_node(c, model, states, details, fw_id) for c in sorted(roots, key=lambda c: details.get(c, {}).get("code") or "")]})
            ev = t.evidence
            q = (select(ev.c.data).where(ev.c.tenant == tenant, ev.c.learner_id == learner)
                 .order_by(ev.c.observed_at.desc(), ev.c.id).limit(trail))
            evidence = [orjson.loads(d) for (d,) in conn.execute(q)]
            scoped = {c: s for c, s in states.items() if model.framework_of.get(c) in frameworks}
            return {
                "learner": {k: person.get(k) for k in ("id", "given_name", "family_name", "grades") if person.get(k) is not None},
                "summary": {
                    "competencies": sum(1 for c in in_scope if not model.children.get(c)),
                    "with_evidence": sum(1 for c, s in scoped.items() if not model.children.get(c) and s.value is not None),
                    "mastered": sum(1 for c, s in scoped.items() if not model.children.get(c) and s.mastered),
                },
                "frameworks": trees,
                "evidence_trail": evidence,
                "next": self._next(conn, tenant, model, states, frameworks, 10),
                "pace": _pace(scoped, model),
            }

    # --- plans -------------------------------------------------------------------------------------

    def check_plan(self, plan: LearningPlan) -> None:
        """Refuse targets and pathway steps outside the learner's frameworks (field named)."""
        with self.store.engine.connect() as conn:
            self._require(conn, plan.tenant, t.people, plan.learner_id, "learner_id")
            model = engine_of(self.store).model(conn, plan.tenant)
            frameworks = self.frameworks_of(conn, plan.tenant, plan.learner_id, model)
        errors = []
        named = [(f"targets[{i}].competency_id", x.competency_id) for i, x in enumerate(plan.targets)]
        named += [(f"pathway[{i}]", c) for i, c in enumerate(plan.pathway)]
        for field, cid in named:
            fw = model.framework_of.get(cid)
            if fw is None:
                errors.append(ErrorDetail(f"{cid} is not a competency of this tenant", field=field))
            elif fw not in frameworks:
                errors.append(ErrorDetail("not in the learner's frameworks (their courses' competencies, or where they have evidence)", field=field))
        if errors:
            raise ValidationError("plan refused", errors=errors)


def _position(model: TenantModel, c: uuid.UUID) -> int:
    """Steps from the start of the learning progression (longest chain of prerequisites)."""
    seen: set[uuid.UUID] = set()

    def depth(x: uuid.UUID) -> int:
        if x in seen:
            return 0  # a cycle in bad data
        seen.add(x)
        d = 1 + max((depth(p) for p in model.prerequisites.get(x, ())), default=-1)
        seen.discard(x)
        return d

    return depth(c)


def _node(c: uuid.UUID, model: TenantModel, states: dict[uuid.UUID, MasteryState], details: dict[uuid.UUID, dict[str, Any]],
          fw: uuid.UUID) -> dict[str, Any]:
    st = states.get(c)
    kids = [k for k in model.children.get(c, ()) if model.framework_of.get(k) == fw]
    node = {**details.get(c, {"id": str(c)}),
            "state": {"level": st.level, "value": st.value, "mastered": st.mastered, "evidence_count": st.evidence_count} if st else None}
    if kids:
        node["children"] = [_node(k, model, states, details, fw) for k in sorted(kids, key=lambda k: details.get(k, {}).get("code") or "")]
    return node


def _pace(states: dict[uuid.UUID, MasteryState], model: TenantModel, now: datetime | None = None) -> dict[str, Any]:
    """Leaf competencies mastered per week over the last weeks (by the state's last evidence)."""
    now = now or utcnow()
    weeks: dict[int, int] = defaultdict(int)
    for c, s in states.items():
        if s.mastered and not model.children.get(c) and s.last_at is not None:
            age = (now - s.last_at) // timedelta(weeks=1)
            if 0 <= age < PACE_WEEKS:
                weeks[age] += 1
    series = [weeks.get(w, 0) for w in reversed(range(PACE_WEEKS))]
    return {"weeks": PACE_WEEKS, "mastered_per_week": series, "average_per_week": round(sum(series) / PACE_WEEKS, 3)}


def _sentence(state: MasteryState, scale: Any, rule_name: str) -> str:
    n = state.evidence_count
    if state.value is None:
        return f"Not enough evidence yet under '{rule_name}': {state.parameters.get('insufficient_evidence', n)} items."
    level = scale.get(state.level) if state.level else None
    label = level.label if level else state.level
    how = "rolled up from its children" if state.method.value == "rollup" else f"by '{rule_name}' over {n} evidence item{'s' if n != 1 else ''}"
    text = f"{label} ({state.value:.2f}), {how}."
    above = [lv for lv in scale.levels if lv.min_scaled > state.value]
    if above:
        text += f" {above[0].label} needs {above[0].min_scaled:.2f}."
    if state.method.value == "rollup":
        text += f" {state.parameters.get('mastered_share', 0):.0%} of its parts are mastered; {state.parameters.get('rollup_share', 1):.0%} needed."
    return text


__all__ = ["Learners"]
