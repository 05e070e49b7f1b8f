"""The store over either backend's adapter: reads, server rows, and transactions.

The SQL is in :mod:`site_agent.store.queries` and the backend differences in the
adapters. Job and task transitions are not made here: :meth:`SqlStore.transaction`
yields the fenced statements (:mod:`site_agent.store.statements`) and
:mod:`site_agent.lifecycle` composes them, one transaction per transition.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

from scheduler.dependencies import Upstream

from . import queries as q
from . import task_logs
from .base import Store, StoreConflictError, StoreNotFoundError
from .database import Database
from .dependencies import DependencyStatements
from .job_pages import JobPages
from .migrate import apply_migrations
from .records import (
    DispatchSnapshot,
    FrameFile,
    FrameRecord,
    JobRecord,
    JobState,
    ServerRecord,
    ServerStatus,
    TaskRecord,
    TaskState,
)
from .rows import (
    frame_file_from_row,
    frame_from_row,
    job_from_row,
    server_from_row,
    server_params,
    task_from_row,
)
from .snapshot import read_snapshot
from .split import SplitStatements
from .statements import SqlTransaction, job_not_found

log = logging.getLogger(__name__)


class SqlStore(JobPages):
    """The :class:`~site_agent.store.base.Store` on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, db: Database) -> SqlStore:
        """Bring the schema up to date, then serve; closes ``db`` if that fails."""
        try:
            applied = await apply_migrations(db)
        except BaseException:
            await db.close()
            raise
        if applied:
            log.info("%s schema migrated to version %d", db.dialect, applied[-1])
        return cls(db)

    @property
    def database(self) -> Database:
        """The adapter underneath (for tests and maintenance tools)."""
        return self._db

    async def close(self) -> None:
        await self._db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        async with self._db.transaction() as conn:
            yield SqlTransaction(conn)

    # --- render servers -------------------------------------------------
    async def upsert_server(self, server: ServerRecord) -> ServerRecord:
        try:
            row = await self._db.fetchrow(q.UPSERT_SERVER, *server_params(server))
        except StoreConflictError as exc:
            raise StoreConflictError(
                f"server id {server.id} is already registered under another name than "
                f"{server.name!r}; give each render server a unique name"
            ) from exc
        assert row is not None  # an upsert always returns its row
        return server_from_row(row)

    async def set_server_status(self, server_id: str, status: ServerStatus, *, at: float) -> None:
        if not await self._db.execute(q.SET_SERVER_STATUS, server_id, status.value, at):
            raise StoreNotFoundError(
                f"render server {server_id} is not registered; list servers with `spillway servers`"
            )

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None:
        # Servers heard from at the same moment (a connection worker's liveness batch) share
        # one statement: one index probe per server, not one statement per server.
        by_time: dict[float, list[str]] = {}
        for server_id, at in beats:
            by_time.setdefault(at, []).append(server_id)
        shared = [(ids, at) for at, ids in by_time.items() if len(ids) > 1]
        alone = [(ids[0], at) for at, ids in by_time.items() if len(ids) == 1]
        if not shared:
            if alone:
                await self._db.executemany(q.RECORD_HEARTBEAT, alone)
            return
        async with self._db.transaction() as conn:
            for ids, at in shared:
                await conn.execute(q.RECORD_HEARTBEATS_AT, ids, at)
            if alone:
                await conn.executemany(q.RECORD_HEARTBEAT, alone)

    async def list_servers(self) -> list[ServerRecord]:
        return [server_from_row(row) for row in await self._db.fetch(q.LIST_SERVERS)]

    async def get_server(self, server_id: str) -> ServerRecord | None:
        row = await self._db.fetchrow(q.GET_SERVER, server_id)
        return None if row is None else server_from_row(row)

    async def get_server_by_name(self, name: str) -> ServerRecord | None:
        row = await self._db.fetchrow(q.GET_SERVER_BY_NAME, name)
        return None if row is None else server_from_row(row)

    async def delete_server(self, server_id: str) -> bool:
        return bool(await self._db.execute(q.DELETE_SERVER, server_id))

    # --- jobs -----------------------------------------------------------
    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self._db.fetchrow(q.GET_JOB, job_id)
        return None if row is None else job_from_row(row)

    async def get_job_by_origin_id(self, origin_job_id: str) -> JobRecord | None:
        row = await self._db.fetchrow(q.GET_JOB_BY_ORIGIN_ID, origin_job_id)
        return None if row is None else job_from_row(row)

    async def list_jobs(
        self, *, states: Collection[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        if states is None:
            rows = await self._db.fetch(q.LIST_JOBS, limit)
        elif not states:
            return []
        else:
            rows = await self._db.fetch(q.LIST_JOBS_IN_STATES, [s.value for s in states], limit)
        return [job_from_row(row) for row in rows]

    async def job_state_counts(self) -> dict[JobState, int]:
        rows = await self._db.fetch(q.JOB_STATE_COUNTS)
        return {JobState(row["state"]): int(row["n"]) for row in rows}

    async def set_job_placement(
        self,
        job_id: str,
        *,
        placement: str,
        reason: str,
        epoch: int,
        remote_job_id: str | None,
        at: float,
    ) -> None:
        args = (job_id, placement, reason, epoch, remote_job_id, at)
        if not await self._db.execute(q.SET_JOB_PLACEMENT, *args):
            raise job_not_found(job_id)

    async def task_counts(self, job_id: str) -> dict[TaskState, int]:
        counts = dict.fromkeys(TaskState, 0)
        for row in await self._db.fetch(q.TASK_COUNTS, job_id):
            counts[TaskState(row["state"])] = row["n"]
        return counts

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return [task_from_row(row) for row in await self._db.fetch(q.LIST_TASKS, job_id)]

    async def get_task(self, task_id: int) -> TaskRecord | None:
        row = await self._db.fetchrow(q.GET_TASK, task_id)
        return None if row is None else task_from_row(row)

    # --- dispatch -------------------------------------------------------
    async def dispatch_snapshot(self, *, per_job_limit: int) -> DispatchSnapshot:
        async with self._db.transaction(readonly=True) as conn:
            return await read_snapshot(conn, per_job_limit=per_job_limit)

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        return [task_from_row(row) for row in await self._db.fetch(q.EXPIRED_TASKS, now)]

    async def active_tasks(
        self, *, server_id: str | None = None, job_id: str | None = None
    ) -> list[TaskRecord]:
        rows = await self._db.fetch(q.ACTIVE_TASKS, server_id, job_id)
        return [task_from_row(row) for row in rows]

    async def active_task_servers(self) -> set[str]:
        return {row["server_id"] for row in await self._db.fetch(q.ACTIVE_TASK_SERVERS)}

    async def server_failures(self, job_id: str) -> dict[str, int]:
        rows = await self._db.fetch(q.SERVER_FAILURES, job_id)
        return {row["server_id"]: row["n"] for row in rows}

    # --- placement inputs -------------------------------------------------
    async def local_frames_waiting(self) -> int:
        return int(await self._db.fetchval(q.LOCAL_FRAMES_WAITING) or 0)

    async def seconds_per_frame(self) -> float | None:
        value = await self._db.fetchval(q.RECENT_SECONDS_PER_FRAME)
        return None if value is None else float(value)

    # --- frames ---------------------------------------------------------
    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        files = await self._files_by_frame(q.LIST_FRAME_FILES, job_id)
        rows = await self._db.fetch(q.LIST_FRAMES, job_id)
        return [frame_from_row(row, files.get(row["frame"], ())) for row in rows]

    async def _files_by_frame(self, query: str, *args: Any) -> dict[int, list[FrameFile]]:
        files: dict[int, list[FrameFile]] = {}
        for row in await self._db.fetch(query, *args):
            files.setdefault(row["frame"], []).append(frame_file_from_row(row))
        return files

    async def frame_name_owners(self, job_id: str, names: Sequence[str]) -> dict[str, int]:
        """Which frame holds a file of each of these names in the job (names held by none left out)."""
        rows = await self._db.fetch(q.FRAME_NAME_OWNERS, job_id, list(names))
        return {row["name"]: row["frame"] for row in rows}

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]:
        """Which of ``frames`` are stored as uploaded by ``task_id`` (one indexed read)."""
        rows = await self._db.fetch(q.STORED_TASK_FRAMES, job_id, task_id, list(frames))
        return {row["frame"] for row in rows}

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        row = await self._db.fetchrow(q.GET_FRAME, job_id, frame)
        if row is None:
            return None
        files = await self._files_by_frame(q.FRAME_FILES_OF, job_id, [frame])
        return frame_from_row(row, files.get(frame, ()))

    async def list_tasks_page(
        self, job_id: str, *, offset: int, limit: int, states: Collection[TaskState] | None = None
    ) -> list[TaskRecord]:
        wanted = [s.value for s in (states or TaskState)]
        rows = await self._db.fetch(q.LIST_TASKS_PAGE, job_id, wanted, limit, offset)
        return [task_from_row(row) for row in rows]

    async def count_frames(self, job_id: str) -> int:
        return int(await self._db.fetchval(q.COUNT_FRAMES, job_id) or 0)

    async def frames_of(self, job_id: str, frames: Sequence[int]) -> list[FrameRecord]:
        rows = await self._db.fetch(q.FRAMES_OF, job_id, list(frames))
        files = await self._files_by_frame(q.FRAME_FILES_OF, job_id, list(frames))
        return [frame_from_row(row, files.get(row["frame"], ())) for row in rows]

    # --- task logs ------------------------------------------------------
    async def task_log_size(self, task_id: int, attempt: int) -> int:
        """Bytes of output received in the attempt (0 if none)."""
        return await task_logs.log_size(self._db, task_id, attempt)

    async def task_log_ends(self, task_id: int) -> dict[int, task_logs.AttemptEnd]:
        """How the task's attempts ended (those that completed or failed)."""
        return await task_logs.log_ends(self._db, task_id)

    async def task_log_chunks(
        self, task_id: int, attempt: int, *, after: int
    ) -> list[task_logs.LogChunk]:
        """The attempt's stored log text that ends after byte ``after``, in order."""
        return await task_logs.log_chunks(self._db, task_id, attempt, after)

    # --- dependencies -----------------------------------------------------
    async def job_upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        return await DependencyStatements(self._db).upstreams(job_ids)

    # --- split jobs ---------------------------------------------------------
    @property
    def split(self) -> SplitStatements:
        """Reads of split jobs and their parts (outside a transaction)."""
        return SplitStatements(self._db)


def _conforms(store: SqlStore) -> Store:
    return store  # mypy checks here that SqlStore satisfies the Store protocol
