"""day closes: a closed day's frozen totals (the "Z report")

One row per Asia/Phnom_Penh day that was closed: its UTC window, who closed it and when, whether it
was forced (and why), and its totals per currency, per terminal and per status, what still waited
for a decision, and the adjustments it carried, as JSON. Rows are never updated.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.db.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'day_closes',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('starts_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ends_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_by', sa.String(length=160), nullable=False),
        sa.Column('forced', sa.Boolean(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('totals', sa.JSON(), nullable=False),
        sa.Column('terminals', sa.JSON(), nullable=False),
        sa.Column('statuses', sa.JSON(), nullable=False),
        sa.Column('open_items', sa.JSON(), nullable=False),
        sa.Column('adjustments', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_day_closes')),
    )
    with op.batch_alter_table('day_closes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_day_closes_closed_at'), ['closed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('day_closes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_day_closes_closed_at'))
    op.drop_table('day_closes')
