"""The monitor's reads over either backend: a filtered page of jobs with their progress,
and one job's per-frame grid, each in a fixed number of statements whatever the size."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from . import page_queries as q
from .database import Database
from .records import JobRecord, JobState, TaskState
from .rows import decode_frames, job_from_row

PLACEMENT_KINDS = ("local", "forwarded", "accepted")
"""``local``: rendered here and submitted here; ``forwarded``: sent to a peer;
``accepted``: received from a peer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """Which jobs a page shows and in what order (``sort`` is a key of ``JOB_SORTS``)."""

    states: Collection[JobState] | None = None
    owner: str | None = None
    search: str | None = None
    """Part of the job's name or id, any case."""
    package: str | None = None
    placement: str | None = None
    """One of :data:`PLACEMENT_KINDS`, or a peer's name (forwarded to or accepted from it)."""
    sort: str = "-created"
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPage:
    jobs: list[JobRecord]
    total: int
    """Jobs matching the query, over all pages."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobProgress:
    """A job's tasks per state, stored frames and measured render time of its done tasks."""

    tasks: dict[TaskState, int]
    frames_done: int
    done_tasks_timed: int = 0
    busy_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GridTasks:
    """Every task of a job as the frame grid shows it, one list per column, in index order.

    Columns, not a record per task: a 10,000-task job is read and sent without
    10,000 objects in between.
    """

    index: list[int]
    frames: list[tuple[int, ...]]
    state: list[str]
    """TaskState values."""
    attempt: list[int]
    server_id: list[str | None]
    started_at: list[float | None]
    finished_at: list[float | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatestFrame:
    """A stored frame as the monitor's thumbnails need it."""

    frame: int
    rendered_at: float
    preview: bool
    """Whether the frame has a preview file (else the page shows the frame itself)."""


def _time(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filter_args(query: JobQuery) -> tuple[object, ...]:
    states = [s.value for s in (JobState if query.states is None else query.states)]
    kind = query.placement if query.placement in PLACEMENT_KINDS else None
    peer = query.placement if query.placement and kind is None else None
    # The profile column is compact JSON with sorted keys (rows._json), so this matches
    # exactly the package name, not a prefix of another one.
    package = _like(f'"package":"{query.package}"') if query.package else None
    search = _like(query.search.lower()) if query.search else None
    return (states, query.owner, search, package, kind, peer)


class JobPages:
    """Mixed into the SQL store: the reads behind the web monitor's jobs view and grid."""

    _db: Database

    async def job_page(self, query: JobQuery) -> JobPage:
        if query.sort not in q.JOB_SORTS:
            raise ValueError(f"unknown sort {query.sort!r}")
        if query.states is not None and not query.states:
            return JobPage(jobs=[], total=0)
        args = _filter_args(query)
        rows = await self._db.fetch(
            q.LIST_JOBS_SORTED[query.sort], *args, query.limit, query.offset
        )
        total = int(await self._db.fetchval(q.COUNT_JOBS_FILTERED, *args) or 0)
        return JobPage(jobs=[job_from_row(row) for row in rows], total=total)

    async def jobs_progress(self, job_ids: Sequence[str]) -> dict[str, JobProgress]:
        """Progress of each of ``job_ids`` in three reads (jobs with no tasks count zeros)."""
        ids = list(job_ids)
        counts: dict[str, dict[TaskState, int]] = {j: dict.fromkeys(TaskState, 0) for j in ids}
        for row in await self._db.fetch(q.TASK_COUNTS_OF_JOBS, ids):
            counts[row["job_id"]][TaskState(row["state"])] = int(row["n"])
        done = {
            row["job_id"]: int(row["n"]) for row in await self._db.fetch(q.FRAMES_DONE_OF_JOBS, ids)
        }
        times = {
            row["job_id"]: (int(row["n"]), float(row["busy"] or 0.0))
            for row in await self._db.fetch(q.TASK_TIMES_OF_JOBS, ids)
        }
        return {
            j: JobProgress(
                tasks=counts[j],
                frames_done=done.get(j, 0),
                done_tasks_timed=times.get(j, (0, 0.0))[0],
                busy_s=times.get(j, (0, 0.0))[1],
            )
            for j in ids
        }

    async def grid_tasks(self, job_id: str) -> GridTasks:
        """Every task of the job in index order, only the columns the grid shows."""
        rows = await self._db.fetch(q.GRID_TASKS, job_id)
        return GridTasks(
            index=[row["idx"] for row in rows],
            frames=[decode_frames(row["frames"]) for row in rows],
            state=[row["state"] for row in rows],
            attempt=[row["attempt"] for row in rows],
            server_id=[row["server_id"] for row in rows],
            started_at=[_time(row["started_at"]) for row in rows],
            finished_at=[_time(row["finished_at"]) for row in rows],
        )

    async def latest_frames(self, job_id: str, limit: int) -> list[LatestFrame]:
        """The job's most recently stored frames, newest first."""
        rows = await self._db.fetch(q.LATEST_FRAMES, job_id, limit)
        return [
            LatestFrame(
                frame=row["frame"],
                rendered_at=float(row["rendered_at"]),
                preview=bool(row["preview"]),
            )
            for row in rows
        ]

    async def stored_frame_numbers(self, job_id: str) -> set[int]:
        return {row["frame"] for row in await self._db.fetch(q.STORED_FRAME_NUMBERS, job_id)}

    async def server_busy(self, *, now: float, window_s: float) -> dict[str, float]:
        """Seconds each server spent rendering in the last ``window_s`` (all slots added)."""
        rows = await self._db.fetch(q.SERVER_BUSY_SINCE, now, now - window_s)
        return {row["server_id"]: max(float(row["busy"] or 0.0), 0.0) for row in rows}

    async def last_server_errors(self) -> dict[str, tuple[str, float]]:
        """Each server's most recent task failure among the latest ones: (error, at)."""
        latest: dict[str, tuple[str, float]] = {}
        for row in await self._db.fetch(q.RECENT_FAILURES):
            latest.setdefault(row["server_id"], (row["error"], float(row["at"])))
        return latest

    async def peer_job_counts(self) -> dict[str, tuple[int, int]]:
        """Per peer: jobs forwarded to it and jobs accepted from it."""
        counts: dict[str, tuple[int, int]] = {}
        for row in await self._db.fetch(q.FORWARDED_PER_PEER):
            counts[row["peer"]] = (int(row["n"]), 0)
        for row in await self._db.fetch(q.ACCEPTED_PER_PEER):
            counts[row["peer"]] = (counts.get(row["peer"], (0, 0))[0], int(row["n"]))
        return counts
