"""How one learner's states are computed from its evidence: a competency's own (``leaf_of``, a
calculation method over its evidence) and a rollup's (``rollup``, over its children's
states), and ``derive``, which does both for a set of targets and their ancestors (the full
recompute's). Pure functions of the tenant's structure and the rows given: the incremental
update (``incremental.update``) runs the same steps with the same functions, so the two agree.

``Compiled`` is a ``structure.TenantModel`` numbered once per model (a structure, rule or
scale change makes a new model, ``structure.stamp``): competencies by small ints, with their
children, groups, rules, scales and ids' text, each rollup's members in the order of its sums
and of its contributions, and each set of targets' ``Plan`` (the states recomputed, parents
after their children; the competencies whose evidence they read; the rollups' children read
from their stored states). The incremental update's loops had spent more in
``UUID.__hash__`` than in the arithmetic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from gateway.model import MasteryMethod

from .derived import ContributionRow, Derived
from .methods import Item, Rule, calculate
from .reads import EvidenceRow, state_int_namer
from .structure import Scale, TenantModel


def _contribution(evidence: uuid.UUID | None, competency: uuid.UUID | None, value: float, weight: float) -> ContributionRow:
    # rounded so that sums taken in a different order (incremental vs full) store the same digits
    return (evidence, competency, value, round(weight, 12))


def _value(row: EvidenceRow, scale: Scale) -> float | None:
    scaled, level, success = row[3], row[4], row[6]
    if scaled is not None:
        return scaled
    if level is not None:
        lv = scale.get(level)
        if lv is not None:
            return lv.min_scaled
    if success is not None:
        return 1.0 if success else 0.0
    return None


def _leaf(model: TenantModel, competency: uuid.UUID, rows: Sequence[EvidenceRow]) -> Derived | None:
    """The state a competency's own evidence (and its equivalents') gives."""
    if not rows:  # a rollup without evidence of its own, most of them
        return None
    return leaf_of(competency, *model.rule_and_scale(competency), rows)


def leaf_of(competency: uuid.UUID, rule: Rule, scale: Scale, rows: Sequence[EvidenceRow]) -> Derived | None:
    """``_leaf`` with the competency's rule and scale resolved (the incremental path's)."""
    items: list[Item] = []
    via: dict[uuid.UUID, uuid.UUID] = {}  # evidence of an equivalent -> that competency
    own = competency.int  # ints compare in C; UUID.__eq__ is a Python call per row
    for row in rows:
        weight = rule.kind_weights.get(row[5] or "assessment", 1.0)
        value = _value(row, scale)
        if weight <= 0 or value is None:
            continue
        items.append((row[0], row[2], value, weight))
        if row[1].int != own:
            via[row[0]] = row[1]
    if not items:
        return None
    items.sort(key=lambda it: (it[1], it[0]))
    params = rule.parameters()
    first, last = items[0][1], items[-1][1]
    if len(items) < rule.min_evidence:
        contribs = [_contribution(it[0], via.get(it[0]) if via else None, it[2], 0.0) for it in items]
        params["insufficient_evidence"] = f"{len(items)} of {rule.min_evidence}"
        return Derived(competency, rule, rule.method, None, None, False, contribs, len(items), first, last, params)
    at_min = None
    if rule.method is MasteryMethod.n_of_m:
        lv = scale.get(rule.at_level or "")
        at_min = lv.min_scaled if lv is not None else 1.0
    out = calculate(rule, items, at_level_min=at_min, level_of=scale.rank_of)
    value = min(1.0, max(0.0, out.value))
    level = scale.level_for(value)
    contribs = [_contribution(it[0], via.get(it[0]) if via else None, it[2], s) for it, s in out.shares]
    return Derived(competency, rule, rule.method, value, level.code, level.mastery, contribs, len(items), first, last, params)


#: what a rollup reads of a child's state: (value, mastered, evidence count, first_at, last_at)
Summary = tuple[float | None, bool, int, datetime | None, datetime | None]


class Rollup(NamedTuple):
    """A parent's rollup, compiled: its children (numbers, each once, in ``model.children``'s
    order: the order of the sums), its contributions' order, its rule and scale."""

    kids: tuple[int, ...]
    own_at: int  # the parent's own state's position among the members (len(kids): after them)
    order: tuple[tuple[int, uuid.UUID], ...]  # (member position, competency) by the ids' text
    rule: Rule
    scale: Scale


