"""The webhook deliveries table (its own migration chain) on the site's database."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from site_agent.store.database import Connection, Database, Row
from site_agent.store.migrate import MigrationChain, apply_migrations

log = logging.getLogger(__name__)

WEBHOOKS_CHAIN = MigrationChain(name="webhooks", folder=Path(__file__).with_name("migrations"))
"""The webhooks' migrations, ``webhooks/migrations/<dialect>/NNNN_name.sql``."""

COLUMNS = (
    "id, endpoint, event, job_id, body, state, attempts, last_status, last_error, created_at, "
    "last_attempt_at, finished_at"
)
# The same id twice (an event emitted again) is kept once: deduplicated at the source.
INSERT = """
INSERT INTO webhook_deliveries (id, endpoint, event, job_id, body, created_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING
"""
PENDING = f"""
SELECT {COLUMNS} FROM webhook_deliveries WHERE state = 'pending' ORDER BY created_at, id LIMIT $1
"""
ATTEMPTED = """
UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3,
                              last_attempt_at = $4
WHERE id = $1
"""
FINISHED = """
UPDATE webhook_deliveries SET state = $2, finished_at = $3 WHERE id = $1 AND state = 'pending'
"""
RECENT = f"SELECT {COLUMNS} FROM webhook_deliveries ORDER BY created_at DESC, id DESC LIMIT $1"
COUNTS = "SELECT endpoint, state, COUNT(*) AS n FROM webhook_deliveries GROUP BY endpoint, state"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One event for one endpoint, as stored."""

    id: str
    endpoint: str
    event: str
    job_id: str
    body: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str
    created_at: float
    last_attempt_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> Delivery:
        return cls(
            id=row["id"],
            endpoint=row["endpoint"],
            event=row["event"],
            job_id=row["job_id"],
            body=row["body"],
            state=row["state"],
            attempts=int(row["attempts"]),
            last_status=None if row["last_status"] is None else int(row["last_status"]),
            last_error=row["last_error"],
            created_at=float(row["created_at"]),
            last_attempt_at=_time(row["last_attempt_at"]),
            finished_at=_time(row["finished_at"]),
        )


def _time(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


class WebhookStore:
    """Webhook deliveries on the site's database (which the site's store owns and closes)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, db: Database) -> WebhookStore:
        """Apply the webhooks migration chain to ``db`` (a no-op when current), then serve."""
        applied = await apply_migrations(db, WEBHOOKS_CHAIN)
        if applied:
            log.info("%s webhooks schema migrated to version %d", db.dialect, applied[-1])
        return cls(db)

    async def enqueue(
        self,
        conn: Connection,
        *,
        msg_id: str,
        endpoint: str,
        event: str,
        job_id: str,
        body: str,
        at: float,
    ) -> bool:
        """Write a delivery on ``conn`` (the transaction of the change it announces); False
        when one with this id exists (it is not written twice)."""
        return await conn.execute(INSERT, msg_id, endpoint, event, job_id, body, at) > 0

    async def pending(self, limit: int) -> list[Delivery]:
        return [Delivery.from_row(r) for r in await self._db.fetch(PENDING, limit)]

    async def attempted(self, msg_id: str, *, status: int | None, error: str, at: float) -> None:
        await self._db.execute(ATTEMPTED, msg_id, status, error[:500], at)

    async def finished(self, msg_id: str, *, delivered: bool, at: float) -> None:
        await self._db.execute(FINISHED, msg_id, "delivered" if delivered else "failed", at)

    async def recent(self, limit: int) -> list[Delivery]:
        return [Delivery.from_row(r) for r in await self._db.fetch(RECENT, limit)]

    async def counts(self) -> dict[str, dict[str, int]]:
        """Per endpoint: deliveries per state."""
        found: dict[str, dict[str, int]] = {}
        for row in await self._db.fetch(COUNTS):
            found.setdefault(row["endpoint"], {})[row["state"]] = int(row["n"])
        return found
