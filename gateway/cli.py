"""``tessera``: everything an integrator needs without writing code (typer + rich).

The core's own commands. What they share with the adapters' commands (the root app, the
consoles, opening the store, printing) is ``gateway.cli_kit``; the adapters' commands are
added through the composition root (``gateway.wiring``)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from . import PROJECT_ROOT, __version__
from .cli_kit import (
    app,
    console,
    describe_database,
    open_store,
    out,
    print_apply_result,
    print_credentials,
    print_new_credentials,
    print_table,
    settings,
    sqlite_path,
    validate_app,
)
from .config import get_settings
from .errors import TesseraError
from .routing.cli import apply_at_start
from .routing.cli import register as register_routing
from .store.db import WRITE

if TYPE_CHECKING:
    from .store import Store

clients_app = typer.Typer(help="OAuth 2.0 clients: one tenant each, with scopes.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
import_app = typer.Typer(help="Import data in a standard's format (one sub-command per adapter).", no_args_is_help=True)
export_app = typer.Typer(help="Export data in a standard's format (one sub-command per adapter).", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schemas of the canonical model.", no_args_is_help=True)
mastery_app = typer.Typer(help="The mastery engine: rules, and recomputing states from evidence.", no_args_is_help=True)
rules_app = typer.Typer(help="The tenant's mastery rules: list, set (create or replace), delete; a change recomputes its states.",
                        no_args_is_help=True)
mastery_app.add_typer(rules_app, name="rules")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(schemas_app, name="schemas")
app.add_typer(mastery_app, name="mastery")
register_routing(app)  # config, connections, routes, deadletters, sync, worker


def _print_version(value: bool) -> None:
    """``tessera --version``: eager, so it answers alone, before any command is looked for."""
    if value:
        out.print(__version__, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="TESSERA_DATABASE_URL",
                                 help="default sqlite:///./tessera.db (relative to the working directory)")
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    if database_url:
        os.environ["TESSERA_DATABASE_URL"] = database_url
        get_settings.cache_clear()


# --- database -------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the current version."""
    from .store.migrate import current_revisions
    from .wiring import open_store as open_wired

    url = settings().database_url
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise TesseraError(f"cannot create the database {path}: the folder {path.parent} does not exist")
    store = open_wired(url)
    before = current_revisions(store.engine)
    store.migrate()
    console.print(f"database {describe_database(url)} at revision {', '.join(sorted(store.migrations.head_revisions()))} "
                  f"(was {', '.join(sorted(before)) or 'empty'})")
    _ensure_partitions(store)
    store.dispose()


partitions_app = typer.Typer(help="PostgreSQL: the monthly partitions of evidence, the change log and raw xAPI statements.", no_args_is_help=True)
app.add_typer(partitions_app, name="partitions")


def _ensure_partitions(store: Store, ahead: int = 3) -> None:
    from .store import partitions

    with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
        created = partitions.ensure(conn, ahead=ahead)
    if created:
        console.print(f"created partitions: {', '.join(created)}")


@partitions_app.command("ensure")
def partitions_ensure(ahead: Annotated[int, typer.Option(min=0, max=36, help="months ahead of this one")] = 3) -> None:
    """Create the coming months' partitions, and those of months waiting in the default partition (run it daily)."""
    store = open_store()
    _ensure_partitions(store, ahead)
    store.dispose()


@partitions_app.command("list")
def partitions_list() -> None:
    """Each partitioned table's partitions with their months and (estimated) rows."""
    from .store import partitions

    store = open_store()
    with store.engine.connect() as conn:
        # a partition is named after its table (TABLE_yYYYYmMM, TABLE_default): no column of its own,
        # so that the table fits 80 columns with the xAPI tables' long names
        rows = [(p.name, str(p.start or "default"), str(p.end or ""), str(p.rows))
                for t in partitions.PARTITIONED for p in partitions.partitions(conn, t)]
    if not rows:
        console.print("no partitioned tables (partitions are made on PostgreSQL only)")
    print_table(["partition", "from", "to", "rows (est.)"], rows, title="partitions")


