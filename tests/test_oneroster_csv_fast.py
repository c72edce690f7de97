"""The fast path of a streamed enrollments.csv (``csv.fast_rows.EnrollmentRows``) against the
general path (a REST-shaped dict per row, the reference checks, ``to_canonical``).

The fast path only exists for speed, so it must be invisible: for the same rows, in 1.1
and 1.2 packages, with optional columns empty, present or left out of the header, the
stored document and its content hash must be byte for byte those of the general path.
The errors of bad rows, which the fast path hands to the general path, are compared with
the one-batch import in ``test_oneroster_csv_stream``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.oneroster.csv.fast_rows import EnrollmentRows
from adapters.oneroster.csv.importer import Importer
from adapters.oneroster.csv.ingest import import_package
from adapters.oneroster.csv.package import Package, read_manifest
from gateway.model import Identifier, Record, record_id
from gateway.store import Store
from gateway.store.records import Prepared
from gateway.store.streams import _ship, _unship, prepare_plain
from tests.test_oneroster_csv import T, package

HEADER = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate"
ROWS = [
    "e1,,,k1,s1,u1,student,,,",  # every optional field empty
    "e2,active,2025-01-02T03:04:05.678Z,k2,s2,u2,teacher,true,2025-08-15,2026-06-01",  # every field present
    "e3,tobedeleted,2025-01-02T03:04:05Z,k1,s1,u3,aide,false,2025-08-15,",  # a bulk row may say tobedeleted
    # deviations (``csv.tolerance``), which the fast path leaves to the general one, which
    # normalises and reports them: a bare date and blanks around a value; blanks; TRUE
    "e4,, 2025-01-02 ,k2,s2,u1,proctor,false,,2026-06-01",
    " e5 ,active,2025-01-02T03:04:05+02:00, k1 ,s1,u2,administrator,,2025-08-15,2025-08-15",
    "e6,,,k2,s2,u3,student,TRUE,,",
]
#: the rows of ROWS with a deviation
DEVIANT = 3
#: the same enrollments with the optional columns left out and the others in another order
SHORT = ("userSourcedId,role,sourcedId,schoolSourcedId,classSourcedId", ["u1,student,e1,s1,k1", "u3,teacher,e2,s2,k2"])

FAST = EnrollmentRows.record


def count_fast(monkeypatch: pytest.MonkeyPatch, *, fast: bool = True) -> Callable[[], int]:
    """Count the rows the fast path takes from now on (``fast=False``: it takes none)."""
    taken = 0

    def counted(self: EnrollmentRows, row: list[str], n: int) -> Record | None:
        nonlocal taken
        rec = FAST(self, row, n) if fast else None
        taken += rec is not None
        return rec

    monkeypatch.setattr(EnrollmentRows, "record", counted)
    return lambda: taken


def enrollments(path: Path, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Record], int]:
    """The records of a package's streamed enrollments (no store), and how many rows took the fast path."""
    taken = count_fast(monkeypatch, fast=fast)
    pkg = Package(path)
    try:
        imp = Importer(None, T, "sis", pkg, read_manifest(pkg), None)
        imp.stream = True
        imp.run()
        out = [rec for batch in imp.streamed_enrollments(2) for rec in batch]
    finally:
        pkg.close()
    return out, taken()


def stored_form(store: Store, records: list[Record]) -> list[tuple[str, str | None, str]]:
    """(sourcedId, document as written without its updated_at, content hash) of each record."""
    batch = store.records.prepare(T, records)
    return [(p.rec.native_id, p.body, p.digest) for p in batch.by_kind["enrollment"]]


@pytest.mark.parametrize("version", ["v1p1", "v1p2"])
@pytest.mark.parametrize(("header", "rows"), [(HEADER, ROWS), SHORT])
def test_fast_and_general_paths_store_the_same_bytes(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       version: str, header: str, rows: list[str]) -> None:
    path = package(tmp_path, version, enrollments="\r\n".join([header, *rows]) + "\r\n")
    general, none = enrollments(path, fast=False, monkeypatch=monkeypatch)
    quick, taken = enrollments(path, fast=True, monkeypatch=monkeypatch)
    assert none == 0 and taken == len(rows) - (DEVIANT if rows is ROWS else 0)
    assert len(general) == len(rows)
    # and both are what pydantic's full validation of the same values gives
    validated = [type(r).model_validate(r.model_dump()) for r in general]
    assert stored_form(store, quick) == stored_form(store, general) == stored_form(store, validated)
    assert [r.model_dump_json() for r in quick] == [r.model_dump_json() for r in validated]


