"""Sign-in failures counted in the database (per reader-code prefix, investigator user and client), so a
lockout holds across browser sessions, reloads and server processes.

Revision ID: 0003_sign_in_counter
Revises: 0002_append_only
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sign_in_counter"
down_revision = "0002_append_only"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_counter")),
        sa.UniqueConstraint("scope", name=op.f("uq_sign_in_counter_scope")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_counter")
