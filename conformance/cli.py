"""``tessera conformance list|run``: run a kit against a vendor's endpoint from the command line.

Imports only typer, rich, httpx and the standard library (through ``conformance``): it runs
from an installed wheel with no test dependency, and without a Tessera database.
Secrets never appear on the command line: ``--client-secret-env NAME`` and ``--basic
USER:PASS_ENV`` name environment variables holding them.

Exit codes: 0 no required check failed; 1 a required check failed; 2 a usage error (unknown
kit, a missing environment variable or option). The reports are written in every case a
run starts, whatever the target does.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from . import kits as kits_package
from .kit import Check, Kit, Result, Target
from .kits import MODULES
from .reports import write_reports
from .runner import run_kit

conformance_app = typer.Typer(help="Conformance kits: certify a OneRoster, CASE, xAPI or LTI endpoint against its standard.",
                              no_args_is_help=True)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
#: kits that read a package from disk (``--option package=PATH``): no base URL needed
OFFLINE_KITS = frozenset({"oneroster-csv-1.2"})


def _usage(message: str) -> typer.Exit:
    err.print(Text.assemble(("error: ", "red"), message), soft_wrap=True)
    return typer.Exit(2)


def load_kits() -> tuple[dict[str, Kit], dict[str, str]]:
    """(the kits that load, {name: why} for those that do not): one broken kit never hides the others."""
    loaded: dict[str, Kit] = {}
    broken: dict[str, str] = {}
    for name, module in MODULES.items():
        try:
            loaded[name] = import_module(f"{kits_package.__name__}.{module}").KIT
        except Exception as exc:  # noqa: BLE001 - reported, the other kits still run
            broken[name] = f"{type(exc).__name__}: {exc}"
    return loaded, broken


@conformance_app.command("list")
def list_kits() -> None:
    """The kits, with their number of checks."""
    available, broken = load_kits()
    table = Table("title", "standard", "checks", "required")
    table.columns.insert(0, Column("kit", no_wrap=True))
    for name, kit in sorted(available.items()):
        table.add_row(name, kit.title, kit.spec, str(len(kit.checks)), str(sum(1 for c in kit.checks if c.required)))
    for name, why in sorted(broken.items()):
        table.add_row(name, Text(f"does not load: {why}", "red"), "", "", "")
    out.print(table)


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise _usage(f"{what}: the environment variable {name} is not set")
    return value


@conformance_app.command("run")
def run(
    kit_name: Annotated[str, typer.Argument(metavar="KIT", help="a kit name (tessera conformance list)")],
    report: Annotated[Path, typer.Option("--report", help="directory for report.json, junit.xml and report.html")],
    base_url: Annotated[str | None, typer.Option("--base-url", help="the endpoint's base URL (not needed by offline kits)")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id", help="OAuth 2.0 client id")] = None,
    client_secret_env: Annotated[str | None, typer.Option("--client-secret-env", metavar="NAME",
                                                          help="environment variable holding the client secret")] = None,
    token_url: Annotated[str | None, typer.Option("--token-url", help="OAuth 2.0 token endpoint (default BASE/oauth/token)")] = None,
    basic: Annotated[str | None, typer.Option("--basic", metavar="USER:PASS_ENV",
                                              help="HTTP Basic user and the environment variable holding the password")] = None,
    tool_key_file: Annotated[Path | None, typer.Option("--tool-key-file", help="PEM private key (LTI kits)")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", metavar="KEY=VALUE", help="kit setting, repeatable")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="run only checks whose id or description matches")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", metavar="ID", help="skip a check by id (repeatable, or comma separated)")] = None,
    bail: Annotated[bool, typer.Option("--bail", help="stop after the first required check that fails")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds per request")] = 10.0,
) -> None:
    """Run KIT against an endpoint; write the reports; exit 0 only when no required check fails."""
    available, broken = load_kits()
    if kit_name in broken:
        raise _usage(f"kit {kit_name} does not load: {broken[kit_name]}")
    kit = available.get(kit_name)
    if kit is None:
        raise _usage(f"no kit {kit_name!r}; kits: {', '.join(sorted(available))}")
    if not base_url and kit_name not in OFFLINE_KITS:
        raise _usage(f"kit {kit_name} needs --base-url")
    options: dict[str, str] = {}
    for o in option or []:
        key, sep, value = o.partition("=")
        if not sep or not key:
            raise _usage(f"--option {o!r}: expected KEY=VALUE")
        options[key] = value
    secret = _env(client_secret_env, "--client-secret-env") if client_secret_env else None
    basic_pair: tuple[str, str] | None = None
    if basic:
        user, sep, pass_env = basic.partition(":")
        if not sep or not pass_env:
            raise _usage("--basic: expected USER:PASS_ENV (the password's environment variable, never the password)")
        basic_pair = (user, _env(pass_env, "--basic"))
    if tool_key_file is not None and not tool_key_file.is_file():
        raise _usage(f"--tool-key-file: no file {tool_key_file}")
    target = Target((base_url or "").rstrip("/"), client_id=client_id, client_secret=secret, token_url=token_url, basic=basic_pair,
                    tool_key_file=str(tool_key_file) if tool_key_file else None, options=options, timeout=timeout)

    out.print(Text.assemble(("conformance ", "bold"), (kit.name, "cyan"), f": {kit.title} ({kit.spec})"))
    if base_url:
        out.print(f"target: {target.base_url}")
    if kit.writes and not kit.writes.startswith("nothing"):
        out.print(Text.assemble(("warning: ", "yellow bold"),
                                f"this kit writes test records to the target: {kit.writes}. Run it against a test "
                                "instance, never against production data."))
    elif kit.writes:
        out.print(f"writes: {kit.writes}")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=out, transient=True) as progress:
        task = progress.add_task("starting", total=len(kit.checks))
        failed = 0

        def started(check: Check) -> None:
            progress.update(task, description=f"{check.id:<22}")

        def done(result: Result) -> None:
            nonlocal failed
            if result.status == "fail":
                failed += 1
                label = ("FAIL ", "red bold") if result.check.required else ("WARN ", "yellow bold")
                note = "" if result.check.required else " (optional: does not fail the run)"
                progress.console.print(Text.assemble(label, (result.check.id, "bold"), f" {result.reason[:200]}{note}"))
            progress.advance(task)

        skipped = [x.strip() for item in skip or [] for x in item.split(",") if x.strip()]
        result = run_kit(kit, target, grep=grep, skip=skipped, bail=bail, report_dir=report, on_start=started, on_result=done)
        progress.update(task, total=len(result.results), completed=len(result.results))
    try:
        paths = write_reports(result, report)
    except OSError as exc:
        raise _usage(f"--report {report}: cannot write the reports there ({exc})") from None

    if result.setup_error:
        out.print(Text.assemble(("setup: ", "red"), result.setup_error))
    if result.teardown_error:
        out.print(Text.assemble(("teardown: ", "yellow"), result.teardown_error))
    table = Table("passed", "failed", "skipped", "required failed", "time", show_edge=False)
    table.add_row(Text(str(result.count("pass")), "green"), Text(str(result.count("fail")), "red"), str(result.count("skip")),
                  str(len(result.required_failures)), f"{result.seconds:.1f} s")
    out.print(table)
    for path in [*paths.values(), *map(Path, result.artifacts)]:
        out.print(f"  {path}")
    verdict = ("PASSED", "green bold") if result.exit_code == 0 else ("FAILED", "red bold")
    out.print(Text.assemble(verdict, f": {kit.name} in {result.seconds:.1f} s"))
    raise typer.Exit(result.exit_code)


__all__ = ["conformance_app"]
