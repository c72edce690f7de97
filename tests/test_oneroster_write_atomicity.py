"""A OneRoster CSV import is ONE transaction: a failure while WRITING, after every check
passed and most of the package is already written, leaves every table as it was.

The "nothing is written" tests of ``test_oneroster_csv*.py`` fail during validation, before
the first write, so an import written in several transactions passed them all. Here the
package is the bundled sample district (rostering, gradebook and resources files, results
aligned to the CASE framework stored first, so that the import writes records, identifiers,
the change log, outbox deliveries, evidence, alignments, mastery states and the gradebook's
own objects), and the database itself refuses one late row: a trigger (SQLite
``RAISE(ABORT)``, PostgreSQL ``RAISE EXCEPTION``) on

* the last row of enrollments.csv (the last rostering record),
* the first mastery state (the evidence listeners, after every record is written),
* the last row of results.csv (the gradebook objects, the last thing the import writes).

Whatever was written before it must be rolled back: every table of the gateway and of every
adapter is compared, row for row, with its content before the import. Both the default
import (``stream=False``: one ``records.apply``) and the streamed one (``stream=True``:
``records.apply_batches``, enrollments in many small batches) are checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from adapters.oneroster.csv import ingest
from adapters.oneroster.csv.ingest import import_package
from gateway.model import RECORD_TYPES
from gateway.store import Store
from gateway.wiring import default as default_wiring

SAMPLE = Path(__file__).parents[1] / "adapters" / "oneroster" / "samples" / "birchwood-district-v1p2.zip"
CASE = Path(__file__).parents[1] / "adapters" / "case" / "samples" / "northwind-state-mathematics.json"
T = "district"

#: every table of the gateway and of every installed adapter
TABLES = [tbl for meta in default_wiring().migrations.all_metadata() for tbl in meta.sorted_tables]

#: fault point -> (table, the row the database refuses). The sourcedIds are the last rows of
#: the sample's enrollments.csv and results.csv.
LATE_ROWS = {
    "the last enrollments.csv row": ("enrollments", "NEW.native_id = 'enr-0001199'"),
    "the first mastery state": ("mastery_states", "NEW.tenant = 'district'"),
    "the last results.csv row": ("oneroster_objects", "NEW.type = 'result' AND NEW.sourced_id = 'res-cls-000012-04-stu-000228'"),
}

#: what a valid import of the sample writes (so that "unchanged" below means something)
WRITTEN = {"orgs", "academic_sessions", "courses", "sections", "people", "enrollments", "identifiers", "changes", "outbox",
           "evidence", "alignments", "mastery_states", "oneroster_objects"}


def contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with store.engine.connect() as conn:
        return {tbl.name: sorted((tuple(repr(v) for v in row) for row in conn.execute(select(tbl))), key=repr) for tbl in TABLES}


@pytest.fixture
def district(store: Store) -> Store:
    """A tenant with the CASE framework the sample's line items align to, and a push route
    that wants every record kind (so the import enqueues outbox deliveries)."""
    case = next(a for a in default_wiring() if a.name == "case")
    case.import_package(store, T, CASE.read_bytes())
    lms = store.routing.create_connection(T, "lms", adapter="lti", role="lti.platform", system="lms")
    store.routing.create_route(T, "everything", destination=lms, kinds=sorted(RECORD_TYPES))
    return store


@pytest.fixture(params=["default", "streamed"])
def stream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """The default import, and the streamed one in batches of 50 rows (many transactions'
    worth of batches, which must still be one)."""
    if request.param == "streamed":
        monkeypatch.setattr(ingest, "STREAM_BATCH", 50)
    return request.param == "streamed"


@pytest.fixture
def tripwire(district: Store) -> Iterator[Any]:
    """``tripwire(table, condition)``: the database refuses the row of ``table`` that meets
    ``condition`` (a trigger's WHEN clause over ``NEW``). Dropped after the test (the
    PostgreSQL database of a test worker is shared by its tests)."""
    engine = district.engine
    installed: list[str] = []

    def install(table: str, condition: str) -> None:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(text(f"CREATE TRIGGER tripwire BEFORE INSERT ON {table} FOR EACH ROW WHEN {condition} "
                                  f"BEGIN SELECT RAISE(ABORT, 'tripwire: {table} row refused'); END"))
            else:
                conn.execute(text("CREATE FUNCTION tripwire() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                                  "RAISE EXCEPTION 'tripwire: % row refused', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; "
                                  "END $$"))
                conn.execute(text(f"CREATE TRIGGER tripwire BEFORE INSERT ON {table} FOR EACH ROW WHEN ({condition}) "
                                  "EXECUTE FUNCTION tripwire()"))
        installed.append(table)

    yield install
    with engine.begin() as conn:
        for table in installed:
            conn.execute(text(f"DROP TRIGGER IF EXISTS tripwire{'' if engine.dialect.name == 'sqlite' else f' ON {table}'}"))
            if engine.dialect.name != "sqlite":
                conn.execute(text("DROP FUNCTION IF EXISTS tripwire()"))


def test_a_valid_sample_import_writes_every_kind_of_table(district: Store, stream: bool) -> None:
    """The control: without a fault, the import writes to each table the failure below must
    leave untouched, and reads back as the one transaction it is."""
    before = contents(district)
    report = import_package(district, SAMPLE, tenant=T, source="sis", stream=stream)
    after = contents(district)
    assert report.atomic and report.streamed == stream
    assert {name for name in after if after[name] != before[name]} == WRITTEN


@pytest.mark.parametrize("fault", list(LATE_ROWS))
def test_a_failure_while_writing_a_valid_package_leaves_every_table_unchanged(district: Store, tripwire: Any, stream: bool,
                                                                               fault: str) -> None:
    """The package passes every check; the database refuses one late row; all of the
    import is rolled back: records, identifiers, change log, outbox, evidence, alignments,
    mastery states, gradebook objects, tenants, everything."""
    before = contents(district)
    tripwire(*LATE_ROWS[fault])
    with pytest.raises(DatabaseIntegrityError, match=f"tripwire: {LATE_ROWS[fault][0]} row refused"):
        import_package(district, SAMPLE, tenant=T, source="sis", stream=stream)
    after = contents(district)
    assert {name for name in after if after[name] != before[name]} == set()
