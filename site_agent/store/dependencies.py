"""Statements over job dependencies (the ``job_dependencies`` table), on one connection.

Used inside the lifecycle's transactions (through ``JobTransaction.dependencies``)
and by the dispatch snapshot and the job views (plain reads). No rule lives here:
which edges hold a job back is decided by :mod:`scheduler.dependencies`.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dependencies import DependencyKind, Upstream

from .database import Connection, Row

INSERT_DEPENDENCY = """
INSERT INTO job_dependencies (job_id, upstream_id, kind) VALUES ($1, $2, $3)
ON CONFLICT (job_id, upstream_id) DO UPDATE SET kind = excluded.kind
"""
# The upstream's stored frames count as its progress ("running 12/24").
UPSTREAMS_OF = """
SELECT d.job_id, d.upstream_id, d.kind, u.name, u.state, u.frame_count,
       (SELECT COUNT(*) FROM frames f WHERE f.job_id = u.id) AS frames_done
FROM job_dependencies d JOIN jobs u ON u.id = d.upstream_id
WHERE d.job_id = ANY($1::text[])
ORDER BY d.job_id, d.upstream_id
"""
# Unfinished dependents only: a finished job is never released or failed again.
DEPENDENTS_OF = """
SELECT d.job_id, d.kind FROM job_dependencies d JOIN jobs j ON j.id = d.job_id
WHERE d.upstream_id = $1 AND j.state IN ('queued', 'running', 'paused')
ORDER BY d.job_id
"""
STORED_FRAMES = """
SELECT frame FROM frames WHERE job_id = $1 AND frame = ANY($2::int[])
"""
EDGES_FROM = """
SELECT job_id, upstream_id FROM job_dependencies WHERE job_id = ANY($1::text[])
"""


def _upstream(row: Row) -> Upstream:
    return Upstream(
        job_id=row["upstream_id"],
        name=row["name"],
        kind=DependencyKind(row["kind"]),
        state=row["state"],
        frames_done=int(row["frames_done"]),
        frame_count=int(row["frame_count"]),
    )


class DependencyStatements:
    """Reads and writes of job dependencies over ``conn`` (in a transaction or not)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, job_id: str, upstreams: Sequence[tuple[str, DependencyKind]]) -> None:
        """``job_id`` waits for each (upstream id, kind); an existing edge takes the new kind."""
        await self._conn.executemany(
            INSERT_DEPENDENCY, [(job_id, upstream, kind.value) for upstream, kind in upstreams]
        )

    async def upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        """Per job with dependencies among ``job_ids``: its upstreams as they are now."""
        found: dict[str, list[Upstream]] = {}
        if job_ids:
            for row in await self._conn.fetch(UPSTREAMS_OF, list(job_ids)):
                found.setdefault(row["job_id"], []).append(_upstream(row))
        return {job_id: tuple(ups) for job_id, ups in found.items()}

    async def dependents(self, upstream_id: str) -> list[tuple[str, DependencyKind]]:
        """The unfinished jobs waiting for ``upstream_id``, with the kind of each edge."""
        rows = await self._conn.fetch(DEPENDENTS_OF, upstream_id)
        return [(row["job_id"], DependencyKind(row["kind"])) for row in rows]

    async def stored_frames(self, job_id: str, frames: Sequence[int]) -> frozenset[int]:
        """Which of ``frames`` the job has stored (one indexed read)."""
        rows = await self._conn.fetch(STORED_FRAMES, job_id, list(frames))
        return frozenset(int(row["frame"]) for row in rows)

    async def edges_from(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per job among ``job_ids``: the jobs it waits for."""
        edges: dict[str, list[str]] = {}
        for row in await self._conn.fetch(EDGES_FROM, list(job_ids)):
            edges.setdefault(row["job_id"], []).append(row["upstream_id"])
        return edges