@partitions_app.command("retain")
def partitions_retain(
    months: Annotated[int, typer.Option(min=1, help="keep this many whole months before the current one")],
    table: Annotated[str, typer.Option(help="the table whose old partitions are dropped: changes or xapi_statements")] = "changes",
) -> None:
    """Retention: drop the partitions of the change log or of raw xAPI statements older than MONTHS
    (evidence is never dropped). A change feed reader asking for a dropped version gets 410 with
    the oldest kept; a dropped statement's GET answers 404 (with its index rows and id gone)."""
    from .store import partitions

    store = open_store()
    try:
        with store.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            dropped = partitions.drop_before(conn, table, months)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--table/--months") from None
    console.print(f"dropped: {', '.join(dropped) or 'nothing'}")


@app.command()
def status() -> None:
    """Which database the commands use (a SQLite file by its absolute path) and whether its
    schema is current. Never creates a database."""
    from .store.migrate import current_revisions
    from .wiring import open_store as open_wired

    url = settings().database_url
    out.print(f"tessera {__version__}", highlight=False)
    out.print(f"database: {describe_database(url)}", soft_wrap=True, highlight=False)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        out.print("schema:   none (the file does not exist: `tessera migrate` creates it)", highlight=False)
        raise typer.Exit(1)
    store = open_wired(url)
    try:
        current, heads = current_revisions(store.engine), store.migrations.head_revisions()
    finally:
        store.dispose()
    state = "current" if current == heads else "NOT current: run `tessera migrate`"
    out.print(f"schema:   {', '.join(sorted(current)) or 'empty'} ({state})", soft_wrap=True, highlight=False)
    if current != heads:
        raise typer.Exit(1)


# --- server ---------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="interface to bind (TESSERA_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (TESSERA_PORT); 0 picks a free one")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (TESSERA_WORKERS)")] = None,
) -> None:
    """Run the HTTP API."""
    s = settings()
    store = open_store()  # fail fast, with a clear message, on an unmigrated database
    try:
        apply_at_start(store)  # gateway.yaml's connections and routes
    finally:
        store.dispose()
    _run_server(host or s.host, s.port if port is None else port, workers or s.workers)


