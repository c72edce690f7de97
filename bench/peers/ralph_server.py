"""Ralph's LRS API on an in-memory statement store: run by ``ralph_peer.py`` with the Python of
Ralph's own virtual environment (never imported by Tessera).

Ralph ships Elasticsearch, MongoDB, ClickHouse and file-system LRS backends. None of the
first three runs here, and the file-system one reads its whole statements file on every
POST (to find ids already stored) and on every GET, so it slows down with every statement
stored and would measure a full scan, not the LRS. This backend keeps the statements in a
dict in the server process (Ralph runs one worker): what it measures is Ralph's API layer,
its xAPI validation and its HTTP stack, with a store that costs next to nothing. That is a
generous peer: Tessera's figure includes a durable database.

    python ralph_server.py HOST PORT        # RALPH_AUTH_FILE names the credentials file
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

from ralph.backends import loader
from ralph.backends.data.base import BaseOperationType, DataBackendStatus, Writable
from ralph.backends.lrs.base import BaseLRSBackend, BaseLRSBackendSettings, RalphStatementsQuery, StatementQueryResult

_STATEMENTS: dict[str, dict[str, Any]] = {}  # id -> statement, in the order stored


class MemoryLRSBackendSettings(BaseLRSBackendSettings):
    """No settings: everything lives in the process."""


class MemoryLRSBackend(BaseLRSBackend[MemoryLRSBackendSettings], Writable):
    """Statements in a dict; queries filter by id, verb and registration only (the
    benchmark only POSTs)."""

    name = "memory"
    default_operation_type = BaseOperationType.CREATE

    def status(self) -> DataBackendStatus:
        return DataBackendStatus.OK

    def close(self) -> None:
        return None

    def _read_dicts(self, query: Any, target: str | None, chunk_size: int, ignore_errors: bool) -> Iterator[dict[str, Any]]:
        yield from list(_STATEMENTS.values())

    def _write_dicts(self, data: Iterable[dict[str, Any]], target: str | None, chunk_size: int, ignore_errors: bool,
                     operation_type: BaseOperationType) -> int:
        count = 0
        for statement in data:
            if operation_type == BaseOperationType.CREATE and statement["id"] in _STATEMENTS:
                raise ValueError(f"statement {statement['id']} already stored")
            _STATEMENTS[statement["id"]] = statement
            count += 1
        return count

    def query_statements(self, params: RalphStatementsQuery, target: str | None = None) -> StatementQueryResult:
        found = []
        for s in reversed(_STATEMENTS.values()):
            if params.statement_id and s["id"] != str(params.statement_id):
                continue
            if params.verb and s["verb"]["id"] != params.verb:
                continue
            if params.registration and (s.get("context") or {}).get("registration") != str(params.registration):
                continue
            found.append(s)
            if params.limit and len(found) == params.limit:
                break
        if params.ascending:
            found.reverse()
        return StatementQueryResult(statements=found, pit_id=None, search_after=None)

    def query_statements_by_ids(self, ids: list[str], target: str | None = None) -> Iterator[dict[str, Any]]:
        for i in ids:
            if (s := _STATEMENTS.get(i)) is not None:
                yield s


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    shipped = loader.get_lrs_backends
    loader.get_lrs_backends = lambda: {**shipped(), "memory": MemoryLRSBackend}  # before the API module is imported
    import uvicorn
    from ralph.api import app

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
