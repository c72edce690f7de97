"""How one learner's states are computed from its evidence: a competency's own (``leaf_of``, a
calculation method over its evidence) and a rollup's (``_rollup``, over its children's
states), and ``derive``, which does both for a set of targets and their ancestors. Pure
functions of the tenant's structure (``structure.TenantModel``) and the rows given: the full
recompute and the incremental update (``incremental``) share them, so the two agree."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from gateway.model import MasteryMethod

from .derived import ContributionRow, Derived
from .methods import Item, Rule, calculate
from .reads import EvidenceRow
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


def _rollup(model: TenantModel, parent: uuid.UUID, own: Derived | None, kids: dict[uuid.UUID, Derived | None]) -> Derived | None:
    """A parent's state from its children's: the value is their mean (a child without a state
    counts 0), and it is mastered when at least ``rollup_share`` of them are. The parent's
    own evidence, if any, counts as one more member."""
    members = {c: d for c, d in kids.items()}
    if own is not None:
        members[parent] = own
    if not any(d is not None for d in members.values()):
        return None
    rule, scale = model.rule_and_scale(parent)
    n = len(members)
    value = sum((d.value or 0.0) for d in members.values() if d is not None) / n
    share = sum(1 for d in members.values() if d is not None and d.mastered) / n
    mastered = share >= rule.rollup_share - 1e-12
    level = scale.level_for(value)
    if mastered and not level.mastery:
        level = scale.lowest_mastery or level
    elif not mastered and level.mastery:
        level = scale.highest_below_mastery
    present = [d for d in members.values() if d is not None]
    # the order of the ids' text, without formatting it (members: the children, and the parent when it has its own)
    weight = round(1 / n, 12)
    contribs: list[ContributionRow] = []
    for c in model.rollup_order(parent):
        if c in members:
            d = members[c]
            contribs.append((None, c, d.value if d is not None and d.value is not None else 0.0, weight))
    firsts = [d.first_at for d in present if d.first_at is not None]
    lasts = [d.last_at for d in present if d.last_at is not None]
    params: dict[str, Any] = {"rollup_share": rule.rollup_share, "mastered_share": round(share, 6), "children": len(kids)}
    return Derived(parent, rule, MasteryMethod.rollup, value, level.code, mastered, contribs,
                   sum(d.evidence_count for d in present), min(firsts, default=None), max(lasts, default=None), params)


def derive(
    model: TenantModel,
    rows_by_competency: dict[uuid.UUID, list[EvidenceRow]],
    targets: set[uuid.UUID],
    stored: Callable[[uuid.UUID], Derived | None],
) -> dict[uuid.UUID, Derived | None]:
    """States of one learner for ``targets`` and all their ancestors.

    ``rows_by_competency`` holds the learner's counted evidence for at least every target's
    equivalence group; ``stored(c)`` gives the state of a competency not recomputed here (a
    rollup's untouched child)."""
    out: dict[uuid.UUID, Derived | None] = {}
    own: dict[uuid.UUID, Derived | None] = {}
    for c in targets:
        rows = [r for e in model.group(c) for r in rows_by_competency.get(e, ())]
        own[c] = _leaf(model, c, rows)
        if not model.children.get(c):
            out[c] = own[c]
    for parent in sorted(model.ancestors(targets) | {c for c in targets if model.children.get(c)}, key=model.depth):
        kids = {k: (out[k] if k in out else stored(k)) for k in model.children[parent]}
        mine = own[parent] if parent in own else _leaf(model, parent, [
            r for e in model.group(parent) for r in rows_by_competency.get(e, ())
        ])
        out[parent] = _rollup(model, parent, mine, kids)
    return out


__all__ = ["derive", "leaf_of"]
