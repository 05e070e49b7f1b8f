"""Typed records the store reads and writes.

Records are immutable snapshots of rows. JSON-valued columns (profile, manifest,
settings, hardware lists) are decoded here, once, so the rest of the agent never
sees raw rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.dependencies import Upstream
from scheduler.profile import JobProfile
from scheduler.profile import ServerStatus as ServerStatus  # one enum: the scheduler's, re-exported
from spillway.core.records import FileEntry, FileKind
from spillway.core.records import JobState as JobState  # one enum each: the core's, re-exported
from spillway.core.records import TaskState as TaskState

LOCAL = "local"
"""Placement value of a job rendered by this site's own servers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    id: str
    name: str
    owner: str
    origin_site: str
    priority: int
    profile: JobProfile
    frames: str
    """The frame spec as submitted, e.g. ``1-240x10``."""
    frame_count: int
    chunk_size: int
    scene: str
    """Path of the scene file relative to the job's asset root; also in ``manifest``."""
    manifest: tuple[FileEntry, ...]
    output_name: str
    """Frames are stored as ``<output_name>_<frame:04d>.<output_ext>``."""
    output_ext: str = "png"
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Render settings passed to the package adapter: width, height, ..."""
    state: JobState = JobState.QUEUED
    placement: str = LOCAL
    """``local`` or the name of the peer site the job was forwarded to."""
    placement_reason: str = ""
    placement_epoch: int = 0
    remote_job_id: str | None = None
    forward_allowed: bool = True
    origin_job_id: str | None = None
    """Set on a job accepted from a peer: the job's id at its origin site."""
    split: bool = False
    """Render here and send parts of the waiting chunks to peers with free capacity."""
    part_of: str | None = None
    """Set on a part of a split job: that job's id (the part holds some of its chunks)."""
    created_at: float
    updated_at: float
    finished_at: float | None = None
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRecord:
    id: int
    job_id: str
    index: int
    frames: tuple[int, ...]
    state: TaskState = TaskState.WAITING
    attempt: int = 0
    """Number of times this task has been dispatched; the fence for late reports."""
    failures: int = 0
    server_id: str | None = None
    lease_expires_at: float | None = None
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    log_tail: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameFile:
    """A file of a frame besides its main one: another output or its preview."""

    name: str
    """Path inside the job's storage folder (``shot_0001_R.exr``, ``.previews/shot_0001.exr.png``)."""
    sha256: str
    size: int
    kind: FileKind = FileKind.EXTRA


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayedTask:
    """A task of a forwarded job as its peer reports it, for the origin's own task row."""

    index: int
    state: TaskState
    attempt: int
    server_id: str | None
    """``<peer>/<server>`` (the render server at the peer), None while waiting."""
    started_at: float | None
    finished_at: float | None
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRecord:
    """A rendered frame: its main file (``name``, ``sha256``, ``size``) and its other files."""

    job_id: str
    frame: int
    task_id: int | None
    name: str
    """File name of the main file inside the job's storage folder."""
    sha256: str
    size: int
    server_id: str | None
    rendered_at: float
    files: tuple[FrameFile, ...] = ()
    """The frame's other files (extras, preview), by name; recording a frame replaces them."""

    @property
    def preview(self) -> FrameFile | None:
        return next((f for f in self.files if f.kind == FileKind.PREVIEW), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerRecord:
    id: str
    name: str
    host: str
    cores: int
    memory_mb: int
    gpus: tuple[str, ...] = ()
    os: str = ""
    cpu_model: str = ""
    packages: Mapping[str, str] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    slots: int = 1
    status: ServerStatus = ServerStatus.OFFLINE
    last_heartbeat: float | None = None
    registered_at: float = 0.0
    key_hash: str = ""
    """sha256 (hex) of the server's own secret key; empty until it enrolled with one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskClaim:
    """A planned assignment, claimed in the store only if the task is still waiting."""

    task_id: int
    job_id: str
    """The task's job, locked before the claim (a claim naming another job than the task's loses)."""
    attempt: int
    """The new attempt number; the claim succeeds only if the task's attempt is ``attempt - 1``."""
    server_id: str
    lease_expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningSummary:
    tasks: int
    servers: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchSnapshot:
    """Everything the dispatcher needs for one planning round, read in one go."""

    jobs: tuple[JobRecord, ...]
    """Jobs placed locally, in state queued or running, with at least one waiting task."""
    waiting: tuple[TaskRecord, ...]
    """Up to ``per_job_limit`` waiting tasks of each job, in index order."""
    running: Mapping[str, RunningSummary]
    """Per job id: active (dispatched or running) task count, and the servers they are on
    for the snapshot's jobs whose profile sets ``max_servers`` (empty for the others)."""
    server_failures: Mapping[str, Mapping[str, int]]
    """Per job id: failure count per server id."""
    failed_on: Mapping[int, frozenset[str]]
    """Per waiting task id: servers where an earlier attempt failed."""
    guest_running: Mapping[str, int] = field(default_factory=dict)
    """Per peer site: active tasks of the jobs accepted from it."""
    upstreams: Mapping[str, tuple[Upstream, ...]] = field(default_factory=dict)
    """Per job id with dependencies: the jobs it waits for, as they are now."""
    upstream_frames: Mapping[str, Mapping[str, frozenset[int]]] = field(default_factory=dict)
    """Per job id with frame dependencies: per upstream, which of the frames of the job's
    waiting tasks (in this snapshot) that upstream has stored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DependentsSettled:
    """What the end of a job did to the jobs waiting for it, in the same transaction."""

    released: tuple[str, ...] = ()
    """Jobs no longer held back by any job they wait for."""
    failed: tuple[str, ...] = ()
    """Jobs failed because a job they wait for failed (and theirs in turn)."""
    cancelled: tuple[tuple[JobRecord, tuple[TaskRecord, ...]], ...] = ()
    """Jobs cancelled because a job they wait for was cancelled, with the tasks they had active."""

    def __add__(self, other: DependentsSettled) -> DependentsSettled:
        return DependentsSettled(
            released=self.released + other.released,
            failed=self.failed + other.failed,
            cancelled=self.cancelled + other.cancelled,
        )

    def __bool__(self) -> bool:
        return bool(self.released or self.failed or self.cancelled)


NOTHING_SETTLED = DependentsSettled()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOutcome:
    """What a fenced task completion or failure changed."""

    task: TaskRecord
    job_state: JobState
    job_finished: bool
    """True when this change moved the job into done or failed."""
    settled: DependentsSettled = NOTHING_SETTLED
    """What finishing the job did to the jobs waiting for it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogReport:
    """Output lines a render server sent for a task attempt (appended fenced, in a batch)."""

    task_id: int
    attempt: int
    server_id: str
    text: str
    max_chars: int = 16000
    """The task's log tail keeps the last this many characters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedReport:
    """A render server said it started a task attempt (applied fenced, in a batch)."""

    task_id: int
    attempt: int
    server_id: str
    job_id: str
    """The task's job, so a batch can lock job rows before it touches tasks."""
    at: float
    lease_expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionReport:
    """A render server finished a task attempt with every frame uploaded (applied fenced)."""

    task_id: int
    attempt: int
    server_id: str
    job_id: str
    at: float
    log_tail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimCandidate:
    """A task as a claim sees it, read under its job's lock: the task and its job's state."""

    task_id: int
    job_id: str
    state: TaskState
    attempt: int
    job_state: JobState
    placement: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedSummary:
    """A job's failed tasks: how many, and the first one's index and error."""

    count: int
    first_index: int | None
    first_error: str
