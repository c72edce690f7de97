"""The calculation methods: a learner's evidence on one competency -> a value in 0..1.

Pure functions over plain tuples, shared by the incremental path and the full recompute,
so the two cannot disagree. Every method also says how much each evidence item counted
(``shares``, summing to 1), which is what makes a state explainable.

An item is ``(evidence_id, observed_at, value, weight)``; items arrive sorted by
``(observed_at, evidence_id)``, oldest first, so "latest" and the trend methods are
deterministic even when two items share a timestamp. ``weight`` is the evidence kind's
weight from the rule (items weighted 0 never get here).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.model import MasteryMethod

Item = tuple[uuid.UUID, datetime, float, float]

#: power law: values are floored here before taking logarithms (a 0 has no logarithm)
POWER_LAW_FLOOR = 0.01


@dataclass(frozen=True)
class Rule:
    """A MasteryRule's calculation, detached from its record (the built-in default has none)."""

    method: MasteryMethod
    name: str = "default"
    rule_id: uuid.UUID | None = None
    scale_id: uuid.UUID | None = None
    decay_weight: float | None = None
    n: int | None = None
    m: int | None = None
    at_level: str | None = None
    min_evidence: int = 1
    kind_weights: dict[str, float] = field(default_factory=dict)
    rollup_share: float = 1.0

    def parameters(self) -> dict[str, float | int | str | None]:
        out: dict[str, float | int | str | None] = {"min_evidence": self.min_evidence}
        if self.method in (MasteryMethod.decaying_average, MasteryMethod.weighted_average):
            out["decay_weight"] = self.decay_weight
        if self.method is MasteryMethod.n_of_m:
            out.update(n=self.n, m=self.m, at_level=self.at_level)
        return out


@dataclass(frozen=True)
class Outcome:
    value: float
    shares: list[tuple[Item, float]]


def calculate(rule: Rule, items: Sequence[Item], *, at_level_min: float | None = None, level_of: object = None) -> Outcome:
    """The value of ``items`` under ``rule`` (``items`` non-empty, oldest first).

    ``at_level_min``: the n-of-m level's threshold; ``level_of``: value -> level rank (mode)."""
    method = rule.method
    if method is MasteryMethod.latest:
        return Outcome(items[-1][2], [(items[-1], 1.0)])
    if method is MasteryMethod.highest:
        best = max(items, key=lambda it: it[2])  # max keeps the first of equals: the oldest
        return Outcome(best[2], [(best, 1.0)])
    if method is MasteryMethod.mean:
        return _weighted_mean(items)
    if method is MasteryMethod.weighted_average:
        return _weighted_average(items, rule.decay_weight or 0.0)
    if method is MasteryMethod.decaying_average:
        return _decaying_average(items, rule.decay_weight or 0.0)
    if method is MasteryMethod.mode:
        return _mode(items, level_of)
    if method is MasteryMethod.power_law:
        return _power_law(items)
    if method is MasteryMethod.n_of_m:
        assert rule.n is not None and rule.m is not None and at_level_min is not None
        return _n_of_m(items, rule.n, rule.m, at_level_min)
    raise ValueError(f"{method.value} is not an evidence calculation")


def _weighted_mean(items: Sequence[Item]) -> Outcome:
    total = sum(it[3] for it in items)
    return Outcome(sum(it[2] * it[3] for it in items) / total, [(it, it[3] / total) for it in items])


def _weighted_average(items: Sequence[Item], w: float) -> Outcome:
    """The newest item counts ``w``; the (kind-weighted) mean of all before it ``1 - w``.

    Canvas's "Weighted Average" (its "Decaying Average" until 2023, and Tessera's
    ``decaying_average`` until revision 0007): a non-recursive blend. docs/mastery.md."""
    if len(items) == 1:
        return Outcome(items[0][2], [(items[0], 1.0)])
    prior = _weighted_mean(items[:-1])
    last = items[-1]
    return Outcome(w * last[2] + (1 - w) * prior.value, [*((it, s * (1 - w)) for it, s in prior.shares), (last, w)])


