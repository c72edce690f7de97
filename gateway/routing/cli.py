"""The routing layer's commands (docs/routing.md):

* ``tessera config check [FILE]`` (validate gateway.yaml without running: every problem
  with its line:column, exit 1) and ``tessera config apply [FILE]``;
* ``tessera connections list``, ``tessera routes list|status``;
* ``tessera deadletters list|show|replay|discard``;
* ``tessera sync ROUTE --once``: one pull now, with a progress bar;
* ``tessera worker [--engine embedded|temporal] [--temporal-address HOST:PORT]``: deliver
  and schedule until SIGTERM or Ctrl-C, then stop cleanly.

``register(app)`` adds them to ``tessera`` (``gateway.cli``). ``apply_at_start`` is what
``tessera serve`` and ``tessera worker`` run first: gateway.yaml's connections and routes
written to the store (a file with problems stops the start, naming each).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from ..cli_kit import console, note, open_store, out
from ..errors import ConfigError
from ..model import utcnow

if TYPE_CHECKING:
    from ..store import Store
    from .manage import ApplyReport

config_app = typer.Typer(help="gateway.yaml: check it, or write its connections and routes to the store.", no_args_is_help=True)
connections_app = typer.Typer(help="Connections to external systems (routing).", no_args_is_help=True)
routes_app = typer.Typer(help="Routes: what flows from which system to which (routing).", no_args_is_help=True)
deadletters_app = typer.Typer(help="Deliveries a destination refused: list, show, replay, discard.", no_args_is_help=True)

Tenant = Annotated[str | None, typer.Option("--tenant", help="only this tenant (default: every tenant)")]
AsJson = Annotated[bool, typer.Option("--json", help="one JSON document on standard output (for scripts)")]
ConfigFile = Annotated[str | None, typer.Argument(help="the file (default: TESSERA_CONFIG, else ./gateway.yaml)", show_default=False)]


def _json_out(doc: Any) -> None:
    import sys

    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``; empty for None."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


# --- config ---------------------------------------------------------------------------------------


@config_app.command("check")
def config_check(path: ConfigFile = None) -> None:
    """Validate gateway.yaml without running anything: the schema, roles, kinds, connections,
    and that every env: secret is set. Each problem with its line:column; exit 1 if any."""
    from .config import config_path, read

    found = config_path(path)
    if found is None:
        raise ConfigError("no gateway.yaml here and TESSERA_CONFIG is not set: give the file")
    config, problems = read(found)
    for p in problems:
        out.print(Text(f"{found}:{p.line}:{p.column}: {p.message}" if p.line else f"{found}: {p.message}"), soft_wrap=True)
    if problems:
        console.print(Text(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {found}", style="red"))
        raise typer.Exit(1)
    assert config is not None
    out.print(f"{found}: ok ({len(config.connections)} connections, {len(config.routes)} routes)", highlight=False)


@config_app.command("apply")
def config_apply(path: ConfigFile = None) -> None:
    """Check gateway.yaml, then write its connections and routes to the store (by name;
    routes it no longer declares are disabled, never deleted)."""
    from .config import load

    config = load(path)
    if config is None:
        raise ConfigError("no gateway.yaml here and TESSERA_CONFIG is not set: give the file")
    store = open_store()
    try:
        from .manage import apply_config

        print_report(apply_config(store, config), always=True)
    finally:
        store.dispose()


def print_report(report: ApplyReport, *, always: bool = False) -> None:
    if not report.changed and not always:
        return
    for label, items in (("created", report.created), ("updated", report.updated), ("adopted from the API", report.adopted),
                         ("disabled (no longer in the file)", report.disabled),
                         ("connections no longer in the file (kept)", report.retired_connections)):
        for item in items:
            out.print(Text(f"{label}: {item}"), soft_wrap=True)
    out.print(f"gateway.yaml applied: {len(report.created)} created, {len(report.updated)} updated, "
              f"{len(report.unchanged)} unchanged, {len(report.disabled)} disabled", highlight=False)


def apply_at_start(store: Store) -> None:
    """gateway.yaml's connections and routes, written before ``serve``/``worker`` start (no file: nothing)."""
    from .config import load
    from .manage import apply_config

    config = load()
    if config is not None:
        report = apply_config(store, config)
        if report.changed:
            note(f"gateway.yaml ({config.path}): {len(report.created)} created, {len(report.updated)} updated, "
                 f"{len(report.adopted)} adopted, {len(report.disabled)} routes disabled", style="cyan")


