"""record the console terminal that made each payment

Reports total per counter and a customer display follows one counter, so each payment keeps the
name of the console terminal that made it (NULL for the API and the CLI).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('terminal', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_payments_terminal_created_at', ['terminal', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_terminal_created_at')
        batch_op.drop_column('terminal')
