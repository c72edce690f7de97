"""The competency structure: hierarchy, prerequisites, crosswalks, lookup and search, and the
update-in-place semantics of a framework import (DESIGN section 3).

Everything here is canonical: Framework, Competency, Relation, ProficiencyScale. Which
standard a framework came from does not matter (the CASE adapter is one writer among others).

How relation ends are followed: an end inside Tessera has its ``*_id``; an end that pointed
outside its framework when it was imported keeps only ``*_guid`` / ``*_uri``, and is resolved
here at read time through the competencies' promoted ``guid`` column, so a crosswalk works
whichever of the two frameworks was imported first. Looking relations up *by* a guid end (and
relations by framework) reads the JSON documents, because ``relations`` promotes only
``type``, ``origin_id`` and ``destination_id``; the repository switches to promoted columns
as soon as the table has them (see ``_has``). Fine at tens of thousands of relations per
tenant; beyond that, promote them (a migration in the core).

Text search is a case-insensitive word match over the full statement, pre-filtered in SQL
with ``LIKE`` on the stored JSON and ranked in Python: good for tens of thousands of
competencies, not a full-text index.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, func, or_, select

from ..errors import Conflict, ErrorDetail, NotFound, ValidationError
from ..model import Framework, Record, Status, ensure_aware
from . import tables as t
from .records import ApplyResult, RecordStore

CHUNK = 400
ACTIVE = Status.active.value


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _uuid(v: Any) -> uuid.UUID | None:
    if v is None or isinstance(v, uuid.UUID):
        return v
    try:
        return uuid.UUID(str(v))
    except ValueError:
        return None


def _ts(v: str | None) -> datetime | None:
    return ensure_aware(datetime.fromisoformat(v.replace("Z", "+00:00"))) if v else None


@dataclass
class FrameworkImport:
    """What a framework import did: the store's counts and change log, plus what it retired."""

    framework_id: uuid.UUID
    result: ApplyResult
    #: kind -> records of the previous version absent from this one, now status tobedeleted
    retired: dict[str, int] = field(default_factory=dict)
    previous_published_at: datetime | None = None
    existed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "framework_id": str(self.framework_id),
            "existed": self.existed,
            "previous_published_at": self.previous_published_at.isoformat() if self.previous_published_at else None,
            "retired": dict(self.retired),
            **self.result.as_dict(),
        }


