"""``tessera sample notes add|list``: rows of the adapter's own table, through the CLI kit."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import insert, select

from gateway.cli_kit import open_store, out, print_table
from gateway.model import utcnow

from .tables import sample_notes


def sample_cli() -> typer.Typer:
    app = typer.Typer(help="The sample adapter.", no_args_is_help=True)
    notes = typer.Typer(help="Notes kept in the sample adapter's own table.", no_args_is_help=True)
    app.add_typer(notes, name="notes")

    @notes.command("add")
    def add(text: str, tenant: Annotated[str, typer.Option(help="the tenant")] = "default") -> None:
        """Keep a note."""
        store = open_store()
        with store.engine.begin() as conn:
            conn.execute(insert(sample_notes).values(tenant=tenant, text=text, created_at=utcnow()))
        out.print(f"noted for {tenant}")

    @notes.command("list")
    def list_() -> None:
        """Every note."""
        with open_store().engine.connect() as conn:
            rows = conn.execute(select(sample_notes.c.tenant, sample_notes.c.text).order_by(sample_notes.c.id)).all()
        print_table(["tenant", "text"], rows)

    return app
