"""``tessera console link``: a sign-in link for the console (``gateway.console.links``)."""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import quote

import typer

from ..cli_kit import open_store, out, settings
from ..errors import ValidationError

console_app = typer.Typer(help="The web console: sign-in links.", no_args_is_help=True)


def sign_in_link(store: object, *, base: str, tenant: str, role: str, person: uuid.UUID | None, name: str, minutes: int,
                 next_url: str | None = None) -> str:
    """The URL that signs its holder in (``links.make_token`` with the console's session secret)."""
    from ..auth.keys import KeyStore
    from .links import PATH, make_token
    from .settings import ConsoleSettings
    from .web import session_secret

    s = settings()
    keys = KeyStore(store.engine, token_ttl_seconds=s.token_ttl_seconds)  # type: ignore[attr-defined]
    token = make_token(session_secret(lambda: keys, ConsoleSettings()), tenant=tenant, role=role,  # type: ignore[arg-type]
                       person_id=person, name=name, minutes=minutes, next_url=next_url)
    return f"{base.rstrip('/')}{PATH}?token={quote(token, safe='')}"


@console_app.command("link")
def link(
    tenant: Annotated[str, typer.Option(help="the tenant to sign in to")],
    role: Annotated[str, typer.Option(help="admin, teacher, guardian or learner")] = "admin",
    person: Annotated[str | None, typer.Option(help="the roster person's id (required for every role but admin)")] = None,
    name: Annotated[str, typer.Option(help="the name shown on the pages")] = "Administrator",
    minutes: Annotated[int, typer.Option(help="how long the link works (1 to 1440)")] = 15,
    next_url: Annotated[str | None, typer.Option("--next", help="a console page to land on")] = None,
) -> None:
    """Print a link that signs its holder in to the console (hand it over like a password)."""
    s = settings()
    try:
        pid = uuid.UUID(person) if person else None
    except ValueError:
        raise ValidationError(f"--person must be a UUID, not {person!r}") from None
    base = s.public_url or f"http://{s.host}:{s.port}"
    store = open_store()
    try:
        url = sign_in_link(store, base=base, tenant=tenant, role=role, person=pid, name=name, minutes=minutes, next_url=next_url)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    finally:
        store.dispose()
    out.print(url, soft_wrap=True)


__all__ = ["console_app", "sign_in_link"]
