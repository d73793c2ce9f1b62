"""index subscription invoices by status

The renewer reads the OPEN invoices (those waiting for a payment) on every pass; without this
index that read scans every invoice ever issued.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('subscription_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_invoices_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscription_invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_invoices_status'))
