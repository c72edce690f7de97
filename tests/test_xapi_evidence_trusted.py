"""The xAPI mapper builds Evidence without validating it again when its values already have the
model's shape (``adapters/xapi/evidence_trusted.py``, issue 22): the same records, the same
stored documents and content hashes as ``model_validate`` gives, and anything out of that
shape is still validated and refused in the model's own words.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from pydantic import ValidationError

import adapters.xapi.evidence as evidence_module
from adapters.xapi.evidence import EvidenceMapper
from gateway.store.prepare import content_hash
from tests.test_xapi_evidence import ADL, ATTEMPTED, SIMPLE, T, cmi5_statement, stored

STATEMENTS = [
    stored(ATTEMPTED),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "scored"}, result={"score": {"raw": 15, "min": 10, "max": 20}}),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "scored"}, result={"score": {"scaled": -0.25, "raw": -5, "min": -20, "max": 20}}),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "scored"}, result={"score": {"scaled": 1, "raw": 7}, "completion": False}),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "passed"}, version="1.0.3", context={"registration": "760e3480-ba55-4991-94b0-01820dbd23a2"}),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "completed"}, timestamp=None,
           attachments=[{"usageType": "http://id.tincanapi.com/attachmentUsage/certificate", "display": {"en-US": "c"},
                         "contentType": "application/pdf", "length": 1, "sha2": "ab" * 32, "fileUrl": "https://files.example/c.pdf"}]),
    stored({**SIMPLE, "id": str(uuid.uuid4())}, object={"id": "http://example.com/a", "definition": {"name": {"fr": "le nom " * 300}}}, result={"success": True}),
    cmi5_statement("passed", "s-1", result={"score": {"scaled": 0.9}}, ext={"https://w3id.org/xapi/cmi5/context/extensions/masteryscore": 0.8}),
]


def _validated_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence_module, "trusted_evidence", lambda *a, **k: None)


def _docs(mapper: EvidenceMapper, statements: list[dict]) -> list[bytes]:
    return [orjson.dumps(ev.model_dump(mode="json", exclude_none=True)) for ev in mapper.map(T, statements).evidence]


def test_trusted_records_equal_validated_ones(store, monkeypatch):
    statements = [{k: v for k, v in s.items() if v is not None} for s in STATEMENTS]
    used = []
    real = evidence_module.trusted_evidence
    monkeypatch.setattr(evidence_module, "trusted_evidence", lambda *a: used.append(r := real(*a)) or r)
    fast = _docs(EvidenceMapper(store), statements)
    assert len(fast) == len(statements) and all(r is not None for r in used)  # every one took the fast way
    _validated_only(monkeypatch)
    slow = _docs(EvidenceMapper(store), statements)
    assert fast == slow  # byte for byte: same fields, same order, same values
    assert [content_hash(orjson.loads(d)) for d in fast] == [content_hash(orjson.loads(d)) for d in slow]


def test_trusted_records_are_stored_unchanged_by_a_validated_mapping(store, monkeypatch):
    """Mapping a statement again (the consumer after a crash) finds the stored record unchanged,
    whichever way either mapping built it."""
    mapper = EvidenceMapper(store)
    batch = mapper.map(T, STATEMENTS[:4])
    store.records.apply(T, batch.records, within=batch.write)
    _validated_only(monkeypatch)
    again = EvidenceMapper(store).map(T, STATEMENTS[:4])
    result = store.records.apply(T, again.records, within=again.write)
    assert result.unchanged == len(again.records) and result.created == result.updated == 0


def test_values_out_of_the_models_shape_are_still_refused_in_its_words(store):
    # a statement the LRS would refuse, mapped directly: min above max
    bad = stored(SIMPLE, verb={"id": ADL + "scored"}, result={"score": {"raw": 15, "min": 20, "max": 10}})
    with pytest.raises(ValidationError, match="min 20.0 is greater than max 10.0"):
        EvidenceMapper(store).map(T, [bad])
    # a success that is not a boolean goes the validated way, which reads "yes" as true, as before
    odd = stored({**SIMPLE, "id": str(uuid.uuid4())}, verb={"id": ADL + "scored"}, result={"success": "yes"})
    (ev,) = EvidenceMapper(store).map(T, [odd]).evidence
    assert ev.success is True
