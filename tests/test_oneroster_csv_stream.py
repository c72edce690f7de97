"""Large OneRoster bulk packages: enrollments read in one pass while ``apply_batches``
writes them, in ONE transaction (``csv.ingest.import_package(stream=True)``).

What must hold, whatever the batch size: the store ends up exactly as with the one-batch
import (records, identifiers, change log); every problem of every row is reported with
file, row and column, even in a batch long after others were written; and a package with
any problem leaves the store unchanged (the transaction rolls back). ``STREAM_BATCH`` is
set tiny so that the fixtures span many batches.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.oneroster.csv import ingest
from adapters.oneroster.csv.ingest import import_package
from adapters.oneroster.csv.package import Package
from gateway.errors import IntegrityError, ValidationError
from gateway.model import Record, Status, record_id
from gateway.store import Store, streams
from gateway.store import tables as t
from tests import factories as f
from tests.test_oneroster_csv import (
    FIX,
    KINDS,
    T,
    errors_of,
    manifest,
    package,
    snapshot,
)

SAMPLE = Path(__file__).parents[1] / "adapters" / "oneroster" / "samples" / "birchwood-district-v1p2.zip"
HEADER = (FIX / "district-v1p2" / "enrollments.csv").read_text().splitlines()[0]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "STREAM_BATCH", 2)


@pytest.fixture(params=["in-process", "reader-process"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each importer test twice: enrollments read in this process, and in a child process
    (``csv.enrollments.EnrollmentReader``), which must not differ in anything but speed."""
    child = request.param == "reader-process"
    monkeypatch.setattr(ingest, "READER_BYTES", 0 if child else 1 << 62)
    return child


def change_log(store: Store, tenant: str = T) -> Counter[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.changes.c.record_kind, t.changes.c.op).where(t.changes.c.tenant == tenant)).all()
    return Counter((r[0], r[1]) for r in rows)


def identifier_rows(store: Store, tenant: str = T) -> list[tuple[str, str, str, str]]:
    ids = t.identifiers.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(ids.record_kind, ids.system, ids.kind, ids.value).where(ids.tenant == tenant)).all()
    return sorted(tuple(r) for r in rows)


def test_a_streamed_import_writes_what_the_one_batch_import_writes(store: Store, reader: bool) -> None:
    """The bundled sample district (hundreds of enrollments: many batches of 2)."""
    one = import_package(store, SAMPLE, tenant="one", source="sis", stream=False)
    many = import_package(store, SAMPLE, tenant="many", source="sis", stream=True)
    assert many.streamed and not one.streamed and many.reader_process == reader
    assert many.rows == one.rows and many.records == one.records
    assert many.result.as_dict()["kinds"] == one.result.as_dict()["kinds"]
    assert change_log(store, "many") == change_log(store, "one")
    assert identifier_rows(store, "many") == identifier_rows(store, "one")
    assert change_log(store, "many")[("enrollment", "created")] == one.result.counts["enrollment"].created > 100
    # the same content, hash for hash: streamed again over the one-batch import, nothing changes
    again = import_package(store, SAMPLE, tenant="one", source="sis", stream=True)
    assert again.result.created == again.result.updated == 0
    assert {k: again.result.counts[k].unchanged for k in KINDS} == {k: one.result.counts[k].created for k in KINDS}
    assert change_log(store, "one") == change_log(store, "many")


