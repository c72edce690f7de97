"""What the engine needs to know about a tenant's competencies, rules and scales, loaded
once and kept until one of them changes.

- structure from Relations: ``is_child_of`` (rollups), ``exact_match_of`` (crosswalks: the
  equivalence classes they form, so evidence on one counts for all), ``precedes``
  (prerequisites, learning progressions);
- which MasteryRule and which ProficiencyScale govern each competency: the competency's
  own, else its framework's, else the tenant's, else the defaults in mappings/mastery.yaml.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import Connection, bindparam, func, select

from gateway.model import MasteryMethod, MasteryRule, ProficiencyLevel, ProficiencyScale, Status
from gateway.store import tables as t

from .methods import Rule

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "mastery.yaml"


@dataclass(frozen=True)
class Level:
    code: str
    label: str
    rank: int
    min_scaled: float
    mastery: bool


class Scale:
    """A proficiency scale with a threshold on every level.

    CASE rubrics often give levels without score thresholds; those get evenly spaced ones
    (level i of k reaches at (i-1)/k) and, when no level says it is mastery, the upper half
    of the levels counts as mastered. Written down here because both are choices."""

    def __init__(self, scale_id: uuid.UUID | None, title: str, levels: list[ProficiencyLevel]) -> None:
        ordered = sorted(levels, key=lambda lv: lv.rank)
        k = len(ordered)
        marks = [lv.min_scaled if lv.min_scaled is not None else i / k for i, lv in enumerate(ordered)]
        any_mastery = any(lv.mastery for lv in ordered)
        self.id = scale_id
        self.title = title
        self.levels = [
            Level(lv.code, lv.label, lv.rank, marks[i], lv.mastery if any_mastery else i >= k // 2)
            for i, lv in enumerate(ordered)
        ]
        self._by_code = {lv.code: lv for lv in self.levels}
        below = [lv for lv in self.levels if not lv.mastery]
        self._lowest_mastery = next((lv for lv in self.levels if lv.mastery), None)
        self._highest_below_mastery = below[-1] if below else self.levels[0] if self.levels else None

    def level_for(self, value: float) -> Level:
        found = self.levels[0]
        for lv in self.levels:
            if value >= lv.min_scaled:
                found = lv
        return found

    def rank_of(self, value: float) -> int:
        return self.level_for(value).rank

    def get(self, code: str) -> Level | None:
        return self._by_code.get(code)

    @property
    def lowest_mastery(self) -> Level | None:
        return self._lowest_mastery

    @property
    def highest_below_mastery(self) -> Level:
        if self._highest_below_mastery is None:
            raise IndexError("a scale without levels")
        return self._highest_below_mastery


@cache
def defaults() -> tuple[Scale, Rule]:
    doc = yaml.safe_load(MAPPINGS.read_text(encoding="utf-8"))
    sc = doc["scale"]
    scale = Scale(None, sc["title"], [ProficiencyLevel(**lv) for lv in sc["levels"]])
    r = doc["rule"]
    rule = Rule(
        method=MasteryMethod(r["method"]),
        name=r["name"],
        decay_weight=r.get("decay_weight"),
        n=r.get("n"),
        m=r.get("m"),
        at_level=r.get("at_level"),
        min_evidence=r.get("min_evidence", 1),
        kind_weights=dict(r.get("kind_weights") or {}),
        rollup_share=r.get("rollup_share", 1.0),
    )
    return scale, rule


def rule_of(rec: MasteryRule, default: Rule) -> Rule:
    """A stored rule; kinds it does not weight keep the default weights."""
    weights = dict(default.kind_weights)
    weights.update({k.value: w for k, w in rec.kind_weights.items()})
    return Rule(
        method=rec.method, name=rec.name, rule_id=rec.id, scale_id=rec.scale_id, decay_weight=rec.decay_weight,
        n=rec.n, m=rec.m, at_level=rec.at_level, min_evidence=rec.min_evidence, kind_weights=weights,
        rollup_share=rec.rollup_share,
    )


@dataclass
class TenantModel:
    stamp: tuple[Any, ...]
    framework_of: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    parents: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    children: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    prerequisites: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    successors: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    equivalents: dict[uuid.UUID, frozenset[uuid.UUID]] = field(default_factory=dict)
    rules: dict[tuple[str, uuid.UUID | None], Rule] = field(default_factory=dict)
    scales: dict[uuid.UUID, Scale] = field(default_factory=dict)
    scale_for_scope: dict[tuple[str, uuid.UUID | None], Scale] = field(default_factory=dict)
    _depth: dict[uuid.UUID, int] = field(default_factory=dict)
    _resolved: dict[uuid.UUID, tuple[Rule, Scale]] = field(default_factory=dict)
    _above: dict[uuid.UUID, frozenset[uuid.UUID]] = field(default_factory=dict)
    _order: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    #: ``incremental.Compiled``: the structure by competency number, made on first use
    compiled: Any = None

    # --- rules and scales ---------------------------------------------------------------------

    def rule(self, competency: uuid.UUID) -> Rule:
        fw = self.framework_of.get(competency)
        return (
            self.rules.get(("competency", competency))
            or self.rules.get(("framework", fw))
            or self.rules.get(("tenant", None))
            or defaults()[1]
        )

    def rule_and_scale(self, competency: uuid.UUID) -> tuple[Rule, Scale]:
        """``rule`` and its ``scale`` for a competency, resolved once per model (a full
        recompute asks for every state; each answer took eight dict lookups)."""
        hit = self._resolved.get(competency)
        if hit is None:
            rule = self.rule(competency)
            hit = self._resolved[competency] = (rule, self.scale(competency, rule))
        return hit

    def scale(self, competency: uuid.UUID, rule: Rule) -> Scale:
        if rule.scale_id is not None and rule.scale_id in self.scales:
            return self.scales[rule.scale_id]
        fw = self.framework_of.get(competency)
        return (
            self.scale_for_scope.get(("competency", competency))
            or self.scale_for_scope.get(("framework", fw))
            or self.scale_for_scope.get(("tenant", None))
            or defaults()[0]
        )

    # --- structure ------------------------------------------------------------------------------

    def group(self, competency: uuid.UUID) -> frozenset[uuid.UUID]:
        """The competency and its crosswalk equivalents (exact matches, transitively)."""
        return self.equivalents.get(competency) or frozenset((competency,))

    def depth(self, competency: uuid.UUID) -> int:
        """Distance to the deepest descendant: leaves 0, so parents sort after their children."""
        d = self._depth.get(competency)
        if d is None:
            self._depth[competency] = 0  # guards a cycle in bad data
            d = 1 + max((self.depth(c) for c in self.children.get(competency, ())), default=-1)
            self._depth[competency] = d
        return d

    def ancestors(self, competencies: set[uuid.UUID]) -> set[uuid.UUID]:
        """Every ancestor of any of ``competencies`` (each competency's found once per model:
        the incremental update asks for every learner of every batch)."""
        out: set[uuid.UUID] = set()
        for c in competencies:
            hit = self._above.get(c)
            if hit is None:
                hit = self._above[c] = frozenset(self._walk_up(c))
            out |= hit
        return out

    def _walk_up(self, competency: uuid.UUID) -> set[uuid.UUID]:
        out: set[uuid.UUID] = set()
        todo = [competency]
        while todo:
            for p in self.parents.get(todo.pop(), ()):
                if p not in out:
                    out.add(p)
                    todo.append(p)
        return out

    def rollup_order(self, parent: uuid.UUID) -> list[uuid.UUID]:
        """A rollup's members, its children and itself, in the order of their ids' text (its
        contributions' order), sorted once per model."""
        hit = self._order.get(parent)
        if hit is None:
            hit = self._order[parent] = sorted({*self.children.get(parent, ()), parent}, key=lambda c: c.int)
        return hit


#: built once: every transaction that writes evidence runs it
_STAMP = select(*[
    select(func.max(tbl.c.updated_at)).where(tbl.c.tenant == bindparam("tenant")).scalar_subquery()
    for tbl in (t.competencies, t.relations, t.mastery_rules, t.proficiency_scales)
])


def stamp(conn: Connection, tenant: str) -> tuple[Any, ...]:
    """Changes whenever a competency, relation, rule or scale of the tenant is written (every
    write sets ``updated_at``; deletion is a status change, so it is a write too)."""
    return tuple(conn.execute(_STAMP, {"tenant": tenant}).one())


def load(conn: Connection, tenant: str, at: tuple[Any, ...]) -> TenantModel:
    m = TenantModel(stamp=at)
    active = Status.active.value
    comps = t.competencies
    for cid, fw in conn.execute(select(comps.c.id, comps.c.framework_id).where(comps.c.tenant == tenant, comps.c.status == active)):
        m.framework_of[cid] = fw
    rel = t.relations
    links: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    q = select(rel.c.type, rel.c.origin_id, rel.c.destination_id).where(
        rel.c.tenant == tenant, rel.c.status == active, rel.c.origin_id.is_not(None), rel.c.destination_id.is_not(None)
    )
    for kind, origin, dest in conn.execute(q):
        if origin not in m.framework_of or dest not in m.framework_of:
            continue
        if kind == "is_child_of":
            m.parents[origin].append(dest)
            m.children[dest].append(origin)
        elif kind == "precedes":
            m.prerequisites[dest].append(origin)
            m.successors[origin].append(dest)
        elif kind == "exact_match_of":
            links[origin].add(dest)
            links[dest].add(origin)
    for start in list(links):
        if start in m.equivalents:
            continue
        seen = {start}
        todo = [start]
        while todo:
            for nxt in links[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        group = frozenset(seen)
        for c in group:
            m.equivalents[c] = group
    default_rule = defaults()[1]
    for (data,) in conn.execute(select(t.mastery_rules.c.data).where(t.mastery_rules.c.tenant == tenant, t.mastery_rules.c.status == active)
                                .order_by(t.mastery_rules.c.id)):
        rec = MasteryRule.model_validate_json(data)
        key = ("competency", rec.competency_id) if rec.competency_id else ("framework", rec.framework_id) if rec.framework_id else ("tenant", None)
        m.rules.setdefault(key, rule_of(rec, default_rule))  # one rule per scope: the API refuses a second
    ps = t.proficiency_scales
    for (data,) in conn.execute(select(ps.c.data).where(ps.c.tenant == tenant, ps.c.status == active).order_by(ps.c.id)):
        ps_rec = ProficiencyScale.model_validate(orjson.loads(data))
        assert ps_rec.id is not None  # a stored record always has its id
        scale = Scale(ps_rec.id, ps_rec.title, ps_rec.levels)
        m.scales[ps_rec.id] = scale
        key = ("competency", ps_rec.competency_id) if ps_rec.competency_id else ("framework", ps_rec.framework_id) if ps_rec.framework_id else ("tenant", None)
        m.scale_for_scope.setdefault(key, scale)
    return m


__all__ = ["Level", "Scale", "TenantModel", "defaults", "load", "rule_of", "stamp"]
