"""Reading the audit log: who did what to which record, newest first.

Every state change writes its audit row in the change's own transaction (``engine.db.journal``);
this service only reads them, for the console's audit screen and admin tools.
"""

from __future__ import annotations

from datetime import datetime

from engine.db import journal
from engine.db.storage import Storage
from engine.errors import InvalidInput
from engine.records import AuditEntry

__all__ = ["AuditService", "MAX_AUDIT_PAGE"]

MAX_AUDIT_PAGE = 1000


def _clean(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > 200:
        raise InvalidInput(f"{field} is longer than 200 characters", field=field)
    return text or None


class AuditService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def list(
        self,
        *,
        limit: int = 200,
        before_id: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        subject_id: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Newest first; every filter exact and optional. Page on with ``before_id`` = the last
        entry's id."""
        if not 1 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_PAGE}", field="limit")
        if before_id is not None and before_id < 1:
            raise InvalidInput("before_id must be a positive audit entry id", field="before_id")
        if since is not None and since.tzinfo is None:
            raise InvalidInput("since must include a timezone (UTC if in doubt)", field="since")
        async with self.storage.read() as tx:
            return await journal.list_audit(
                tx,
                limit=limit,
                before_id=before_id,
                action=_clean(action, "action"),
                actor=_clean(actor, "actor"),
                subject_id=_clean(subject_id, "subject_id"),
                since=since,
            )
