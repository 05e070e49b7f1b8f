"""The store interface: everything the site agent persists goes through it.

Two implementations satisfy it, SQLite (embedded default) and PostgreSQL; one
contract test suite runs against both. Every task state change is fenced on
``(id, attempt, server_id)`` so a late report from a lost server changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from .database import Database
from .placement import PlacementStore
from .records import (
    CompletionReport,
    DispatchSnapshot,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    ServerRecord,
    ServerStatus,
    StartedReport,
    TaskClaim,
    TaskOutcome,
    TaskRecord,
    TaskState,
)


class StoreError(Exception):
    """Base for resource database errors."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or opened; the message says which and how to fix it."""


class ConflictError(StoreError):
    """A row with the same identity already exists."""


class NotFoundError(StoreError):
    """The job, task or server does not exist."""


class Store(PlacementStore, Protocol):
    """Persistence for one site. All times are epoch seconds supplied by the caller."""

    @property
    def database(self) -> Database:
        """The adapter underneath, for a package that keeps its own tables in the same database."""

    async def close(self) -> None: ...

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

    # --- jobs -----------------------------------------------------------
    async def create_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> None:
        """Insert the job and one waiting task per chunk (index = position) in one transaction."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_jobs(
        self, *, states: Collection[JobState] | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Newest first."""

    async def update_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Collection[JobState] | None = None,
        error: str = "",
    ) -> bool:
        """Set the state if the current one is in ``expected`` (any when None); sets finished_at for finished states."""

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

    async def assign_tasks(self, claims: Sequence[TaskClaim], *, at: float) -> list[TaskRecord]:
        """Claim waiting tasks in one transaction; returns those claimed (state dispatched).

        Jobs of claimed tasks in state queued move to running.
        """

    async def mark_task_running(
        self, task_id: int, attempt: int, server_id: str, *, at: float, lease_expires_at: float
    ) -> bool: ...

    async def append_task_log(
        self, task_id: int, attempt: int, server_id: str, text: str, *, max_chars: int = 16000
    ) -> bool:
        """Append to the task's log tail, keeping the last ``max_chars`` characters."""

    async def record_frames(self, frames: Sequence[FrameRecord]) -> None:
        """Insert or replace frame outputs (one row per job and frame)."""

    async def complete_task(
        self, task_id: int, attempt: int, server_id: str, *, at: float, log_tail: str | None = None
    ) -> TaskOutcome | None:
        """Fenced. Marks the task done; finishes the job when nothing is left waiting or active
        (done, or failed if any task failed). None when the fence did not match."""

    async def apply_reports(
        self,
        started: Sequence[StartedReport],
        frames: Sequence[FrameRecord],
        completions: Sequence[CompletionReport],
        *,
        at: float,
        logs: Sequence[LogReport] = (),
    ) -> list[TaskOutcome | None]:
        """Apply many reports in one transaction: fenced starts and log appends, frame
        upserts, fenced completions.

        Returns one outcome per completion, None where the fence did not match (a
        repeated completion of a task in the same batch never matches). Jobs left
        with nothing waiting or active finish at ``at``; the outcome of the job's last
        completion in the batch says so. All or nothing: on an error nothing is applied.
        """

    async def fail_task(
        self,
        task_id: int,
        attempt: int,
        server_id: str,
        *,
        error: str,
        at: float,
        retry: bool,
        log_tail: str | None = None,
    ) -> TaskOutcome | None:
        """Fenced. Counts a failure (recorded per server), then waiting if ``retry`` else failed."""

    async def requeue_server_tasks(self, server_id: str, *, at: float) -> list[TaskRecord]:
        """Active tasks on the server go back to waiting (attempt kept, no failure counted)."""

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        """Active tasks whose lease expired before ``now``."""

    async def active_tasks(
        self, *, server_id: str | None = None, job_id: str | None = None
    ) -> list[TaskRecord]: ...

    async def active_task_servers(self) -> set[str]:
        """Ids of the servers holding at least one active task (one cheap indexed read)."""

    async def cancel_job(self, job_id: str, *, at: float) -> list[TaskRecord]:
        """Job to cancelled; its active tasks go back to waiting and are returned so the agent can stop them."""

    async def retry_job(self, job_id: str, *, at: float) -> int:
        """Failed tasks back to waiting with their failure count reset; job back to queued. Returns the count."""

    async def server_failures(self, job_id: str) -> dict[str, int]: ...

    # --- frames ---------------------------------------------------------
    async def list_frames(self, job_id: str) -> list[FrameRecord]: ...

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None: ...

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]:
        """Which of ``frames`` are stored as uploaded by ``task_id`` (one indexed read)."""