def test_a_streamed_package_with_gradebook_files_is_one_transaction(store: Store, monkeypatch: pytest.MonkeyPatch, reader: bool) -> None:
    """The gradebook objects of a streamed package commit with its rostering records: a
    failure while writing them leaves nothing of the package behind."""
    report = import_package(store, SAMPLE, tenant="ok", source="sis", stream=True)
    assert report.atomic and report.result.counts["evidence"].created > 0 and report.reader_process == reader

    def broken(plan):  # stands in for gradebook.writer
        def write(conn):
            raise RuntimeError("disk full while writing gradebook objects")
        return write

    monkeypatch.setattr(ingest, "gradebook_writer", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        import_package(store, SAMPLE, tenant=T, source="sis", stream=True)
    assert change_log(store) == Counter()
    assert store.records.count(T, "person") == 0 and store.records.count(T, "enrollment") == 0


@pytest.mark.usefixtures("reader")
def test_every_bad_row_of_a_streamed_file_is_reported_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    """Problems in the first and the last batches, after good batches were written."""
    text = HEADER + "\n" + (
        "e1,,,k1,s1,u1,student,false,2025-08-15,\n"
        "e2,,,k2,s2,u2,pupil,false,,\n"  # not a role
        "e3,,,k1,s1,u3,teacher,true,,\n"
        "e4,,,k2,s2,u3,teacher,true,,\n"
        "e5,,,k2,s2,u1,student,false,,\n"
        "e6,,,k1,s1,u2,student,false,,\n"
        "e1,,,k2,s2,u2,student,false,,\n"  # duplicate sourcedId
        "e8,,,k1,s1,u-ghost,student,false,,\n"  # dangling user
        "e9,,,k1,s1,u1,student,false,2025-13-01,\n"  # not a date
        "e10,,,k2,s2,u-ghost,student,false,,\n"  # the same dangling user: reported at its first row only
    )
    with pytest.raises(ValidationError) as whole:
        import_package(store, package(tmp_path, enrollments=text), tenant=T, source="sis", stream=False, strict=True)
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, enrollments=text), tenant=T, source="sis", stream=True, strict=True)
    assert sorted(errors_of(exc), key=str) == sorted(errors_of(whole), key=str)
    # tolerant (the default): the same errors (a different row under a sourcedId is one in
    # both modes), the duplicate's once the first row is compared with it; but not the
    # dangling user, held there as an unresolved reference
    with pytest.raises(ValidationError) as tolerant:
        import_package(store, package(tmp_path, enrollments=text), tenant=T, source="sis", stream=True)
    refused_in_both = [e for e in errors_of(exc) if "u-ghost" not in e[2]]
    assert len(refused_in_both) == 3
    assert sorted(errors_of(tolerant), key=str) == sorted(refused_in_both, key=str)
    assert [(loc, col) for loc, col, _ in errors_of(exc)] == [
        ("enrollments.csv row 3", "role"),
        ("enrollments.csv row 8", "sourcedId"),
        ("enrollments.csv row 9", "userSourcedId"),
        ("enrollments.csv row 10", "beginDate"),
    ]
    assert "u-ghost" in errors_of(exc)[2][2] and "row 2" in errors_of(exc)[1][2]
    assert snapshot(store) == {} and change_log(store) == Counter() and identifier_rows(store) == []


def test_a_streamed_enrollment_may_reference_stored_records(store: Store, tmp_path: Path, reader: bool) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis")
    only = {n: None for n in ("orgs", "academicSessions", "courses", "classes", "users", "roles", "demographics")}
    delta = manifest(enrollments="delta")
    text = HEADER + "\ne9,,,k1,s1,u3,teacher,true,,\ne10,,,k2,s2,u1,student,false,,\ne11,,,k2,s2,u2,student,false,,\n"
    report = import_package(store, package(tmp_path, manifest=delta, enrollments=text, **only), tenant=T, source="sis", stream=True)
    assert report.streamed and report.result.counts["enrollment"].created == 3 and report.reader_process == reader
    e9 = store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "e9"))
    assert e9.person_id == record_id(T, "person", "sis", "u3")
    ghost = HEADER + "\ne12,,,k2,s2,u1,student,false,,\ne13,,,k9,s2,u1,student,false,,\n"
    with pytest.raises(ValidationError) as exc:
        import_package(store, package(tmp_path, manifest=delta, enrollments=ghost, **only), tenant=T, source="sis", stream=True,
                       strict=True)
    assert [(loc, col) for loc, col, _ in errors_of(exc)] == [("enrollments.csv row 3", "classSourcedId")]
    assert store.records.count(T, "enrollment") == 7


def test_a_streamed_bulk_file_marks_the_enrollments_it_leaves_out_tobedeleted(store: Store, tmp_path: Path, reader: bool) -> None:
    import_package(store, package(tmp_path), tenant=T, source="sis", stream=True)
    lines = (FIX / "district-v1p2" / "enrollments.csv").read_text().splitlines()
    report = import_package(store, package(tmp_path, enrollments="\n".join(lines[:-1]) + "\n"), tenant=T, source="sis", stream=True)
    assert report.deleted == {"enrollment": 1} and report.rows["enrollments"] == 3 and report.reader_process == reader
    assert report.result.counts["enrollment"].updated == 1 and report.result.counts["enrollment"].unchanged == 3
    gone = store.records.get(T, "enrollment", record_id(T, "enrollment", "sis", "e4"))
    assert gone.status == Status.tobedeleted
    assert change_log(store)[("enrollment", "deleted")] == 1


