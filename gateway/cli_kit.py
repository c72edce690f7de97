"""What every ``tessera`` command shares, the core's and the adapters': the root typer app,
the two rich consoles, opening the store (wired: every adapter's migrations, the mastery
listener), printing tables, apply results and credentials, the ``--tenant`` option of the
imports, and secrets read from the environment. Adapters build their commands with this
module, never with ``gateway.cli``.

Messages carry user data (file names, tenant names, error messages quoting a pattern such as
``^[a-z0-9-]{0,62}$``): both consoles read NO console markup, so nothing in brackets is ever
taken as a style and eaten. A styled word is a ``rich.text.Text`` (``warn``, ``note``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.status import Status
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from .config import Settings, get_settings
from .errors import ConfigError, Deviations, TesseraError
from .model.base import TENANT_PATTERN

if TYPE_CHECKING:
    from rich.progress import ProgressColumn

    from .store import ApplyResult, Store


class _TextStatus(Status):
    """A spinner whose messages are text: rich reads a string given to a spinner as markup
    whatever the console says, and a CASE title such as "Math [/b]" made it crash."""

    def update(self, status: RenderableType | None = None, **kwargs: Any) -> None:
        super().update(Text(status) if isinstance(status, str) else status, **kwargs)


class _TextConsole(Console):
    """A console that reads no markup, its spinners (``status``) included."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)

    def status(self, status: RenderableType, *, spinner: str = "dots", spinner_style: StyleType = "status.spinner",
               speed: float = 1.0, refresh_per_second: float = 12.5) -> Status:
        return _TextStatus(Text(status) if isinstance(status, str) else status, console=self, spinner=spinner,
                           spinner_style=spinner_style, speed=speed, refresh_per_second=refresh_per_second)


#: messages and progress (standard error); no console markup: see the module docstring; a
#: message is never broken at the terminal's width either (a path or a command in it stays
#: whole for a log or a grep; a terminal wraps long lines itself)
console: Console = _TextConsole(stderr=True, soft_wrap=True)
#: results a user may pipe on (standard output); no console markup, and lines are never
#: wrapped at the terminal's (or COLUMNS') width: a script reads each line whole (tables
#: still fit the width, folding their cells)
out: Console = _TextConsole(soft_wrap=True)


def progress_description() -> ProgressColumn:
    """The description column of a progress bar, as text (a file name is not markup)."""
    from rich.progress import TextColumn

    return TextColumn("{task.description}", style="progress.description", markup=False)


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


def sqlite_path(database_url: str) -> Path | None:
    """The absolute path of the file a SQLite URL names (relative paths resolved against
    the working directory, as SQLite does); None for another database or an in-memory one."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return Path(url.database).expanduser().resolve()


def describe_database(database_url: str) -> str:
    """The database a URL names, for messages: a SQLite file by its absolute path, any
    other database by its URL without the password."""
    from sqlalchemy.engine import make_url

    path = sqlite_path(database_url)
    if path is not None:
        return f"SQLite {path}"
    return make_url(database_url).render_as_string(hide_password=True)


def open_store(*, migrate: bool = False) -> Store:
    """The store of ``TESSERA_DATABASE_URL``, wired (``gateway.wiring.open_store``);
    migrated first with ``migrate``, else refused when its schema is not current.

    Only ``migrate`` may create a database: a SQLite file that does not exist is refused
    (naming its absolute path) before anything connects, so a command run from another
    folder never leaves a stray empty ``tessera.db`` behind."""
    from .wiring import open_store as open_wired

    url = settings().database_url
    path = sqlite_path(url)
    if path is not None and not migrate and not path.exists():
        given = f"TESSERA_DATABASE_URL is {url}" if os.environ.get("TESSERA_DATABASE_URL") else f"the default {url}"
        raise ConfigError(
            f"no database at {path} ({given}; a relative path is relative to the working directory): "
            "run `tessera migrate` to create one there, or point TESSERA_DATABASE_URL (or --database-url) at the "
            "database you mean, e.g. sqlite:////absolute/path/tessera.db"
        )
    store = open_wired(url)
    if migrate:
        store.migrate()
    elif not store.ping():
        store.dispose()
        raise TesseraError(f"the database schema of {describe_database(url)} is not current: run `tessera migrate` first")
    return store


def warn(message: str) -> None:
    """``warning: message`` on standard error, the message as plain text."""
    console.print(Text.assemble(("warning: ", "yellow"), message))


def note(message: str, style: str = "yellow") -> None:
    """A styled line on standard error (plain text, never markup)."""
    console.print(Text(message, style=style))


# --- the tenant of an import ----------------------------------------------------------------

#: whether the running command's --tenant was left to its default (one command per process)
_tenant_defaulted = False


def check_tenant(value: str, *, option: str = "--tenant") -> str:
    """A tenant id as the store takes it, refused once, before any file is read."""
    if not re.match(TENANT_PATTERN, value):
        raise typer.BadParameter(
            f"{value!r} is not a tenant id: lowercase letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, at most 63", param_hint=option)
    return value


def _tenant_callback(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    global _tenant_defaulted
    if ctx.resilient_parsing:
        return value
    source = ctx.get_parameter_source(param.name or "tenant")
    _tenant_defaulted = source is None or source.name == "DEFAULT"
    return check_tenant(value)


#: ``--tenant`` of every ``tessera import ...`` command: checked before anything is read,
#: and named in the summary (``tenant_line``); without it, the records go to ``default``
ImportTenant = Annotated[str, typer.Option(
    "--tenant", callback=_tenant_callback,
    help="the tenant the records go to; without it, 'default' (the summary always names the tenant)")]


def tenant_line(tenant: str) -> str:
    """``tenant: NAME`` for an import summary, saying so when ``--tenant`` was not given."""
    return f"tenant: {tenant}" + (" (no --tenant given: the default tenant)" if _tenant_defaulted else "")


def print_tenant(tenant: str) -> None:
    """The ``tenant_line`` of an import summary, on standard output."""
    out.print(tenant_line(tenant), soft_wrap=True, highlight=False)


# --- printing ---------------------------------------------------------------------------------


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
    table.add_row(Text("total", style="bold"), str(result.created), str(result.updated), str(result.unchanged))
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


def print_new_credentials(fields: Mapping[str, str | Sequence[str]], *, as_json: bool, notes: Sequence[str] = ()) -> None:
    """A credential just created (a client id or key, its secret, tenant, scopes...):

    - ``as_json``: one JSON object on standard output (lists stay lists), for scripts;
    - else one ``name: value`` line each, never wrapped, whatever the terminal's width or
      ``COLUMNS`` (a key or secret broken over two lines cannot be copied), then ``notes``.

    The reminder that the secret is shown only once goes to standard error either way."""
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(dict(fields)).decode() + "\n")
        sys.stdout.flush()
    else:
        width = max(len(k) for k in fields) + 2
        for key, value in fields.items():
            shown = value if isinstance(value, str) else " ".join(value)
            out.print(f"{key + ':':<{width}}{shown}", soft_wrap=True, highlight=False)
        for line in notes:
            out.print(line, soft_wrap=True, highlight=False)
    note("Store the secret now: it is shown once and cannot be shown again.")


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
