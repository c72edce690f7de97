"""``tessera lti``: the LTI adapter's one command group, made of the groups each part adds.

``platforms`` (Tessera as a tool, ``tool/cli.py``), ``consumers`` (LTI 1.1 keys,
``lti11.register_cli``) and ``tools`` (Tessera as a platform, ``platform/cli.py``). The
adapter hands the group to the composition root through ``LtiAdapter.cli_groups``.
"""

from __future__ import annotations

import typer


def lti_cli() -> typer.Typer:
    """``tessera lti platforms|consumers|tools ...``."""
    from .lti11 import register_cli as consumers_cli
    from .platform.cli import tools_cli
    from .tool.cli import register_cli as platforms_cli

    group = typer.Typer(help="LTI 1.3 and LTI 1.1 registrations.", no_args_is_help=True)
    platforms_cli(group)
    consumers_cli(group)
    group.add_typer(tools_cli(), name="tools")
    return group


__all__ = ["lti_cli"]
