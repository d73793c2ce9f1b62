"""indexes for the owner's reports

Reports group a day's (or a range's) payments in SQL. A covering index on (created_at, status,
currency, amount_minor) lets a window be totalled from the index alone; one on
bakong_requests.reserved_at serves the Bakong requests used across a day, and one on
payment_status_history.at finds the changes made after a day was closed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_created_at_status_currency_amount_minor', ['created_at', 'status', 'currency', 'amount_minor'], unique=False)
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.create_index('ix_bakong_requests_reserved_at', ['reserved_at'], unique=False)
    with op.batch_alter_table('payment_status_history', schema=None) as batch_op:
        batch_op.create_index('ix_payment_status_history_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payment_status_history', schema=None) as batch_op:
        batch_op.drop_index('ix_payment_status_history_at')
    with op.batch_alter_table('bakong_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_bakong_requests_reserved_at')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_created_at_status_currency_amount_minor')
