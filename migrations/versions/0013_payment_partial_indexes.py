"""payments: partial indexes on the columns a new payment leaves NULL, no created_at index

A create wrote an entry in each of the payments table's 17 indexes, six of them for a NULL
(customer, subscription, invoice, terminal, "customer says paid", paid time) and one for
``created_at``, which the report index already leads with. Those six, and ``reference`` (which
API callers may leave out), are now ``WHERE column IS NOT NULL``; ``ix_payments_created_at`` is
gone: ``ix_payments_report`` starts with ``created_at`` and serves the windows by creation time.

Every query that reads one of these indexes compares the column with a value (``=``, a range,
``IS NOT NULL``), which implies ``IS NOT NULL`` for both planners: with 100,000 payments each
one still uses the same index on SQLite (``EXPLAIN QUERY PLAN``, no ANALYZE, as the engine
runs) and on PostgreSQL (``EXPLAIN``, analysed), and the windows by creation time use
``ix_payments_report`` where they used ``ix_payments_created_at``. The shop's count of a window
(``subscription_id IS NULL``) no longer walks the subscription index's NULLs on SQLite (56 ->
1.5 ms). ``bench/payment_indexes_bench.py plans`` prints the plans and times. A create written
raw (payment, history, audit, event, COMMIT; ``bench/payment_indexes_bench.py inserts``, on a
busy shared machine): SQLite 242 -> 194 µs CPU and 34.2 -> 26.2 WAL pages, PostgreSQL 14.9 ->
11.1 kB of WAL.

``reconcile_status`` keeps its whole index: reconciliation looks for ``reconcile_status IS
NULL``. The unique constraints (md5, Bakong hash, idempotency key) stay as they are: on SQLite
they are part of the table, and rebuilding it in a migration (foreign keys on) would cascade
the old table's drop into the status history.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: index name -> (its columns, the column whose rows it holds only when set)
_PARTIAL = {
    'ix_payments_reference': (['reference'], 'reference'),
    'ix_payments_customer_id': (['customer_id'], 'customer_id'),
    'ix_payments_check_requested_at': (['check_requested_at'], 'check_requested_at'),
    'ix_payments_subscription_id': (['subscription_id'], 'subscription_id'),
    'ix_payments_invoice_id': (['invoice_id'], 'invoice_id'),
    'ix_payments_terminal_created_at': (['terminal', 'created_at'], 'terminal'),
    'ix_payments_paid_at': (['paid_at'], 'paid_at'),
}


def _when_set(column: str) -> dict[str, sa.TextClause]:
    predicate = sa.text(f'{column} IS NOT NULL')
    return {'sqlite_where': predicate, 'postgresql_where': predicate}


def upgrade() -> None:
    op.drop_index('ix_payments_created_at', table_name='payments')
    for name, (columns, column) in _PARTIAL.items():
        op.drop_index(name, table_name='payments')
        op.create_index(name, 'payments', columns, unique=False, **_when_set(column))


def downgrade() -> None:
    for name, (columns, _column) in _PARTIAL.items():
        op.drop_index(name, table_name='payments')
        op.create_index(name, 'payments', columns, unique=False)
    op.create_index('ix_payments_created_at', 'payments', ['created_at'], unique=False)
