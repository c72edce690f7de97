"""The PostgreSQL test database is emptied before each test (``tests/conftest.py``,
``_empty_pg``): a session an earlier test left in a transaction on a table no longer keeps
that TRUNCATE waiting for ever (a hung CI run); the test fails at once naming the session,
which is ended, so that the next tests start clean."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests import conftest
from tests import factories as f


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_session_left_in_a_transaction_fails_the_emptying_and_is_ended(db_url: str, store, monkeypatch) -> None:
    store.records.apply(f.T, [f.org("s1")])
    leaked = create_engine(db_url, pool_size=1).connect()  # an earlier test's connection, never closed
    leaked.execute(text("SELECT count(*) FROM tenants")).scalar()  # holds the table (ACCESS SHARE) till its transaction ends
    monkeypatch.setattr(conftest, "_EMPTY_LOCK_WAIT", 1)
    cleaner = create_engine(db_url, pool_size=1)
    try:
        with pytest.raises(pytest.fail.Exception, match="sessions an earlier test of this worker left in a transaction") as failed:
            conftest._empty_pg(cleaner)
        assert "SELECT count(*) FROM tenants" in str(failed.value)
        with pytest.raises(Exception, match="terminat"):  # the leaked session was ended
            leaked.execute(text("SELECT 1")).scalar()
        conftest._empty_pg(cleaner)  # and the next emptying goes through
        with cleaner.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tenants")).scalar() == 0
    finally:
        leaked.invalidate()
        leaked.close()
        cleaner.dispose()
