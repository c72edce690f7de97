"""The incremental update (``MasteryEngine.on_evidence``): the states one evidence transaction
touches, recomputed in that transaction, on the tenant's structure compiled to small ints.

Every evidence transaction runs it (the xAPI consumer's batches of 250 statements, a hundred
learners at once), and with ``uuid.UUID`` keys its loops spent more in ``UUID.__hash__`` than
in the arithmetic. So ``Compiled`` numbers a model's competencies once per model (a structure
change makes a new model, ``structure.stamp``), keeps their children, groups, rules, scales and
ids' text by number, and gives each set of targets its ``Plan`` once: the states recomputed
(the targets and their ancestors, parents after their children), the competencies whose
evidence they read and the rollups' children whose stored states they read.

The computation is ``derivation``'s (``leaf_of``) and the same as ``derivation.derive``'s for
rollups (``_rollup`` below mirrors ``derivation._rollup`` on lists instead of dicts: the same
members in the same order, so the same sums to the last bit); the full recompute uses
``derive`` and the bench's ``--recompute-check`` and the property test compare the two.

A rollup's child that the transaction does not recompute is read from its stored state: its
status and content hash always (by primary key), its document only when ``Summaries`` does not
know that hash yet. ``Summaries`` maps a content hash to what a rollup reads of the state
(value, mastery, count, dates); the hash covers all of those, so an entry can never be stale,
whichever process or transaction wrote the state, and whether or not that transaction
committed. Parsing the children's documents was a fifth of the update's CPU.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from sqlalchemy import Connection

from gateway.model import MasteryMethod, MasteryState, Status, ensure_aware
from gateway.model.base import uuid_from_int

from .derivation import leaf_of
from .derived import ContributionRow, Derived
from .reads import SOURCE, EvidenceRow, _state_namer, evidence_pairs, state_rows
from .serial import StateHead, computed_at_suffix, state_json
from .structure import Scale, TenantModel

if TYPE_CHECKING:
    from .methods import Rule

_ACTIVE = Status.active.value


#: what a rollup reads of a child's state: (value, mastered, evidence count, first_at, last_at)
Summary = tuple[float | None, bool, int, datetime | None, datetime | None]


class Plan(NamedTuple):
    """What recomputing one set of targets (competency numbers) takes."""

    leaves: tuple[int, ...]  # targets without children: their own evidence's state
    parents: tuple[int, ...]  # the rollups recomputed (ancestors, targets with children), children first
    wanted: tuple[int, ...]  # leaves + parents: the states written (or retired)
    evidence: tuple[int, ...]  # the competencies whose evidence is read (the wanted ones' groups)
    kids: tuple[int, ...]  # rollups' children not recomputed: their stored states are read


class Rollup(NamedTuple):
    """A parent's rollup, compiled: its children (numbers, each once, in ``model.children``'s
    order: the order of the sums), its contributions' order, its rule and scale."""

    kids: tuple[int, ...]
    own_at: int  # the parent's own state's position among the members (len(kids): after them)
    order: tuple[tuple[int, uuid.UUID], ...]  # (member position, competency) by the ids' text
    rule: Rule
    scale: Scale


class Compiled:
    """A ``TenantModel``'s structure by competency number (see the module docstring)."""

    PLANS = 50_000  # target sets remembered (emptied when full)
    NAMES = 50_000  # learners whose states' ids are remembered (a dozen or so each)

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
                    namer = _state_namer(tenant, text)
                sid = mine[c] = namer(self.texts[c])[0].int
            out.append(sid)
        return out


def compiled(model: TenantModel) -> Compiled:
    """The model's ``Compiled``, made on first use (a model is replaced, not changed)."""
    cm = model.compiled
    if cm is None:
        cm = model.compiled = Compiled(model)
    return cm


