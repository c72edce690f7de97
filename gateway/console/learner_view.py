"""What a learner's console pages show, read from the store in a fixed number of queries.

The profile of a learner over a 900-competency framework with 2,000 evidence items must
render in well under 100 ms, so nothing here queries per competency: one read each for the
person and their school, the states, the frameworks (``Learners.frameworks_of``: two), the
evidence, the plans and the next competencies' details; the tenant's structure comes from
the mastery engine's cached ``TenantModel`` and the competencies' codes and statements from a
cache kept per framework until that model changes (``_Details``). States and evidence are
read as JSON, not validated into models: the page only displays them.

Two more caches, both keyed so that they cannot show stale content: ``PROFILES`` keeps a
learner's trees, counts, charts and next steps while the tenant's model, the learner's
frameworks, their states (count and latest ``updated_at``) and the day are unchanged (the
person and the plans are read every time); ``BLOCKS`` keeps each state's explanation block by
the state's content hash, so the view after new work reads only the states it changed and
their evidence. Queries per profile: 10 when kept, 14 when built, whatever the framework's size.

Words: a level is shown by its scale's own name ("Proficient") and a plain word a parent
reads at a glance ("shown", "getting there", "not yet", "not started"), and by the
``lvl-*`` colour and pattern classes of console.css (never colour alone).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Connection, func, select

from ..errors import ErrorDetail, NotFound
from ..mastery.attach import engine_of
from ..mastery.learners import Learners
from ..mastery.structure import TenantModel
from ..model import MasteryState, Status
from ..store import Store
from ..store import tables as t
from . import learner_tree as tree
from .learner_tree import SKELETONS
from .learner_words import PLAN_STATUS, TARGET_STATUS, TRAIL, Badge, badge, evidence_row, why

ACTIVE = Status.active.value
#: what to work on next: how many suggestions
NEXT = 8
class _Details:
    """Codes and statements of a framework's competencies and the framework's title, kept
    until the tenant's mastery model changes (it changes with every competency written)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, uuid.UUID], tuple[Any, dict[uuid.UUID, tuple[str, str]], str]] = {}

    def get(self, conn: Connection, tenant: str, model: TenantModel, frameworks: set[uuid.UUID],
            ) -> tuple[dict[uuid.UUID, tuple[str, str]], dict[uuid.UUID, str]]:
        missing = [fw for fw in frameworks if (hit := self._by.get((tenant, fw))) is None or hit[0] != model.stamp]
        if missing:
            comps, fws = t.competencies, t.frameworks
            found: dict[uuid.UUID, dict[uuid.UUID, tuple[str, str]]] = {fw: {} for fw in missing}
            q = select(comps.c.framework_id, comps.c.id, comps.c.data).where(
                comps.c.tenant == tenant, comps.c.status == ACTIVE, comps.c.framework_id.in_(missing))
            for fw, cid, data in conn.execute(q):
                doc = orjson.loads(data)
                found[fw][cid] = (doc.get("code") or "", doc.get("short_statement") or doc.get("statement") or "")
            titles = {fid: orjson.loads(d).get("title") or "Framework"
                      for fid, d in conn.execute(select(fws.c.id, fws.c.data).where(fws.c.tenant == tenant, fws.c.id.in_(missing)))}
            with self._lock:
                if len(self._by) > 256:
                    self._by.clear()
                for fw in missing:
                    self._by[(tenant, fw)] = (model.stamp, found[fw], titles.get(fw, "Framework"))
        details: dict[uuid.UUID, tuple[str, str]] = {}
        titles_out: dict[uuid.UUID, str] = {}
        for fw in frameworks:
            _, d, title = self._by[(tenant, fw)]
            details.update(d)
            titles_out[fw] = title
        return details, titles_out


DETAILS = _Details()


def person_name(doc: dict[str, Any]) -> str:
    return f"{doc.get('preferred_name') or doc.get('given_name') or ''} {doc.get('family_name') or ''}".strip() or "Learner"