# --- connections and routes ----------------------------------------------------------------------


@connections_app.command("list")
def connections_list(tenant: Tenant = None, as_json: AsJson = False) -> None:
    """Connections (auth as env: references: never a secret)."""
    from .manage import list_connections

    store = open_store()
    try:
        items, _ = list_connections(store, tenant, limit=100_000)
    finally:
        store.dispose()
    if tenant is not None:
        for item in items:
            item["tenant"] = tenant
    if as_json:
        _json_out(items)
        return
    table = Table()
    for col in ("tenant", "name", "role", "base_url", "auth", "origin"):
        table.add_column(col, overflow="fold")
    for c in items:
        table.add_row(c["tenant"], c["name"], c["role"], c["base_url"] or "", " ".join(f"{k}={v}" for k, v in c["auth"].items()), c["origin"])
    out.print(table)


@routes_app.command("list")
def routes_list(tenant: Tenant = None, as_json: AsJson = False) -> None:
    """Routes: mode, source or destination, kinds, schedule, enabled."""
    from .manage import list_route_views

    store = open_store()
    try:
        items, _ = list_route_views(store, tenant, limit=100_000)
    finally:
        store.dispose()
    if as_json:
        _json_out(items)
        return
    table = Table()
    for col in ("tenant", "name", "mode", "connection", "kinds", "schedule", "enabled", "origin"):
        table.add_column(col, overflow="fold")
    for r in items:
        table.add_row(r.get("tenant", tenant or ""), r["name"], r["mode"], r["source"] or r["destination"] or "", " ".join(r["kinds"]),
                      age(r["schedule_seconds"]) if r["schedule_seconds"] else "", "yes" if r["enabled"] else "no", r["origin"])
    out.print(table)


_STATUS_STYLE = {"ok": "green", "disabled": "dim", "breaker-open": "red", "dead-letters": "red", "failing": "yellow"}


@routes_app.command("status")
def routes_status(tenant: Tenant = None, as_json: AsJson = False) -> None:
    """Each route's health: pending and dead deliveries, last run, cursor age, breaker.
    Exit 1 when a route needs a look (dead letters, an open breaker, a failed last run)."""
    from .repository import route_health

    store = open_store()
    try:
        health = route_health(store, tenant=tenant)
    finally:
        store.dispose()
    if as_json:
        _json_out([{**h.as_dict(), "tenant": h.tenant} for h in health])
    else:
        tenants = {h.tenant for h in health}
        table = Table(title=f"tenant {next(iter(tenants))}" if len(tenants) == 1 else None)
        for col in ("route", "mode", "status", "pending", "dead", "oldest", "last run", "cursor", "breaker"):
            # the short columns never fold: on a narrow terminal the route and the last run do
            table.add_column(col, overflow="fold", justify="right" if col in ("pending", "dead") else "left",
                             no_wrap=col not in ("route", "last run"))
        for h in health:
            run = h.last_run
            last = ""
            if run:
                when = (utcnow() - datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))).total_seconds()
                last = f"{run['status']} {age(when)} ago ({run['read']} read, {run['failed']} failed)"
            breaker = ""
            if h.breaker:
                breaker = h.breaker["state"] + (f" ({h.breaker['consecutive_failures']} failures)" if h.breaker["consecutive_failures"] else "")
            table.add_row(h.name if len(tenants) == 1 else f"{h.tenant}/{h.name}", h.mode, Text(h.status, style=_STATUS_STYLE.get(h.status, "")), str(h.pending), str(h.dead),
                          age(h.oldest_pending_seconds), last, age(h.cursor_age_seconds), breaker)
        out.print(table)
    if any(h.status not in ("ok", "disabled") for h in health):
        raise typer.Exit(1)


# --- dead letters --------------------------------------------------------------------------------


def _route_id(store: Store, route: str | None, tenant: str | None) -> uuid.UUID | None:
    if route is None:
        return None
    from .repository import find_route

    return find_route(store, route, tenant=tenant).id


