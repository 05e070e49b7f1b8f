"""Reading the dispatcher's view of the farm in one consistent snapshot."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from scheduler.dependencies import DependencyKind, Upstream

from . import queries as q
from .database import Connection
from .dependencies import DependencyStatements
from .records import LOCAL, DispatchSnapshot, JobRecord, RunningSummary, TaskRecord
from .rows import job_from_row, task_from_row


async def read_snapshot(conn: Connection, *, per_job_limit: int) -> DispatchSnapshot:
    """Dispatchable local jobs, their first waiting tasks, and what is running and failing.

    One query per job for the waiting tasks keeps each read on the
    ``(job_id, state, idx)`` index, however many tasks a job has.
    """
    jobs = [job_from_row(row) for row in await conn.fetch(q.DISPATCHABLE_JOBS, LOCAL)]
    waiting: list[TaskRecord] = []
    if per_job_limit > 0:
        for job in jobs:
            rows = await conn.fetch(q.WAITING_TASKS, job.id, per_job_limit)
            waiting.extend(task_from_row(row) for row in rows)
    upstreams = await DependencyStatements(conn).upstreams([job.id for job in jobs])
    return DispatchSnapshot(
        jobs=tuple(jobs),
        waiting=tuple(waiting),
        running=await _running(conn, jobs),
        server_failures=await _server_failures(conn, jobs),
        failed_on=await _failed_on(conn, waiting),
        guest_running={
            str(row["site"]): int(row["n"]) for row in await conn.fetch(q.GUEST_RUNNING)
        },
        upstreams=upstreams,
        upstream_frames=await _upstream_frames(conn, upstreams, waiting),
    )


async def _running(conn: Connection, jobs: Sequence[JobRecord]) -> dict[str, RunningSummary]:
    """Active tasks per job, for every job that has some (and zero for each snapshot job).

    The servers they run on are read only for the snapshot's jobs with a
    ``max_servers`` limit, the one use of them: one row per busy server each
    round was most of a round's cost on a farm of thousands of servers.
    """
    tasks: dict[str, int] = {job.id: 0 for job in jobs}
    for row in await conn.fetch(q.RUNNING_COUNTS):
        tasks[row["job_id"]] = int(row["n"])  # a SUM: numeric on PostgreSQL
    servers: defaultdict[str, set[str]] = defaultdict(set)
    limited = [job.id for job in jobs if job.profile.max_servers]
    if limited:
        for row in await conn.fetch(q.RUNNING_SERVERS, limited):
            servers[row["job_id"]].add(row["server_id"])
    return {
        job_id: RunningSummary(tasks=count, servers=frozenset(servers.get(job_id, ())))
        for job_id, count in tasks.items()
    }


async def _server_failures(
    conn: Connection, jobs: Sequence[JobRecord]
) -> dict[str, dict[str, int]]:
    failures: dict[str, dict[str, int]] = {job.id: {} for job in jobs}
    if jobs:
        for row in await conn.fetch(q.FAILURES_BY_JOB, [job.id for job in jobs]):
            failures[row["job_id"]][row["server_id"]] = row["n"]
    return failures


async def _failed_on(conn: Connection, waiting: Sequence[TaskRecord]) -> dict[int, frozenset[str]]:
    """Servers where an earlier attempt of each waiting task failed (empty for most)."""
    servers: dict[int, set[str]] = {task.id: set() for task in waiting}
    if any(task.failures for task in waiting):
        ids = [task.id for task in waiting if task.failures]
        for row in await conn.fetch(q.FAILED_ON, ids):
            servers[row["task_id"]].add(row["server_id"])
    return {task_id: frozenset(names) for task_id, names in servers.items()}


async def _upstream_frames(
    conn: Connection,
    upstreams: Mapping[str, Sequence[Upstream]],
    waiting: Sequence[TaskRecord],
) -> dict[str, dict[str, frozenset[int]]]:
    """For each frame dependency: which frames of the job's waiting tasks its upstream stored."""
    wanted: dict[str, set[int]] = {}
    for task in waiting:
        if task.job_id in upstreams:
            wanted.setdefault(task.job_id, set()).update(task.frames)
    deps = DependencyStatements(conn)
    found: dict[str, dict[str, frozenset[int]]] = {}
    for job_id, ups in upstreams.items():
        for upstream in ups:
            if upstream.kind is DependencyKind.FRAMES and job_id in wanted:
                frames = sorted(wanted[job_id])
                stored = await deps.stored_frames(upstream.job_id, frames)
                found.setdefault(job_id, {})[upstream.job_id] = stored
    return found
