"""References a OneRoster REST pull cannot resolve (issue 15; the rule of
docs/oneroster-references.md, as the CSV import applies it in ``csv.outside``).

A pulled object naming a record that is neither in the pull nor stored (a class whose
course the provider does not list, an org whose parent is another district's) is kept, and
the reference held unresolved (``gateway.store.unresolved.hold``): the record stores the
id its target will have, which a later pull or package from the same source storing the
target resolves with nothing rewritten. Each target is one ``unresolved-reference`` warning
in the pull summary's ``deviations``, at the object that first names it. ``--strict``
refuses the pull, naming each of them, as a dangling reference always was refused.

How: ``note`` sees every converted record (its id becomes known) and sets aside the few
whose references are not all known yet, with the sourcedIds their wire object names;
``settle`` runs on each batch before it is applied, when every earlier collection (and the
batch's own, for the self-referencing orgs, academicSessions and users' agents, which go
last in their collection) is known: the references still unknown are looked up in the
store (one query per kind), and the ones it lacks are held.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

from gateway.errors import Deviations
from gateway.model import Record, record_id
from gateway.store.prepare import REFERENCES
from gateway.store.unresolved import existing, hold

from .csv.columns import FILE_OF_KIND


def _named(obj: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(wire field, sourcedId) of every GUIDRef of a wire object (1.2 users' roles: ``roles.org``)."""
    for k, v in obj.items():
        items = v if isinstance(v, list) else [v]
        for x in items:
            if not isinstance(x, dict):
                continue
            if isinstance(x.get("sourcedId"), str) and k != "metadata":
                yield k, x["sourcedId"]
            elif k == "roles" and isinstance(x.get("org"), dict) and isinstance(x["org"].get("sourcedId"), str):
                yield "roles.org", x["org"]["sourcedId"]


class PullRefs:
    def __init__(self, store: Any, tenant: str, source: str, devs: Deviations, error: Callable[[str, str, str | None], None]) -> None:
        self.store, self.tenant, self.source, self.devs, self.error = store, tenant, source, devs, error
        #: kind -> ids known to exist: this pull's records, and the store's found so far
        self.known: dict[str, set[uuid.UUID]] = {}
        #: record id -> (its location, [(wire field, sourcedId)]) for records with references not known when read
        self.waiting: dict[uuid.UUID, tuple[str, list[tuple[str, str]]]] = {}
        #: kind -> id -> sourcedId of the references held unresolved
        self.held: dict[str, dict[uuid.UUID, str]] = {}
        #: target kind -> distinct targets held unresolved
        self.unresolved: dict[str, int] = {}

    def note(self, rec: Record, obj: dict[str, Any], loc: str) -> None:
        self.known.setdefault(rec.KIND, set()).add(rec.id)
        for target, refs in REFERENCES[rec.KIND]:
            known = self.known.get(target, ())
            for _, rid in refs.walk(rec):
                if rid not in known:
                    self.waiting[rec.id] = (loc, list(_named(obj)))
                    return

    def settle(self, recs: list[Record]) -> list[Record]:
        """The batch with every reference the pull and the store lack held (tolerant), or
        reported as an error (strict)."""
        if not self.waiting:
            return recs
        unknown: dict[str, set[uuid.UUID]] = {}
        for rec in recs:
            if rec.id not in self.waiting:
                continue
            for target, refs in REFERENCES[rec.KIND]:
                known = self.known.get(target, ())
                for _, rid in refs.walk(rec):
                    if rid not in known and rid not in self.held.get(target, {}):
                        unknown.setdefault(target, set()).add(rid)
        if unknown:
            found = existing(self.store.engine, self.tenant, unknown)
            for kind, rid in found:
                self.known.setdefault(kind, set()).add(rid)
        out = []
        for rec in recs:
            got = self.waiting.pop(rec.id, None)
            if got is not None:
                rec = self._hold(rec, *got)
            out.append(rec)
        return out

    def _hold(self, rec: Record, loc: str, names: list[tuple[str, str]]) -> Record:
        missing: dict[str, dict[uuid.UUID, str]] = {}
        for target, refs in REFERENCES[rec.KIND]:
            known = self.known.get(target, ())
            for _, rid in refs.walk(rec):
                if rid in known:
                    continue
                named = next(((f, s) for f, s in names if record_id(self.tenant, target, self.source, s) == rid), None)
                fld, sid = named if named is not None else ("?", str(rid))
                missing.setdefault(target, {})[rid] = sid
                if rid not in self.held.get(target, {}):
                    self._report(target, rid, sid, loc, fld)
        return hold(rec, missing) if missing and not self.devs.strict else rec

    def _report(self, kind: str, rid: uuid.UUID, sid: str, loc: str, fld: str) -> None:
        wire = FILE_OF_KIND.get(kind, kind)
        what = f"{fld} {sid!r}: no such {wire[:-1] if kind != 'section' else 'class'} in this pull or the store"
        if self.devs.strict:
            self.error(what, loc, fld)
            return
        self.devs.tolerate("unresolved-reference", f"{what}; kept as an unresolved reference", location=loc, field=fld)
        names = self.held.setdefault(kind, {})
        names[rid] = sid
        self.unresolved[kind] = len(names)
