"""Tenants: every record, client and connection belongs to exactly one."""

from __future__ import annotations

import re

from sqlalchemy import Connection, bindparam, insert, select

from ..errors import ValidationError
from ..model import utcnow
from ..model.base import TENANT_PATTERN
from .tables import tenants

_KNOWN = select(tenants.c.id).where(tenants.c.id == bindparam("tenant"))  # built once: every write runs it


def ensure_tenant(conn: Connection, tenant: str, name: str | None = None) -> None:
    """Create the tenant row on first use (inside the caller's transaction)."""
    if not re.match(TENANT_PATTERN, tenant):
        raise ValidationError(f"invalid tenant id {tenant!r}: lowercase letters, digits, '.', '_' or '-', at most 63")
    if conn.execute(_KNOWN, {"tenant": tenant}).first() is None:
        conn.execute(insert(tenants).values(id=tenant, name=name or tenant, created_at=utcnow()))
