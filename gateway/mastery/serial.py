"""A mastery state's stored JSON and content hash, built without pydantic.

A full recompute writes millions of states. Through the record path each one became a
``MasteryState`` with a ``Contribution`` model per input, serialised by pydantic twice
(``gateway.store.prepare.record_digest``: the hashed fields, then ``computed_at``): about
35 µs a state, a third of the recompute's Python time. Here the same document is one
dict handed to orjson (about 10 µs), and the recompute passes it to
``RecordStore.prepare_serialised``.

The bytes must be exactly those of the record path, or a recompute would see every
state as changed (and the incremental path, which still writes records, would disagree
with it). They are, because the document mirrors what pydantic emits for a state built
by ``engine.to_record``:

* keys in the order ``to_record`` sets them (a ``trusted`` model keeps its ``__dict__``
  order), ``None`` fields left out (``exclude_none``), but ``None`` values inside
  ``parameters`` kept (pydantic does not drop them from a dict);
* float fields (``value``, a contribution's ``value`` and ``weight``) as floats even
  when the engine computed an int (pydantic's float serialiser writes ``1.0``);
* orjson's float, uuid, enum and string output is pydantic's (both shortest round-trip
  floats, ``1e-7``, ``1e+16``), and ``OPT_UTC_Z`` writes UTC datetimes with ``Z`` as
  pydantic does.

``tests/test_mastery_serial.py`` compares the two on generated states, and the property
test (incremental == full recompute, ``written == 0``) compares their hashes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from hashlib import sha256
from typing import Any, NamedTuple

import orjson

from gateway.model import Status

from .derived import Derived

_OPTIONS = orjson.OPT_UTC_Z


class StateHead(NamedTuple):
    """What ``RecordStore.prepare_serialised`` needs of a state besides its JSON: its
    identity and the fields promoted to columns."""

    id: uuid.UUID
    source: str
    native_id: str
    status: Status
    learner_id: uuid.UUID
    competency_id: uuid.UUID
    level: str | None
    value: float | None
    mastered: bool


def computed_at_suffix(now: datetime) -> bytes:
    """The body's tail: ``computed_at``, kept out of the hash (``UNHASHED_BY_KIND``)."""
    return b',"computed_at":' + orjson.dumps(now, option=_OPTIONS)


def _contributions(rows: list[tuple[uuid.UUID | None, uuid.UUID | None, float, float]]) -> list[dict[str, Any]]:
    """The contributions' documents, ``None`` ids left out (a dict literal per shape: this
    runs for every input of every state)."""
    out: list[dict[str, Any]] = []
    add = out.append
    for evidence, competency, value, weight in rows:
        if evidence is None:
            if competency is None:
                add({"value": float(value), "weight": float(weight)})
            else:
                add({"competency_id": competency, "value": float(value), "weight": float(weight)})
        elif competency is None:
            add({"evidence_id": evidence, "value": float(value), "weight": float(weight)})
        else:
            add({"evidence_id": evidence, "competency_id": competency, "value": float(value), "weight": float(weight)})
    return out


_ACTIVE = Status.active
_TAIL = b',"identifiers":[],"extensions":{}'  # every state's last fields, always empty


def state_json(tenant: str, source: str, sid: uuid.UUID, native_id: str, learner: uuid.UUID, d: Derived,
               suffix: bytes) -> tuple[StateHead, str, str]:
    """(head, content hash, body without its closing brace) of the state ``engine.to_record``
    would build from ``d``; ``suffix`` is ``computed_at_suffix(now)``."""
    value = d.value
    if value is not None:
        value = float(value)
    level, rule = d.level, d.rule
    doc: dict[str, Any] = {
        "kind": "mastery_state", "status": "active", "id": sid, "tenant": tenant, "source": source,
        "native_id": native_id, "learner_id": learner, "competency_id": d.competency,
    }
    if level is not None:
        doc["level"] = level
    if value is not None:
        doc["value"] = value
    doc["mastered"] = d.mastered
    doc["method"] = d.method.value
    if rule.rule_id is not None:
        doc["rule_id"] = rule.rule_id
    doc["parameters"] = {"rule": rule.name, **d.parameters}
    doc["contributions"] = _contributions(d.contributions)
    doc["evidence_count"] = d.evidence_count
    if d.first_at is not None:
        doc["first_at"] = d.first_at
    if d.last_at is not None:
        doc["last_at"] = d.last_at
    core = orjson.dumps(doc, option=_OPTIONS)[:-1] + _TAIL  # + "identifiers": [], "extensions": {}
    head = StateHead(sid, source, native_id, _ACTIVE, learner, d.competency, level, value, d.mastered)
    return head, sha256(core + b"}").hexdigest(), (core + suffix).decode()


__all__ = ["StateHead", "computed_at_suffix", "state_json"]
