"""The export's pseudonym helper process (``gateway.sharing.pseudonym_helper``): record
pseudonyms made in a second process while the export converts the rest of a batch are the
very ones made in-process, and the process never outlives its export."""

from __future__ import annotations

import uuid

import pytest

from gateway.sharing import columns as columnar
from gateway.sharing import export as export_mod
from gateway.sharing import export_reads
from gateway.sharing.deidentify import Deidentifier, Pseudonymizer, StateIds
from gateway.sharing.export import export, read_back
from gateway.sharing.pseudonym_helper import arrow_texts, split_texts

from .test_sharing import KEY, district, revoked_after


def as_lists(columns):
    return [split_texts(c) if isinstance(c, bytes) else c for c in columns]


def test_the_helper_process_makes_the_pseudonyms_the_pseudonymizer_makes(store):
    """Several columns in one request, None kept in place, ids compared without case; a
    column holding a list or an id holding a newline is done in-process instead."""
    p = Pseudonymizer(KEY, "state")
    deid = Deidentifier(p, StateIds(store.engine, "d1"))
    ids = [str(uuid.uuid4()) for _ in range(3000)] + [None, "ABCDEF01-2345-6789-ABCD-EF0123456789", "Zoë-Ω"]
    columns = [ids, [None] * len(ids), [None, ids[5], None]]
    helper = p.helper()
    try:
        assert deid.records_later(columns, helper)() == [p.records("d1", c) for c in columns]
        assert as_lists(deid.records_later([[]], helper)()) == [[]]
        odd = [["a\nb", "c"], [["x", "y"], None]]
        assert deid.records_later(odd, helper)() == [p.records("d1", odd[0]), deid.records(odd[1])]
        helper.submit(b"record:d1:", b"a\nb", 2)  # left outstanding: the next request collects it first
        whole = deid.records_later([ids[:3000]], helper)()  # no None: the UUID texts' bytes as they came
        assert isinstance(whole[0], bytes) and as_lists(whole) == [p.records("d1", ids[:3000])]
        assert arrow_texts(whole[0]).to_pylist() == p.records("d1", ids[:3000])
    finally:
        helper.close()
    assert helper.proc.returncode == 0 and helper.rows == len(ids) + 2 + 3000
    left = p.helper()  # closed with a request still out: it ends all the same
    left.submit(b"record:d1:", "\n".join(ids[:3000]).encode(), 3000)
    left.close()
    assert left.proc.returncode is not None


def test_pseudonyms_made_in_process_as_the_helper_makes_them_are_the_pseudonymizers():
    """Where no helper process runs (a part's process, ``TESSERA_EXPORT_HELPER=0``) the same
    requests are answered in-process: the very pseudonyms ``Pseudonymizer.records`` makes,
    a column without None as the UUID texts' bytes."""
    p = Pseudonymizer(KEY, "state")
    deid = Deidentifier(p, StateIds(None, "d1"))  # type: ignore[arg-type]  # no state id is looked up
    ids = [str(uuid.uuid4()) for _ in range(2000)] + [None, "ABCDEF01-2345-6789-ABCD-EF0123456789"]
    columns = [ids, [None] * len(ids), [None, ids[5], None]]
    here = p.in_process()
    assert deid.records_later(columns, here)() == [p.records("d1", c) for c in columns]
    whole = deid.records_later([ids[:2000]], here)()
    assert isinstance(whole[0], bytes) and arrow_texts(whole[0]).to_pylist() == p.records("d1", ids[:2000])
    assert as_lists(deid.records_later([[]], here)()) == [[]]
    assert here.rows == (len(ids) - 1 + 1) + 2000  # the ids not None of each request
    here.close()