@deadletters_app.command("list")
def deadletters_list(
    tenant: Tenant = None,
    route: Annotated[str | None, typer.Option(help="only this route (name or id)")] = None,
    discarded: Annotated[bool, typer.Option("--discarded", help="those given up on instead")] = False,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 100,
    as_json: AsJson = False,
) -> None:
    """Dead letters, oldest first."""
    from .repository import list_dead_letters, list_routes

    store = open_store()
    try:
        items, more = list_dead_letters(store, tenant, route_id=_route_id(store, route, tenant),
                                        state="discarded" if discarded else "dead", limit=limit)
        names = {str(r.id): r.name for r in list_routes(store, tenant=tenant)}
    finally:
        store.dispose()
    if as_json:
        _json_out(items)
        return
    table = Table()
    for col in ("id", "tenant", "route", "kind", "record", "attempts", "status", "error", "dead at"):
        table.add_column(col, overflow="fold")
    for d in items:
        table.add_row(str(d["id"]), d["tenant"], names.get(d["route_id"], d["route_id"]), d["record_kind"], d["record_id"], str(d["attempts"]),
                      str(d["last_status"] or ""), d["last_error"] or "", (d["dead_at"] or "")[:19].replace("T", " "))
    out.print(table)
    if more:
        note(f"more than {limit}: use --limit or --route")


@deadletters_app.command("show")
def deadletters_show(outbox_id: Annotated[int, typer.Argument(help="the dead letter's id")], tenant: Tenant = None,
                     as_json: AsJson = False) -> None:
    """One dead letter: the request sent (redacted), the response excerpt, the attempts."""
    from .repository import get_dead_letter

    store = open_store()
    try:
        d = get_dead_letter(store, tenant, outbox_id)
    finally:
        store.dispose()
    if as_json:
        _json_out(d)
        return
    for key in ("id", "tenant", "state", "route_id", "record_kind", "record_id", "idempotency_key", "attempts", "last_status",
                "last_error", "waiting_on", "created_at", "dead_at"):
        out.print(Text(f"{key + ':':<17}{'' if d.get(key) is None else d[key]}"), soft_wrap=True)
    for key in ("request", "response"):
        out.print(Text(f"\n{key}:", style="bold"))
        out.print(Text(d[key] or "(none recorded)"), soft_wrap=True)


def _select(ids: list[int], route: str | None, all_: bool) -> None:
    if not ids and route is None and not all_:
        raise typer.BadParameter("give dead-letter ids, --route ROUTE, or --all")
    if ids and (route is not None or all_):
        raise typer.BadParameter("give ids, or --route/--all, not both")


@deadletters_app.command("replay")
def deadletters_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="dead-letter ids", show_default=False)] = None,
    route: Annotated[str | None, typer.Option(help="every dead letter of this route (name or id)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter (of --tenant, else of every tenant)")] = False,
    tenant: Tenant = None,
) -> None:
    """Queue dead letters again: due now, with fresh attempts."""
    from .repository import replay_dead_letters

    _select(ids or [], route, all_)
    store = open_store()
    try:
        n = replay_dead_letters(store, tenant, ids=ids or None, route_id=_route_id(store, route, tenant))
    finally:
        store.dispose()
    out.print(f"{n} dead letter{'s' if n != 1 else ''} queued again", highlight=False)
    if ids and n < len(ids):
        raise typer.Exit(1)


@deadletters_app.command("discard")
def deadletters_discard(
    ids: Annotated[list[int] | None, typer.Argument(help="dead-letter ids", show_default=False)] = None,
    route: Annotated[str | None, typer.Option(help="every dead letter of this route (name or id)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every dead letter (of --tenant, else of every tenant)")] = False,
    tenant: Tenant = None,
) -> None:
    """Give up on dead letters: kept as discarded (deadletters list --discarded), never retried."""
    from .repository import discard_dead_letters

    _select(ids or [], route, all_)
    store = open_store()
    try:
        n = discard_dead_letters(store, tenant, ids=ids or None, route_id=_route_id(store, route, tenant))
    finally:
        store.dispose()
    out.print(f"{n} dead letter{'s' if n != 1 else ''} discarded", highlight=False)
    if ids and n < len(ids):
        raise typer.Exit(1)


# --- running -------------------------------------------------------------------------------------

EngineName = Annotated[str, typer.Option("--engine", help="embedded (default) or temporal")]
TemporalAddress = Annotated[str | None, typer.Option("--temporal-address", envvar="TESSERA_TEMPORAL_ADDRESS",
                                                     help="HOST:PORT of the Temporal frontend (--engine temporal; default 127.0.0.1:7233)")]