# --------------------------------------------------------------------------- the store's side


def lazy(batches: list[list[Record]], seen: list[tuple[int, int, str]]) -> Iterator[Iterator[Record]]:
    """Batches as lazy iterators that record (batch, item, thread) as they are consumed."""
    for b, batch in enumerate(batches):
        def one(b: int = b, batch: list[Record] = batch) -> Iterator[Record]:
            for i, rec in enumerate(batch):
                seen.append((b, i, threading.current_thread().name))
                yield rec
        yield one()


def test_apply_batches_consumes_lazy_batches_in_order_in_one_thread(store: Store) -> None:
    school = f.org("s1")
    crs = f.course("c1", school)
    sec = f.section("k1", crs, school)
    people = [f.person(f"p{i}", school) for i in range(6)]
    batches = [[school, crs, sec], people[:3], people[3:], [f.enrollment(p, sec) for p in people]]
    seen: list[tuple[int, int, str]] = []
    result = store.records.apply_batches(T, lazy(batches, seen))
    assert [(b, i) for b, i, _ in seen] == [(b, i) for b, batch in enumerate(batches) for i in range(len(batch))]
    assert len({name for _, _, name in seen}) == 1
    assert result.created == 15 and store.records.count(T, "enrollment") == 6


def test_apply_batches_checks_references_across_batches_and_the_store(store: Store) -> None:
    school = f.org("s1")
    crs = f.course("c1", school)
    store.records.apply(T, [school, crs])
    sec = f.section("k1", crs, school)  # its course and school are stored, not in any batch
    p1, p2 = f.person("p1", school), f.person("p2", school)
    result = store.records.apply_batches(T, [[sec], [p1], [f.enrollment(p1, sec)], [p2, f.enrollment(p2, sec)]])
    assert result.counts["enrollment"].created == 2 and result.counts["section"].created == 1


def test_a_dangling_reference_in_a_late_batch_rolls_every_batch_back(store: Store) -> None:
    school = f.org("s1")
    crs = f.course("c1", school)
    sec = f.section("k1", crs, school)
    p1 = f.person("p1", school)
    ghost = f.person("ghost", school)  # never written
    before = change_log(store)
    with pytest.raises(IntegrityError) as exc:
        store.records.apply_batches(T, [[school, crs, sec], [p1], [f.enrollment(p1, sec)], [f.enrollment(ghost, sec)]])
    assert [e.field for e in exc.value.errors] == ["person_id"]
    assert store.records.count(T, "org") == 0 and store.records.count(T, "enrollment") == 0
    assert change_log(store) == before


def test_an_error_raised_while_a_batch_is_read_rolls_every_batch_back(store: Store) -> None:
    school = f.org("s1")

    def batches() -> Iterator[list[Record]]:
        yield [school]
        yield [f.person("p1", school)]
        raise ValidationError("row 9 is bad")

    with pytest.raises(ValidationError, match="row 9 is bad"):
        store.records.apply_batches(T, batches())
    assert store.records.count(T, "org") == 0 and store.records.count(T, "person") == 0
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(t.changes).where(t.changes.c.tenant == T)) == 0


def test_apply_batches_of_nothing_writes_nothing(store: Store) -> None:
    result = store.records.apply_batches(T, iter([]))
    assert result.created == result.updated == result.unchanged == 0 and result.counts == {}


@pytest.mark.usefixtures("reader")
def test_a_streamed_import_leaves_only_rostering_kinds(store: Store, tmp_path: Path) -> None:
    report = import_package(store, package(tmp_path), tenant=T, source="sis", stream=True)
    assert set(report.result.counts) <= set(KINDS) and report.atomic


def indexes(store: Store, table: str) -> list[tuple[str, tuple[str, ...]]]:
    from sqlalchemy import inspect

    return sorted((ix["name"], tuple(ix["column_names"])) for ix in inspect(store.engine).get_indexes(table))


