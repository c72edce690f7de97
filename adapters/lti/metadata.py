"""The one ``MetaData`` every LTI table registers on, the tool side's (``tool/tables.py``) and
the platform side's (``platform/tables.py``) alike: the adapter hands it to
``gateway.store.migrate`` with its migrations folder (``migrations/``, one Alembic branch)."""

from __future__ import annotations

from sqlalchemy import MetaData

from gateway.store.types import NAMING

metadata = MetaData(naming_convention=NAMING)

__all__ = ["metadata"]
