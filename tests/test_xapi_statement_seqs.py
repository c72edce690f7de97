"""What the statement writer asks under the write lock (``adapters/xapi/statement_seqs.py``):
which statements of a batch an earlier voiding statement targets (xAPI 1.0.3 Data
2.3.2.s2.b3), asked on the driver's own statements, within SQLite's limit on bound
parameters however large the batch."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from pathlib import Path

from adapters.xapi import validation as v
from adapters.xapi.statement_seqs import voided_by_earlier
from adapters.xapi.statement_store import StatementStore
from adapters.xapi.statements import complete
from gateway.wiring import open_store

TENANT = "district-a"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": "seqs"}}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def test_a_batch_larger_than_half_the_parameter_limit_finds_the_earlier_voided(_sqlite_template: Path, tmp_path: Path) -> None:
    """SQLite's usual limit is 32,766 parameters a statement (SQLITE_MAX_VARIABLE_NUMBER): a
    batch of 20,000 statement ids is asked in parts, not padded to one list of 32,768."""
    path = tmp_path / "seqs.db"
    shutil.copy(_sqlite_template, path)
    store = StatementStore(open_store(f"sqlite:///{path}"))
    try:
        target = uuid.uuid4()
        voiding = {"id": str(uuid.uuid4()), "actor": {"mbox": "mailto:admin@example.com"}, "verb": {"id": VOIDED},
                   "object": {"objectType": "StatementRef", "id": str(target)}}
        batch = v.statements([voiding], "1.0.3")
        store.save(TENANT, batch, stored=complete(batch, AUTHORITY, "1.0.3"), authority=v.agent_key(AUTHORITY))
        keys = [uuid.uuid4() for _ in range(20_000)]
        keys[12_345] = target
        with store.engine.connect() as conn:
            conn.connection.dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
            assert voided_by_earlier(conn, TENANT, keys) == [target]
            assert voided_by_earlier(conn, TENANT, keys[:100]) == []
    finally:
        store.store.dispose()
