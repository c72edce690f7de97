"""LTI tool side (platforms, nonces, login state)

Revision ID: lti_0002
Revises: lti_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

revision = "lti_0002"
down_revision = "lti_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