class CompetencyRepository:
    def __init__(self, engine: Engine, records: RecordStore) -> None:
        self.engine = engine
        self.records = records
        self._sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def of(cls, store: Any) -> CompetencyRepository:
        """The repository of a ``gateway.store.Store``."""
        return cls(store.engine, store.records)

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _has(table: Any, column: str) -> bool:
        return column in table.c

    def _contains(self, column: Any, needle: str) -> Any:
        """``needle`` occurs in ``column`` (exact case), on both engines."""
        return (func.instr(column, needle) if self._sqlite else func.strpos(column, needle)) > 0

    def _docs(self, conn: Connection, q: Any) -> list[dict[str, Any]]:
        return [orjson.loads(d) for d in conn.scalars(q)]

    def _by_ids(self, conn: Connection, kind: str, ids: Iterable[uuid.UUID | None], tenant: str) -> list[dict[str, Any]]:
        tbl = t.RECORD_TABLES[kind]
        wanted = [i for i in dict.fromkeys(ids) if i is not None]
        out: list[dict[str, Any]] = []
        for chunk in _chunks(wanted):
            out.extend(self._docs(conn, select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id.in_(chunk))))
        return out

    def _competencies_by_guid(self, conn: Connection, tenant: str, guids: Iterable[uuid.UUID | None]) -> list[dict[str, Any]]:
        tbl = t.competencies
        wanted = list(dict.fromkeys(g for g in guids if g is not None))
        out: list[dict[str, Any]] = []
        for chunk in _chunks(wanted):
            out.extend(self._docs(conn, select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.guid.in_(chunk))))
        return out

    def _relations_of_framework(self, framework_id: uuid.UUID) -> Any:
        tbl = t.relations
        if self._has(tbl, "framework_id"):
            return tbl.c.framework_id == framework_id
        return self._contains(tbl.c.data, f'"framework_id":"{framework_id}"')

    def _relations_touching(
        self, conn: Connection, tenant: str, *, ids: Iterable[uuid.UUID] = (), guids: Iterable[uuid.UUID | None] = (),
        types: Sequence[str] | None = None, ends: tuple[str, ...] = ("origin", "destination"), active: bool = True,
    ) -> list[dict[str, Any]]:
        """Relations with an end (of ``ends``) that is one of ``ids`` or names one of ``guids``."""
        tbl = t.relations
        base = [tbl.c.tenant == tenant]
        if types:
            base.append(tbl.c.type.in_(list(types)))
        if active:
            base.append(tbl.c.status == ACTIVE)
        found: dict[str, dict[str, Any]] = {}
        ids = [i for i in dict.fromkeys(ids) if i is not None]
        for chunk in _chunks(ids):
            conds = [tbl.c[f"{e}_id"].in_(chunk) for e in ends]
            for d in self._docs(conn, select(tbl.c.data).where(*base, or_(*conds))):
                found[d["id"]] = d
        guids = [g for g in dict.fromkeys(guids) if g is not None]
        for chunk in _chunks(guids, 50):
            if all(self._has(tbl, f"{e}_guid") for e in ends):
                conds = [tbl.c[f"{e}_guid"].in_(chunk) for e in ends]
            else:
                conds = [self._contains(tbl.c.data, f'"{e}_guid":"{g}"') for e in ends for g in chunk]
            for d in self._docs(conn, select(tbl.c.data).where(*base, or_(*conds))):
                found[d["id"]] = d
        return list(found.values())

    def _end_competencies(self, conn: Connection, tenant: str, rels: list[dict[str, Any]], end: str) -> dict[str, list[dict[str, Any]]]:
        """relation id -> the competencies its ``end`` resolves to (by id, else by guid)."""
        by_id = {d["id"]: d for d in self._by_ids(conn, "competency", (_uuid(r.get(f"{end}_id")) for r in rels if r.get(f"{end}_id")), tenant)}
        guid_wanted = [_uuid(r.get(f"{end}_guid")) for r in rels if not r.get(f"{end}_id") and r.get(f"{end}_guid")]
        by_guid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in self._competencies_by_guid(conn, tenant, guid_wanted):
            by_guid[d["guid"]].append(d)
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rels:
            rid = r.get(f"{end}_id")
            if rid:
                out[r["id"]] = [by_id[rid]] if rid in by_id else []
            else:
                out[r["id"]] = list(by_guid.get(r.get(f"{end}_guid") or "", []))
        return out

    # --- single records -----------------------------------------------------------------------

    def competency(self, tenant: str, competency_id: uuid.UUID) -> dict[str, Any]:
        return orjson.loads(self.records.get_json(tenant, "competency", competency_id))

    def competency_by_guid(self, tenant: str, guid: uuid.UUID) -> dict[str, Any]:
        """The competency with this publisher identifier (an active one first, then the newest)."""
        with self.engine.connect() as conn:
            docs = self._competencies_by_guid(conn, tenant, [guid])
        if not docs:
            raise NotFound(f"no competency with identifier {guid}")
        return sorted(docs, key=lambda d: (d.get("status") != ACTIVE, -_ts(d["updated_at"]).timestamp() if d.get("updated_at") else 0.0))[0]  # type: ignore[union-attr]

    def framework_by_guid(self, tenant: str, guid: uuid.UUID, *, include_deleted: bool = False) -> dict[str, Any]:
        tbl = t.frameworks
        q = select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.guid == guid)
        if not include_deleted:
            q = q.where(tbl.c.status == ACTIVE)
        with self.engine.connect() as conn:
            docs = self._docs(conn, q.order_by(tbl.c.updated_at.desc()))
        if not docs:
            raise NotFound(f"no framework with identifier {guid}")
        return docs[0]

    def frameworks(self, tenant: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        tbl = t.frameworks
        q = select(tbl.c.data).where(tbl.c.tenant == tenant)
        if not include_deleted:
            q = q.where(tbl.c.status == ACTIVE)
        with self.engine.connect() as conn:
            return self._docs(conn, q.order_by(tbl.c.updated_at, tbl.c.id))

    def version(self, tenant: str) -> int:
        """The tenant's change-log head: it moves whenever any record of the tenant changes, so a
        value computed from the tenant's records stays valid while it stays the same."""
        with self.engine.connect() as conn:
            return conn.scalar(select(func.max(t.changes.c.seq)).where(t.changes.c.tenant == tenant)) or 0

    def sources(self, tenant: str) -> list[str]:
        """The systems the tenant's frameworks came from."""
        tbl = t.frameworks
        with self.engine.connect() as conn:
            return sorted(conn.scalars(select(tbl.c.source).where(tbl.c.tenant == tenant).distinct()))

    def relation_by_native_id(self, tenant: str, native_id: str) -> dict[str, Any]:
        """A relation by its source's id, from whichever of the tenant's framework sources has it."""
        from ..model import record_id

        ids = [record_id(tenant, "relation", s, native_id) for s in self.sources(tenant)]
        with self.engine.connect() as conn:
            docs = self._by_ids(conn, "relation", ids, tenant)
        if not docs:
            raise NotFound(f"no relation with identifier {native_id}")
        return sorted(docs, key=lambda d: d.get("status") != ACTIVE)[0]

    # --- a framework's contents -----------------------------------------------------------

    def framework_contents(self, tenant: str, framework_id: uuid.UUID, *, include_deleted: bool = False,
                           kinds: Sequence[str] = ("competency", "relation", "proficiency_scale")) -> tuple[
            list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """(competencies, relations, proficiency scales) of one framework, as stored documents
        (a kind not in ``kinds`` comes back empty)."""
        out: list[list[dict[str, Any]]] = []
        with self.engine.connect() as conn:
            for kind, cond in (
                ("competency", t.competencies.c.framework_id == framework_id),
                ("relation", self._relations_of_framework(framework_id)),
                ("proficiency_scale", t.proficiency_scales.c.framework_id == framework_id),
            ):
                if kind not in kinds:
                    out.append([])
                    continue
                tbl = t.RECORD_TABLES[kind]
                q = select(tbl.c.data).where(tbl.c.tenant == tenant, cond)
                if not include_deleted:
                    q = q.where(tbl.c.status == ACTIVE)
                docs = [orjson.loads(d) for d in conn.scalars(q)]
                # sorted here, not by the database: ORDER BY would sort rows that carry their whole document
                docs.sort(key=_CONTENT_ORDER[kind])
                out.append(docs)
        return out[0], out[1], out[2]

    def _framework_ids(self, conn: Connection, tenant: str, framework_id: uuid.UUID) -> dict[str, set[uuid.UUID]]:
        """kind -> ids of the framework's active records."""
        out: dict[str, set[uuid.UUID]] = {}
        for kind, cond in (
            ("competency", t.competencies.c.framework_id == framework_id),
            ("relation", self._relations_of_framework(framework_id)),
            ("proficiency_scale", t.proficiency_scales.c.framework_id == framework_id),
        ):
            tbl = t.RECORD_TABLES[kind]
            out[kind] = set(conn.scalars(select(tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.status == ACTIVE, cond)))
        return out

    # --- import: update in place -------------------------------------------------------------

    def import_framework(self, tenant: str, records: Sequence[Record], *, force: bool = False) -> FrameworkImport:
        """Apply a whole framework (its Framework record and everything in it) atomically.

        * The framework's ``published_at`` (the publisher's last change) must not be older
          than the stored version's: an older package is refused with ``Conflict`` unless
          ``force``. An equal or newer one updates the stored records in place.
        * Records of the stored version that the new one no longer contains are kept and
          marked ``tobedeleted`` (a soft delete, logged as ``deleted`` in the change log),
          so evidence pinned to them and ``replaced_by`` relations still resolve.
        """
        frameworks = [r for r in records if isinstance(r, Framework)]
        if len(frameworks) != 1:
            raise ValidationError(f"a framework import holds exactly one framework, not {len(frameworks)}")
        fw = frameworks[0]
        assert fw.id is not None
        with self.engine.connect() as conn:
            stored = conn.scalar(select(t.frameworks.c.data).where(t.frameworks.c.tenant == tenant, t.frameworks.c.id == fw.id))
            previous = _ts(orjson.loads(stored).get("published_at")) if stored else None
            if stored and previous and fw.published_at and fw.published_at < previous and not force:
                raise Conflict(
                    f"framework {fw.title!r} is stored in a newer version: its last change is {previous.isoformat()}, "
                    f"this one's is {fw.published_at.isoformat()}; nothing was changed (force the import to replace it)",
                    errors=[ErrorDetail("older than the stored version", location=f"framework {fw.native_id}", field="published_at")],
                )
            retire: dict[str, list[uuid.UUID]] = {}
            if stored:
                new_ids: dict[str, set[uuid.UUID]] = defaultdict(set)
                for r in records:
                    new_ids[r.KIND].add(r.id)  # type: ignore[arg-type]
                for kind, known in self._framework_ids(conn, tenant, fw.id).items():
                    gone = sorted(known - new_ids[kind], key=lambda u: u.int)
                    if gone:
                        retire[kind] = gone
            retired_records: list[Record] = []
            from ..model import RECORD_TYPES

            for kind, ids in retire.items():
                cls = RECORD_TYPES[kind]
                for chunk in _chunks(ids):
                    tbl = t.RECORD_TABLES[kind]
                    for data in conn.scalars(select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.id.in_(chunk))):
                        rec = cls.model_validate_json(data)
                        retired_records.append(rec.model_copy(update={"status": Status.tobedeleted, "updated_at": None}))
        result = self.records.apply(tenant, [*records, *retired_records])
        return FrameworkImport(fw.id, result, {k: len(v) for k, v in retire.items()}, previous, bool(stored))

    def relations_of_competency(self, tenant: str, competency: dict[str, Any]) -> list[dict[str, Any]]:
        """Every active relation one of whose ends is this competency (by id, or by its
        publisher identifier when the relation came from another framework)."""
        with self.engine.connect() as conn:
            rels = self._relations_touching(conn, tenant, ids=[uuid.UUID(competency["id"])], guids=[_uuid(competency.get("guid"))])
        rels = [r for r in rels if self._is_me(r, "origin", competency) or self._is_me(r, "destination", competency)]
        return sorted(rels, key=lambda r: (r.get("type", ""), r.get("sequence") if r.get("sequence") is not None else 1 << 62, r["native_id"]))

    # --- structure ------------------------------------------------------------------------------

    def children(self, tenant: str, competency_id: uuid.UUID) -> list[dict[str, Any]]:
        """Direct children (``is_child_of`` relations whose destination it is), in sequence order."""
        me = self.competency(tenant, competency_id)
        with self.engine.connect() as conn:
            rels = self._relations_touching(conn, tenant, ids=[competency_id], guids=[_uuid(me.get("guid"))],
                                            types=["is_child_of"], ends=("destination",))
            rels = [r for r in rels if self._is_me(r, "destination", me)]
            ends = self._end_competencies(conn, tenant, rels, "origin")
        out: dict[str, tuple[Any, dict[str, Any]]] = {}
        for r in rels:
            for c in ends.get(r["id"], []):
                key = (r.get("sequence") if r.get("sequence") is not None else 1 << 62, c.get("code") or "", c["id"])
                if c["id"] != me["id"] and (c["id"] not in out or key < out[c["id"]][0]):
                    out[c["id"]] = (key, c)
        return [c for _, c in sorted(out.values(), key=lambda kc: kc[0])]

    @staticmethod
    def _is_me(r: dict[str, Any], end: str, me: dict[str, Any]) -> bool:
        return r.get(f"{end}_id") == me["id"] or (not r.get(f"{end}_id") and me.get("guid") is not None and r.get(f"{end}_guid") == me.get("guid"))

    def _step(self, conn: Connection, tenant: str, nodes: list[dict[str, Any]], rel_type: str, from_end: str, to_end: str) -> dict[str, list[dict[str, Any]]]:
        """node id -> the competencies one ``rel_type`` edge away (``from_end`` is the node)."""
        if not nodes:
            return {}
        rels = self._relations_touching(conn, tenant, ids=[uuid.UUID(n["id"]) for n in nodes],
                                        guids=[_uuid(n.get("guid")) for n in nodes], types=[rel_type], ends=(from_end,))
        targets = self._end_competencies(conn, tenant, rels, to_end)
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for n in nodes:
            for r in rels:
                if self._is_me(r, from_end, n):
                    out[n["id"]].extend(c for c in targets.get(r["id"], []) if c["id"] != n["id"])
        return out

    def ancestors(self, tenant: str, competency_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every ancestor through ``is_child_of``, nearest first (a CASE item may have several parents)."""
        me = self.competency(tenant, competency_id)
        seen = {me["id"]}
        out: list[dict[str, Any]] = []
        frontier = [me]
        with self.engine.connect() as conn:
            while frontier:
                nxt: list[dict[str, Any]] = []
                for parents in self._step(conn, tenant, frontier, "is_child_of", "origin", "destination").values():
                    for p in parents:
                        if p["id"] not in seen:
                            seen.add(p["id"])
                            out.append(p)
                            nxt.append(p)
                frontier = nxt
        return out

    def prerequisites(self, tenant: str, competency_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every competency that must come before this one (``A precedes B``: A is a prerequisite
        of B), transitively, in learning order: each appears after its own prerequisites.
        A cycle is a ``Conflict`` naming its items."""
        me = self.competency(tenant, competency_id)
        docs = {me["id"]: me}
        edges: dict[str, list[str]] = defaultdict(list)  # node -> its direct prerequisites
        frontier = [me]
        with self.engine.connect() as conn:
            while frontier:
                step = self._step(conn, tenant, frontier, "precedes", "destination", "origin")
                nxt = []
                for node_id, pres in step.items():
                    for p in pres:
                        if p["id"] not in edges[node_id]:
                            edges[node_id].append(p["id"])
                        if p["id"] not in docs:
                            docs[p["id"]] = p
                            nxt.append(p)
                frontier = nxt
        order = _topological(me["id"], edges, docs)
        return [docs[i] for i in order if i != me["id"]]

    def equivalents(self, tenant: str, competency_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every competency linked by ``exact_match_of``, transitively and in both directions
        (and any other copy of the same publisher identifier): the crosswalk closure."""
        me = self.competency(tenant, competency_id)
        seen = {me["id"]: me}
        frontier = [me]
        with self.engine.connect() as conn:
            while frontier:
                nxt: list[dict[str, Any]] = []
                found: list[dict[str, Any]] = []
                for a, b in (("origin", "destination"), ("destination", "origin")):
                    for targets in self._step(conn, tenant, frontier, "exact_match_of", a, b).values():
                        found.extend(targets)
                found.extend(self._competencies_by_guid(conn, tenant, [_uuid(n.get("guid")) for n in frontier]))
                for c in found:
                    if c["id"] not in seen:
                        seen[c["id"]] = c
                        nxt.append(c)
                frontier = nxt
        return [c for cid, c in seen.items() if cid != me["id"]]

    # --- lookup and search -------------------------------------------------------------------

    def by_code(self, tenant: str, code: str, *, framework_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        tbl = t.competencies
        q = select(tbl.c.data).where(tbl.c.tenant == tenant, tbl.c.code == code)
        if framework_id is not None:
            q = q.where(tbl.c.framework_id == framework_id)
        with self.engine.connect() as conn:
            return self._docs(conn, q.order_by(tbl.c.id))

    def search(self, tenant: str, q: str, *, limit: int = 20, framework_id: uuid.UUID | None = None,
               include_deleted: bool = False) -> list[dict[str, Any]]:
        """Competencies whose full statement contains every word of ``q`` (case-insensitive),
        best first: the whole phrase, then more occurrences, then shorter statements."""
        words = [w for w in re.split(r"\s+", q.strip().lower()) if w][:10]
        if not words:
            raise ValidationError("give some words to search for", errors=[ErrorDetail("must not be empty", location="query", field="q")])
        tbl = t.competencies
        conds = [tbl.c.tenant == tenant]
        if framework_id is not None:
            conds.append(tbl.c.framework_id == framework_id)
        if not include_deleted:
            conds.append(tbl.c.status == ACTIVE)
        low = func.lower(tbl.c.data)
        for w in words:
            esc = w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(low.like(f"%{esc}%", escape="\\"))
        phrase = " ".join(words)
        scored = []
        with self.engine.connect() as conn:
            for d in self._docs(conn, select(tbl.c.data).where(and_(*conds))):
                text = (d.get("statement") or "").lower()
                if all(w in text for w in words):
                    scored.append(((phrase not in text, -sum(text.count(w) for w in words), len(text), d.get("code") or "", d["id"]), d))
        scored.sort(key=lambda x: x[0])
        return [d for _, d in scored[:limit]]


#: the order a framework's records are listed in: competencies by code, relations by type and
#: sequence, scales by title (then by id, so the order is total)
_CONTENT_ORDER: dict[str, Any] = {
    "competency": lambda d: (d.get("code") or "", d["id"]),
    "relation": lambda d: (d.get("type", ""), d.get("sequence") if d.get("sequence") is not None else -1, d["id"]),
    "proficiency_scale": lambda d: (d.get("title", ""), d["id"]),
}


def _topological(root: str, edges: dict[str, list[str]], docs: dict[str, dict[str, Any]]) -> list[str]:
    """Post-order DFS from ``root`` over "needs" edges; a back edge is a cycle -> Conflict."""
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[str, int] = defaultdict(int)
    order: list[str] = []
    path: list[str] = [root]
    stack: list[tuple[str, Iterator[str]]] = [(root, iter(edges.get(root, [])))]
    color[root] = GREY
    while stack:
        node, it = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            stack.pop()
            path.pop()
            color[node] = BLACK
            order.append(node)
            continue
        if color[nxt] == GREY:
            cycle = path[path.index(nxt):] + [nxt]
            names = [_name(docs[c]) for c in cycle]
            raise Conflict(
                f"the precedes relations form a cycle, so there is no learning order: {' precedes '.join(reversed(names))}",
                errors=[ErrorDetail(f"{_name(docs[c])} is in the cycle", location=f"competency {c}") for c in dict.fromkeys(cycle)],
            )
        if color[nxt] == WHITE:
            color[nxt] = GREY
            path.append(nxt)
            stack.append((nxt, iter(edges.get(nxt, []))))
    return order


def _name(doc: dict[str, Any]) -> str:
    code = doc.get("code")
    return f"{code} ({doc['id']})" if code else doc["id"]


__all__ = ["CompetencyRepository", "FrameworkImport"]
