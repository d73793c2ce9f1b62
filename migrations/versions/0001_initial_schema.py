"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 12:49:45.030384
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.db.types


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=128), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_log_subject_type_subject_id', ['subject_type', 'subject_id'], unique=False)

    op.create_table('bakong_quota',
    sa.Column('token_fingerprint', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('exhausted_until', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_fingerprint', 'day', name=op.f('pk_bakong_quota'))
    )
    op.create_table('bakong_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_fingerprint', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('reserved_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bakong_requests'))
    )
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.create_index('ix_bakong_requests_token_fingerprint_day', ['token_fingerprint', 'day'], unique=False)

    op.create_table('engine_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_engine_state'))
    )
    op.create_table('events',
    sa.Column('sequence', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('occurred_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_subject_type_subject_id', ['subject_type', 'subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_type'), ['type'], unique=False)

    op.create_table('leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('acquired_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('idempotency_scope', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('request_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('reference', sa.String(length=128), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('khqr', sa.Text(), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=False),
    sa.Column('receiving_account', sa.String(length=64), nullable=False),
    sa.Column('bill_number', sa.String(length=25), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('customer_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_check_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('check_requested_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('late_watch_until', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('check_count', sa.Integer(), nullable=False),
    sa.Column('last_checked_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_check_result', sa.String(length=64), nullable=True),
    sa.Column('bakong_hash', sa.String(length=64), nullable=True),
    sa.Column('payer_account_enc', sa.Text(), nullable=True),
    sa.Column('bakong_record', sa.JSON(), nullable=True),
    sa.Column('created_by_type', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('api_key_id', sa.String(length=40), nullable=True),
    sa.Column('subscription_id', sa.String(length=40), nullable=True),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('deep_link', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('bakong_hash', name=op.f('uq_payments_bakong_hash')),
    sa.UniqueConstraint('idempotency_scope', 'idempotency_key', name=op.f('uq_payments_idempotency_scope_idempotency_key')),
    sa.UniqueConstraint('md5', name=op.f('uq_payments_md5'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_check_requested_at'), ['check_requested_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_next_check_at'), ['next_check_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_reference'), ['reference'], unique=False)
        batch_op.create_index('ix_payments_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_payments_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('plans',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('cycle_days', sa.Integer(), nullable=False),
    sa.Column('trial_days', sa.Integer(), nullable=False),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('archived_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('code', name=op.f('uq_plans_code'))
    )
    op.create_table('sandbox_transfers',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=False),
    sa.Column('short_hash', sa.String(length=8), nullable=False),
    sa.Column('from_account', sa.String(length=64), nullable=False),
    sa.Column('to_account', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('external_ref', sa.String(length=64), nullable=True),
    sa.Column('instruction_ref', sa.String(length=64), nullable=True),
    sa.Column('tracking_status', sa.String(length=32), nullable=True),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('acknowledged_ms', sa.BigInteger(), nullable=False),
    sa.Column('static_qr', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('hash', name=op.f('pk_sandbox_transfers'))
    )
    with op.batch_alter_table('sandbox_transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_transfers_external_ref'), ['external_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_transfers_instruction_ref'), ['instruction_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_transfers_md5'), ['md5'], unique=False)
        batch_op.create_index(batch_op.f('ix_sandbox_transfers_short_hash'), ['short_hash'], unique=False)

    op.create_table('secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value_enc', sa.Text(), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_secrets'))
    )
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('secret_enc', sa.Text(), nullable=False),
    sa.Column('previous_secret_enc', sa.Text(), nullable=True),
    sa.Column('previous_secret_expires_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('secret_rotated_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('disabled_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failing_since', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_table('payment_status_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_status_history_payment_id_payments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_status_history'))
    )
    with op.batch_alter_table('payment_status_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_status_history_payment_id'), ['payment_id'], unique=False)

    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('plan_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('cycle_days', sa.Integer(), nullable=False),
    sa.Column('current_period_start', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('current_period_end', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('trial_end', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('pending_plan_id', sa.String(length=40), nullable=True),
    sa.Column('pending_change', sa.String(length=16), nullable=True),
    sa.Column('pending_change_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('pending_invoice_id', sa.String(length=40), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('cancelled_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('grace_until', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_reminder_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('incomplete_until', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pending_plan_id'], ['plans.id'], name=op.f('fk_subscriptions_pending_plan_id_plans')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_subscriptions_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index('ix_subscriptions_status_current_period_end', ['status', 'current_period_end'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscriptions_user_id'), ['user_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('event_sequence', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_response_excerpt', sa.Text(), nullable=True),
    sa.Column('last_duration_ms', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('succeeded_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_sequence'], ['events.sequence'], name=op.f('fk_webhook_deliveries_event_sequence_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('event_sequence', 'endpoint_id', name=op.f('uq_webhook_deliveries_event_sequence_endpoint_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_event_sequence'), ['event_sequence'], unique=False)
        batch_op.create_index('ix_webhook_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)

    op.create_table('subscription_invoices',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('period_start', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('plan_id', sa.String(length=40), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_subscription_invoices_plan_id_plans')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_invoices_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_invoices')),
    sa.UniqueConstraint('subscription_id', 'kind', 'period_start', name=op.f('uq_subscription_invoices_subscription_id_kind_period_start'))
    )
    with op.batch_alter_table('subscription_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_invoices_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('subscription_status_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_status_history_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_status_history'))
    )
    with op.batch_alter_table('subscription_status_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_status_history_subscription_id'), ['subscription_id'], unique=False)

    op.create_table('webhook_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.String(length=40), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_excerpt', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempts_delivery_id'), ['delivery_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_attempts_delivery_id'))

    op.drop_table('webhook_attempts')
    with op.batch_alter_table('subscription_status_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_status_history_subscription_id'))

    op.drop_table('subscription_status_history')
    with op.batch_alter_table('subscription_invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_invoices_subscription_id'))

    op.drop_table('subscription_invoices')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_status_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_event_sequence'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_endpoint_id'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_user_id'))
        batch_op.drop_index('ix_subscriptions_status_current_period_end')
        batch_op.drop_index(batch_op.f('ix_subscriptions_plan_id'))

    op.drop_table('subscriptions')
    with op.batch_alter_table('payment_status_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_status_history_payment_id'))

    op.drop_table('payment_status_history')
    op.drop_table('webhook_endpoints')
    op.drop_table('secrets')
    with op.batch_alter_table('sandbox_transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_transfers_short_hash'))
        batch_op.drop_index(batch_op.f('ix_sandbox_transfers_md5'))
        batch_op.drop_index(batch_op.f('ix_sandbox_transfers_instruction_ref'))
        batch_op.drop_index(batch_op.f('ix_sandbox_transfers_external_ref'))

    op.drop_table('sandbox_transfers')
    op.drop_table('plans')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_subscription_id'))
        batch_op.drop_index('ix_payments_status_expires_at')
        batch_op.drop_index('ix_payments_status_created_at')
        batch_op.drop_index(batch_op.f('ix_payments_reference'))
        batch_op.drop_index(batch_op.f('ix_payments_next_check_at'))
        batch_op.drop_index(batch_op.f('ix_payments_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_payments_customer_id'))
        batch_op.drop_index(batch_op.f('ix_payments_created_at'))
        batch_op.drop_index(batch_op.f('ix_payments_check_requested_at'))

    op.drop_table('payments')
    op.drop_table('leases')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_type'))
        batch_op.drop_index('ix_events_subject_type_subject_id')

    op.drop_table('events')
    op.drop_table('engine_state')
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_bakong_requests_token_fingerprint_day')

    op.drop_table('bakong_requests')
    op.drop_table('bakong_quota')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_subject_type_subject_id')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
    op.drop_table('api_keys')
