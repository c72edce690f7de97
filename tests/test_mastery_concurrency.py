"""Two transactions that add evidence for the same learner at the same time (PostgreSQL,
where ``tessera serve --workers N`` writes concurrently): the state both update must count
both items, as a full recompute would. The first transaction is held open after its
evidence and state are written; the second writes its own evidence meanwhile, then the
first commits. Without the per-learner lock the second derived the state from a snapshot
without the first's evidence, and its write, the last, left a state counting one item."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection

from gateway.mastery.attach import engine_of
from gateway.mastery.engine import state_id
from gateway.store import Store

from . import factories as f


def test_concurrent_evidence_for_one_learner_counts_in_its_state(store: Store) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its transactions cannot interleave")
    school = f.org()
    kid = f.person("u1", school)
    fw = f.framework()
    comp = f.competency("A.1", fw)
    store.records.apply(f.T, [school, kid, fw, comp])
    first = f.evidence("e1", kid, comp, raw=9, observed_at=datetime(2026, 10, 1, tzinfo=UTC))
    second = f.evidence("e2", kid, comp, raw=5, observed_at=datetime(2026, 10, 2, tzinfo=UTC))

    written = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold(conn: Connection) -> None:  # runs in the first transaction once its state is written
        written.set()
        release.wait(10)

    def apply(ev: object, within: object = None) -> None:
        try:
            store.records.apply(f.T, [ev], within=within)  # type: ignore[list-item,arg-type]
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    a = threading.Thread(target=apply, args=(first, hold))
    a.start()
    assert written.wait(10)
    b = threading.Thread(target=apply, args=(second,))
    b.start()
    time.sleep(0.5)  # the second transaction writes its evidence and reaches the mastery update
    release.set()
    a.join(10)
    b.join(10)
    assert not errors
    state = store.records.get(f.T, "mastery_state", state_id(f.T, kid.id, comp.id))
    assert state.evidence_count == 2
    assert engine_of(store).recompute(f.T).written == 0
