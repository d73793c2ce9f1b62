"""reconciliation with Bakong: each paid payment's last re-check by its Bakong hash

A paid payment keeps what re-checking it with Bakong found (``reconcile_status``: NULL while not
yet checked, 'ok', or the flag) and when. Day counts read payments by ``paid_at``; the nightly
reconciler takes the oldest not yet reconciled first, within the share of the day's Bakong
requests that the request ledger says live polling left (counted by endpoint per day).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.db.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reconcile_status', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('reconciled_at', engine.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_payments_paid_at', ['paid_at'], unique=False)
        batch_op.create_index('ix_payments_reconcile_status_paid_at', ['reconcile_status', 'paid_at'], unique=False)
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.create_index('ix_bakong_requests_day_endpoint', ['day', 'endpoint'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_bakong_requests_day_endpoint')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_reconcile_status_paid_at')
        batch_op.drop_index('ix_payments_paid_at')
        batch_op.drop_column('reconciled_at')
        batch_op.drop_column('reconcile_status')