class Plan(NamedTuple):
    """What recomputing one set of targets (competency numbers) takes."""

    leaves: tuple[int, ...]  # targets without children: their own evidence's state
    parents: tuple[int, ...]  # the rollups recomputed (ancestors, targets with children), children first
    wanted: tuple[int, ...]  # leaves + parents: the states written (or retired)
    evidence: tuple[int, ...]  # the competencies whose evidence is read (the wanted ones' groups)
    kids: tuple[int, ...]  # rollups' children not recomputed: their stored states are read


class Compiled:
    """A ``TenantModel``'s structure by competency number (see the module docstring)."""

    PLANS = 50_000  # target sets remembered (emptied when full)
    NAMES = 20_000  # learners whose states' ids are remembered (a dozen or so each, ~1 KB a learner; emptied when full)

    def __init__(self, model: TenantModel) -> None:
        self.model = model
        ids = self.ids = list(model.framework_of)
        index = self.index = {c: i for i, c in enumerate(ids)}
        self.texts = [str(c) for c in ids]
        self.groups = [tuple(index[e] for e in model.group(c)) for c in ids]
        self.single = [len(g) == 1 for g in self.groups]  # no equivalents: its evidence is its own
        self.rule_scale = [model.rule_and_scale(c) for c in ids]
        self.rollups: list[Rollup | None] = [None] * len(ids)
        for i, c in enumerate(ids):
            children = model.children.get(c)
            if children:
                kids = tuple(dict.fromkeys(index[k] for k in children))
                at = kids.index(i) if i in kids else len(kids)  # a self-loop (bad data): its entry is the own state
                pos = {k: n for n, k in enumerate(kids)}
                order = tuple((pos.get(index[m], at), m) for m in model.rollup_order(c))
                self.rollups[i] = Rollup(kids, at, order, *self.rule_scale[i])
        self.plans: dict[frozenset[int], Plan] = {}
        self.names: dict[int, dict[int, int]] = {}  # learner (int) -> competency -> state id (int)

    def plan(self, targets: frozenset[int]) -> Plan:
        hit = self.plans.get(targets)
        if hit is None:
            if len(self.plans) >= self.PLANS:
                self.plans.clear()
            hit = self.plans[targets] = self._plan(targets)
        return hit

    def _plan(self, targets: frozenset[int]) -> Plan:
        """As ``derivation.derive`` orders them: parents sorted by depth (children first)."""
        m, ids, index = self.model, self.ids, self.index
        own = {ids[i] for i in targets}
        above = m.ancestors(own)
        wanted = own | above
        leaves = tuple(index[c] for c in own if not m.children.get(c))
        parents = tuple(index[c] for c in sorted(above | {c for c in own if m.children.get(c)}, key=m.depth))
        kids = {k for c in wanted for k in m.children.get(c, ())} - wanted
        evidence = {index[e] for c in wanted for e in m.group(c)}
        return Plan(leaves, parents, leaves + parents, tuple(sorted(evidence)), tuple(index[k] for k in kids))

    def state_ints(self, tenant: str, learner: uuid.UUID, text: str, competencies: Iterable[int]) -> list[int]:
        """The state ids (as ints) of one learner's ``competencies``."""
        mine = self.names.get(learner.int)
        if mine is None:
            if len(self.names) >= self.NAMES:
                self.names.clear()
            mine = self.names[learner.int] = {}
        out = []
        namer = None
        for c in competencies:
            sid = mine.get(c)
            if sid is None:
                if namer is None:
                    namer = state_int_namer(tenant, text)
                sid = mine[c] = namer(self.texts[c])
            out.append(sid)
        return out


def compiled(model: TenantModel) -> Compiled:
    """The model's ``Compiled``, made on first use (a model is replaced, not changed)."""
    cm = model.compiled
    if cm is None:
        cm = model.compiled = Compiled(model)
    return cm


