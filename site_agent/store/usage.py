"""Accounting: the usage ledger (table ``usage_records``) and its sums by job or by peer.

A row is written in the transaction of what it accounts for: a render attempt
that completed or failed here (:func:`record_attempts`, called by the
lifecycle), the figures a peer reported for a job it rendered for this site
(``source = 'remote'``, with the forwarded job's end), and the asset and frame
bytes exchanged with a peer (``source = 'transfer'``). Rows are never updated,
so the sums are reproducible for any time window.

Core-seconds of an attempt = the time its slot was held (dispatch to end) ×
the cores per slot of its server (cores / slots, as the server reported them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .database import Connection, Database, Row
from .records import TaskRecord

__all__ = [
    "FOREVER",
    "PeerUsage",
    "UsageEntry",
    "UsageGroup",
    "UsageLedger",
    "UsageQuery",
    "UsageSource",
    "UsageTotals",
    "attempt_entry",
    "record_attempts",
    "record_entries",
]

FOREVER = 1e15
"""An ``until`` later than any timestamp (epoch seconds), so both backends compare plain floats."""

_COLUMNS = (
    "job_id",
    "peer",
    "source",
    "task_id",
    "attempt",
    "server_id",
    "at",
    "wall_s",
    "core_seconds",
    "frames",
    "failed_attempts",
    "bytes_in",
    "bytes_out",
)
INSERT_USAGE = f"""
INSERT INTO usage_records ({", ".join(_COLUMNS)})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""
# An attempt's row, its peer (a job accepted from a peer is accounted to that peer) and its
# cores per slot (cores / slots of its server, 1 for a server no longer known) read by the
# statement itself: one statement per completion where a read of each and an insert took three.
INSERT_ATTEMPT_USAGE = """
INSERT INTO usage_records (job_id, peer, source, task_id, attempt, server_id, at, wall_s,
                           core_seconds, frames, failed_attempts, bytes_in, bytes_out)
SELECT CAST($1 AS TEXT),
       COALESCE((SELECT CASE WHEN j.origin_job_id IS NULL THEN '' ELSE j.origin_site END
                 FROM jobs j WHERE j.id = $1), ''),
       'attempt', CAST($2 AS BIGINT), CAST($3 AS INTEGER), CAST($4 AS TEXT),
       CAST($5 AS DOUBLE PRECISION), CAST($6 AS DOUBLE PRECISION),
       CAST($6 AS DOUBLE PRECISION) * COALESCE(
           (SELECT CAST(s.cores AS DOUBLE PRECISION) / (CASE WHEN s.slots > 0 THEN s.slots ELSE 1 END)
            FROM servers s WHERE s.id = $4), 1.0),
       CAST($7 AS INTEGER), CAST($8 AS INTEGER), 0, 0
"""
_SUMS = """
COUNT(DISTINCT u.job_id) AS jobs, COALESCE(SUM(u.core_seconds), 0) AS core_seconds,
COALESCE(SUM(u.frames), 0) AS frames, COALESCE(SUM(u.failed_attempts), 0) AS failed_attempts,
COALESCE(SUM(u.bytes_in), 0) AS bytes_in, COALESCE(SUM(u.bytes_out), 0) AS bytes_out
"""
_WINDOW = "u.at >= $1 AND u.at < $2"
BY_PEER = f"""
SELECT u.peer AS peer, {_SUMS} FROM usage_records u
WHERE {_WINDOW} GROUP BY u.peer ORDER BY u.peer
"""
BY_PEER_OF = f"""
SELECT u.peer AS peer, {_SUMS} FROM usage_records u
WHERE {_WINDOW} AND u.peer = $3 GROUP BY u.peer ORDER BY u.peer
"""
_JOB_COLUMNS = """
u.job_id AS job_id, u.peer AS peer, MAX(j.name) AS name, MAX(j.origin_job_id) AS origin_job_id,
MAX(j.remote_job_id) AS remote_job_id, MIN(u.at) AS first_at, MAX(u.at) AS last_at
"""
BY_JOB = f"""
SELECT {_JOB_COLUMNS}, {_SUMS} FROM usage_records u LEFT JOIN jobs j ON j.id = u.job_id
WHERE {_WINDOW} GROUP BY u.job_id, u.peer ORDER BY MIN(u.at), u.job_id
"""
BY_JOB_OF = f"""
SELECT {_JOB_COLUMNS}, {_SUMS} FROM usage_records u LEFT JOIN jobs j ON j.id = u.job_id
WHERE {_WINDOW} AND u.peer = $3 GROUP BY u.job_id, u.peer ORDER BY MIN(u.at), u.job_id
"""
JOB_TOTALS = f"SELECT {_SUMS} FROM usage_records u WHERE u.job_id = $1"
# Attempts rendered here for a peer's job vs what a peer reported rendering for ours.
PEER_FIGURES = """
SELECT u.peer AS peer, COALESCE(SUM(u.bytes_in), 0) AS bytes_in,
  COALESCE(SUM(u.bytes_out), 0) AS bytes_out,
  COALESCE(SUM(CASE WHEN u.source = 'attempt' THEN u.core_seconds ELSE 0 END), 0) AS core_s_for,
  COALESCE(SUM(CASE WHEN u.source = 'attempt' THEN u.frames ELSE 0 END), 0) AS frames_for,
  COALESCE(SUM(CASE WHEN u.source = 'remote' THEN u.core_seconds ELSE 0 END), 0) AS core_s_by,
  COALESCE(SUM(CASE WHEN u.source = 'remote' THEN u.frames ELSE 0 END), 0) AS frames_by
FROM usage_records u WHERE u.peer <> '' GROUP BY u.peer
"""