def prepared(items: list[Prepared]) -> list[tuple[object, ...]]:
    """What the writer reads of each prepared record: key, hash, row, body, identifier rows,
    and of the record its id, status and source."""
    return [(p.key, p.digest, p.head, p.body, p.idents, p.rec.id, p.rec.status, p.rec.source) for p in items]


def test_the_reader_process_prepares_enrollments_as_the_store_does(store: Store, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``gateway.store.streams.prepare_plain`` serialises plain enrollments itself (orjson,
    not pydantic) and a forked stream sends them through a pipe (``_ship`` / ``_unship``):
    on both backends, what arrives is byte for byte what ``RecordStore.prepare`` makes of
    the same records, and in its order, for fast-path rows (tobedeleted, UTC and +02:00
    stamps, dates, empty fields), rows with metadata (extensions: the store's own path) and
    records with identifiers."""
    plain, _ = enrollments(package(tmp_path, enrollments="\n".join([HEADER, *ROWS]) + "\n"), fast=True,
                           monkeypatch=monkeypatch)
    meta_rows = [r.replace("e", "m", 1) + ",12" for r in ROWS]
    meta, _ = enrollments(package(tmp_path, enrollments="\n".join([HEADER + ",metadata.room", *meta_rows]) + "\n"),
                          fast=True, monkeypatch=monkeypatch)
    named = [r.model_copy(update={"native_id": f"n{i}", "id": record_id(T, "enrollment", "sis", f"n{i}"),
                                  "identifiers": [Identifier(system="sis", kind="oneroster.sourcedId", value=f"n{i}")]})
             for i, r in enumerate(plain[:2])]
    assert meta[0].extensions and len(plain) == len(meta) == len(ROWS)
    for batch in (plain, meta, [*plain, *meta, *named]):
        expected = store.records.prepare(T, batch).by_kind["enrollment"]
        shortcut = prepare_plain(store.records, T, batch)
        assert prepared(shortcut.by_kind["enrollment"]) == prepared(expected)
        piped = pickle.loads(pickle.dumps(_ship(shortcut), protocol=pickle.HIGHEST_PROTOCOL))
        assert prepared(_unship(T, piped).by_kind["enrollment"]) == prepared(expected)


def test_metadata_columns_send_every_row_down_the_general_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join([HEADER + ",metadata.room", *(r + ",12" for r in ROWS)]) + "\n"
    quick, taken = enrollments(package(tmp_path, enrollments=text), fast=True, monkeypatch=monkeypatch)
    assert taken == 0 and all(r.extensions == {"oneroster": {"metadata": {"room": "12"}}} for r in quick)


def test_a_store_holding_the_general_paths_enrollments_finds_the_fast_ones_unchanged(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On both backends: what the fast path writes is what the general path wrote, hash
    for hash, so a re-import changes nothing and leaves the stored documents as they were."""
    path = package(tmp_path, enrollments="\n".join([HEADER, *ROWS]) + "\n")
    general = count_fast(monkeypatch, fast=False)
    first = import_package(store, path, tenant=T, source="sis", stream=True)
    assert first.result.counts["enrollment"].created == len(ROWS) and general() == 0
    before = dict(documents(store))
    monkeypatch.undo()
    calls = count_fast(monkeypatch)
    again = import_package(store, path, tenant=T, source="sis", stream=True)
    assert calls() == len(ROWS) - DEVIANT
    counts = again.result.counts["enrollment"]
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, len(ROWS))
    assert dict(documents(store)) == before


def documents(store: Store) -> Iterator[tuple[str, str]]:
    for rec in store.records.iter_records(T, ["enrollment"]):
        yield rec.native_id, store.records.get_json(T, "enrollment", rec.id)  # type: ignore[arg-type]


def test_enrollments_carry_no_identifiers_people_and_classes_do(store: Store, tmp_path: Path) -> None:
    """An enrollment is never resolved by an identifier (its sourcedId is its native_id):
    it adds no identifier rows, on either path, while people and classes keep theirs."""
    path = package(tmp_path, enrollments="\n".join([HEADER, *ROWS]) + "\n")
    import_package(store, path, tenant=T, source="sis", stream=True)
    import_package(store, path, tenant="t2", source="sis", stream=False)
    for tenant in (T, "t2"):
        assert {len(r.identifiers) for r in store.records.iter_records(tenant, ["enrollment"])} == {0}
        assert store.records.lookup(tenant, "sis", "oneroster.sourcedId", "e1") == []
        assert [kind for kind, _ in store.records.lookup(tenant, "sis", "oneroster.sourcedId", "k1")] == ["section"]
        assert [kind for kind, _ in store.records.lookup(tenant, "sis", "oneroster.sourcedId", "u1")] == ["person"]
