"""LTI's own tables, tool side: registered platforms, deployments, nonces, login state."""

from __future__ import annotations

from .tables import metadata  # noqa: F401
