"""What a newcomer trips on in the first hour with ``tessera`` (issue 21 items 8-11, issue 15
item 7): the version, the demo's host and port, credentials a script can read, the database
a command opens, the tenant an import writes to, and messages that print user data as text."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway import __version__
from gateway.auth import ClientStore
from gateway.auth.consumers import ConsumerStore
from gateway.cli import app, register_adapters
from gateway.cli_kit import out
from gateway.config import get_settings
from gateway.errors import TesseraError
from gateway.wiring import open_store

register_adapters()
ONEROSTER = Path(__file__).parent / "fixtures" / "oneroster" / "district-v1p2"
CASE = Path(__file__).parent / "fixtures" / "case" / "opensalt-sample-framework.json"


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``tessera ARGS`` through ``gateway.cli.main`` (its error handler included)."""
    from gateway import cli

    monkeypatch.setattr(sys, "argv", ["tessera", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


# --- item 8: --version, and the demo's host and port ----------------------------------------------


def test_version_alone_prints_the_version_and_exits_0() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__


def test_demo_serves_where_tessera_host_and_port_say(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_HOST", "127.0.0.9")
    monkeypatch.setenv("TESSERA_PORT", "8765")
    get_settings.cache_clear()
    printed = cli("demo", "--no-serve").stdout
    assert "http://127.0.0.9:8765/oauth/token" in printed
    assert "http://127.0.0.1:8000" not in printed


def test_demo_documents_port_and_host() -> None:
    shown = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--port" in shown and "TESSERA_PORT" in shown and "--host" in shown and "TESSERA_HOST" in shown


# --- item 9: credentials for scripts, and never wrapped --------------------------------------------


def test_clients_create_json_is_one_object_a_script_can_use(cli) -> None:
    cli("migrate")
    result = cli("clients", "create", "--tenant", "t1", "--scopes", "roster-core.readonly records.write", "--json")
    made = json.loads(result.stdout)
    assert set(made) == {"client_id", "client_secret", "tenant", "scopes"}
    assert made["tenant"] == "t1" and made["scopes"] == ["roster-core.readonly", "records.write"]
    store = open_store(cli.url)
    try:
        assert ClientStore(store.engine).authenticate(made["client_id"], made["client_secret"]) is not None
    finally:
        store.dispose()


def test_lrs_credentials_and_consumer_keys_have_json_too(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("migrate")
    lrs = json.loads(cli("lrs", "credentials", "create", "--tenant", "t1", "--json").stdout)
    assert set(lrs) == {"key", "secret", "tenant", "scopes"} and "xapi/all" in lrs["scopes"]
    oneroster = json.loads(cli("oneroster", "consumers", "create", "--tenant", "t1", "--scope", "roster-core.readonly", "--json").stdout)
    assert set(oneroster) == {"consumer_key", "consumer_secret", "tenant", "scopes"}
    lti = json.loads(cli("lti", "consumers", "add", "lms-1", "--tenant", "t1", "--json").stdout)
    assert set(lti) == {"consumer_key", "consumer_secret", "role", "tenant"}
    store = open_store(cli.url)
    try:
        assert ClientStore(store.engine).authenticate(lrs["key"], lrs["secret"]) is not None
        consumers = ConsumerStore(store.engine)
        assert consumers.secret(oneroster["consumer_key"], "oneroster") == oneroster["consumer_secret"]
        assert consumers.secret("lms-1", "lti11.tool") == lti["consumer_secret"]
    finally:
        store.dispose()


def _value(output: str, name: str) -> str:
    """The value of the ``name:`` line, which must hold it whole (nothing after it wraps)."""
    lines = output.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    value = lines[i].split(":", 1)[1].strip()
    assert value and " " not in value, lines[i]
    following = lines[i + 1] if i + 1 < len(lines) else ""
    assert not following or re.match(r"^[a-z_]+:", following) or following.startswith("endpoint"), \
        f"the {name} line wrapped: {lines[i]!r} / {following!r}"
    return value


def test_credentials_print_whole_on_a_narrow_non_terminal(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Piped (CliRunner is no terminal) and 20 columns wide: each key and secret is on its line, whole."""
    cli("migrate")
    monkeypatch.setattr(out, "_width", 20)
    client = cli("clients", "create", "--tenant", "t1", "--scopes", "roster-core.readonly records.write").stdout
    lrs = cli("lrs", "credentials", "create", "--tenant", "t1").stdout
    oneroster = cli("oneroster", "consumers", "create", "--tenant", "t1", "--scope", "roster-core.readonly").stdout
    lti = cli("lti", "consumers", "add", "lms-2", "--tenant", "t1").stdout
    store = open_store(cli.url)
    try:
        clients = ClientStore(store.engine)
        assert clients.authenticate(_value(client, "client_id"), _value(client, "client_secret")) is not None
        assert clients.authenticate(_value(lrs, "key"), _value(lrs, "secret")) is not None
        consumers = ConsumerStore(store.engine)
        assert consumers.secret(_value(oneroster, "consumer_key"), "oneroster") == _value(oneroster, "consumer_secret")
        assert consumers.secret(_value(lti, "consumer_key"), "lti11.tool") == _value(lti, "consumer_secret")
    finally:
        store.dispose()


# --- item 10: which database ----------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no database, and no TESSERA_DATABASE_URL: the default ./tessera.db applies."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("TESSERA_DATABASE_URL", raising=False)
    monkeypatch.delenv("TESSERA_CONFIG", raising=False)
    get_settings.cache_clear()
    yield folder
    get_settings.cache_clear()


def test_a_command_run_from_another_folder_names_the_database_and_creates_none(elsewhere: Path) -> None:
    with pytest.raises(TesseraError) as exc:
        CliRunner().invoke(app, ["clients", "list"], catch_exceptions=False)
    message = exc.value.detail
    assert str(elsewhere / "tessera.db") in message
    assert "TESSERA_DATABASE_URL" in message and "tessera migrate" in message
    assert list(elsewhere.iterdir()) == [], "a stray database file was created"


def test_an_unmigrated_database_is_named_in_the_message(elsewhere: Path) -> None:
    (elsewhere / "tessera.db").touch()
    with pytest.raises(TesseraError, match=re.escape(str(elsewhere / "tessera.db"))):
        CliRunner().invoke(app, ["clients", "list"], catch_exceptions=False)


def test_status_says_which_database_and_whether_it_is_current(elsewhere: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert missing.exit_code == 1
    assert str(elsewhere / "tessera.db") in missing.stdout and "does not exist" in missing.stdout
    assert list(elsewhere.iterdir()) == []
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    current = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert current.exit_code == 0, current.output
    assert str(elsewhere / "tessera.db") in current.stdout and "(current)" in current.stdout


# --- item 11: the tenant of every import -----------------------------------------------------------


def test_every_import_summary_names_its_tenant_and_says_when_it_was_the_default(cli, tmp_path: Path) -> None:
    cli("migrate")
    sample = Path(__file__).parents[1] / "adapters" / "ndjson" / "samples" / "demo-district.ndjson"
    defaulted = cli("import", "ndjson", str(sample)).stdout
    assert "tenant: default (no --tenant given" in defaulted
    named = cli("import", "ndjson", str(sample), "--tenant", "t1").stdout
    assert re.search(r"^tenant: t1$", named, re.M)
    pkg = tmp_path / "pkg"
    shutil.copytree(ONEROSTER, pkg)
    assert re.search(r"^tenant: t1$", cli("import", "oneroster", str(pkg), "--tenant", "t1").stdout, re.M)
    assert "tenant: default (no --tenant given" in cli("import", "case", str(CASE)).stdout


def test_a_bulk_import_says_which_absent_records_it_retired(cli, tmp_path: Path) -> None:
    cli("migrate")
    pkg = tmp_path / "pkg"
    shutil.copytree(ONEROSTER, pkg)
    cli("import", "oneroster", str(pkg), "--tenant", "t1")
    enrollments = (pkg / "enrollments.csv").read_text().splitlines()
    (pkg / "enrollments.csv").write_text("\n".join(enrollments[:-1]) + "\n")
    again = cli("import", "oneroster", str(pkg), "--tenant", "t1").stdout
    assert re.search(r"^bulk: 1 enrollment record\(s\) of source sis absent from this package's bulk file were marked tobedeleted$",
                     again, re.M), again


@pytest.mark.parametrize("command", [
    ["import", "ndjson", "{bad}"],
    ["import", "oneroster", "{pkg}"],
    ["import", "case", "{case}"],
])
def test_an_invalid_tenant_is_refused_once_before_any_file_is_read(cli, tmp_path: Path, command: list[str]) -> None:
    cli("migrate")
    bad = tmp_path / "bad.ndjson"
    bad.write_text("{not json\n" * 5)
    pkg = tmp_path / "pkg"
    shutil.copytree(ONEROSTER, pkg)
    (pkg / "users.csv").write_text("not,a,users,file\n" * 3)
    args = [a.format(bad=bad, pkg=pkg, case=CASE) for a in command]
    result = cli(*args, "--tenant", "Not A Tenant", code=2)
    assert result.output.count("is not a tenant id") == 1, result.output
    assert "not json" not in result.output.lower() and "users.csv" not in result.output


# --- issue 15 item 7: user data is printed as text, never as console markup -------------------------


def test_an_error_quoting_a_pattern_prints_its_brackets(cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli("migrate")
    code, _, err = _main(monkeypatch, capsys, "clients", "create", "--tenant", "x-[a-z0-9-]{0,62}", "--scopes", "roster-core.readonly")
    assert code == 1
    flat = " ".join(err.split())
    assert "x-[a-z0-9-]{0,62}" in flat, err
    code, _, err = _main(monkeypatch, capsys, "clients", "create", "--tenant", "t1", "--scopes", "[bold]nope[/bold]")
    assert code == 1 and "[bold]nope[/bold]" in " ".join(err.split()), err


def test_every_detail_of_an_import_error_keeps_its_brackets(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cli("migrate")
    bad = tmp_path / "[bold]file.ndjson"
    bad.write_text('{"kind": "[b]pet[/b]"}\n')
    code, _, err = _main(monkeypatch, capsys, "import", "ndjson", str(bad), "--tenant", "t1")
    flat = " ".join(err.split())
    assert code == 1
    assert "[bold]file.ndjson line 1" in flat and "'[b]pet[/b]'" in flat, err


def test_the_shared_helpers_print_text_not_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli_kit import console, note, warn

    warn("pattern ^[a-z0-9-]{0,62}$")
    note("[bold]kept[/bold]")
    console.print("[link=x]plain[/link]")
    err = capsys.readouterr().err
    assert "warning: pattern ^[a-z0-9-]{0,62}$" in err and "[bold]kept[/bold]" in err and "[link=x]plain[/link]" in err




def test_a_framework_title_that_looks_like_markup_neither_crashes_the_import_nor_is_eaten(cli, tmp_path: Path) -> None:
    """The spinner's "storing 'TITLE'" message read a closing tag in a title as markup: MarkupError."""
    cli("migrate")
    doc = json.loads(CASE.read_text())
    doc["CFDocument"]["title"] = "Math [/b] standards [a-z0-9-]{0,62}"
    path = tmp_path / "[bold]framework.json"
    path.write_text(json.dumps(doc))
    result = cli("import", "case", str(path), "--tenant", "t1")
    assert "Math [/b] standards [a-z0-9-]{0,62}" in result.stdout
    assert "[bold]framework.json" in result.stdout