def _run_server(host: str, port: int, workers: int) -> None:
    import uvicorn

    from .logs import configure

    s = settings()
    configure(s.log_level, s.log_format)
    os.environ["TESSERA_WORKERS"] = str(workers)  # what each worker process's settings say (serve_app)
    console.print(f"Tessera {__version__} on http://{host}:{port} (database {describe_database(s.database_url)})")
    uvicorn.run(
        "gateway.api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )


# --- clients and keys -----------------------------------------------------------------------


@clients_app.command("create")
def clients_create(
    tenant: Annotated[str, typer.Option(help="the tenant this client belongs to (created if new)")],
    scopes: Annotated[list[str], typer.Option("--scopes", "--scope", help="scopes, repeatable or space-separated")],
    name: Annotated[str | None, typer.Option(help="a name for humans")] = None,
    person: Annotated[str | None, typer.Option(help="a person id: the client acts for this learner, guardian or teacher only")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the new client as one JSON object (for scripts)")] = False,
) -> None:
    """Create a client. Its secret is printed ONCE; only a hash is stored."""
    from .auth import ClientStore

    flat = [s for item in scopes for s in item.replace(",", " ").split()]
    try:
        person_id = uuid.UUID(person) if person else None
    except ValueError:
        raise typer.BadParameter("must be a UUID (a person id)", param_hint="--person") from None
    store = open_store()
    client, secret = ClientStore(store.engine).create(tenant, flat, name, person_id=person_id)
    store.dispose()
    fields: dict[str, str | list[str]] = {"client_id": client.client_id, "client_secret": secret, "tenant": client.tenant,
                                          "scopes": list(client.scopes)}
    if client.person_id is not None:
        fields["person"] = str(client.person_id)
    print_new_credentials(fields, as_json=as_json)


@clients_app.command("list")
def clients_list(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None) -> None:
    """List clients (never their secrets)."""
    from .auth import ClientStore

    print_credentials("client_id", [(c.client_id, c) for c in ClientStore(open_store().engine).list(tenant)])


@clients_app.command("revoke")
def clients_revoke(client_id: str) -> None:
    """Revoke a client: it gets no new token, and the tokens it holds are refused within
    TESSERA_REVOCATION_CHECK_SECONDS (5 s by default)."""
    from .auth import ClientStore

    ClientStore(open_store().engine).revoke(client_id)
    console.print(f"revoked {client_id}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; the previous one verifies until its tokens expire."""
    from .auth import KeyStore

    kid = KeyStore(open_store().engine, token_ttl_seconds=settings().token_ttl_seconds).rotate()
    console.print(f"new signing key {kid}")


@keys_app.command("list")
def keys_list() -> None:
    """List the keys that still verify tokens."""
    from .auth import KeyStore

    table = Table()
    for col in ("kid", "created", "current", "verifies until"):
        table.add_column(col, overflow="fold")
    for k in KeyStore(open_store().engine, token_ttl_seconds=settings().token_ttl_seconds).list():
        table.add_row(k["kid"], k["created_at"].isoformat(timespec="seconds"), "yes" if k["current"] else "",
                      k["verify_until"].isoformat(timespec="seconds") if k["verify_until"] else "")
    out.print(table)


# --- schemas --------------------------------------------------------------------------------

SCHEMA_DIR = PROJECT_ROOT / "schemas" / "canonical"


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option("--dir", help="where to write")] = SCHEMA_DIR,
) -> None:
    """Write the JSON Schema of every canonical record kind."""
    from .model import export_schemas

    for path in export_schemas(directory):
        console.print(f"wrote {path}")


# --- demo -----------------------------------------------------------------------------------

DEMO_TENANT = "demo"


def default_recompute_workers() -> int:
    """Two recompute processes per core (at most 8): each spends about a quarter of its time
    waiting for the database, whose own work also needs the cores. Measured on 2 cores,
    PostgreSQL, 5M evidence: 2 workers 140 s, 3 126 s, 4 118 s."""
    return min(8, 2 * (os.cpu_count() or 1))


@mastery_app.command("recompute")
def mastery_recompute(
    tenant: Annotated[str | None, typer.Option(help="only this tenant (default: every tenant)")] = None,
    framework: Annotated[str | None, typer.Option(help="only this framework's competencies (a framework id)")] = None,
    workers: Annotated[int, typer.Option(help="processes deriving states in parallel (default: two per core, at most 8)")] = 0,
) -> None:
    """Derive every mastery state from the evidence again (after a rule, scale or structure change)."""
    from sqlalchemy import select

    from .store import tables as t

    store = open_store()
    with store.engine.connect() as conn:
        tenants = [tenant] if tenant else [r[0] for r in conn.execute(select(t.tenants.c.id).order_by(t.tenants.c.id))]
    fw = uuid.UUID(framework) if framework else None
    for name in tenants:
        _recompute_with_progress(store, name, fw, workers)
    store.dispose()


def _recompute_with_progress(store: Store, tenant: str, framework_id: uuid.UUID | None, workers: int) -> None:
    """One tenant's (or framework's) recompute in the foreground, with a progress bar of its learners."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from sqlalchemy import func, select

    from .mastery.attach import engine_of
    from .store import tables as t

    with store.engine.connect() as conn:
        learners = conn.execute(select(func.count(func.distinct(t.evidence.c.learner_id))).where(t.evidence.c.tenant == tenant)).scalar_one()
    with Progress(TextColumn(tenant, style="cyan", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("learners"), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("recompute", total=learners)

        def advance(n: int, task: TaskID = task) -> None:
            bar.advance(task, n)

        report = engine_of(store).recompute(tenant, framework_id=framework_id, workers=workers or default_recompute_workers(),
                                            progress=advance)
    rate = report.evidence / report.seconds if report.seconds else 0.0
    out.print(f"{tenant}: {report.learners} learners, {report.evidence} evidence items -> {report.states} states "
              f"({report.written} written, {report.retired} retired) in {report.seconds:.1f} s ({rate:,.0f} evidence/s)")


def _cli_author() -> str:
    """Who a command-line rule change is recorded as: ``cli:<OS user>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in this environment (a bare container)
        return "cli:unknown"


@rules_app.command("list")
def rules_list(tenant: Annotated[str, typer.Option(help="the tenant")]) -> None:
    """The tenant's rules (where none applies, mappings/mastery.yaml's default does)."""
    from .mastery.attach import engine_of
    from .mastery.rules import RuleBook, scope_key

    store = open_store()
    params = ("decay_weight", "n", "m", "at_level", "scale_id")
    rows = []
    for r in sorted(RuleBook(engine_of(store)).active(tenant), key=lambda r: (r.competency_id is not None, r.framework_id is not None, scope_key(r))):
        scope = f"competency {r.competency_id}" if r.competency_id else f"framework {r.framework_id}" if r.framework_id else "tenant"
        shown = " ".join(f"{k}={getattr(r, k)}" for k in params if getattr(r, k) is not None)
        rows.append((r.id, scope, r.name, r.method.value, shown, r.updated_by, r.updated_at.isoformat(timespec="seconds") if r.updated_at else None))
    store.dispose()
    print_table(["id", "scope", "name", "method", "parameters", "changed by", "changed at"], rows)


@rules_app.command("set")
def rules_set(
    tenant: Annotated[str, typer.Option(help="the tenant")],
    name: Annotated[str, typer.Option(help="a name for humans")],
    method: Annotated[str, typer.Option(help="the calculation method, e.g. latest, highest, n_of_m (docs/mastery.md lists them all)")],
    framework: Annotated[str | None, typer.Option(help="the rule of this framework (a framework id)")] = None,
    competency: Annotated[str | None, typer.Option(help="the rule of this competency (a competency id)")] = None,
    scale: Annotated[str | None, typer.Option(help="a proficiency scale id (default: the competency's or framework's)")] = None,
    decay_weight: Annotated[float | None, typer.Option(help="the weight of the newest score (0..1)")] = None,
    n: Annotated[int | None, typer.Option("--n", help="n_of_m: how many at or above the level")] = None,
    m: Annotated[int | None, typer.Option("--m", help="n_of_m: out of the last m")] = None,
    at_level: Annotated[str | None, typer.Option(help="n_of_m: the level to reach")] = None,
    min_evidence: Annotated[int | None, typer.Option(help="evidence items needed before a level is given")] = None,
    rollup_share: Annotated[float | None, typer.Option(help="share of a parent's children to master (0..1]")] = None,
    kind_weight: Annotated[list[str] | None, typer.Option("--kind-weight", help="KIND=WEIGHT, repeatable (e.g. assessment=2)")] = None,
    workers: Annotated[int, typer.Option(help="recompute processes (default: two per core, at most 8)")] = 0,
) -> None:
    """Create the rule of a scope (the tenant, --framework or --competency) or replace the one it
    has, then recompute the states it decides."""
    from .mastery.attach import engine_of
    from .mastery.rules import RuleBook

    doc: dict[str, object] = {"name": name, "method": method}
    for key, value in (("framework_id", framework), ("competency_id", competency), ("scale_id", scale), ("decay_weight", decay_weight),
                       ("n", n), ("m", m), ("at_level", at_level), ("min_evidence", min_evidence), ("rollup_share", rollup_share)):
        if value is not None:
            doc[key] = value
    if kind_weight:
        weights: dict[str, float] = {}
        for item in kind_weight:
            kind, sep, w = item.partition("=")
            try:
                weights[kind.strip()] = float(w)
            except ValueError:
                raise typer.BadParameter(f"{item!r}: expected KIND=WEIGHT", param_hint="--kind-weight") from None
            if not sep:
                raise typer.BadParameter(f"{item!r}: expected KIND=WEIGHT", param_hint="--kind-weight")
        doc["kind_weights"] = weights
    store = open_store()
    book = RuleBook(engine_of(store))
    rule, created = book.set(tenant, doc, by=_cli_author())
    console.print(f"{'created' if created else 'replaced'} rule {rule.id} ({rule.name}, {rule.method.value})")
    _recompute_with_progress(store, tenant, book.recompute_scope(tenant, rule), workers)
    store.dispose()


@rules_app.command("delete")
def rules_delete(
    rule_id: Annotated[str, typer.Argument(help="the rule's id (tessera mastery rules list)")],
    tenant: Annotated[str, typer.Option(help="the tenant")],
    workers: Annotated[int, typer.Option(help="recompute processes (default: two per core, at most 8)")] = 0,
) -> None:
    """Delete a rule (the next one up applies: framework, tenant, default), then recompute the
    states it decided."""
    from .mastery.attach import engine_of
    from .mastery.rules import RuleBook

    try:
        rid = uuid.UUID(rule_id)
    except ValueError:
        raise typer.BadParameter("must be a UUID", param_hint="RULE_ID") from None
    store = open_store()
    book = RuleBook(engine_of(store))
    rule = book.delete(tenant, rid, by=_cli_author())
    console.print(f"deleted rule {rule.id} ({rule.name})")
    _recompute_with_progress(store, tenant, book.recompute_scope(tenant, rule), workers)
    store.dispose()


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="interface to bind (default: TESSERA_HOST, else 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: TESSERA_PORT, else 8000)")] = None,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="start the API after loading")] = True,
) -> None:
    """Create a demo tenant and client, load the bundled sample data, print how to call it, serve."""
    from . import wiring
    from .auth import ClientStore
    from .auth.scopes import SCOPES

    s = settings()
    host = host or s.host
    port = s.port if port is None else port
    store = open_store(migrate=True)
    loaded = 0
    for adapter in wiring.default():
        load = getattr(adapter, "load_demo", None)
        if load is None:
            continue
        result = load(store, DEMO_TENANT, console)
        print_apply_result(result, title=f"sample data: {adapter.title}")
        loaded += result.created + result.updated + result.unchanged
    client, secret = ClientStore(store.engine).create(DEMO_TENANT, sorted(SCOPES), name="demo")
    from .console.cli import sign_in_link

    link = sign_in_link(store, base=f"http://{host}:{port}", tenant=DEMO_TENANT, role="admin", person=None,
                        name="Demo administrator", minutes=24 * 60)
    store.dispose()
    base = f"http://{host}:{port}"
    out.print(Text.assemble("\n", ("Tessera demo", "bold"), " - tenant ", (DEMO_TENANT, "cyan"),
                            f", {loaded} sample records, database {describe_database(s.database_url)}"))
    out.print(f"  API:           {base}  (OpenAPI: {base}/docs)")
    out.print(f"  client_id:     {client.client_id}")
    out.print(f"  client_secret: {secret}")
    out.print("  get a token:")
    out.print(f"    curl -s -u {client.client_id}:{secret} -d grant_type=client_credentials {base}/oauth/token", soft_wrap=True)
    out.print("  then, with TOKEN set to its access_token:")
    out.print(f'    curl -s -H "Authorization: Bearer $TOKEN" "{base}/v1/people?limit=5"', soft_wrap=True)
    out.print("  a learner's mastery profile (learner ids: /v1/people?role=student):")
    out.print(f'    curl -s -H "Authorization: Bearer $TOKEN" "{base}/v1/learners/LEARNER_ID/profile"', soft_wrap=True)
    out.print("  the web console, signed in as the demo's administrator (the link works for a day):")
    out.print(f"    {link}", soft_wrap=True)
    if serve_api:
        _run_server(host, port, 1)