class UsageSource(StrEnum):
    ATTEMPT = "attempt"
    REMOTE = "remote"
    TRANSFER = "transfer"


class UsageGroup(StrEnum):
    JOB = "job"
    PEER = "peer"


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEntry:
    """One ledger row."""

    job_id: str
    peer: str
    """'' for this site's own jobs rendered here; otherwise the peer the usage was for or at."""
    source: UsageSource
    at: float
    task_id: int | None = None
    attempt: int | None = None
    server_id: str | None = None
    wall_s: float = 0.0
    core_seconds: float = 0.0
    frames: int = 0
    failed_attempts: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def params(self) -> tuple[Any, ...]:
        return (
            self.job_id,
            self.peer,
            self.source.value,
            self.task_id,
            self.attempt,
            self.server_id,
            self.at,
            self.wall_s,
            self.core_seconds,
            self.frames,
            self.failed_attempts,
            self.bytes_in,
            self.bytes_out,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerUsage:
    """All-time figures of one peer: bytes exchanged with it, and work rendered here for its
    jobs (``*_for``) and by it for this site's jobs (``*_by``, known once each job ends)."""

    bytes_in: int = 0
    bytes_out: int = 0
    core_seconds_for: float = 0.0
    frames_for: int = 0
    core_seconds_by: float = 0.0
    frames_by: int = 0

    @classmethod
    def from_row(cls, row: Row) -> PeerUsage:
        return cls(
            bytes_in=int(row["bytes_in"]),
            bytes_out=int(row["bytes_out"]),
            core_seconds_for=float(row["core_s_for"]),
            frames_for=int(row["frames_for"]),
            core_seconds_by=float(row["core_s_by"]),
            frames_by=int(row["frames_by"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageQuery:
    group: UsageGroup = UsageGroup.PEER
    peer: str | None = None
    """Only this peer ('' selects this site's own jobs)."""
    since: float = 0.0
    until: float = FOREVER


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    """Sums over ledger rows; ``job_id`` and the job fields only when grouped by job."""

    peer: str | None = None
    job_id: str | None = None
    name: str | None = None
    origin_job_id: str | None = None
    remote_job_id: str | None = None
    jobs: int = 0
    core_seconds: float = 0.0
    frames: int = 0
    failed_attempts: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def from_row(cls, row: Row, *, by_job: bool = False, by_peer: bool = False) -> UsageTotals:
        return cls(
            peer=row["peer"] if by_job or by_peer else None,
            job_id=row["job_id"] if by_job else None,
            name=row["name"] if by_job else None,
            origin_job_id=row["origin_job_id"] if by_job else None,
            remote_job_id=row["remote_job_id"] if by_job else None,
            jobs=int(row["jobs"]),
            core_seconds=float(row["core_seconds"]),
            frames=int(row["frames"]),
            failed_attempts=int(row["failed_attempts"]),
            bytes_in=int(row["bytes_in"]),
            bytes_out=int(row["bytes_out"]),
        )


def attempt_entry(
    task: TaskRecord, *, peer: str, cores_per_slot: float, at: float, failed: bool
) -> UsageEntry:
    """The ledger row of one ended attempt (``task`` as it was while the attempt held its slot).

    The slot was held from dispatch (the renderer's start when the dispatch time is
    unknown) to ``at``; a completed attempt counts its frames, a failed one counts itself.
    """
    began = task.dispatched_at if task.dispatched_at is not None else task.started_at
    wall = max(0.0, at - began) if began is not None else 0.0
    return UsageEntry(
        job_id=task.job_id,
        peer=peer,
        source=UsageSource.ATTEMPT,
        at=at,
        task_id=task.id,
        attempt=task.attempt,
        server_id=task.server_id,
        wall_s=wall,
        core_seconds=wall * cores_per_slot,
        frames=0 if failed else len(task.frames),
        failed_attempts=1 if failed else 0,
    )


async def record_entries(conn: Connection, entries: Sequence[UsageEntry]) -> None:
    if entries:
        await conn.executemany(INSERT_USAGE, [e.params() for e in entries])


async def record_attempts(
    conn: Connection, ended: Sequence[tuple[TaskRecord, float]], *, failed: bool
) -> None:
    """Ledger rows for attempts that ended at the given times (inside their transaction).

    Each task is passed as it was while the attempt held its slot (its server and
    dispatch time). A job accepted from a peer is accounted to that peer; the
    statement reads the peer and the server's cores per slot.
    """
    if not ended:
        return
    entries = [
        attempt_entry(task, peer="", cores_per_slot=1.0, at=at, failed=failed) for task, at in ended
    ]
    await conn.executemany(
        INSERT_ATTEMPT_USAGE,
        [
            (
                e.job_id,
                e.task_id,
                e.attempt,
                e.server_id,
                e.at,
                e.wall_s,
                e.frames,
                e.failed_attempts,
            )
            for e in entries
        ],
    )


class UsageLedger:
    """Reads of the ledger, and the writes that have no state change of their own (transfers)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entries: Sequence[UsageEntry]) -> None:
        async with self._db.transaction() as conn:
            await record_entries(conn, entries)

    async def record_transfer(
        self, *, job_id: str, peer: str, at: float, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        """Asset or frame bytes exchanged with ``peer`` for ``job_id`` (this site's id)."""
        if bytes_in or bytes_out:
            entry = UsageEntry(
                job_id=job_id,
                peer=peer,
                source=UsageSource.TRANSFER,
                at=at,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
            )
            await self.record([entry])

    async def summary(self, query: UsageQuery) -> list[UsageTotals]:
        by_job = query.group is UsageGroup.JOB
        window: tuple[Any, ...] = (query.since, min(query.until, FOREVER))
        if query.peer is None:
            rows = await self._db.fetch(BY_JOB if by_job else BY_PEER, *window)
        else:
            rows = await self._db.fetch(BY_JOB_OF if by_job else BY_PEER_OF, *window, query.peer)
        return [UsageTotals.from_row(r, by_job=by_job, by_peer=not by_job) for r in rows]

    async def peer_figures(self) -> dict[str, PeerUsage]:
        """Per peer name, its all-time :class:`PeerUsage` (peers with no row are left out)."""
        return {r["peer"]: PeerUsage.from_row(r) for r in await self._db.fetch(PEER_FIGURES)}

    async def job_totals(self, job_id: str) -> UsageTotals:
        """Everything accounted to one job here (what this site reports to the job's origin)."""
        row = await self._db.fetchrow(JOB_TOTALS, job_id)
        return UsageTotals() if row is None else UsageTotals.from_row(row)


def totals_of(rows: Sequence[UsageTotals]) -> UsageTotals:
    """The sum of several rows (the ``total`` line of a summary); jobs are counted per row."""
    core = math.fsum(r.core_seconds for r in rows)
    return UsageTotals(
        jobs=sum(r.jobs for r in rows),
        core_seconds=core,
        frames=sum(r.frames for r in rows),
        failed_attempts=sum(r.failed_attempts for r in rows),
        bytes_in=sum(r.bytes_in for r in rows),
        bytes_out=sum(r.bytes_out for r in rows),
    )
