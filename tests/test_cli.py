"""The ``tessera`` command line, driven as a user would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app, register_adapters
from gateway.wiring import open_store

from .factories import roster

register_adapters()


def total_row(output: str) -> list[str]:
    """created, updated, unchanged from the 'total' row of the import table."""
    row = next(line for line in output.splitlines() if "total" in line)
    return [c.strip() for c in row.strip("│ ").split("│")][1:]


def test_commands_refuse_an_unmigrated_database_with_a_clear_message(cli) -> None:
    from gateway.errors import TesseraError

    with pytest.raises(TesseraError, match="tessera migrate"):
        CliRunner().invoke(app, ["clients", "list"], catch_exceptions=False)


def test_migrate_then_import_and_export_ndjson_round_trip(cli, tmp_path: Path) -> None:
    cli("migrate")
    src = tmp_path / "in.ndjson"
    src.write_bytes(b"".join(json.dumps(r.model_dump(mode="json")).encode() + b"\n" for r in roster(4)))
    out = cli("import", "ndjson", str(src), "--tenant", "t1").output
    assert total_row(out) == ["11", "0", "0"]  # 1 org, 1 course, 1 section, 4 people, 4 enrollments

    dump = tmp_path / "out.ndjson"
    cli("export", "ndjson", "--tenant", "t1", "-o", str(dump))
    assert len(dump.read_text().splitlines()) == 11

    again = cli("import", "ndjson", str(dump), "--tenant", "t1").output
    assert total_row(again) == ["0", "0", "11"]  # the export re-imports to the identical state
    store = open_store(cli.url)
    assert store.records.count("t1", "person") == 4
    assert len(store.records.changes_since("t1")) == 11
    store.dispose()


def test_import_of_a_bad_file_lists_each_problem_and_stores_nothing(cli, tmp_path: Path) -> None:
    from gateway.errors import ValidationError

    cli("migrate")
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"kind":"org","tenant":"t1","source":"sis","native_id":"o1","name":"X","type":"galaxy"}\n{oops\n')
    with pytest.raises(ValidationError) as exc:
        CliRunner().invoke(app, ["import", "ndjson", str(bad), "--tenant", "t1"], catch_exceptions=False)
    where = [str(e) for e in exc.value.errors]
    assert any("bad.ndjson line 1" in w and "type" in w for w in where)
    assert any("bad.ndjson line 2" in w for w in where)
    store = open_store(cli.url)
    assert store.records.count("t1", "org") == 0
    store.dispose()


def test_schemas_export_writes_one_schema_per_kind(cli, tmp_path: Path) -> None:
    cli("schemas", "export", "--dir", str(tmp_path / "s"))
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert "person.schema.json" in files and "evidence.schema.json" in files
    schema = json.loads((tmp_path / "s" / "evidence.schema.json").read_text())
    assert "learner_id" in schema["required"]


def test_demo_without_serving_loads_samples_and_prints_credentials(cli) -> None:
    out = cli("demo", "--no-serve").output
    assert "client_id:" in out and "client_secret:" in out and "/oauth/token" in out
    store = open_store(cli.url)
    assert store.records.count("demo", "person") >= 300
    store.dispose()


def test_main_turns_errors_into_a_message_and_exit_code_1(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "TESSERA_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "clients", "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "tessera migrate" in proc.stderr
