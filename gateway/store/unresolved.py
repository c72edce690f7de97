"""References held unresolved: a record stored although a record it names is not (yet).

A reference is the canonical id of its target, ``record_id(tenant, kind, source,
native_id)``, computed from the target's name alone; so a record can name a target that
no batch has brought yet, and the reference resolves by itself, with nothing rewritten,
the moment a later batch stores a record under that id.

The store refuses such a reference (``write.RecordWriter._check_references``) unless the
record *holds* it: its ``extensions["unresolved"]`` lists the target, as ``{"field":
"course_id", "kind": "course", "id": "<uuid>", "native_id": "c-9"}``, and ``id`` is
exactly the id of ``native_id`` of ``kind`` in the record's own tenant and source (a
marker cannot hide a reference it does not name truthfully). Importers that keep such
records (OneRoster CSV, tolerant mode) build the marker with ``hold``.

The marker says what was unresolved when the record was written. Reads say what is
unresolved now: ``still_unresolved`` keeps only the entries whose target is still not
stored (``RecordStore.show_unresolved`` for the canonical API; adapters rendering a
reference call ``held`` for the target's name when the store has no record under its id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Engine, select

from ..model import Record, record_id
from .prepare import REFERENCES
from .tables import RECORD_TABLES

#: the key of ``Record.extensions`` that lists the references a record holds unresolved
KEY = "unresolved"


def held(rec: Record) -> dict[uuid.UUID, tuple[str, str]]:
    """id -> (target kind, target native id) of the references ``rec`` holds unresolved
    (whether or not they have resolved since); only entries that name their id truthfully."""
    entries = rec.extensions.get(KEY) if rec.extensions else None
    if not entries:
        return {}
    out: dict[uuid.UUID, tuple[str, str]] = {}
    for e in entries:
        try:
            kind, native, rid = e["kind"], e["native_id"], uuid.UUID(str(e["id"]))
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(kind, str) and isinstance(native, str) and rid == record_id(rec.tenant, kind, rec.source, native):
            out[rid] = (kind, native)
    return out


def hold(rec: Record, missing: Mapping[str, Mapping[uuid.UUID, str]]) -> Record:
    """``rec`` with every reference it makes to an id of ``missing`` (target kind -> id ->
    native id) listed as held (``extensions["unresolved"]``, replacing any earlier list);
    ``rec`` itself when it makes none."""
    entries: list[dict[str, str]] = []
    for target, refs in REFERENCES[rec.KIND]:
        names = missing.get(target)
        if not names:
            continue
        for path, rid in refs.walk(rec):
            native = names.get(rid)
            if native is not None:
                entries.append({"field": path, "kind": target, "id": str(rid), "native_id": native})
    if not entries:
        return rec
    ext = {**rec.extensions, KEY: entries}
    return rec.model_copy(update={"extensions": ext})


def existing(engine: Engine, tenant: str, wanted: Mapping[str, Iterable[uuid.UUID]]) -> set[tuple[str, uuid.UUID]]:
    """(kind, id) of the ``wanted`` ids the tenant has a record for: one query per kind."""
    found: set[tuple[str, uuid.UUID]] = set()
    with engine.connect() as conn:
        for kind, ids in wanted.items():
            want = list(dict.fromkeys(ids))
            tbl = RECORD_TABLES[kind]
            for i in range(0, len(want), 500):
                q = select(tbl.c.id).where(tbl.c.tenant == tenant, tbl.c.id.in_(want[i:i + 500]))
                found.update((kind, rid) for rid in conn.scalars(q))
    return found


def still_unresolved(engine: Engine, tenant: str, docs: list[str]) -> list[str]:
    """Canonical JSON documents as a read shows them: the ``extensions["unresolved"]`` list
    of each keeps only the references whose target is still not stored (and goes when
    none is left). Documents without a list are returned as they are, unparsed."""
    marked = [i for i, d in enumerate(docs) if f'"{KEY}"' in d]
    if not marked:
        return docs
    parsed = {i: orjson.loads(docs[i]) for i in marked}
    wanted: dict[str, set[uuid.UUID]] = {}
    for doc in parsed.values():
        for e in _entries(doc):
            try:
                wanted.setdefault(str(e["kind"]), set()).add(uuid.UUID(str(e["id"])))
            except (KeyError, ValueError):
                continue
    wanted = {k: v for k, v in wanted.items() if k in RECORD_TABLES}
    found = existing(engine, tenant, wanted)
    out = list(docs)
    for i, doc in parsed.items():
        ext = doc.get("extensions") or {}
        entries = _entries(doc)
        left = [e for e in entries if (str(e.get("kind")), _uuid(e.get("id"))) not in found]
        if len(left) == len(entries):
            continue  # nothing resolved since: served as stored
        if left:
            ext[KEY] = left
        else:
            ext.pop(KEY, None)
        out[i] = orjson.dumps(doc).decode()
    return out


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    got = (doc.get("extensions") or {}).get(KEY)
    return [e for e in got if isinstance(e, dict)] if isinstance(got, list) else []


def _uuid(v: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(v))
    except ValueError:
        return None


__all__ = ["KEY", "existing", "held", "hold", "still_unresolved"]
