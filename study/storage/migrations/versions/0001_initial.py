"""Initial schema: every study table (study, case, reader, assignment, answer, ai_output, audit_event, washout_override).

Revision ID: 0001_initial
Revises: 
Create Date: 2026-11-28 03:46:08.342417
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('config_toml', sa.Text(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('design', sa.String(length=20), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('design_locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('name', name=op.f('uq_study_name'))
    )
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('entity', sa.String(length=50), nullable=False),
    sa.Column('entity_id', sa.String(length=100), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_audit_event_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_entity', ['entity', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_study_id'), ['study_id'], unique=False)

    op.create_table('case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('case_key', sa.String(length=200), nullable=False),
    sa.Column('image_ref', sa.String(length=500), nullable=False),
    sa.Column('image_sha256', sa.String(length=64), nullable=True),
    sa.Column('reference_labels', sa.JSON(), nullable=False),
    sa.Column('eye', sa.String(length=10), nullable=True),
    sa.Column('patient_pseudonym', sa.String(length=100), nullable=True),
    sa.Column('split', sa.String(length=50), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_case_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case')),
    sa.UniqueConstraint('study_id', 'case_key', name=op.f('uq_case_study_id_case_key'))
    )
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_study_id'), ['study_id'], unique=False)

    op.create_table('reader',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('pseudonym', sa.String(length=50), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('years_experience', sa.Float(), nullable=False),
    sa.Column('level', sa.String(length=50), nullable=False),
    sa.Column('specialty', sa.String(length=200), nullable=True),
    sa.Column('site', sa.String(length=200), nullable=True),
    sa.Column('code_lookup', sa.String(length=8), nullable=True),
    sa.Column('code_hash', sa.String(length=255), nullable=True),
    sa.Column('code_issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_reader_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader')),
    sa.UniqueConstraint('study_id', 'pseudonym', name=op.f('uq_reader_study_id_pseudonym'))
    )
    with op.batch_alter_table('reader', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reader_code_lookup'), ['code_lookup'], unique=False)
        batch_op.create_index(batch_op.f('ix_reader_study_id'), ['study_id'], unique=False)

    op.create_table('ai_output',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('label_set', sa.String(length=200), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=False),
    sa.Column('model_card', sa.JSON(), nullable=False),
    sa.Column('saliency_png', sa.LargeBinary(), nullable=True),
    sa.Column('saliency_path', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_ai_output_case_id_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ai_output')),
    sa.UniqueConstraint('case_id', 'model_version', name=op.f('uq_ai_output_case_id_model_version'))
    )
    with op.batch_alter_table('ai_output', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ai_output_case_id'), ['case_id'], unique=False)

    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('condition', sa.String(length=20), nullable=False),
    sa.Column('session', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('depends_on_id', sa.Integer(), nullable=True),
    sa.Column('reader_group', sa.Integer(), nullable=False),
    sa.Column('case_block', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_assignment_case_id_case')),
    sa.ForeignKeyConstraint(['depends_on_id'], ['assignment.id'], name=op.f('fk_assignment_depends_on_id_assignment')),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_assignment_reader_id_reader')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_assignment_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment')),
    sa.UniqueConstraint('reader_id', 'case_id', 'condition', name=op.f('uq_assignment_reader_id_case_id_condition')),
    sa.UniqueConstraint('reader_id', 'session', 'position', name=op.f('uq_assignment_reader_id_session_position'))
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignment_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_reader_id'), ['reader_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_study_id'), ['study_id'], unique=False)

    op.create_table('washout_override',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('session', sa.Integer(), nullable=False),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_washout_override_reader_id_reader')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_washout_override')),
    sa.UniqueConstraint('reader_id', 'session', name=op.f('uq_washout_override_reader_id_session'))
    )
    with op.batch_alter_table('washout_override', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_washout_override_reader_id'), ['reader_id'], unique=False)

    op.create_table('answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_answer_assignment_id_assignment')),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_answer_reader_id_reader')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answer')),
    sa.UniqueConstraint('assignment_id', 'version', name=op.f('uq_answer_assignment_id_version')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_answer_idempotency_key'))
    )
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_answer_reader_id'), ['reader_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_reader_id'))
        batch_op.drop_index(batch_op.f('ix_answer_assignment_id'))

    op.drop_table('answer')
    with op.batch_alter_table('washout_override', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_washout_override_reader_id'))

    op.drop_table('washout_override')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignment_study_id'))
        batch_op.drop_index(batch_op.f('ix_assignment_reader_id'))
        batch_op.drop_index(batch_op.f('ix_assignment_case_id'))

    op.drop_table('assignment')
    with op.batch_alter_table('ai_output', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ai_output_case_id'))

    op.drop_table('ai_output')
    with op.batch_alter_table('reader', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reader_study_id'))
        batch_op.drop_index(batch_op.f('ix_reader_code_lookup'))

    op.drop_table('reader')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_study_id'))

    op.drop_table('case')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_study_id'))
        batch_op.drop_index('ix_audit_event_entity')

    op.drop_table('audit_event')
    op.drop_table('study')
