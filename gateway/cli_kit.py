"""What every ``tessera`` command shares, the core's and the adapters': the root typer app,
the two rich consoles, opening the store (wired: every adapter's migrations, the mastery
listener), printing tables, apply results and credentials, and secrets read from the
environment. Adapters build their commands with this module, never with ``gateway.cli``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .config import Settings, get_settings
from .errors import ConfigError, Deviations, TesseraError

if TYPE_CHECKING:
    from .store import ApplyResult, Store

#: messages and progress (standard error)
console = Console(stderr=True)
#: results a user may pipe on (standard output)
out = Console()

#: ``tessera``: the core adds its commands in ``gateway.cli``; adapters add top-level groups
#: (``Adapter.cli_groups``) and ``import``/``export`` sub-commands (``Adapter.register_cli``)
app = typer.Typer(
    name="tessera",
    help="Tessera: the interoperability gateway for competency-based education.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
#: ``tessera validate <name>``: check a file or package without writing anything; adapters add
#: their sub-commands through ``Adapter.register_cli(import_app, export_app, validate_app=...)``
validate_app = typer.Typer(help="Check a file in a standard's format without writing anything (one sub-command per adapter).",
                           no_args_is_help=True)
app.add_typer(validate_app, name="validate")


def settings() -> Settings:
    return get_settings()


def open_store(*, migrate: bool = False) -> Store:
    """The store of ``TESSERA_DATABASE_URL``, wired (``gateway.wiring.open_store``);
    migrated first with ``migrate``, else refused when its schema is not current."""
    from .wiring import open_store as open_wired

    store = open_wired(settings().database_url)
    if migrate:
        store.migrate()
    elif not store.ping():
        raise TesseraError("the database schema is not current: run `tessera migrate` first")
    return store


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """A plain table on standard output; every cell shown in full (folded, never elided)."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    out.print(table)


def print_apply_result(result: ApplyResult, *, title: str) -> None:
    table = Table(title=title)
    for col in ("kind", "created", "updated", "unchanged"):
        table.add_column(col, justify="right" if col != "kind" else "left")
    for kind, c in sorted(result.counts.items()):
        table.add_row(kind, str(c.created), str(c.updated), str(c.unchanged))
    table.add_row("[bold]total", str(result.created), str(result.updated), str(result.unchanged))
    out.print(table)
    if result.outbox:
        out.print(f"{result.outbox} deliveries queued for routes")


def print_deviations(devs: Deviations, *, shown: int = 20) -> None:
    """What a tolerant import or ``tessera validate`` normalised: a count per kind, then
    the first ``shown`` places. User data is printed as text, never as console markup."""
    if not devs:
        return
    table = Table(title=f"{devs.total} deviation(s) normalised (--strict refuses them)")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, n in sorted(devs.counts.items()):
        table.add_row(kind, str(n))
    console.print(table)
    for d in devs.items[:shown]:
        console.print(Text.assemble(("warning: ", "yellow"), (f"[{d.kind}] {d}", "")))
    if devs.total > shown:
        console.print(Text(f"... and {devs.total - shown} more (--json lists the first {devs.limit})", style="yellow"))


def print_credentials(key_title: str, rows: list[tuple[str, Any]]) -> None:
    """A table of credentials (OAuth clients, LRS keys, OneRoster consumer keys): the key a
    user must copy never elided or broken, then tenant, name, scopes, created, revoked
    (each item has those attributes). Never a secret."""
    table = Table()
    table.add_column(key_title, no_wrap=True, min_width=max((len(k) for k, _ in rows), default=len(key_title)))
    for col in ("tenant", "name", "scopes", "created", "revoked"):
        table.add_column(col, overflow="fold")
    for key, c in rows:
        table.add_row(key, c.tenant, c.name, " ".join(c.scopes), c.created_at.isoformat(timespec="seconds"),
                      c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else "")
    out.print(table)


def client_secret_from_env(client_id: str | None, client_secret_env: str | None) -> str | None:
    """The secret of ``--client-id`` from the environment variable ``--client-secret-env``
    names: secrets never come on the command line. None when neither option is given."""
    if client_secret_env:
        secret = os.environ.get(client_secret_env)
        if not secret:
            raise ConfigError(f"the environment variable {client_secret_env} (--client-secret-env) is not set")
        return secret
    if client_id:
        raise typer.BadParameter("--client-id needs --client-secret-env VAR (secrets come from the environment only)")
    return None
