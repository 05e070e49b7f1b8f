"""Statements over split jobs and their parts, on one connection.

A split job renders here; some of its waiting chunks go to a peer as a *part*:
a job of its own (``part_of`` = the split job) placed at that peer, while the
split job's tasks for those chunks are ``dispatched`` with ``part_job_id`` set
and the peer's name as their server (no server of this site holds them, so the
heartbeat monitor, the dispatcher's running counts and task stops leave them
alone). Which chunks go where is decided by :mod:`scheduler.split`; which
statements make up a transition by :mod:`site_agent.lifecycle.split`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .database import Connection
from .queries import ACTIVE, BACK_TO_WAITING, JOB_COLUMNS, TASK_COLUMNS, UNFINISHED_JOB
from .records import JobRecord, TaskRecord
from .rows import job_from_row, task_from_row

# Split jobs that may send chunks to peers: rendered here, not finished, chunks waiting.
SPLIT_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs j
WHERE j.split = $1 AND j.placement = 'local' AND j.state IN ('queued', 'running')
  AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'waiting')
ORDER BY j.priority DESC, j.created_at, j.id
"""
JOB_PARTS = f"SELECT {JOB_COLUMNS} FROM jobs WHERE part_of = $1 ORDER BY created_at, id"
# Unfinished parts, and finished parts whose chunks the split job still holds as sent.
OPEN_PARTS = f"""
SELECT {JOB_COLUMNS} FROM jobs p
WHERE p.part_of IS NOT NULL AND (p.state IN {UNFINISHED_JOB} OR EXISTS (
    SELECT 1 FROM tasks t WHERE t.part_job_id = p.id AND t.state IN {ACTIVE}))
ORDER BY p.created_at, p.id
"""
# Chunks of a split job into a part, fenced on each being waiting (the dispatcher may have
# claimed one meanwhile); the peer's name stands as the server for ``spillway job``.
SEND_TO_PART = """
UPDATE tasks SET state = 'dispatched', server_id = $3, part_job_id = $4, dispatched_at = $5,
                 lease_expires_at = NULL, started_at = NULL, finished_at = NULL
WHERE job_id = $1 AND idx = ANY($2::bigint[]) AND state = 'waiting'
"""
PART_TASKS = f"""
SELECT {TASK_COLUMNS} FROM tasks WHERE part_job_id = $1 AND state IN {ACTIVE} ORDER BY idx
"""
# A chunk the part rendered: done here, with the part's server and times.
PART_TASK_DONE = f"""
UPDATE tasks SET state = 'done', server_id = $3, started_at = $4, finished_at = $5, error = ''
WHERE id = $1 AND part_job_id = $2 AND state IN {ACTIVE}
"""
# Chunks withdrawn from a job accepted here, for its origin: waiting and never failed here,
# so no server holds them (a chunk whose server was lost is waiting again, with no failure).
# Deleted: never started, they leave no attempt, log or frame; the job's frame spec shrinks.
WITHDRAW_WAITING = f"""
DELETE FROM tasks
WHERE job_id = $1 AND idx = ANY($2::bigint[]) AND state = 'waiting' AND failures = 0
RETURNING {TASK_COLUMNS}
"""
# The origin's copy of a part's tasks its peer withdrew (the peer's answer is the rule).
DROP_PART_TASKS = f"""
DELETE FROM tasks WHERE job_id = $1 AND idx = ANY($2::bigint[]) AND state <> 'done'
RETURNING {TASK_COLUMNS}
"""
JOB_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = $1 ORDER BY idx"
SET_JOB_FRAMES = "UPDATE jobs SET frames = $2, frame_count = $3, updated_at = $4 WHERE id = $1"
# Chunks a part gave back, by task id, waiting here again.
RETURN_SOME_PART_TASKS = f"""
UPDATE tasks SET {BACK_TO_WAITING}, error = $3
WHERE part_job_id = $1 AND id = ANY($2::bigint[]) AND state IN {ACTIVE}
RETURNING {TASK_COLUMNS}
"""
RETURN_PART_TASKS = f"""
UPDATE tasks SET {BACK_TO_WAITING}, error = $2
WHERE part_job_id = $1 AND state IN {ACTIVE}
"""


class SplitStatements:
    """Split-job statements over one connection (in a transaction or not)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def split_jobs(self) -> list[JobRecord]:
        return [job_from_row(r) for r in await self._conn.fetch(SPLIT_JOBS, True)]

    async def parts(self, job_id: str) -> list[JobRecord]:
        return [job_from_row(r) for r in await self._conn.fetch(JOB_PARTS, job_id)]

    async def open_parts(self) -> list[JobRecord]:
        return [job_from_row(r) for r in await self._conn.fetch(OPEN_PARTS)]

    async def send_to_part(
        self, job_id: str, indices: Sequence[int], *, part_job_id: str, peer: str, at: float
    ) -> int:
        """How many of the chunks at ``indices`` were still waiting and now belong to the part."""
        return await self._conn.execute(SEND_TO_PART, job_id, list(indices), peer, part_job_id, at)

    async def part_tasks(self, part_job_id: str) -> list[TaskRecord]:
        """The split job's tasks still sent to that part, by chunk order."""
        return [task_from_row(r) for r in await self._conn.fetch(PART_TASKS, part_job_id)]

    async def part_task_done(
        self,
        task_id: int,
        part_job_id: str,
        *,
        server: str,
        started_at: float | None,
        finished_at: float,
    ) -> bool:
        count = await self._conn.execute(
            PART_TASK_DONE, task_id, part_job_id, server, started_at, finished_at
        )
        return count > 0

    async def withdraw_waiting(self, job_id: str, indices: Sequence[int]) -> list[TaskRecord]:
        """Delete the job's chunks at ``indices`` that are waiting and never failed; those deleted."""
        rows = await self._conn.fetch(WITHDRAW_WAITING, job_id, list(indices))
        return [task_from_row(r) for r in rows]

    async def drop_part_tasks(self, part_job_id: str, indices: Sequence[int]) -> list[TaskRecord]:
        """Delete a part's tasks at ``indices`` not done here (its peer withdrew them)."""
        rows = await self._conn.fetch(DROP_PART_TASKS, part_job_id, list(indices))
        return [task_from_row(r) for r in rows]

    async def tasks(self, job_id: str) -> list[TaskRecord]:
        return [task_from_row(r) for r in await self._conn.fetch(JOB_TASKS, job_id)]

    async def set_job_frames(self, job_id: str, frames: str, count: int, *, at: float) -> None:
        """The job's frame spec after chunks were withdrawn from it."""
        await self._conn.execute(SET_JOB_FRAMES, job_id, frames, count, at)

    async def return_some_part_tasks(
        self, part_job_id: str, task_ids: Sequence[int], *, error: str
    ) -> list[TaskRecord]:
        """The split job's tasks ``task_ids`` held by the part back to waiting here."""
        rows = await self._conn.fetch(RETURN_SOME_PART_TASKS, part_job_id, list(task_ids), error)
        return [task_from_row(r) for r in rows]

    async def return_part_tasks(self, part_job_id: str, *, error: str) -> int:
        """The part's chunks not done back to waiting here; how many."""
        return await self._conn.execute(RETURN_PART_TASKS, part_job_id, error)
