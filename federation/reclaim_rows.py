"""The federation's rows about reclaimed chunks: reclaims asked (origin), answers given (remote).

Writes that must commit with a change to the site's jobs (applying an answer, recording
the answer with the withdrawal) are made as hooks for the lifecycle's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from site_agent.lifecycle import TransactionHook, WithdrawalHook
from site_agent.store.database import Connection, Database, Row

from . import queries as q


@dataclass(frozen=True, slots=True, kw_only=True)
class ReclaimRow:
    """One request of this (origin) site to a peer for chunks of a part back."""

    key: str
    job_id: str
    """The part: a job of this site placed at ``peer``."""
    epoch: int
    peer: str
    indices: tuple[int, ...]
    """The part's task positions asked for."""
    state: str
    """``asked``, ``answered`` or ``abandoned``."""
    withdrawn: tuple[int, ...]
    frames: str
    """The frames withdrawn (a frame spec; empty when none were)."""
    created_at: float
    answered_at: float | None

    @classmethod
    def from_row(cls, row: Row) -> ReclaimRow:
        return cls(
            key=row["key"],
            job_id=row["job_id"],
            epoch=row["epoch"],
            peer=row["peer"],
            indices=tuple(json.loads(row["indices"])),
            state=row["state"],
            withdrawn=tuple(json.loads(row["withdrawn"])),
            frames=row["frames"],
            created_at=row["created_at"],
            answered_at=row["answered_at"],
        )


class ReclaimRows:
    """``fed_reclaims`` and ``fed_withdrawals`` on the site's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- origin ------------------------------------------------------------
    async def ask(
        self, *, key: str, job_id: str, epoch: int, peer: str, indices: Sequence[int], at: float
    ) -> None:
        """Record a reclaim before it is sent (a repeat of the key changes nothing)."""
        await self._db.execute(q.INSERT_RECLAIM, key, job_id, epoch, peer, _list(indices), at)

    async def asked(self) -> list[ReclaimRow]:
        """Reclaims not answered yet, oldest first."""
        return [ReclaimRow.from_row(r) for r in await self._db.fetch(q.ASKED_RECLAIMS)]

    async def of_jobs(self, job_ids: Sequence[str]) -> list[ReclaimRow]:
        rows = await self._db.fetch(q.JOB_RECLAIMS, list(job_ids))
        return [ReclaimRow.from_row(r) for r in rows]

    async def abandon(self, key: str, *, at: float) -> bool:
        return await self._db.execute(q.ANSWER_RECLAIM, key, "abandoned", "[]", "", at) > 0

    def answered_hook(
        self, key: str, withdrawn: Sequence[int], frames: str, *, at: float
    ) -> TransactionHook:
        """Marks the reclaim answered inside the transaction that applies the answer."""

        async def hook(conn: Connection) -> None:
            await conn.execute(q.ANSWER_RECLAIM, key, "answered", _list(withdrawn), frames, at)

        return hook

    # --- remote ------------------------------------------------------------
    async def answer(self, site: str, key: str) -> tuple[int, ...] | None:
        """The chunks withdrawn for this reclaim of ``site``; None if it was never answered."""
        value = await self._db.fetchval(q.GET_WITHDRAWAL, site, key)
        return None if value is None else tuple(json.loads(value))

    def withdrawal_hook(self, site: str, key: str, job_id: str, *, at: float) -> WithdrawalHook:
        """Records the answer inside the transaction that withdrew the chunks."""

        async def hook(conn: Connection, withdrawn: Sequence[int]) -> None:
            await conn.execute(q.INSERT_WITHDRAWAL, site, key, job_id, _list(withdrawn), at)

        return hook


def _list(values: Sequence[int]) -> str:
    return json.dumps(sorted(values))
