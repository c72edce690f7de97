"""The references an export writes whose targets it does not carry (issue 15, "a tolerant
import followed by an export produces a package that passes --strict").

A record kept with a reference held unresolved (docs/oneroster-references.md) is exported
as it was sent: the reference is the sourcedId the sender gave, and the target is in
neither the store nor, therefore, the package. Leaving the value out would invent a gap
(``classes.courseSourcedId`` is required), and writing a placeholder target would invent a
record; so the export writes the reference and *reports* it, one ``unresolved-reference``
deviation per reference (file and sourcedId of the row, its column, the target), which
``tessera export oneroster`` prints. A ``--strict`` import of that package refuses exactly
these and nothing else: the "must hold" holds for every deviation a tolerant import
normalises, and for a held reference it cannot without inventing data.

Only references still unresolved count: once the target is stored (and exported with the
same source) the reference is an ordinary one. Gradebook and resources objects hold theirs
in ``derived["unresolved"]`` (``gradebook.prepare.Preparer.unknown``).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import Deviations
from gateway.model import Record
from gateway.store.unresolved import held

from ..gradebook.storage import ObjectStore
from ..gradebook.types import COLLECTIONS, ROSTER_REFS
from ..vocab import KIND_COLLECTIONS

#: (record kind, canonical field before any index) -> the CSV column that writes it
COLUMN_OF = {
    ("org", "parent_id"): "parentSourcedId", ("academic_session", "parent_id"): "parentSourcedId",
    ("academic_session", "org_id"): "orgSourcedId", ("course", "org_id"): "orgSourcedId",
    ("course", "session_id"): "schoolYearSourcedId", ("section", "course_id"): "courseSourcedId",
    ("section", "org_id"): "schoolSourcedId", ("section", "session_ids"): "termSourcedIds",
    ("person", "roles"): "orgSourcedIds", ("person", "agent_ids"): "agentSourcedIds",
    ("person", "primaryOrg"): "primaryOrgSourcedId", ("enrollment", "person_id"): "userSourcedId",
    ("enrollment", "section_id"): "classSourcedId", ("enrollment", "org_id"): "schoolSourcedId",
}
_FILE = {**KIND_COLLECTIONS, "person": "users"}


def report_held(store: Any, tenant: str, records: dict[str, list[Record]], source: str | None, devs: Deviations) -> None:
    """One ``unresolved-reference`` deviation in ``devs`` per reference the export writes to a
    record it does not carry (``records``: what it exports, by kind)."""
    exported = {(r.KIND, r.id) for recs in records.values() for r in recs}
    native = {(r.KIND, r.native_id) for recs in records.values() for r in recs}
    for kind, recs in records.items():
        for rec in recs:
            if not rec.extensions or "unresolved" not in rec.extensions:
                continue
            entries = {str(e.get("id")): e for e in rec.extensions["unresolved"] if isinstance(e, dict)}
            for rid, (target, sid) in held(rec).items():
                if (target, rid) in exported:
                    continue
                path = str(entries.get(str(rid), {}).get("field", ""))
                col = COLUMN_OF.get((kind, path.split("[", 1)[0]), path)
                _add(devs, f"{_FILE.get(kind, kind)}.csv", rec.native_id, col, _FILE.get(target, target), sid)
    if store is None:
        return
    objs = ObjectStore(store.engine)
    for ty, coll in COLLECTIONS.items():
        for s in objs.where(tenant, ty):
            if source is not None and s.source != source:
                continue
            for h in s.derived.get("unresolved") or []:
                target, sid = h.get("type", ""), h.get("sourcedId", "")
                kind = ROSTER_REFS.get(target)
                if kind is not None:
                    if (kind, sid) in native:
                        continue
                elif sid in {k for k, o in objs.get(tenant, target, [sid]).items() if o.data.get("status") == "active"}:
                    continue
                _add(devs, f"{coll}.csv", s.sourced_id, f"{h.get('field')}SourcedId", COLLECTIONS.get(target, _FILE.get(kind or "", target)), sid)


def _add(devs: Deviations, fname: str, row_sid: str, col: str, target_file: str, sid: str) -> None:
    devs.tolerate("unresolved-reference", f"{col} {sid!r}: written as sent, but no such record is in {target_file}.csv of this "
                  "package (held unresolved since its import); a --strict import refuses it", location=f"{fname} sourcedId {row_sid}",
                  field=col)
