"""xAPI statements

Revision ID: xapi_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "xapi_0001"
down_revision = None
branch_labels = ("xapi",)
depends_on = "0001"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
