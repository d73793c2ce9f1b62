"""PostgreSQL: events get their sequence inside COMMIT, with no client round trip under the lock

A transaction inserts its events with a placeholder sequence (negative, from
``events_pending_seq``). A DEFERRABLE INITIALLY DEFERRED constraint trigger fires for each of them
at COMMIT, in the order they were inserted: the first takes the event-log advisory lock, each
renumbers its row with the next value of the events' own sequence. The lock is thus taken and
released inside the server's commit (released after the commit is visible), so sequences follow
commit order without the lock waiting for the client. Rows inserted with a real sequence (a
transaction that locked the log first, a restore) are left as they are. SQLite: nothing to do
(its writers are serialised).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_LOG_LOCK = 0x62616B6F6E67  # engine.db.database.EVENT_LOG_LOCK, frozen as of this revision


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE SEQUENCE events_pending_seq AS bigint')
    op.execute(
        f"""
        CREATE FUNCTION events_number_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock({EVENT_LOG_LOCK});
            UPDATE events SET sequence = nextval(pg_get_serial_sequence('events', 'sequence'))
             WHERE sequence = NEW.sequence;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER events_number_at_commit AFTER INSERT ON events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.sequence < 0)
        EXECUTE FUNCTION events_number_at_commit()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('DROP TRIGGER events_number_at_commit ON events')
    op.execute('DROP FUNCTION events_number_at_commit()')
    op.execute('DROP SEQUENCE events_pending_seq')