def _decaying_average(items: Sequence[Item], w: float) -> Outcome:
    """The recursive decaying average: ``d1 = s1``, ``dk = a_k * sk + (1 - a_k) * d(k-1)``.

    ``a_k = w`` for an item of kind weight 1 (Canvas's and Mastery Connect's "Decaying
    Average"); an item of kind weight ``c`` blends in as ``c`` consecutive items of the same
    score would: ``a_k = 1 - (1 - w) ** c``. Item k's share of the result is ``a_k`` times
    ``(1 - a_j)`` of every later item j (the first item's ``a`` is 1), so the shares sum to
    1: for kind weight 1, ``w * (1 - w) ** (n - k)`` and ``(1 - w) ** (n - 1)`` for the first."""
    keep = 1 - w
    alphas = [1.0] + [w if it[3] == 1.0 else 1 - keep ** it[3] for it in items[1:]]
    value = items[0][2]
    for it, a in zip(items[1:], alphas[1:], strict=True):
        value = a * it[2] + (1 - a) * value
    shares: list[tuple[Item, float]] = []
    later = 1.0  # product of (1 - a_j) over the items after this one
    for it, a in zip(reversed(items), reversed(alphas), strict=True):
        shares.append((it, a * later))
        later *= 1 - a
    shares.reverse()
    return Outcome(value, shares)


def _mode(items: Sequence[Item], level_of: object) -> Outcome:
    """The most frequent level; ties go to the level reached most recently. The value is the
    mean of the items at that level, so it lies inside the level's band."""
    by_level: dict[int, list[Item]] = {}
    for it in items:
        by_level.setdefault(level_of(it[2]), []).append(it)  # type: ignore[operator]
    last_seen = {lv: max(i for i, it in enumerate(items) if level_of(it[2]) == lv) for lv in by_level}  # type: ignore[operator]
    modal = max(by_level, key=lambda lv: (len(by_level[lv]), last_seen[lv]))
    chosen = by_level[modal]
    return Outcome(sum(it[2] for it in chosen) / len(chosen), [(it, 1 / len(chosen)) for it in chosen])


def _power_law(items: Sequence[Item]) -> Outcome:
    """Marzano's power law: fit ``value = a * t ** b`` over the attempt number ``t`` by least
    squares on logarithms, and take the fitted value at the latest attempt (the learner's
    current trend, less swayed by one bad day than ``latest``)."""
    n = len(items)
    share = 1 / n
    if n == 1:
        return Outcome(items[0][2], [(items[0], 1.0)])
    xs = [math.log(t) for t in range(1, n + 1)]
    ys = [math.log(max(it[2], POWER_LAW_FLOOR)) for it in items]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    value = math.exp(my + b * (xs[-1] - mx))
    return Outcome(min(1.0, max(0.0, value)), [(it, share) for it in items])


def _n_of_m(items: Sequence[Item], n: int, m: int, threshold: float) -> Outcome:
    """Mastered when at least ``n`` of the last ``m`` items reach the level: the value is then
    the mean of those that did (so it is at the level). Otherwise the mean of the last
    ``m``, held just below the level's threshold: not yet at it, however high the mean."""
    window = list(items[-m:])
    reached = [it for it in window if it[2] >= threshold]
    if len(reached) >= n:
        return Outcome(sum(it[2] for it in reached) / len(reached), [(it, 1 / len(reached)) for it in reached])
    mean = sum(it[2] for it in window) / len(window)
    below = max(0.0, math.nextafter(threshold, 0.0))
    return Outcome(min(mean, below), [(it, 1 / len(window)) for it in window])


__all__ = ["POWER_LAW_FLOOR", "Item", "Outcome", "Rule", "calculate"]
