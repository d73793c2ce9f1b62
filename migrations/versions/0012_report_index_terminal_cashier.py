"""the reports' covering index also holds the terminal and the cashier

Totals per terminal and per cashier over a range read every payment of the window; with the
terminal and who created each payment in the covering index they are totalled from the index
alone, as the totals per currency already were (bench/report_bench.py, 1,000,000 payments over
365 days, shared machine: the day report's p95 went from 237 ms to 62-79 ms; a 30-day range by
terminal, with the grouping no longer walking the terminal index, from 1,008 ms to 183 ms).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 20:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ['created_at', 'status', 'currency', 'amount_minor']
_NEW = [*_OLD, 'terminal', 'created_by_type', 'created_by']


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_created_at_status_currency_amount_minor')
        batch_op.create_index('ix_payments_report', _NEW, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_report')
        batch_op.create_index('ix_payments_created_at_status_currency_amount_minor', _OLD, unique=False)
