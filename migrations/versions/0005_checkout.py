"""hosted checkout pages: a checkout per payment and its /pay/{token} links

A payment created with a checkout keeps where the payer goes when it ends (success_url,
cancel_url) and when "I have paid" was last acted on (the per-payment limit shared by every
process). Each link keeps only the SHA-256 of its token, found by the token's first characters.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.db.types

revision: str = '0005'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'checkouts',
        sa.Column('payment_id', sa.String(length=40), nullable=False),
        sa.Column('success_url', sa.Text(), nullable=True),
        sa.Column('cancel_url', sa.Text(), nullable=True),
        sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('paid_claimed_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_checkouts_payment_id_payments'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_checkouts')),
    )
    op.create_table(
        'checkout_links',
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=80), nullable=False),
        sa.Column('payment_id', sa.String(length=40), nullable=False),
        sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['payment_id'], ['checkouts.payment_id'], name=op.f('fk_checkout_links_payment_id_checkouts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('prefix', name=op.f('pk_checkout_links')),
    )
    with op.batch_alter_table('checkout_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkout_links_payment_id'), ['payment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checkout_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkout_links_payment_id'))
    op.drop_table('checkout_links')
    op.drop_table('checkouts')