def test_a_kind_expected_to_grow_a_lot_gets_its_indexes_rebuilt_as_they_were(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite drops the secondary indexes of a table about to double and creates them after
    the last batch; whatever happens, the schema ends up as it was and queries use them."""
    from gateway.store.write import RecordWriter

    monkeypatch.setattr(RecordWriter, "REBUILD_MIN", 2)
    before = indexes(store, "enrollments")
    assert ("ix_enrollments_tenant_person_id_section_id", ("tenant", "person_id", "section_id")) in before
    school = f.org("s1")
    crs = f.course("c1", school)
    sec = f.section("k1", crs, school)
    people = [f.person(f"p{i}", school) for i in range(5)]
    batches = [[school, crs, sec, *people], [f.enrollment(p, sec) for p in people[:3]], [f.enrollment(p, sec) for p in people[3:]]]
    from sqlalchemy import event

    ddl: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda c, cur, sql, *a: ddl.append(sql) if "INDEX" in sql else None)
    store.records.apply_batches(T, batches, expect={"enrollment": 5})
    sqlite = store.engine.dialect.name == "sqlite"
    assert sorted(x.split()[2].strip('"') for x in ddl if x.startswith("CREATE")) == (
        sorted(n for n, _ in before) if sqlite else [])  # PostgreSQL: never (DROP INDEX would lock readers out)
    assert indexes(store, "enrollments") == before
    page = store.records.page(T, "enrollment", limit=10, filters={"person_id": people[4].id})
    assert len(page.items) == 1
    # a failed import: rolled back, indexes included
    ghost = f.person("ghost", school)
    with pytest.raises(IntegrityError):
        store.records.apply_batches(T, [[f.enrollment(ghost, sec)]], expect={"enrollment": 5})
    assert indexes(store, "enrollments") == before and store.records.count(T, "enrollment") == 5
    # a table already bigger than what is expected keeps its indexes (nothing to gain)
    more = [f.person(f"q{i}", school) for i in range(2)]
    ddl.clear()
    store.records.apply_batches(T, [more, [f.enrollment(p, sec) for p in more]], expect={"enrollment": 2})
    assert ddl == [] and indexes(store, "enrollments") == before and store.records.count(T, "enrollment") == 7


# --------------------------------------------------------------------------- the reader process


def enrollment_rows(store: Store) -> dict[str, tuple[object, ...]]:
    """Every stored enrollment of T as its row: id, hash, promoted columns, and the document
    without the store's timestamp (which closes it)."""
    e = t.enrollments.c
    cols = (e.id, e.tenant, e.source, e.status, e.content_hash, e.person_id, e.section_id, e.role, e.data)
    with store.engine.connect() as conn:
        rows = conn.execute(select(e.native_id, *cols).where(e.tenant == T)).all()
    return {r[0]: (*r[1:-1], r[-1].rsplit(',"updated_at":', 1)[0]) for r in rows}


def test_the_reader_process_stores_what_this_process_stores(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte for byte: the sample district's enrollments written from the reader process, then
    deleted, then written again from this process: the same ids, hashes, columns and
    documents, and the same progress reported for enrollments.csv."""
    read: Counter[str] = Counter()
    def progress(name: str, n: int) -> None:
        read.update({name: n})

    monkeypatch.setattr(ingest, "READER_BYTES", 0)
    child = import_package(store, SAMPLE, tenant=T, source="sis", stream=True, progress=progress)
    assert child.reader_process and child.result.counts["enrollment"].created > 100
    written, child_read = enrollment_rows(store), read.copy()
    with store.engine.begin() as conn:
        conn.execute(t.enrollments.delete().where(t.enrollments.c.tenant == T))
    read.clear()
    here = import_package(store, SAMPLE, tenant=T, source="sis", stream=True, reader_process=False, progress=progress)
    assert not here.reader_process and here.result.counts["enrollment"].created == child.result.counts["enrollment"].created
    assert enrollment_rows(store) == written
    assert read == child_read and read["enrollments.csv"] > 0
    assert here.rows == child.rows and here.records == child.records


def test_a_failure_in_the_reader_process_is_raised_here_and_rolls_everything_back(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise OSError("disk gone while preparing enrollments")

    monkeypatch.setattr(streams, "prepare_plain", broken)  # the forked child inherits it
    with pytest.raises(OSError, match="disk gone"):
        import_package(store, SAMPLE, tenant=T, source="sis", stream=True, reader_process=True)
    assert change_log(store) == Counter() and snapshot(store) == {}


def test_a_small_streamed_file_is_read_in_this_process(store: Store) -> None:
    """Below ``READER_BYTES`` a child process costs more than it saves."""
    pkg = Package(SAMPLE)
    assert 0 < pkg.size("enrollments.csv") < ingest.READER_BYTES
    pkg.close()
    report = import_package(store, SAMPLE, tenant=T, source="sis", stream=True)
    assert report.streamed and not report.reader_process
