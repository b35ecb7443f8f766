"""Issue 20: reader sessions that survive a reload (only token hashes stored), answer drafts, a key every server shares (the
photograph links' HMAC key), where each study keeps its photographs; sign-in counters slow tries down
instead of locking them out, so their ``locked_until`` goes.

Revision ID: 0004_sessions_keys_store
Revises: 0003_sign_in_counter
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_sessions_keys_store"
down_revision = "0003_sign_in_counter"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reader_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("ticket_hash", sa.String(length=64), nullable=True),
        sa.Column("ticket_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(["reader_id"], ["reader.id"], name=op.f("fk_reader_session_reader_id_reader")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_reader_session_token_hash")),
        sa.UniqueConstraint("ticket_hash", name=op.f("uq_reader_session_ticket_hash")),
    )
    op.create_index(op.f("ix_reader_session_reader_id"), "reader_session", ["reader_id"], unique=False)
    op.create_table(
        "answer_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignment.id"],
                                name=op.f("fk_answer_draft_assignment_id_assignment")),
        sa.ForeignKeyConstraint(["reader_id"], ["reader.id"], name=op.f("fk_answer_draft_reader_id_reader")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_draft")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_answer_draft_assignment_id")),
    )
    op.create_index(op.f("ix_answer_draft_reader_id"), "answer_draft", ["reader_id"], unique=False)
    op.create_table(
        "server_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_key")),
        sa.UniqueConstraint("name", name=op.f("uq_server_key_name")),
    )
    with op.batch_alter_table("study") as batch:
        batch.add_column(sa.Column("store_root", sa.String(length=1000), nullable=True))
    with op.batch_alter_table("sign_in_counter") as batch:
        batch.drop_column("locked_until")


def downgrade() -> None:
    with op.batch_alter_table("sign_in_counter") as batch:
        batch.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("study") as batch:
        batch.drop_column("store_root")
    op.drop_table("server_key")
    op.drop_index(op.f("ix_answer_draft_reader_id"), table_name="answer_draft")
    op.drop_table("answer_draft")
    op.drop_index(op.f("ix_reader_session_reader_id"), table_name="reader_session")
    op.drop_table("reader_session")