def rollup(parent: uuid.UUID, r: Rollup, members: list[Summary | None]) -> Derived | None:
    """A parent's state from its members' (``members``: its children's states in ``r.kids``
    order, then the parent's own when it has one and is not its own child): the value is
    their mean (a child without a state counts 0), and it is mastered when at least
    ``rollup_share`` of them are. One pass; the first of equal minima and maxima is kept, as
    ``min`` and ``max`` keep it."""
    total: float = 0
    hits = count = 0
    first = last = None
    present = False
    for d in members:
        if d is None:
            continue
        present = True
        v, m, k, at, to = d
        total += v or 0.0
        if m:
            hits += 1
        count += k
        if at is not None and (first is None or at < first):
            first = at
        if to is not None and (last is None or to > last):
            last = to
    if not present:
        return None
    rule, scale = r.rule, r.scale
    n = len(members)
    value = total / n
    share = hits / n
    mastered = share >= rule.rollup_share - 1e-12
    level = scale.level_for(value)
    if mastered and not level.mastery:
        level = scale.lowest_mastery or level
    elif not mastered and level.mastery:
        level = scale.highest_below_mastery
    weight = round(1 / n, 12)
    contribs: list[ContributionRow] = []
    for at_, c in r.order:
        if at_ < n:
            d = members[at_]
            contribs.append((None, c, d[0] if d is not None and d[0] is not None else 0.0, weight))
    params: dict[str, Any] = {"rollup_share": rule.rollup_share, "mastered_share": round(share, 6), "children": len(r.kids)}
    return Derived(parent, rule, MasteryMethod.rollup, value, level.code, mastered, contribs, count, first, last, params)


def members_of(r: Rollup, kids: list[Summary | None], own: Derived | None) -> list[Summary | None]:
    """A rollup's members: its children's states (``kids``, in ``r.kids`` order) and the
    parent's own (in its place if it is its own child: bad data, a self-loop)."""
    if own is not None:
        mine = summary(own)
        if r.own_at < len(kids):
            kids[r.own_at] = mine
        else:
            kids.append(mine)
    elif r.own_at < len(kids):
        kids[r.own_at] = None
    return kids


def summary(d: Derived | None) -> Summary | None:
    return None if d is None else (d.value, d.mastered, d.evidence_count, d.first_at, d.last_at)


def derive(
    model: TenantModel,
    rows_by_competency: dict[uuid.UUID, list[EvidenceRow]],
    targets: set[uuid.UUID],
    stored: Callable[[uuid.UUID], Derived | None],
) -> dict[uuid.UUID, Derived | None]:
    """States of one learner for ``targets`` and all their ancestors (the full recompute's;
    ``incremental.update`` runs the same steps on competency numbers).

    ``rows_by_competency`` holds the learner's counted evidence for at least every target's
    equivalence group; ``stored(c)`` gives the state of a competency not recomputed here (a
    rollup's untouched child)."""
    cm = compiled(model)
    out: dict[uuid.UUID, Derived | None] = {}
    known: dict[uuid.UUID, Summary | None] = {}
    own: dict[uuid.UUID, Derived | None] = {}
    for c in targets:
        rows = [r for e in model.group(c) for r in rows_by_competency.get(e, ())]
        own[c] = _leaf(model, c, rows)
        if not model.children.get(c):
            out[c] = own[c]
            known[c] = summary(own[c])
    ids = cm.ids
    for parent in sorted(model.ancestors(targets) | {c for c in targets if model.children.get(c)}, key=model.depth):
        r = cm.rollups[cm.index[parent]]
        assert r is not None  # a parent has children
        kids = [known[k] if k in known else summary(stored(k)) for k in (ids[i] for i in r.kids)]
        mine = own[parent] if parent in own else _leaf(model, parent, [
            r for e in model.group(parent) for r in rows_by_competency.get(e, ())
        ])
        out[parent] = d = rollup(parent, r, members_of(r, kids, mine))
        known[parent] = summary(d)
    return out


__all__ = ["Compiled", "Plan", "Rollup", "Summary", "compiled", "derive", "leaf_of", "members_of", "rollup", "summary"]