def test_an_export_with_the_helper_writes_what_one_without_writes(store, tmp_path, monkeypatch):
    """Every format, batches of a few records each (each with its helper request), against the
    same export with pseudonyms made in-process; the helper is started once per file and ended."""
    district(store, "d1", state_ids={"u1": "IA-1"}, n=7)
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 3)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "0")
    kinds = ["person", "enrollment", "evidence"]
    started = []
    real = Pseudonymizer.helper

    def helper(self):
        started.append(real(self))
        return started[-1]

    monkeypatch.setattr(Pseudonymizer, "helper", helper)
    monkeypatch.setattr(export_mod, "_helper_pays", lambda: False)
    plain = {fmt: export(store, tmp_path / f"plain-{fmt}", tenant="d1", kinds=kinds, fmt=fmt, deidentifier=deid)
             for fmt in ("parquet", "ndjson", "csv")}
    assert started == []
    monkeypatch.setattr(export_mod, "_helper_pays", lambda: True)
    monkeypatch.setattr(columnar, "HELPER_FROM", 1)
    for fmt, want in plain.items():
        got = export(store, tmp_path / f"helped-{fmt}", tenant="d1", kinds=kinds, fmt=fmt, deidentifier=deid)
        assert [(f.kind, f.rows) for f in got.files] == [(f.kind, f.rows) for f in want.files]
        for a, b in zip(got.files, want.files, strict=True):
            assert read_back(tmp_path / f"helped-{fmt}" / a.name) == read_back(tmp_path / f"plain-{fmt}" / b.name), (fmt, a.kind)
    assert len(started) == 3 * 2  # enrollments and evidence (people hold no record ids)
    assert all(h.proc.returncode == 0 and h.rows for h in started)


def test_a_failing_export_ends_its_helper_process(store, tmp_path, monkeypatch):
    district(store, "d1", n=9)
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "0")
    monkeypatch.setattr(export_mod, "_helper_pays", lambda: True)
    monkeypatch.setattr(columnar, "HELPER_FROM", 1)
    started = []
    real = Pseudonymizer.helper
    monkeypatch.setattr(Pseudonymizer, "helper", lambda self: started.append(real(self)) or started[-1])

    out = tmp_path / "stopped"
    with pytest.raises(PermissionError):
        export(store, out, tenant="d1", kinds=["evidence"], fmt="parquet", deidentifier=deid, check=revoked_after(2))
    assert list(out.iterdir()) == []
    assert len(started) == 1 and started[0].proc.returncode is not None


def test_an_export_that_cannot_start_its_helper_makes_the_pseudonyms_itself(store, tmp_path, monkeypatch):
    district(store, "d1", n=5)
    deid = Deidentifier(Pseudonymizer(KEY, "state"), StateIds(store.engine, "d1"))
    monkeypatch.setattr(export_reads, "BATCH_ROWS", 2)
    monkeypatch.setenv(export_mod.EXPORT_WORKERS_ENV, "0")
    want = export(store, tmp_path / "plain", tenant="d1", kinds=["evidence"], fmt="ndjson", deidentifier=deid)
    from gateway.sharing import pseudonym_helper

    monkeypatch.setattr(export_mod, "_helper_pays", lambda: True)
    monkeypatch.setattr(columnar, "HELPER_FROM", 1)
    monkeypatch.setattr(pseudonym_helper.sys, "executable", "")  # an embedded interpreter: no process to start
    got = export(store, tmp_path / "helperless", tenant="d1", kinds=["evidence"], fmt="ndjson", deidentifier=deid)
    assert got.files[0].rows == want.files[0].rows == 5
    assert read_back(tmp_path / "helperless" / "evidence.ndjson") == read_back(tmp_path / "plain" / "evidence.ndjson")


def test_the_helper_process_does_not_inherit_the_servers_secrets(monkeypatch):
    """The helper gets the recipient's derived key only, on its input: the server's pseudonym
    key (``TESSERA_PSEUDONYM_KEY``) and the other settings (a database address with its
    password) are not copied into its environment."""
    monkeypatch.setenv("TESSERA_PSEUDONYM_KEY", "the-servers-own-key")
    monkeypatch.setenv("TESSERA_DATABASE_URL", "postgresql://u:secret@db/x")
    helper = Pseudonymizer(KEY, "state").helper()
    try:
        with open(f"/proc/{helper.proc.pid}/environ", "rb") as fh:
            environ = fh.read()
    finally:
        helper.close()
    assert b"the-servers-own-key" not in environ and b"secret@db" not in environ
