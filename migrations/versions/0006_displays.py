"""customer displays: one row per display paired (or being paired) with a terminal

A display is paired once with a short-lived pairing code, then opened by a long-lived device
token; only SHA-256 digests of both are kept. Revoking a display ends its token.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.db.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'displays',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('terminal', sa.String(length=64), nullable=False),
        sa.Column('pairing_code_hash', sa.String(length=80), nullable=True),
        sa.Column('pairing_expires_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('pairing_failures', sa.Integer(), nullable=False),
        sa.Column('pairing_failed_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('token_prefix', sa.String(length=16), nullable=True),
        sa.Column('token_hash', sa.String(length=80), nullable=True),
        sa.Column('created_at', engine.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('paired_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_seen_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', engine.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_displays')),
        sa.UniqueConstraint('token_prefix', name=op.f('uq_displays_token_prefix')),
    )
    with op.batch_alter_table('displays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_displays_terminal'), ['terminal'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('displays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_displays_terminal'))
    op.drop_table('displays')
