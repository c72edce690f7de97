"""LTI's own tables, platform side: registered tools, deployments, platform keys' use."""

from __future__ import annotations

from sqlalchemy import MetaData

from gateway.store.tables import NAMING

metadata = MetaData(naming_convention=NAMING)
