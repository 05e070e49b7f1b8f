"""The store interface: everything the site agent persists goes through it.

Two implementations satisfy it, SQLite (embedded default) and PostgreSQL; one
contract test suite runs against both. Every task state change is fenced on
``(id, attempt, server_id)`` so a late report from a lost server changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from scheduler.dependencies import DependencyKind, Upstream

from .database import Connection, Database
from .job_pages import GridTasks, JobPage, JobProgress, JobQuery, LatestFrame
from .records import (
    ClaimCandidate,
    CompletionReport,
    DispatchSnapshot,
    FailedSummary,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    RelayedTask,
    ServerRecord,
    ServerStatus,
    StartedReport,
    TaskClaim,
    TaskRecord,
    TaskState,
)
from .split import SplitStatements
from .task_logs import AttemptEnd, LogChunk
from .usage import UsageEntry


class StoreError(Exception):
    """Base for resource database errors."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened; the message says which and how to fix it."""


class StoreConflictError(StoreError):
    """A row with the same identity already exists."""


class StoreNotFoundError(StoreError):
    """The job, task or server does not exist."""


class DependencyRows(Protocol):
    """Job dependency statements (see :mod:`site_agent.store.dependencies`)."""

    async def add(self, job_id: str, upstreams: Sequence[tuple[str, DependencyKind]]) -> None:
        """``job_id`` waits for each (upstream id, kind)."""

    async def upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        """Per job with dependencies among ``job_ids``: its upstreams as they are now."""

    async def dependents(self, upstream_id: str) -> list[tuple[str, DependencyKind]]:
        """The unfinished jobs waiting for ``upstream_id``, with the kind of each edge."""

    async def edges_from(self, job_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per job among ``job_ids``: the jobs it waits for."""

    async def stored_frames(self, job_id: str, frames: Sequence[int]) -> frozenset[int]:
        """Which of ``frames`` the job has stored."""


class JobTransaction(Protocol):
    """Statements over jobs, tasks, frames and failures inside one open transaction.

    Lock order, to keep PostgreSQL free of deadlocks: lock a job (``lock_job``,
    ``lock_jobs`` in id order) before touching its tasks. Task updates are fenced
    in the SQL: a statement whose fence does not match changes nothing.
    """

    @property
    def connection(self) -> Connection:
        """The connection underneath, for another package's statements in the same transaction."""

    @property
    def dependencies(self) -> DependencyRows:
        """Job dependency statements in this transaction."""

    @property
    def split(self) -> SplitStatements:
        """Split-job statements in this transaction."""

    async def insert_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> int:
        """Insert the job and one waiting task per chunk; StoreConflictError if the id exists."""

    async def lock_job(self, job_id: str) -> JobState | None:
        """Take the job's row lock; its state, or None if there is no such job."""

    async def lock_jobs(self, job_ids: Sequence[str]) -> None:
        """Take the row locks of these jobs (pass them in id order); nothing to take where the
        transaction already excludes every other writer (SQLite)."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]: ...

    async def set_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Collection[JobState],
        error: str = "",
    ) -> bool:
        """Set the state if the current one is in ``expected``; sets finished_at for finished states."""

    async def set_job_priority(self, job_id: str, priority: int, *, at: float) -> None: ...

    async def start_jobs(self, job_ids: Sequence[str], *, at: float) -> None:
        """Queued jobs among these to running."""

    async def finish_job(self, job_id: str, state: JobState, *, at: float, error: str) -> None:
        """An unfinished job to ``state`` (done or failed)."""

    async def cancel_job(self, job_id: str, *, at: float) -> None:
        """An unfinished job to cancelled."""

    async def requeue_job(self, job_id: str, *, at: float) -> None:
        """A failed or cancelled job back to queued, its error cleared."""

    async def replace_job(
        self,
        job_id: str,
        *,
        old_epoch: int,
        new_epoch: int,
        placement: str,
        reason: str,
        at: float,
    ) -> bool:
        """New placement and epoch, fenced on ``old_epoch`` and an unfinished job."""

    async def has_open_tasks(self, job_id: str) -> bool:
        """Whether any task of the job is waiting or active."""

    async def failed_summary(self, job_id: str) -> FailedSummary: ...

    async def task_job(self, task_id: int) -> str | None: ...

    async def get_tasks(self, task_ids: Sequence[int]) -> dict[int, TaskRecord]: ...

    async def claim_candidates(self, task_ids: Sequence[int]) -> dict[int, ClaimCandidate]: ...

    async def claim_tasks(self, claims: Sequence[TaskClaim], *, at: float) -> None:
        """Fenced: each task to dispatched only while waiting at ``attempt - 1``."""

    async def mark_running(self, reports: Sequence[StartedReport]) -> None:
        """Fenced starts (pass them in task id order)."""

    async def append_logs(self, reports: Sequence[LogReport]) -> None:
        """Fenced log appends in the given order: the tail keeps the last ``max_chars``,
        the attempt's full log (capped) the rest."""

    async def upsert_frames(self, frames: Sequence[FrameRecord]) -> None:
        """Insert or replace frame outputs; StoreNotFoundError if a job does not exist."""

    async def complete_tasks(self, reports: Sequence[CompletionReport]) -> None:
        """Fenced completions (no result: read the tasks back to see which held)."""

    async def fail_task(
        self,
        task_id: int,
        attempt: int,
        server_id: str,
        *,
        error: str,
        log_tail: str | None,
        retry: bool,
        at: float,
    ) -> TaskRecord | None:
        """Fenced: to waiting (``retry``) or failed, failure counted; None if the fence failed."""

    async def record_failure(
        self, task: TaskRecord, server_id: str, attempt: int, error: str, *, at: float
    ) -> None:
        """Remember that the attempt failed on the server (for the bad-server rule)."""

    async def active_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def requeue_job_tasks(self, job_id: str) -> None:
        """The job's active tasks back to waiting (attempt kept, no failure counted)."""

    async def requeue_server_tasks(self, server_id: str) -> list[TaskRecord]:
        """The server's active tasks back to waiting; returns them as they are now."""

    async def unqueue_task(self, task_id: int, attempt: int, server_id: str) -> TaskRecord | None:
        """Fenced, and only while the attempt is dispatched (not started): back to waiting,
        attempt and error kept, no failure counted; None if stale or started."""

    async def hand_back_task(
        self, task_id: int, attempt: int, server_id: str, *, reason: str
    ) -> TaskRecord | None:
        """Fenced: the attempt back to waiting with ``reason`` as its error, no failure
        counted (the agent, not the server, could not take its output); None if stale."""

    async def last_failure(self, job_id: str) -> tuple[str, str]:
        """The error of the job's most recent failed attempt and the log tail of a task
        that failed (each "" if none)."""

    async def set_job_notice(self, job_id: str, notice: str, *, at: float) -> None:
        """Show ``notice`` as an unfinished job's error (a problem it waits out)."""

    async def reset_failed_tasks(self, job_id: str) -> int:
        """Failed tasks back to waiting with failure counts and history forgotten; how many."""

    async def end_waiting_tasks(
        self, job_id: str, state: TaskState, *, at: float, error: str
    ) -> None:
        """The job's waiting tasks to ``state`` (a forwarded job ended at its peer)."""

    async def relay_tasks(self, job_id: str, tasks: Sequence[RelayedTask]) -> None:
        """Set a forwarded job's tasks (by index) as its peer reports them; done ones stay."""

    async def reset_relayed_tasks(self, job_id: str) -> None:
        """A re-placed job's tasks not done here back to waiting, attempt 0."""

    async def rerender_tasks(self, job_id: str, task_ids: Sequence[int]) -> int:
        """Done or failed tasks back to waiting, failures forgotten, their stored frames
        forgotten (files stay until replaced); how many tasks."""

    async def record_attempt_usage(
        self, ended: Sequence[tuple[TaskRecord, float]], *, failed: bool
    ) -> None:
        """Ledger rows of attempts that ended at the given times (tasks as they held the slot)."""

    async def record_usage(self, entries: Sequence[UsageEntry]) -> None:
        """Ledger rows as given (a forwarded job's figures from its peer)."""


class Store(Protocol):
    """Persistence for one site. All times are epoch seconds supplied by the caller."""

    @property
    def database(self) -> Database:
        """The adapter underneath, for a package that keeps its own tables in the same database."""

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[JobTransaction]:
        """One write transaction: commit on normal exit, roll back on any exception."""

    # --- render servers -------------------------------------------------
    async def upsert_server(self, server: ServerRecord) -> ServerRecord:
        """Insert or update by name; an existing server keeps its id, and stays disabled if it was."""

    async def set_server_status(
        self, server_id: str, status: ServerStatus, *, at: float
    ) -> None: ...

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None:
        """Batch update of ``last_heartbeat`` for (server_id, at) pairs."""

    async def list_servers(self) -> list[ServerRecord]: ...

    async def get_server(self, server_id: str) -> ServerRecord | None: ...

    async def get_server_by_name(self, name: str) -> ServerRecord | None: ...

    async def delete_server(self, server_id: str) -> bool:
        """Forget a server row (its task and failure history stays); False if it did not exist."""

    @property
    def split(self) -> SplitStatements:
        """Reads of split jobs and their parts."""

    # --- jobs -----------------------------------------------------------
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def job_state_counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (states with none are left out)."""
        ...

    async def get_job_by_origin_id(self, origin_job_id: str) -> JobRecord | None:
        """The job accepted from a peer under that peer's job id (the newest), if any."""

    async def list_jobs(
        self, *, states: Collection[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Newest first."""

    async def set_job_placement(
        self,
        job_id: str,
        *,
        placement: str,
        reason: str,
        epoch: int,
        remote_job_id: str | None,
        at: float,
    ) -> None: ...

    async def task_counts(self, job_id: str) -> dict[TaskState, int]: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def get_task(self, task_id: int) -> TaskRecord | None: ...

    # --- dispatch -------------------------------------------------------
    async def dispatch_snapshot(self, *, per_job_limit: int) -> DispatchSnapshot: ...

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        """Active tasks whose lease expired before ``now``."""

    async def active_tasks(
        self, *, server_id: str | None = None, job_id: str | None = None
    ) -> list[TaskRecord]: ...

    async def active_task_servers(self) -> set[str]:
        """Ids of the servers holding at least one active task (one cheap indexed read)."""

    async def server_failures(self, job_id: str) -> dict[str, int]: ...

    # --- placement inputs -------------------------------------------------
    async def local_frames_waiting(self) -> int:
        """Frames of locally placed jobs still waiting for a server."""

    async def seconds_per_frame(self) -> float | None:
        """Average render time per frame of the most recent tasks, None before any."""

    # --- frames ---------------------------------------------------------
    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        """Every stored frame of the job with all its files, in frame order."""

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        """The frame with all its files, None when not stored."""

    async def frame_name_owners(self, job_id: str, names: Sequence[str]) -> dict[str, int]:
        """Which frame holds a file of each of these names in the job (names held by none left out)."""

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]:
        """Which of ``frames`` are stored as uploaded by ``task_id`` (one indexed read)."""

    async def list_tasks_page(
        self, job_id: str, *, offset: int, limit: int, states: Collection[TaskState] | None = None
    ) -> list[TaskRecord]:
        """At most ``limit`` tasks in index order from ``offset``, only in ``states`` if given."""

    async def count_frames(self, job_id: str) -> int:
        """How many frames of the job are stored (one indexed count)."""

    async def frames_of(self, job_id: str, frames: Sequence[int]) -> list[FrameRecord]:
        """The stored outputs of just these frames, in frame order."""

    # --- task logs (written with the reports, see site_agent.store.task_logs) ---
    async def task_log_size(self, task_id: int, attempt: int) -> int:
        """Bytes of output received in the attempt (0 if none)."""

    async def task_log_ends(self, task_id: int) -> dict[int, AttemptEnd]:
        """How the task's attempts ended (those that completed or failed)."""

    async def task_log_chunks(self, task_id: int, attempt: int, *, after: int) -> list[LogChunk]:
        """The attempt's stored log text that ends after byte ``after``, in order."""

    # --- dependencies -----------------------------------------------------
    async def job_upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        """Per job with dependencies among ``job_ids``: the jobs it waits for, as they are now."""

    # --- the web monitor (job_pages.py) -----------------------------------
    async def job_page(self, query: JobQuery) -> JobPage:
        """Jobs matching ``query`` in its order, one page, with the total that match."""

    async def jobs_progress(self, job_ids: Sequence[str]) -> dict[str, JobProgress]: ...

    async def grid_tasks(self, job_id: str) -> GridTasks: ...

    async def stored_frame_numbers(self, job_id: str) -> set[int]: ...

    async def latest_frames(self, job_id: str, limit: int) -> list[LatestFrame]: ...

    async def server_busy(self, *, now: float, window_s: float) -> dict[str, float]: ...

    async def last_server_errors(self) -> dict[str, tuple[str, float]]: ...

    async def peer_job_counts(self) -> dict[str, tuple[int, int]]: ...
