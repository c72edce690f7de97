"""The store: idempotent batch upserts, atomicity, change log, identifiers, outbox.

Every test runs on SQLite and on PostgreSQL (the ``store`` fixture is parametrised).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from gateway.errors import ConfigError, Conflict, IntegrityError, NotFound, ValidationError
from gateway.model import Identifier, Status
from gateway.store import Store
from gateway.store import tables as t
from gateway.store import write as write_mod
from gateway.wiring import open_store

from .factories import competency, evidence, framework, org, person, roster


def count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


def changes(store: Store) -> list[dict]:
    return store.records.changes_since("t1")


def test_same_batch_twice_gives_the_same_state_and_no_new_changes(store: Store) -> None:
    batch = roster(5)
    first = store.records.apply("t1", batch)
    assert first.created == len(batch) and first.updated == 0
    log_after_first = changes(store)
    assert len(log_after_first) == len(batch)
    assert {c["op"] for c in log_after_first} == {"created"}
    page_before = store.records.page("t1", "person", limit=100).items

    second = store.records.apply("t1", roster(5))
    assert second.created == 0 and second.updated == 0 and second.unchanged == len(batch)
    assert changes(store) == log_after_first
    assert store.records.page("t1", "person", limit=100).items == page_before  # not even updated_at moved


def test_one_change_log_entry_per_real_change(store: Store) -> None:
    batch = roster(3)
    store.records.apply("t1", batch)
    school = batch[0]
    renamed = person("u1", school, family_name="Byron")
    again = [renamed if r.id == renamed.id else r for r in roster(3)]  # u1 changed, the rest identical
    result = store.records.apply("t1", again)
    assert result.updated == 1
    log = changes(store)
    assert [c["op"] for c in log[len(batch):]] == ["updated"]
    assert log[-1]["record_id"] == renamed.id
    assert store.records.get("t1", "person", renamed.id).family_name == "Byron"


def test_tobedeleted_is_logged_as_a_delete_and_kept_as_a_soft_delete(store: Store) -> None:
    school = org()
    p = person("u1", school)
    store.records.apply("t1", [school, p])
    store.records.apply("t1", [p.model_copy(update={"status": Status.tobedeleted})])
    assert changes(store)[-1]["op"] == "deleted"
    assert store.records.get("t1", "person", p.id).status is Status.tobedeleted


def test_a_batch_with_one_dangling_reference_writes_nothing(store: Store) -> None:
    batch = roster(3)
    stranger = person("ghost", org("not-in-batch"))
    with pytest.raises(IntegrityError) as exc:
        store.records.apply("t1", [*batch, stranger])
    err = exc.value.errors[0]
    assert err.field == "roles[0].org_id" and "person sis/ghost" in err.location
    for table in (t.orgs, t.people, t.sections, t.enrollments, t.changes, t.identifiers, t.tenants):
        assert count(store, table) == 0, table.name


def test_references_may_point_at_records_already_stored(store: Store) -> None:
    school = org()
    store.records.apply("t1", [school])
    store.records.apply("t1", [person("u1", school)])
    assert store.records.count("t1", "person") == 1


def test_a_failure_midway_through_a_batch_rolls_everything_back(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    original = write_mod.RecordWriter._apply_kind
    calls = []

    def failing(self, conn, tenant, kind, *args, **kwargs):
        calls.append(kind)
        if len(calls) == 3:  # orgs, courses and sections are written; enrollments are not
            raise RuntimeError("disk on fire")
        return original(self, conn, tenant, kind, *args, **kwargs)

    monkeypatch.setattr(write_mod.RecordWriter, "_apply_kind", failing)
    with pytest.raises(RuntimeError):
        store.records.apply("t1", roster(3))
    assert calls[:2] == ["org", "course"]
    for table in (t.orgs, t.courses, t.sections, t.people, t.enrollments, t.changes, t.identifiers):
        assert count(store, table) == 0, table.name


def test_records_of_another_tenant_are_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as exc:
        store.records.apply("t1", [org(), org("o2", tenant="t2")])
    assert exc.value.errors[0].field == "tenant"
    assert count(store, t.orgs) == 0


def test_the_same_record_twice_with_different_content_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError, match="batch rejected"):
        store.records.apply("t1", [org(name="A"), org(name="B")])
    store.records.apply("t1", [org(), org()])  # identical duplicates are harmless
    assert count(store, t.orgs) == 1


def test_identifier_index_finds_people_and_follows_updates(store: Store) -> None:
    school = org()
    p = person("u1", school, identifiers=[Identifier(system="lms", kind="lti.sub", value="abc"), Identifier(system="sis", kind="email", value="ada@example.org")])
    store.records.apply("t1", [school, p])
    assert store.records.lookup("t1", "lms", "lti.sub", "abc") == [("person", p.id)]
    assert store.records.lookup("t2", "lms", "lti.sub", "abc") == []  # tenants never resolve each other's people
    moved = p.model_copy(update={"identifiers": [Identifier(system="lms", kind="lti.sub", value="xyz")]})
    store.records.apply("t1", [moved])
    assert store.records.lookup("t1", "lms", "lti.sub", "abc") == []
    assert store.records.lookup("t1", "lms", "lti.sub", "xyz", record_kind="person") == [("person", p.id)]


def test_another_tenants_record_is_not_found(store: Store) -> None:
    school = org()
    store.records.apply("t1", [school])
    with pytest.raises(NotFound):
        store.records.get_json("t2", "org", school.id)


# --- evidence is append-only ---------------------------------------------------------------


def _learner_and_competency(store: Store):
    school, fw = org(), framework()
    learner, comp = person("u1", school), competency("c1", fw)
    store.records.apply("t1", [school, fw, learner, comp])
    return learner, comp


def test_evidence_cannot_be_rewritten_but_can_be_voided(store: Store) -> None:
    learner, comp = _learner_and_competency(store)
    ev = evidence("e1", learner, comp, raw=8)
    store.records.apply("t1", [ev])
    stored = store.records.get("t1", "evidence", ev.id)
    assert stored.recorded_at is not None

    assert store.records.apply("t1", [ev]).unchanged == 1  # re-delivery is idempotent
    with pytest.raises(Conflict, match="append-only"):
        store.records.apply("t1", [evidence("e1", learner, comp, raw=3)])

    store.records.apply("t1", [ev.model_copy(update={"voided": True})])
    voided = store.records.get("t1", "evidence", ev.id)
    assert voided.voided and voided.recorded_at == stored.recorded_at
    store.records.apply("t1", [ev])  # a late re-delivery of the original does not un-void it
    assert store.records.get("t1", "evidence", ev.id).voided


def test_a_correction_supersedes_the_original(store: Store) -> None:
    learner, comp = _learner_and_competency(store)
    original = evidence("e1", learner, comp, raw=2)
    store.records.apply("t1", [original])
    fix = evidence("e1-fix", learner, comp, raw=9, supersedes=original.id)
    result = store.records.apply("t1", [fix])
    assert result.counts["evidence"].created == 1 and result.counts["evidence"].updated == 1
    assert store.records.get("t1", "evidence", original.id).superseded_by == fix.id


def test_late_alignment_of_unresolved_evidence_is_allowed(store: Store) -> None:
    learner, comp = _learner_and_competency(store)
    ev = evidence("e1", learner, None)
    store.records.apply("t1", [ev])
    store.records.apply("t1", [ev.model_copy(update={"competency_id": comp.id})])
    assert store.records.get("t1", "evidence", ev.id).competency_id == comp.id


# --- outbox ----------------------------------------------------------------------------------


def test_outbox_rows_are_written_with_the_change_and_never_echo_to_the_source(store: Store) -> None:
    lms = store.routing.create_connection("t1", "lms", adapter="lti", role="lti.platform", system="lms",
                                          base_url="https://lms.example.org", auth={"client_secret": "env:LMS_SECRET"})
    route = store.routing.create_route("t1", "people-to-lms", destination=lms, kinds=["person"])
    batch = roster(2)
    result = store.records.apply("t1", batch)
    assert result.outbox == 2
    pending = store.routing.pending("t1", route)
    assert {p["record_kind"] for p in pending} == {"person"}
    assert all(p["state"] == "pending" and p["attempts"] == 0 for p in pending)

    assert store.records.apply("t1", roster(2)).outbox == 0  # unchanged: nothing to deliver
    from_lms = person("lms-user", batch[0]).model_copy(update={"source": "lms", "native_id": "lms-user", "id": None})
    from_lms = type(from_lms).model_validate(from_lms.model_dump(exclude={"id"}))
    assert store.records.apply("t1", [from_lms]).outbox == 0  # came from the destination: no echo


def test_connections_refuse_secrets_in_clear(store: Store) -> None:
    with pytest.raises(ConfigError, match="env:"):
        store.routing.create_connection("t1", "x", adapter="lti", role="lti.platform", system="lms", auth={"client_secret": "hunter2"})


def test_routes_refuse_unknown_kinds_and_unknown_connections(store: Store) -> None:
    with pytest.raises(ConfigError):
        store.routing.create_route("t1", "r", destination=uuid.uuid4(), kinds=["pets"])
    with pytest.raises(NotFound):
        store.routing.create_route("t1", "r", destination=uuid.uuid4(), kinds=["person"])


# --- reading -------------------------------------------------------------------------------


def test_keyset_pages_cover_everything_once_in_a_stable_order(store: Store) -> None:
    store.records.apply("t1", roster(25))
    seen, cursor = [], None
    while True:
        page = store.records.page("t1", "person", limit=7, cursor=cursor)
        seen += page.items
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == 25 == len(set(seen))


def test_updated_since_returns_only_later_changes(store: Store) -> None:
    batch = roster(3)
    store.records.apply("t1", batch)
    mark = store.records.get("t1", "person", batch[3].id).updated_at
    store.records.apply("t1", [person("u9", batch[0])])
    later = store.records.page("t1", "person", updated_since=mark).items
    assert len(later) == 1 and '"native_id":"u9"' in later[0]


def test_iter_records_yields_dependencies_first(store: Store) -> None:
    store.records.apply("t1", roster(2))
    kinds = [r.KIND for r in store.records.iter_records("t1")]
    assert kinds.index("org") < kinds.index("course") < kinds.index("section") < kinds.index("enrollment")
    assert kinds.index("person") < kinds.index("enrollment")


def test_stored_json_round_trips_to_an_equal_record(store: Store) -> None:
    batch = roster(1)
    store.records.apply("t1", batch)
    for rec in batch:
        back = store.records.get("t1", rec.KIND, rec.id)
        assert back.model_dump(exclude={"updated_at"}) == rec.model_dump(exclude={"updated_at"})
        assert back.updated_at is not None


def test_sqlite_writers_queue_on_the_lock_file_and_a_nested_writer_fails_instead_of_waiting(tmp_path) -> None:
    """gateway/store/db.py ``_WriterQueueConnection``: a second writer waits on the lock
    file until the first commits, then goes on at once; a writer opened by a thread that
    already holds the queue (through another connection) skips it, and meets SQLite's busy
    timeout (an error) rather than waiting for itself for ever."""
    import threading
    import time

    from sqlalchemy import exc, text

    from gateway.store.db import WRITE

    s = open_store(f"sqlite:///{tmp_path / 'queue.db'}")
    s.migrate()
    try:
        waited: list[float] = []

        def second_writer() -> None:
            t0 = time.monotonic()
            with s.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                waited.append(time.monotonic() - t0)

        with s.engine.connect().execution_options(**WRITE) as first, first.begin():
            first.execute(text("SELECT 1"))
            other = threading.Thread(target=second_writer)
            other.start()
            time.sleep(0.3)
            assert waited == []  # queued behind the open write transaction
            nested = s.engine.connect().execution_options(**WRITE)
            nested.connection.dbapi_connection.execute("PRAGMA busy_timeout=100")
            with pytest.raises(exc.OperationalError, match="locked"):
                nested.begin()
            nested.close()
        other.join(10)
        assert len(waited) == 1 and waited[0] >= 0.3
    finally:
        s.dispose()
