"""Saliency maps per AI output and finding (the top findings of a case, display-ready), so the saliency arm
can name the finding a map explains and let the reader switch among the top findings.

Revision ID: 0005_ai_overlay
Revises: 0004_sessions_keys_store
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ai_overlay"
down_revision = "0004_sessions_keys_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ai_overlay",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ai_output_id", sa.Integer(), nullable=False),
        sa.Column("finding", sa.String(length=100), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["ai_output_id"], ["ai_output.id"], name=op.f("fk_ai_overlay_ai_output_id_ai_output")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_overlay")),
        sa.UniqueConstraint("ai_output_id", "finding", name=op.f("uq_ai_overlay_ai_output_id_finding")),
    )
    with op.batch_alter_table("ai_overlay") as batch:
        batch.create_index(batch.f("ix_ai_overlay_ai_output_id"), ["ai_output_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ai_overlay") as batch:
        batch.drop_index(batch.f("ix_ai_overlay_ai_output_id"))
    op.drop_table("ai_overlay")
