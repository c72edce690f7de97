"""What an adapter needs to declare tables of its own, and nothing of the core's tables.

An adapter that keeps rows of its own (an LRS's statements, LTI registrations, OneRoster
gradebook objects) builds its ``MetaData`` with ``NAMING`` and its columns with these
types, so its migrations name constraints and store ids and instants exactly as the
gateway's do. The core's tables themselves stay private to ``gateway.store``: an adapter
reads and writes them through the store's repositories.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer

from .db import UTCDateTime, UUIDType

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite stores integers of any size in INTEGER; only INTEGER PRIMARY KEY autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")

__all__ = ["NAMING", "BigId", "UTCDateTime", "UUIDType"]
