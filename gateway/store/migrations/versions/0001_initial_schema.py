"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.store.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('academic_sessions',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('parent_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('school_year', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_academic_sessions'))
    )
    with op.batch_alter_table('academic_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_academic_sessions_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('alignments',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('target_system', sa.String(length=128), nullable=False),
    sa.Column('target_id', sa.String(length=2048), nullable=False),
    sa.Column('competency_id', gateway.store.db.UUIDType(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alignments'))
    )
    with op.batch_alter_table('alignments', schema=None) as batch_op:
        batch_op.create_index('ix_alignments_tenant_competency_id', ['tenant', 'competency_id'], unique=False)
        batch_op.create_index('ix_alignments_tenant_target_system_target_id', ['tenant', 'target_system', 'target_id'], unique=False)
        batch_op.create_index('ix_alignments_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('batch_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('record_kind', sa.String(length=32), nullable=False),
    sa.Column('record_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('op', sa.String(length=16), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_changes'))
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_record_id', ['record_id'], unique=False)
        batch_op.create_index('ix_changes_tenant_seq', ['tenant', 'seq'], unique=False)

    op.create_table('competencies',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('framework_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('guid', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_competencies'))
    )
    with op.batch_alter_table('competencies', schema=None) as batch_op:
        batch_op.create_index('ix_competencies_tenant_code', ['tenant', 'code'], unique=False)
        batch_op.create_index('ix_competencies_tenant_framework_id', ['tenant', 'framework_id'], unique=False)
        batch_op.create_index('ix_competencies_tenant_guid', ['tenant', 'guid'], unique=False)
        batch_op.create_index('ix_competencies_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('courses',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('org_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses'))
    )
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.create_index('ix_courses_tenant_org_id', ['tenant', 'org_id'], unique=False)
        batch_op.create_index('ix_courses_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('enrollments',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('person_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('section_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments'))
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index('ix_enrollments_tenant_person_id', ['tenant', 'person_id'], unique=False)
        batch_op.create_index('ix_enrollments_tenant_section_id', ['tenant', 'section_id'], unique=False)
        batch_op.create_index('ix_enrollments_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('evidence',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('learner_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('competency_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('observed_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('voided', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence'))
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index('ix_evidence_tenant_competency_id', ['tenant', 'competency_id'], unique=False)
        batch_op.create_index('ix_evidence_tenant_learner_id_competency_id', ['tenant', 'learner_id', 'competency_id'], unique=False)
        batch_op.create_index('ix_evidence_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('frameworks',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('guid', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frameworks'))
    )
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.create_index('ix_frameworks_tenant_guid', ['tenant', 'guid'], unique=False)
        batch_op.create_index('ix_frameworks_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('identifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('record_kind', sa.String(length=32), nullable=False),
    sa.Column('record_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('system', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=1024), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identifiers'))
    )
    with op.batch_alter_table('identifiers', schema=None) as batch_op:
        batch_op.create_index('ix_identifiers_lookup', ['tenant', 'system', 'kind', 'value'], unique=False)
        batch_op.create_index('ix_identifiers_record_id', ['record_id'], unique=False)

    op.create_table('mastery_rules',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('framework_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('competency_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mastery_rules'))
    )
    with op.batch_alter_table('mastery_rules', schema=None) as batch_op:
        batch_op.create_index('ix_mastery_rules_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('mastery_states',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('learner_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('competency_id', gateway.store.db.UUIDType(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mastery_states'))
    )
    with op.batch_alter_table('mastery_states', schema=None) as batch_op:
        batch_op.create_index('ix_mastery_states_tenant_competency_id', ['tenant', 'competency_id'], unique=False)
        batch_op.create_index('ix_mastery_states_tenant_learner_id', ['tenant', 'learner_id'], unique=False)
        batch_op.create_index('ix_mastery_states_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('orgs',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('parent_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orgs'))
    )
    with op.batch_alter_table('orgs', schema=None) as batch_op:
        batch_op.create_index('ix_orgs_tenant_parent_id', ['tenant', 'parent_id'], unique=False)
        batch_op.create_index('ix_orgs_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('people',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('primary_role', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people'))
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index('ix_people_tenant_primary_role', ['tenant', 'primary_role'], unique=False)
        batch_op.create_index('ix_people_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('proficiency_scales',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('framework_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proficiency_scales'))
    )
    with op.batch_alter_table('proficiency_scales', schema=None) as batch_op:
        batch_op.create_index('ix_proficiency_scales_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('relations',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('origin_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('destination_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relations'))
    )
    with op.batch_alter_table('relations', schema=None) as batch_op:
        batch_op.create_index('ix_relations_tenant_destination_id', ['tenant', 'destination_id'], unique=False)
        batch_op.create_index('ix_relations_tenant_origin_id', ['tenant', 'origin_id'], unique=False)
        batch_op.create_index('ix_relations_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('sections',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('native_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('course_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('org_id', gateway.store.db.UUIDType(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sections'))
    )
    with op.batch_alter_table('sections', schema=None) as batch_op:
        batch_op.create_index('ix_sections_tenant_course_id', ['tenant', 'course_id'], unique=False)
        batch_op.create_index('ix_sections_tenant_org_id', ['tenant', 'org_id'], unique=False)
        batch_op.create_index('ix_sections_tenant_updated_at_id', ['tenant', 'updated_at', 'id'], unique=False)

    op.create_table('signing_keys',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('private_pem', sa.Text(), nullable=False),
    sa.Column('public_jwk', sa.Text(), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', gateway.store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('verify_until', gateway.store.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_keys'))
    )
    op.create_table('tenants',
    sa.Column('id', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants'))
    )
    op.create_table('connections',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('adapter', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=128), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=True),
    sa.Column('auth', sa.Text(), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant'], ['tenants.id'], name=op.f('fk_connections_tenant_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connections')),
    sa.UniqueConstraint('tenant', 'name', name=op.f('uq_connections_tenant_name'))
    )
    op.create_table('oauth_clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('secret_hash', sa.String(length=256), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', gateway.store.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant'], ['tenants.id'], name=op.f('fk_oauth_clients_tenant_tenants')),
    sa.PrimaryKeyConstraint('client_id', name=op.f('pk_oauth_clients'))
    )
    op.create_table('routes',
    sa.Column('id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('source_connection_id', gateway.store.db.UUIDType(), nullable=True),
    sa.Column('destination_connection_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('kinds', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('watermark', sa.Text(), nullable=True),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['destination_connection_id'], ['connections.id'], name=op.f('fk_routes_destination_connection_id_connections')),
    sa.ForeignKeyConstraint(['source_connection_id'], ['connections.id'], name=op.f('fk_routes_source_connection_id_connections')),
    sa.ForeignKeyConstraint(['tenant'], ['tenants.id'], name=op.f('fk_routes_tenant_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    sa.UniqueConstraint('tenant', 'name', name=op.f('uq_routes_tenant_name'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=63), nullable=False),
    sa.Column('route_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('record_kind', sa.String(length=32), nullable=False),
    sa.Column('record_id', gateway.store.db.UUIDType(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', gateway.store.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', gateway.store.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_outbox_route_id_routes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_next_attempt_at')

    op.drop_table('outbox')
    op.drop_table('routes')
    op.drop_table('oauth_clients')
    op.drop_table('connections')
    op.drop_table('tenants')
    op.drop_table('signing_keys')
    with op.batch_alter_table('sections', schema=None) as batch_op:
        batch_op.drop_index('ix_sections_tenant_updated_at_id')
        batch_op.drop_index('ix_sections_tenant_org_id')
        batch_op.drop_index('ix_sections_tenant_course_id')

    op.drop_table('sections')
    with op.batch_alter_table('relations', schema=None) as batch_op:
        batch_op.drop_index('ix_relations_tenant_updated_at_id')
        batch_op.drop_index('ix_relations_tenant_origin_id')
        batch_op.drop_index('ix_relations_tenant_destination_id')

    op.drop_table('relations')
    with op.batch_alter_table('proficiency_scales', schema=None) as batch_op:
        batch_op.drop_index('ix_proficiency_scales_tenant_updated_at_id')

    op.drop_table('proficiency_scales')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index('ix_people_tenant_updated_at_id')
        batch_op.drop_index('ix_people_tenant_primary_role')

    op.drop_table('people')
    with op.batch_alter_table('orgs', schema=None) as batch_op:
        batch_op.drop_index('ix_orgs_tenant_updated_at_id')
        batch_op.drop_index('ix_orgs_tenant_parent_id')

    op.drop_table('orgs')
    with op.batch_alter_table('mastery_states', schema=None) as batch_op:
        batch_op.drop_index('ix_mastery_states_tenant_updated_at_id')
        batch_op.drop_index('ix_mastery_states_tenant_learner_id')
        batch_op.drop_index('ix_mastery_states_tenant_competency_id')

    op.drop_table('mastery_states')
    with op.batch_alter_table('mastery_rules', schema=None) as batch_op:
        batch_op.drop_index('ix_mastery_rules_tenant_updated_at_id')

    op.drop_table('mastery_rules')
    with op.batch_alter_table('identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_identifiers_record_id')
        batch_op.drop_index('ix_identifiers_lookup')

    op.drop_table('identifiers')
    with op.batch_alter_table('frameworks', schema=None) as batch_op:
        batch_op.drop_index('ix_frameworks_tenant_updated_at_id')
        batch_op.drop_index('ix_frameworks_tenant_guid')

    op.drop_table('frameworks')
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_evidence_tenant_updated_at_id')
        batch_op.drop_index('ix_evidence_tenant_learner_id_competency_id')
        batch_op.drop_index('ix_evidence_tenant_competency_id')

    op.drop_table('evidence')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollments_tenant_updated_at_id')
        batch_op.drop_index('ix_enrollments_tenant_section_id')
        batch_op.drop_index('ix_enrollments_tenant_person_id')

    op.drop_table('enrollments')
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_index('ix_courses_tenant_updated_at_id')
        batch_op.drop_index('ix_courses_tenant_org_id')

    op.drop_table('courses')
    with op.batch_alter_table('competencies', schema=None) as batch_op:
        batch_op.drop_index('ix_competencies_tenant_updated_at_id')
        batch_op.drop_index('ix_competencies_tenant_guid')
        batch_op.drop_index('ix_competencies_tenant_framework_id')
        batch_op.drop_index('ix_competencies_tenant_code')

    op.drop_table('competencies')
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index('ix_changes_tenant_seq')
        batch_op.drop_index('ix_changes_record_id')

    op.drop_table('changes')
    with op.batch_alter_table('alignments', schema=None) as batch_op:
        batch_op.drop_index('ix_alignments_tenant_updated_at_id')
        batch_op.drop_index('ix_alignments_tenant_target_system_target_id')
        batch_op.drop_index('ix_alignments_tenant_competency_id')

    op.drop_table('alignments')
    with op.batch_alter_table('academic_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_academic_sessions_tenant_updated_at_id')

    op.drop_table('academic_sessions')
