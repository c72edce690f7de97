"""xAPI documents (state, activity profile, agent profile)

Revision ID: xapi_0002
Revises: xapi_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "xapi_0002"
down_revision = "xapi_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
