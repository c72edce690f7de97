"""Issue 19's methods through the store: the explanation of a state gives each evidence item
its effective weight under the method, and the weights sum to 1, for every method."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.mastery.learners import Learners
from gateway.model import MasteryMethod, MasteryRule
from gateway.store import Store

from . import factories as f

T = f.T
DAY = datetime(2026, 9, 1, tzinfo=UTC)
METHODS = [m for m in MasteryMethod if m is not MasteryMethod.rollup]


def _world(store: Store, rule: MasteryRule | None, raws: list[float], kinds: list[str] | None = None) -> tuple:
    school = f.org()
    kid = f.person("u1", school)
    fw = f.framework("state")
    a = f.competency("A", fw)
    store.records.apply(T, [school, kid, fw, a, *([rule] if rule else [])])
    store.records.apply(T, [f.evidence(f"e{i}", kid, a, raw=r, observed_at=DAY + timedelta(days=i),
                                       evidence_kind=(kinds or ["assessment"] * len(raws))[i]) for i, r in enumerate(raws)])
    return kid, a


def test_the_default_is_the_recursive_decaying_average(store: Store) -> None:
    kid, a = _world(store, None, [4, 6, 9])
    body = Learners(store).explain(T, kid.id, a.id)
    assert body["rule"]["method"] == "decaying_average" and body["rule"]["decay_weight"] == 0.65
    assert body["state"]["value"] == pytest.approx(0.7705)  # issue 19: "65%" over 0.4, 0.6, 0.9
    assert [c["weight"] for c in body["contributions"]] == pytest.approx([0.35**2, 0.65 * 0.35, 0.65])
    assert [c["evidence"]["score"]["raw"] for c in body["contributions"]] == [4, 6, 9]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_explains_each_item_with_weights_that_sum_to_one(store: Store, method: MasteryMethod) -> None:
    extra: dict = {}
    if method in (MasteryMethod.decaying_average, MasteryMethod.weighted_average):
        extra = {"decay_weight": 0.65}
    elif method is MasteryMethod.n_of_m:
        extra = {"n": 2, "m": 3, "at_level": "3"}
    rule = MasteryRule(tenant=T, source="admin", native_id="r", name="r", method=method, **extra)
    kid, a = _world(store, rule, [4, 8, 6, 9, 3], ["assessment", "performance_task", "self_assessment", "assessment", "completion"])
    body = Learners(store).explain(T, kid.id, a.id)
    assert body["state"]["method"] == method.value
    weights = [c["weight"] for c in body["contributions"]]
    assert weights and all(w > 0 for w in weights)
    assert sum(weights) == pytest.approx(1.0)
    if method not in (MasteryMethod.power_law, MasteryMethod.n_of_m):  # a fit; a value held below a level
        score = sum(c["weight"] * c["value"] for c in body["contributions"])
        assert score == pytest.approx(body["state"]["value"])