_registered = False


def register_adapters() -> None:
    """Let every installed adapter add its command groups and ``import``/``export``
    sub-commands (once)."""
    global _registered
    if _registered:
        return
    from . import wiring
    from .reports.cli import register as register_reports
    from .sharing.cli import grants_app
    from .sharing.cli import register as register_bulk

    # `tessera export report ...` and `export bulk`: the gateway's own, beside the adapters'
    register_reports(export_app)
    register_bulk(export_app)
    app.add_typer(grants_app, name="grants")
    from .console.cli import console_app

    app.add_typer(console_app, name="console")
    # `tessera conformance list|run`: the kits speak HTTP only (no store, no adapter)
    from conformance.cli import conformance_app

    app.add_typer(conformance_app, name="conformance")
    wiring.default().register_cli(app, import_app, export_app, validate_app=validate_app)
    _registered = True


def main() -> None:
    try:
        register_adapters()
        app()
    except TesseraError as exc:
        # plain text: messages quote user data and patterns ("^[a-z0-9-]{0,62}$"), never markup
        console.print(Text.assemble(("error: ", "red"), exc.detail))
        for e in exc.errors[:50]:
            console.print(Text(f"  - {e}"))
        if len(exc.errors) > 50:
            console.print(Text(f"  ... and {len(exc.errors) - 50} more"))
        sys.exit(1)


if __name__ == "__main__":
    main()
