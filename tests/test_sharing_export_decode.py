"""The export's learned decoder (``export_decode.LearnedDecoder``): the rows it decodes are
those ``record_texts.row_decoder`` decodes, whatever the values do (repeat, change, turn to other
types, run past the most it learns), and a record neither can read raises the same error."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import orjson
import pytest
from msgspec.structs import astuple

from gateway.sharing import export_decode
from gateway.sharing.columns import columnize, columnize_with, columns_of
from gateway.sharing.export import _Parquet
from gateway.sharing.export_decode import LearnedDecoder
from gateway.sharing.record_texts import row_decoder


def _evidence(n: int, **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "kind": "evidence", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"e{n}")), "tenant": "d1", "source": "lrs",
        "native_id": f"s{n}", "identifiers": [], "status": "active", "extensions": {},
        "learner_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{n % 7}")),
        "competency_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"c{n % 3}")), "evidence_kind": "assessment",
        "score": {"raw": n % 11, "min": 0, "max": 10}, "observed_at": f"2026-03-{1 + n % 28:02d}T10:00:00Z",
        "provenance": {"standard": "xapi", "version": "1.0.3", "system": "lrs", "native_id": f"s{n}"}, "voided": False,
        "recorded_at": "2026-12-07T13:50:08.787283+00:00", "updated_at": "2026-12-07T13:50:08.787283+00:00",
    }
    doc.update(over)
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


def _same(decoder: LearnedDecoder, raws: list[bytes], deidentified: bool) -> None:
    base = row_decoder("evidence", tuple(columns_of("evidence", deidentified=deidentified)), deidentified)
    assert [astuple(r) for r in decoder(raws)] == [astuple(base.decode(r)) for r in raws]


@pytest.mark.parametrize("deidentified", [True, False])
def test_learned_rows_are_the_rows_decoded_before_whatever_the_values_do(deidentified: bool,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_decode, "LEARN_ROWS", 50)
    monkeypatch.setattr(export_decode, "REBUILD_ROWS", 10)
    decoder = LearnedDecoder("evidence", columns_of("evidence", deidentified=deidentified), deidentified)
    _same(decoder, [_evidence(n) for n in range(200)], deidentified)  # learned from the first 50
    assert decoder.fast is not None and decoder.known
    learned = {columns_of("evidence", deidentified=deidentified)[i][0] for i in decoder.known}
    assert {"kind", "tenant", "status", "competency_id", "updated_at"} <= learned and "id" not in learned
    # new values, in the middle of batches and several at once; absent members, nulls, escapes
    changed = [_evidence(n, status="inactive" if n % 5 else "tobedeleted", competency_id=str(uuid.uuid4()) if n % 9 == 0 else ...,
                         updated_at=f"2026-12-08T00:00:{n % 60:02d}Z", source=None if n % 4 == 0 else "l\u00e9rs",
                         tenant=... if n % 6 == 0 else "d1")
               for n in range(300)]
    _same(decoder, changed, deidentified)
    assert decoder.misses > 0
    # escaped texts: the values they stand for, learned or not
    escaped = [_evidence(n, status="inactive").replace(b'"inactive"', b'"in\\u0061ctive"' if n % 2 else b'"\\"q\\""')
               for n in range(20)]
    assert b"\\u0061" in escaped[1]
    _same(decoder, escaped, deidentified)
    # a learned column holding a number, a list or an object: given up, decoded as before
    odd = [_evidence(n, evidence_kind=7 if n == 3 else "assessment", status=["a"] if n == 5 else "active",
                     kind={"x": 1} if n == 8 else "evidence") for n in range(40)]
    _same(decoder, odd, deidentified)
    learned = {columns_of("evidence", deidentified=deidentified)[i][0] for i in decoder.known or {}}
    assert not {"evidence_kind", "status", "kind"} & learned
    _same(decoder, [_evidence(n) for n in range(100)], deidentified)


def test_a_column_past_the_most_values_is_decoded_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_decode, "LITERAL_MAX", 20)
    monkeypatch.setattr(export_decode, "REBUILD_ROWS", 1)
    cols = columns_of("evidence", deidentified=True)
    decoder = LearnedDecoder("evidence", cols, True)
    _same(decoder, [_evidence(n) for n in range(40)], True)
    assert any(cols[i][0] == "competency_id" for i in decoder.known or {})
    _same(decoder, [_evidence(n, competency_id=f"c{n}") for n in range(100)], True)
    assert not any(cols[i][0] == "competency_id" for i in decoder.known or {})
    _same(decoder, [_evidence(n, competency_id=f"c{n}") for n in range(100, 140)], True)


def test_a_record_it_cannot_read_raises_what_the_decoder_before_raised() -> None:
    cols = columns_of("evidence", deidentified=True)
    decoder = LearnedDecoder("evidence", cols, True)
    decoder([_evidence(n) for n in range(20)])
    base = row_decoder("evidence", tuple(cols), True)
    for bad in (_evidence(1)[:-5], _evidence(2, provenance=3), b"[]"):
        with pytest.raises(msgspec.DecodeError) as before:
            base.decode(bad)
        with pytest.raises(msgspec.DecodeError) as learned:
            decoder([_evidence(3), bad, _evidence(4)])
        assert type(learned.value) is type(before.value) and str(learned.value) == str(before.value)


def test_the_parquet_tables_are_the_same_learned_or_not() -> None:
    cols = columns_of("evidence", deidentified=False)
    decoder = LearnedDecoder("evidence", cols, False)
    for batch in ([_evidence(n) for n in range(1500)], [_evidence(n, status="inactive", updated_at=f"2026-12-09T00:00:0{n % 10}Z")
                                                        for n in range(1500, 3000)]):
        before = _Parquet.encode(cols, columnize("evidence", cols, batch, None))
        after = _Parquet.encode(cols, columnize_with(decoder, "evidence", cols, batch, None))
        assert after.equals(before)
    assert decoder.known


def test_a_column_still_changing_once_the_builds_allowed_are_made_is_decoded_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_decode, "BUILDS_FREE", 3)
    monkeypatch.setattr(export_decode, "ROWS_A_BUILD", 10**9)
    monkeypatch.setattr(export_decode, "REBUILD_ROWS", 1)
    cols = columns_of("evidence", deidentified=True)
    decoder = LearnedDecoder("evidence", cols, True)
    _same(decoder, [_evidence(n) for n in range(40)], True)
    assert any(cols[i][0] == "updated_at" for i in decoder.known or {})
    _same(decoder, [_evidence(n, updated_at=f"2026-12-08T00:00:{n:02d}Z") for n in range(50)], True)
    assert not any(cols[i][0] == "updated_at" for i in decoder.known or {}) and decoder.builds <= 4
    assert any(cols[i][0] == "tenant" for i in decoder.known or {})