def _engine(name: str, store: Store, temporal_address: str | None, **options: Any) -> Any:
    from .. import wiring
    from . import engine as engines

    if name not in ("embedded", "temporal"):
        raise typer.BadParameter("embedded or temporal", param_hint="--engine")
    if name == "temporal" and temporal_address:
        options["address"] = temporal_address  # else the engine's default (docs/routing-temporal.md)
    return engines.engine_for(name, store, wiring.default(), **options)


def sync(
    route: Annotated[str, typer.Argument(help="the route's name or id")],
    once: Annotated[bool, typer.Option("--once", help="one pull now, then exit (the schedule runs in `tessera worker`)")] = True,
    tenant: Tenant = None,
    engine: EngineName = "embedded",
    temporal_address: TemporalAddress = None,
) -> None:
    """Run one pull of a route now, with a progress bar; exit 1 if the run failed."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .protocol import PageResult
    from .repository import find_route

    store = open_store()
    try:
        found = find_route(store, route, tenant=tenant)
        if found.mode != "pull":
            raise ConfigError(f"route {found.name!r} is a push route: it delivers on change (see `tessera routes status`)")
        runner = _engine(engine, store, temporal_address)
        with Progress(SpinnerColumn(), TextColumn(found.name, markup=False), BarColumn(), TextColumn("{task.fields[counts]}"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("pull", total=None, counts="starting")
            totals = {"read": 0, "written": 0, "unchanged": 0, "deleted": 0, "failed": 0, "pages": 0}

            def progress(page: PageResult) -> None:
                for key in ("read", "written", "unchanged", "deleted", "failed"):
                    totals[key] += getattr(page, key)
                totals["pages"] += 1
                bar.update(task, advance=page.read,
                           counts=f"{totals['pages']} pages, {totals['read']} read, {totals['written']} written, {totals['failed']} failed")

            summary = runner.sync_once(found.id, progress=progress)
            bar.update(task, total=max(summary.read, 1), completed=max(summary.read, 1))
    finally:
        store.dispose()
    out.print(f"{found.tenant}/{found.name}: {summary.status} in {summary.seconds:.1f} s: {summary.read} read, {summary.written} written, "
              f"{summary.unchanged} unchanged, {summary.deleted} deleted, {summary.failed} failed", highlight=False)
    for e in summary.errors[:20]:
        console.print(Text.assemble(("error: ", "red"), f"{e.get('location') + ': ' if e.get('location') else ''}{e.get('message')}"))
    if summary.status == "failed":
        raise typer.Exit(1)


def worker(
    engine: EngineName = "embedded",
    temporal_address: TemporalAddress = None,
    worker_id: Annotated[str | None, typer.Option(help="this worker's name in leases (default HOST:PID)")] = None,
) -> None:
    """Deliver the outbox and run scheduled pulls until SIGTERM or Ctrl-C, then stop cleanly
    (a delivery in flight finishes; a lease not released expires and another worker takes it).
    Adapters' consumers run beside them (``TESSERA_XAPI__DERIVE=async``: the xAPI evidence
    deriver, one consumer at a time among the servers and workers)."""
    from .. import wiring
    from ..cli_kit import settings
    from ..logs import configure

    s = settings()
    configure(s.log_level, s.log_format)
    store = open_store()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        apply_at_start(store)
        runner = _engine(engine, store, temporal_address, worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}")
        runner.start()
        consumers = wiring.default().consumers(store)
        try:
            for consumer in consumers:
                consumer.start()
            names = "".join(f", {type(c).__name__}" for c in consumers)
            console.print(f"tessera worker ({runner.name}{names}) started; SIGTERM or Ctrl-C stops it")
            while not stop.wait(0.5):
                pass
        finally:
            console.print("stopping...")
            for consumer in consumers:
                consumer.stop()
            runner.stop()
        console.print("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.dispose()


def register(app: typer.Typer) -> None:
    """Add the routing commands to ``tessera``."""
    app.add_typer(config_app, name="config")
    app.add_typer(connections_app, name="connections")
    app.add_typer(routes_app, name="routes")
    app.add_typer(deadletters_app, name="deadletters")
    app.command("sync")(sync)
    app.command("worker")(worker)


__all__ = ["apply_at_start", "register"]