class Summaries:
    """content hash -> ``Summary`` of the state with that content (module docstring)."""

    KEPT = 200_000  # about 300 bytes an entry; emptied when full (a refill reads documents again)

    def __init__(self) -> None:
        self._by_hash: dict[str, Summary] = {}

    def get(self, digest: str) -> Summary | None:
        return self._by_hash.get(digest)

    def room(self, n: int) -> dict[str, Summary]:
        """The dict itself, with room for ``n`` more entries (the update's loop adds them)."""
        if len(self._by_hash) + n > self.KEPT:
            self._by_hash.clear()
        return self._by_hash

    def put(self, digest: str, summary: Summary) -> Summary:
        if len(self._by_hash) >= self.KEPT:
            self._by_hash.clear()
        self._by_hash[digest] = summary
        return summary


def _summary_of(data: str) -> Summary:
    """A stored state's summary from its document, read without validating the whole state
    (its contributions list every evidence item)."""
    doc = orjson.loads(data)
    first, last = doc.get("first_at"), doc.get("last_at")
    return (doc.get("value"), bool(doc.get("mastered")), doc.get("evidence_count", 0),
            ensure_aware(datetime.fromisoformat(first)) if first else None,
            ensure_aware(datetime.fromisoformat(last)) if last else None)


def _rollup(parent: uuid.UUID, r: Rollup, members: list[Summary | None]) -> Derived | None:
    """``derivation._rollup`` over ``members`` (the children's states in ``r.kids`` order, then
    the parent's own when it has one), in one pass: the same sums in the same order (``sum``
    starts from the int 0 too), the first of equal minima and maxima kept as ``min`` and
    ``max`` keep them."""
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


def retired(tenant: str, learner: uuid.UUID, competency: uuid.UUID, model: TenantModel, now: datetime) -> MasteryState:
    """A state whose evidence is all gone (voided, superseded, re-aligned): kept, marked deleted."""
    from .reads import state_names

    rule = model.rule(competency)
    return MasteryState(
        id=state_names(tenant, str(learner), str(competency))[0], tenant=tenant, source=SOURCE,
        native_id=f"{learner}:{competency}", status=Status.tobedeleted, learner_id=learner, competency_id=competency,
        method=rule.method, rule_id=rule.rule_id, evidence_count=0, computed_at=now,
    )


def lock_learners(conn: Connection, tenant: str, learners: Iterable[uuid.UUID]) -> None:
    """PostgreSQL: hold a transaction advisory lock per learner until this transaction ends,
    taken in one order (no deadlock between two batches), before the learners' evidence is
    read. Transactions write concurrently there (``tessera serve --workers N``): without
    it, two that add evidence for the same learner at once would each derive the states
    from a snapshot without the other's evidence, and the last to commit would win with a
    state missing an item. With it, the second waits, then reads the first's committed
    evidence (READ COMMITTED: each statement sees what committed before it began). A lock
    key shared by two learners (a 64-bit hash) only makes them wait for each other."""
    keys = sorted({int.from_bytes(hashlib.blake2b(f"{tenant}/{learner}".encode(), digest_size=8).digest(), "big", signed=True)
                   for learner in learners})
    conn.exec_driver_sql(
        "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM unnest(%(keys)s::bigint[]) AS k ORDER BY k) AS ordered",
        {"keys": keys},
    )


class Update(NamedTuple):
    """What one transaction's update writes: states serialised (``prepare_serialised``'s
    items) with the stored hashes of those that exist, and retired states as records."""

    states: list[tuple[StateHead, str, str]]
    hashes: dict[uuid.UUID, str]
    retired: list[MasteryState]


