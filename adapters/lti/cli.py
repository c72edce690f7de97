"""``tessera lti``: the LTI adapter's one command group, and the groups each part adds to it.

``platforms`` (Tessera as a tool, ``tool/cli.py``), ``consumers`` (LTI 1.1 keys,
``lti11.register_cli``) and ``tools`` (Tessera as a platform, ``platform/cli.py``).
"""

from __future__ import annotations

import typer

_lti_app: typer.Typer | None = None


def lti_cli() -> typer.Typer:
    """The one ``tessera lti`` group every LTI module adds its commands to."""
    global _lti_app
    if _lti_app is None:
        from gateway.cli import app

        _lti_app = typer.Typer(help="LTI 1.3 and LTI 1.1 registrations.", no_args_is_help=True)
        app.add_typer(_lti_app, name="lti")
    return _lti_app


def register_cli() -> None:
    """``tessera lti platforms|consumers|tools ...``."""
    from .lti11 import register_cli as consumers_cli
    from .platform.cli import tools_cli
    from .tool.cli import register_cli as platforms_cli

    group = lti_cli()
    platforms_cli(group)
    consumers_cli(group)
    group.add_typer(tools_cli(), name="tools")


__all__ = ["lti_cli", "register_cli"]
