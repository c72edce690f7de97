"""The LRS's document tables: State, Activity Profile and Agent Profile documents."""

from __future__ import annotations

from .tables import metadata  # noqa: F401