def update(model: TenantModel, summaries: Summaries, conn: Connection, tenant: str,
           pairs: Iterable[tuple[uuid.UUID, uuid.UUID]], now: datetime) -> Update | None:
    """The states these (learner, competency) pairs touch, derived from what ``conn`` reads
    (the caller writes them in the same transaction); None when none of them is aligned to a
    competency of the model."""
    cm = compiled(model)
    index, groups = cm.index, cm.groups
    targets: dict[uuid.UUID, set[int]] = {}
    for learner, comp in pairs:
        i = index.get(comp)
        if i is not None:
            have = targets.get(learner)
            if have is None:
                have = targets[learner] = set()
            have.update(groups[i])
    if not targets:
        return None
    if conn.dialect.name == "postgresql":
        lock_learners(conn, tenant, targets)
    learners = list(targets)
    texts = [str(learner) for learner in learners]
    plans = [cm.plan(frozenset(targets[learner])) for learner in learners]
    rows_by = evidence_pairs(conn, tenant, learners, [p.evidence for p in plans], cm.ids)
    # every state read: the wanted ones (status and hash) and the rollups' untouched children
    sids = [cm.state_ints(tenant, learner, text, p.wanted + p.kids) for learner, text, p in zip(learners, texts, plans, strict=True)]
    heads = state_rows(conn, [s for mine in sids for s in mine])  # sid -> (status, hash)
    # the children's summaries, kept here for the batch (``summaries`` may be emptied meanwhile)
    held: dict[int, Summary] = {}
    missing: dict[int, str] = {}
    for p, mine in zip(plans, sids, strict=True):
        for sid in mine[len(p.wanted):]:
            head = heads.get(sid)
            if head is not None and head[0] == _ACTIVE:
                hit = summaries.get(head[1])
                if hit is None:
                    missing[sid] = head[1]
                else:
                    held[sid] = hit
    if missing:
        for sid, digest, data in state_rows(conn, list(missing), with_data=True):
            if data is not None and digest == missing[sid]:
                held[sid] = summaries.put(digest, _summary_of(data))
    suffix = computed_at_suffix(now)
    out = Update([], {}, [])
    add = out.states.append
    remember = summaries.room(sum(len(p.wanted) for p in plans))
    ids, rule_scale, rollups, texts_of, single = cm.ids, cm.rule_scale, cm.rollups, cm.texts, cm.single
    for learner, text, p, mine, rows_of in zip(learners, texts, plans, sids, rows_by, strict=True):
        wanted = len(p.wanted)
        known: dict[int, Summary | None] = {c: held.get(sid) for c, sid in zip(p.kids, mine[wanted:], strict=True)}
        derived: list[Derived | None] = []
        for c in p.leaves:
            rows = rows_of.get(c) if single[c] else _rows(rows_of, groups[c])
            d = leaf_of(ids[c], *rule_scale[c], rows) if rows else None
            known[c] = None if d is None else (d.value, d.mastered, d.evidence_count, d.first_at, d.last_at)
            derived.append(d)
        for c in p.parents:
            rows = rows_of.get(c) if single[c] else _rows(rows_of, groups[c])
            own = leaf_of(ids[c], *rule_scale[c], rows) if rows else None
            r = rollups[c]
            assert r is not None
            members = [known.get(k) for k in r.kids]
            if own is not None:
                mine_ = (own.value, own.mastered, own.evidence_count, own.first_at, own.last_at)
                if r.own_at < len(members):
                    members[r.own_at] = mine_
                else:
                    members.append(mine_)
            elif r.own_at < len(members):
                members[r.own_at] = None
            d = _rollup(ids[c], r, members)
            known[c] = None if d is None else (d.value, d.mastered, d.evidence_count, d.first_at, d.last_at)
            derived.append(d)
        for c, sid, d in zip(p.wanted, mine[:wanted], derived, strict=True):
            head = heads.get(sid)
            if d is None:
                if head is not None and head[0] == _ACTIVE:
                    out.retired.append(retired(tenant, learner, ids[c], model, now))
                continue
            sid_u = uuid_from_int(sid)
            state = state_json(tenant, SOURCE, sid_u, f"{text}:{texts_of[c]}", learner, d, suffix)
            if head is not None:
                if head[1] == state[1] and head[0] == _ACTIVE:
                    continue  # unchanged: nothing to write
                out.hashes[sid_u] = head[1]
            remember[state[1]] = known[c]  # type: ignore[assignment]  # d is not None
            add(state)
    return out


def _rows(rows_of: dict[int, list[EvidenceRow]], group: tuple[int, ...]) -> list[EvidenceRow]:
    """A competency's evidence and its equivalents'."""
    return [r for e in group for r in rows_of.get(e, ())]


__all__ = ["Compiled", "Plan", "Summaries", "Summary", "Update", "compiled", "lock_learners", "retired", "update"]