def people(conn: Connection, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """The people with their school names (two queries), in the order given."""
    if not ids:
        return []
    rows = {pid: orjson.loads(d) for pid, d in conn.execute(
        select(t.people.c.id, t.people.c.data).where(t.people.c.tenant == tenant, t.people.c.id.in_(ids)))}
    org_ids = {uuid.UUID(r["org_id"]) for doc in rows.values() for r in doc.get("roles", ())}
    orgs = {oid: orjson.loads(d) for oid, d in conn.execute(
        select(t.orgs.c.id, t.orgs.c.data).where(t.orgs.c.tenant == tenant, t.orgs.c.id.in_(org_ids)))} if org_ids else {}
    out = []
    for pid in ids:
        doc = rows.get(pid)
        if doc is None:
            continue
        mine = [orgs[uuid.UUID(r["org_id"])] for r in doc.get("roles", ()) if uuid.UUID(r["org_id"]) in orgs]
        schools = [o["name"] for o in mine if o.get("type") == "school"] or [o["name"] for o in mine]
        grades = doc.get("grades") or []
        out.append({"id": str(pid), "name": person_name(doc), "schools": sorted(set(schools)),
                    "grades": [("Kindergarten" if g == "KG" else f"Grade {int(g)}" if g.isdigit() else g) for g in grades]})
    return out


def _states(conn: Connection, tenant: str, learner: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    ms = t.mastery_states
    q = select(ms.c.competency_id, ms.c.data).where(ms.c.tenant == tenant, ms.c.learner_id == learner, ms.c.status == ACTIVE)
    return {cid: orjson.loads(d) for cid, d in conn.execute(q)}


class _Seen:
    """What ``Learners`` reads of a state to pick the next competencies."""

    __slots__ = ("level", "mastered", "value")

    def __init__(self, s: dict[str, Any]) -> None:
        self.level, self.value, self.mastered = s.get("level"), s.get("value"), bool(s.get("mastered"))


def _as_models(states: dict[uuid.UUID, dict[str, Any]]) -> dict[uuid.UUID, MasteryState]:
    """The states as ``Learners._next`` reads them (mastered, level, value), without building
    a model of each (pydantic's ``model_construct`` alone took 1 ms a state)."""
    return cast(dict[uuid.UUID, MasteryState], {c: _Seen(s) for c, s in states.items()})


def weekly(states: dict[uuid.UUID, dict[str, Any]], model: TenantModel, fw: uuid.UUID, today: date) -> dict[str, Any] | None:
    """Leaf competencies of ``fw`` started (first work) and shown (mastered, by the week of its
    latest work, as the mastery pace counts it), cumulated week by week up to ``today``."""
    started: list[date] = []
    shown: list[date] = []
    for c, s in states.items():
        if model.framework_of.get(c) != fw or model.children.get(c) or not s.get("first_at"):
            continue
        started.append(datetime.fromisoformat(s["first_at"]).date())
        if s.get("mastered") and s.get("last_at"):
            shown.append(datetime.fromisoformat(s["last_at"]).date())
    if not started:
        return None
    first = min(started)
    start = first - timedelta(days=first.weekday())
    end = max(today, max(started))
    n = min(52, (end - start).days // 7 + 1)
    start = max(start, end - timedelta(days=end.weekday()) - timedelta(weeks=n - 1))
    weeks = [start + timedelta(weeks=i) for i in range(n)]

    def cumulative(days: list[date]) -> list[int]:
        counts = [0] * n
        for d in days:
            i = max(0, min(n - 1, (d - start).days // 7))
            counts[i] += 1
        total, out = 0, []
        for x in counts:
            total += x
            out.append(total)
        return out

    return {"weeks": weeks, "started": cumulative(started), "shown": cumulative(shown)}


class _Profiles:
    """The profiles' expensive parts, least recently used first out, within a byte budget."""

    def __init__(self, budget: int = 48 * 1024 * 1024) -> None:
        self._lock = threading.Lock()
        self._by: OrderedDict[tuple[str, uuid.UUID], tuple[Any, dict[str, Any]]] = OrderedDict()
        self._size = 0
        self.budget = budget

    def get(self, name: tuple[str, uuid.UUID], key: Any) -> dict[str, Any] | None:
        with self._lock:
            hit = self._by.get(name)
            if hit is None or hit[0] != key:
                return None
            self._by.move_to_end(name)
            return hit[1]

    def put(self, name: tuple[str, uuid.UUID], key: Any, body: dict[str, Any]) -> None:
        with self._lock:
            old = self._by.pop(name, None)
            if old is not None:
                self._size -= old[1]["size"]
            self._by[name] = (key, body)
            self._size += body["size"]
            while self._size > self.budget and len(self._by) > 1:
                _, (_, dropped) = self._by.popitem(last=False)
                self._size -= dropped["size"]

    def clear(self) -> None:
        with self._lock:
            self._by.clear()
            self._size = 0


PROFILES = _Profiles()


class _Blocks:
    """Each state's explanation block and page fields by (model stamp, learner, competency,
    the state's content hash): unchanged states are not read or written again."""

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[Any, uuid.UUID, uuid.UUID, str], tuple[dict[str, Any], str]] = {}
        self.limit = limit

    def get(self, key: tuple[Any, uuid.UUID, uuid.UUID, str]) -> tuple[dict[str, Any], str] | None:
        return self._by.get(key)

    def put(self, key: tuple[Any, uuid.UUID, uuid.UUID, str], value: tuple[dict[str, Any], str]) -> None:
        with self._lock:
            if len(self._by) >= self.limit:
                self._by.clear()
            self._by[key] = value

    def clear(self) -> None:
        with self._lock:
            self._by.clear()


BLOCKS = _Blocks()


class LearnerView:
    """Builds the learner pages' content (``profile``, ``competency``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.learners = Learners(store)

    def names(self, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return people(conn, tenant, ids)

    def profile(self, tenant: str, learner: uuid.UUID, today: date | None = None) -> dict[str, Any]:
        """Name and school, the framework trees with counts and charts, what comes next, the plans.

        The trees, counts, charts and next steps are kept (``PROFILES``) while nothing they
        show has changed: the tenant's model (competencies, relations, rules, scales), the
        learner's frameworks, their states (every evidence item that counts, is voided or is
        superseded rewrites a state) and the day. The person and the plans are read every time."""
        today = today or datetime.now(UTC).date()
        with self.store.engine.connect() as conn:
            found = people(conn, tenant, [learner])
            if not found:
                raise NotFound("no such learner", errors=[ErrorDetail("not a learner you can see", field="learner")])
            model = engine_of(self.store).model(conn, tenant)
            frameworks = self.learners.frameworks_of(conn, tenant, learner, model)
            details, titles = DETAILS.get(conn, tenant, model, frameworks)
            ms = t.mastery_states
            version = tuple(conn.execute(select(func.count(), func.max(ms.c.updated_at)).where(
                ms.c.tenant == tenant, ms.c.learner_id == learner)).one())
            key = (model.stamp, frozenset(frameworks), version, today)
            body = PROFILES.get((tenant, learner), key)
            if body is None:
                body = self._body(conn, tenant, learner, model, frameworks, titles, details, today)
                PROFILES.put((tenant, learner), key, body)
            plans = self._plans(conn, tenant, learner, model, body["brief"], details)
        return {"learner": found[0], "frameworks": body["frameworks"], "counts": body["counts"], "next": body["next"], "plans": plans}

    def _body(self, conn: Connection, tenant: str, learner: uuid.UUID, model: TenantModel, frameworks: set[uuid.UUID],
              titles: dict[uuid.UUID, str], details: dict[uuid.UUID, tuple[str, str]], today: date) -> dict[str, Any]:
        skeletons = {fw: SKELETONS.get(tenant, model, fw, details) for fw in frameworks}
        states, blocks = self._states_and_blocks(conn, tenant, learner, model, skeletons)
        next_up = self.learners._next(conn, tenant, model, _as_models(states), frameworks, NEXT)
        trees: list[dict[str, Any]] = []
        size = 0
        counts = {"shown": 0, "getting there": 0, "not yet": 0, "started": 0, "competencies": 0}
        for fw in sorted(frameworks, key=lambda f: titles.get(f, "")):
            sk = skeletons[fw]
            html, fw_counts = tree.render(sk, states, blocks)
            size += len(html)
            for k, v in fw_counts.items():
                counts[k] = counts.get(k, 0) + v
            counts["competencies"] += sk.leaves
            trees.append({"id": str(fw), "title": titles.get(fw, "Framework"), "tree": html, "leaves": sk.leaves,
                          "shown": fw_counts["shown"], "started": fw_counts["started"], "small": len(sk.entries) < 12,
                          "chart": weekly(states, model, fw, today)})
        nxt = []
        for item in next_up:
            c = uuid.UUID(item["id"])
            rule, scale = model.rule_and_scale(c)
            nxt.append({"id": item["id"], "code": item.get("code") or "", "statement": item.get("short_statement") or item.get("statement") or "",
                        "badge": badge(scale, states.get(c)),
                        "reason": "already started" if item.get("reason") == "in progress" else "ready: the skills it builds on are shown"})
        return {"frameworks": trees, "counts": counts, "next": nxt, "brief": states, "size": size + 200 * len(states)}

    def _states_and_blocks(self, conn: Connection, tenant: str, learner: uuid.UUID, model: TenantModel,
                           skeletons: dict[uuid.UUID, tree.Skeleton]) -> tuple[dict[uuid.UUID, dict[str, Any]], dict[uuid.UUID, str]]:
        """Each state's few fields the page uses and its explanation block, from ``BLOCKS`` for
        every state whose content hash is unchanged; only the others are read whole, with their
        latest evidence (after new work: the states it touched)."""
        ms = t.mastery_states
        hashes = dict(conn.execute(select(ms.c.competency_id, ms.c.content_hash).where(
            ms.c.tenant == tenant, ms.c.learner_id == learner, ms.c.status == ACTIVE)).all())
        states: dict[uuid.UUID, dict[str, Any]] = {}
        blocks: dict[uuid.UUID, str] = {}
        missing: list[uuid.UUID] = []
        for cid, h in hashes.items():
            hit = BLOCKS.get((model.stamp, learner, cid, h))
            if hit is None:
                missing.append(cid)
            else:
                states[cid], blocks[cid] = hit
        if not missing:
            return states, blocks
        entries: dict[uuid.UUID, tree.Entry] = {}
        for sk in skeletons.values():
            entries.update((c, sk.by_id[c]) for c in missing if c in sk.by_id)
        # few changed states (new work since the last view) are read by id; many (a first view) whole
        few = len(missing) <= 64
        full: dict[uuid.UUID, dict[str, Any]] = {}
        q = select(ms.c.competency_id, ms.c.data).where(ms.c.tenant == tenant, ms.c.learner_id == learner, ms.c.status == ACTIVE)
        wanted_states = set(missing)
        full.update((cid, orjson.loads(d)) for cid, d in conn.execute(q.where(ms.c.competency_id.in_(missing)) if few else q)
                    if cid in wanted_states)
        wanted = sorted({g for c in missing if c in entries for g in entries[c].group})
        latest: dict[uuid.UUID, list[str]] = defaultdict(list)
        ev = t.evidence
        # newest first, the counted items only (as the engine counts them); each competency keeps its latest few
        q = select(ev.c.competency_id, ev.c.data).where(
            ev.c.tenant == tenant, ev.c.learner_id == learner, ev.c.status == ACTIVE, ev.c.voided.is_(False),
            ev.c.superseded_by.is_(None)).order_by(ev.c.observed_at.desc(), ev.c.id)
        q = q.where(ev.c.competency_id.in_(wanted)) if few else q.where(ev.c.competency_id.is_not(None))
        for cid, data in conn.execute(q):
            kept = latest[cid]
            if len(kept) < TRAIL:
                kept.append(data)
        for cid, st in full.items():
            small = {k: st.get(k) for k in ("level", "value", "mastered", "first_at", "last_at")}
            e = entries.get(cid)
            block = ""
            if e is not None:
                raw = latest.get(cid, []) if len(e.group) == 1 else [d for g in e.group for d in latest.get(g, ())]
                docs = [orjson.loads(d) for d in raw]
                if len(e.group) > 1:
                    docs.sort(key=lambda d: d["observed_at"], reverse=True)
                block = tree.why_block(e, st, docs, str(learner))
            states[cid], blocks[cid] = small, block
            BLOCKS.put((model.stamp, learner, cid, hashes[cid]), (small, block))
        return states, blocks

    def _plans(self, conn: Connection, tenant: str, learner: uuid.UUID, model: TenantModel, states: dict[uuid.UUID, dict[str, Any]],
               details: dict[uuid.UUID, tuple[str, str]]) -> list[dict[str, Any]]:
        lp = t.learning_plans
        out = []
        for (data,) in conn.execute(select(lp.c.data).where(lp.c.tenant == tenant, lp.c.learner_id == learner, lp.c.status == ACTIVE)
                                    .order_by(lp.c.created_at)):
            doc = orjson.loads(data)
            targets = []
            for tg in doc.get("targets", ()):
                c = uuid.UUID(tg["competency_id"])
                _, scale = model.rule_and_scale(c)
                code, statement = details.get(c, ("", "A competency outside these frameworks"))
                due = date.fromisoformat(tg["target_date"]) if tg.get("target_date") else None
                targets.append({"id": str(c), "code": code, "statement": statement, "badge": badge(scale, states.get(c)),
                                "due": f"{due.day} {due:%b %Y}" if due else "", "due_iso": due.isoformat() if due else "",
                                "status": TARGET_STATUS.get(tg.get("status") or "planned", tg.get("status")), "note": tg.get("note") or ""})
            pathway = [{"id": p, "code": details.get(uuid.UUID(p), ("", ""))[0], "statement": details.get(uuid.UUID(p), ("", ""))[1]}
                       for p in doc.get("pathway", ())]
            out.append({"title": doc.get("title") or "Learning plan", "status": PLAN_STATUS.get(doc.get("plan_status") or "active", ""),
                        "targets": targets, "pathway": pathway, "notes": doc.get("notes") or "", "author": doc.get("author") or ""})
        return out

    def competency(self, tenant: str, learner: uuid.UUID, competency: uuid.UUID) -> dict[str, Any]:
        """One competency of the learner in full: its state, every item that counted and how
        much, the parts it is built from, what it builds on and what it leads to."""
        explained = self.learners.explain(tenant, learner, competency)  # NotFound for an unknown competency
        with self.store.engine.connect() as conn:
            found = people(conn, tenant, [learner])
            model = engine_of(self.store).model(conn, tenant)
            fw = model.framework_of.get(competency)
            if not found or fw is None:
                raise NotFound("no such competency", errors=[ErrorDetail("not a competency of this learner", field="competency")])
            states = _states(conn, tenant, learner)
            details, titles = DETAILS.get(conn, tenant, model, {fw})
            related = [*model.children.get(competency, ()), *model.prerequisites.get(competency, ()), *model.successors.get(competency, ()),
                       *model.parents.get(competency, ())]
            other = {model.framework_of[c] for c in related if model.framework_of.get(c) not in (None, fw)}
            if other:
                more, more_titles = DETAILS.get(conn, tenant, model, other)
                details = {**details, **more}
            st = states.get(competency)
            ids = [uuid.UUID(x["evidence_id"]) for x in (st or {}).get("contributions", ()) if x.get("evidence_id")]
            ev = t.evidence
            docs = {rid: orjson.loads(d) for rid, d in conn.execute(select(ev.c.id, ev.c.data).where(ev.c.tenant == tenant, ev.c.id.in_(ids)))} if ids else {}
        rule, scale = model.rule_and_scale(competency)
        weights = {uuid.UUID(x["evidence_id"]): x.get("weight") for x in (st or {}).get("contributions", ()) if x.get("evidence_id")}
        trail = sorted((evidence_row(d, scale, weights.get(i)) for i, d in docs.items()), key=lambda r: r["iso"], reverse=True)

        def linked(cs: list[uuid.UUID]) -> list[dict[str, Any]]:
            out = []
            for c in sorted(set(cs), key=lambda c: details.get(c, ("", ""))[0]):
                _, sc = model.rule_and_scale(c)
                code, statement = details.get(c, ("", ""))
                out.append({"id": str(c), "code": code, "statement": statement, "badge": badge(sc, states.get(c))})
            return out

        code, statement = details.get(competency, ("", ""))
        return {
            "learner": found[0], "framework": titles.get(fw, "Framework"), "id": str(competency), "code": code,
            "statement": explained["competency"].get("statement") or statement, "badge": badge(scale, st),
            "why": why(st, scale, rule.name, rule.min_evidence) if st else "There is no work on this yet.",
            "how": explained.get("explanation") or "", "rule": rule.name, "scale": scale.title,
            "levels": [{"label": lv.label, "from": f"{lv.min_scaled:.0%}", "mastery": lv.mastery} for lv in scale.levels],
            "trail": trail, "parts": linked(model.children.get(competency, [])),
            "builds_on": linked(model.prerequisites.get(competency, [])), "leads_to": linked(model.successors.get(competency, [])),
            "part_of": linked(model.parents.get(competency, [])),
        }


def sections_named(store: Store, tenant: str, ids: list[uuid.UUID]) -> list[dict[str, str]]:
    """Titles of sections, for the teacher's and admin's learner page (which points to classes)."""
    if not ids:
        return []
    sec = t.sections
    with store.engine.connect() as conn:
        found = {sid: orjson.loads(d) for sid, d in conn.execute(select(sec.c.id, sec.c.data).where(sec.c.tenant == tenant, sec.c.id.in_(ids)))}
    return sorted(({"id": str(sid), "title": doc.get("title") or "Class"} for sid, doc in found.items()), key=lambda s: s["title"])


def by_plain(counts: dict[str, int]) -> list[tuple[str, int]]:
    return [(k, counts.get(k, 0)) for k in ("shown", "getting there", "not yet")]


__all__ = ["BLOCKS", "Badge", "DETAILS", "PROFILES", "LearnerView", "badge", "by_plain", "evidence_row", "people", "sections_named", "weekly", "why"]

