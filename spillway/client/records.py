"""Typed records of the client API: what the agent's JSON answers hold.

Each record is frozen and built with ``from_json`` from one object of an
``/api/v1`` answer. Fields the agent may leave out get defaults (an older agent
still decodes), and ``raw`` keeps the whole object as sent, so fields added to
the API later are reachable before a record names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spillway.core.records import JobState as JobState  # one enum each: the core's, re-exported
from spillway.core.records import TaskState as TaskState

__all__ = [
    "Frame",
    "FrameOutput",
    "Health",
    "Job",
    "JobDetail",
    "JobState",
    "Peer",
    "Progress",
    "Server",
    "ServerMatch",
    "Task",
    "TaskState",
    "TasksPage",
]

Json = Mapping[str, Any]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """``GET /health``: the site's name and the agent's version."""

    site: str
    version: str

    @classmethod
    def from_json(cls, data: Json) -> Health:
        return cls(site=str(data.get("site", "")), version=str(data.get("version", "")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """Frames rendered of all, and tasks per state."""

    frames_total: int = 0
    frames_done: int = 0
    tasks: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Json | None) -> Progress:
        data = data or {}
        return cls(
            frames_total=int(data.get("frames_total", 0)),
            frames_done=int(data.get("frames_done", 0)),
            tasks={str(k): int(v) for k, v in (data.get("tasks") or {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job: what it renders, where, and how far it is."""

    id: str
    name: str
    state: JobState
    owner: str = ""
    priority: int = 0
    frames: str = ""
    frame_count: int = 0
    chunk_size: int = 1
    requirement: str = ""
    placement: str = "local"
    placement_reason: str = ""
    remote_job_id: str | None = None
    split: bool = False
    """Rendered here and in parts at peers (``part_of`` names the job a part belongs to)."""
    part_of: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    error: str = ""
    why_waiting: str | None = None
    storage_dir: str | None = None
    progress: Progress = field(default_factory=Progress)
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Job:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            state=JobState(data.get("state", "queued")),
            owner=str(data.get("owner") or ""),
            priority=int(data.get("priority", 0)),
            frames=str(data.get("frames") or ""),
            frame_count=int(data.get("frame_count", 0)),
            chunk_size=int(data.get("chunk_size", 1)),
            requirement=str(data.get("requirement") or ""),
            placement=str(data.get("placement") or "local"),
            placement_reason=str(data.get("placement_reason") or ""),
            remote_job_id=_opt_str(data.get("remote_job_id")),
            split=bool(data.get("split", False)),
            part_of=_opt_str(data.get("part_of")),
            created_at=float(data.get("created_at") or 0.0),
            finished_at=_opt_float(data.get("finished_at")),
            error=str(data.get("error") or ""),
            why_waiting=_opt_str(data.get("why_waiting")),
            storage_dir=_opt_str(data.get("storage_dir")),
            progress=Progress.from_json(data.get("progress")),
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        return self.state.finished


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A chunk of consecutive frames of a job, and its current attempt."""

    id: int
    index: int
    frames: str
    state: TaskState
    attempt: int = 0
    failures: int = 0
    server: str | None = None
    dispatched_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""
    log_tail: str = ""
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Task:
        return cls(
            id=int(data.get("id", 0)),
            index=int(data.get("index", 0)),
            frames=str(data.get("frames", "")),
            state=TaskState(data.get("state", "waiting")),
            attempt=int(data.get("attempt", 0)),
            failures=int(data.get("failures", 0)),
            server=_opt_str(data.get("server")),
            dispatched_at=_opt_float(data.get("dispatched_at")),
            started_at=_opt_float(data.get("started_at")),
            finished_at=_opt_float(data.get("finished_at")),
            error=str(data.get("error") or ""),
            log_tail=str(data.get("log_tail") or ""),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameOutput:
    """One file of a rendered frame: ``kind`` is ``main`` (the frame's own file), ``extra``
    (another output: a second view, a pass) or ``preview`` (a small PNG, in ``.previews/``)."""

    name: str
    """Its name in the job folder: the renderer's file name, or ``.previews/<name>``."""
    kind: str
    sha256: str
    size: int
    url: str | None = None

    @classmethod
    def from_json(cls, data: Json) -> FrameOutput:
        return cls(
            name=str(data["name"]),
            kind=str(data.get("kind", "main")),
            sha256=str(data["sha256"]),
            size=int(data.get("size", 0)),
            url=_opt_str(data.get("url")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """One frame of a job: rendered (``sha256`` and ``size`` set) or still to come.

    From ``GET /jobs/{id}/frames`` every frame is rendered and has its ``url``, its
    ``files`` (main first; none from agents older than named outputs) and its
    ``preview_url`` (None without a preview); in a job's detail each frame carries
    its task's state, task id and server.
    """

    frame: int
    name: str | None = None
    sha256: str | None = None
    size: int | None = None
    state: str = "done"
    server: str | None = None
    task: int | None = None
    url: str | None = None
    files: tuple[FrameOutput, ...] = ()
    preview_url: str | None = None

    @classmethod
    def from_json(cls, data: Json) -> Frame:
        return cls(
            frame=int(data["frame"]),
            name=_opt_str(data.get("name")),
            sha256=_opt_str(data.get("sha256")),
            size=_opt_int(data.get("size")),
            state=str(data.get("state", "done")),
            server=_opt_str(data.get("server")),
            task=_opt_int(data.get("task")),
            url=_opt_str(data.get("url")),
            files=tuple(FrameOutput.from_json(f) for f in data.get("files") or ()),
            preview_url=_opt_str(data.get("preview_url")),
        )

    @property
    def rendered(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksPage:
    """Where a page of tasks lies: ``next_offset`` is None on the last page."""

    offset: int = 0
    limit: int = 0
    total: int = 0
    next_offset: int | None = None

    @classmethod
    def from_json(cls, data: Json | None) -> TasksPage:
        data = data or {}
        return cls(
            offset=int(data.get("offset", 0)),
            limit=int(data.get("limit", 0)),
            total=int(data.get("total", 0)),
            next_offset=_opt_int(data.get("next_offset")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDetail:
    """A job with one page of its tasks and those tasks' frames."""

    job: Job
    tasks: tuple[Task, ...] = ()
    frames: tuple[Frame, ...] = ()
    page: TasksPage = field(default_factory=TasksPage)
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> JobDetail:
        return cls(
            job=Job.from_json(data["job"]),
            tasks=tuple(Task.from_json(t) for t in data.get("tasks") or ()),
            frames=tuple(Frame.from_json(f) for f in data.get("frames") or ()),
            page=TasksPage.from_json(data.get("tasks_page")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerMatch:
    """Whether a server can render a given job, and if not why."""

    ok: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    """A render server with its hardware, packages and load."""

    id: str
    name: str
    status: str
    host: str = ""
    slots: int = 0
    free_slots: int = 0
    cores: int = 0
    memory_mb: int = 0
    gpus: tuple[str, ...] = ()
    packages: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    last_heartbeat: float | None = None
    match: ServerMatch | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Server:
        match = data.get("match")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            status=str(data.get("status", "")),
            host=str(data.get("host") or ""),
            slots=int(data.get("slots", 0)),
            free_slots=int(data.get("free_slots", 0)),
            cores=int(data.get("cores", 0)),
            memory_mb=int(data.get("memory_mb", 0)),
            gpus=tuple(str(g) for g in data.get("gpus") or ()),
            packages={str(k): str(v) for k, v in (data.get("packages") or {}).items()},
            tags=tuple(str(t) for t in data.get("tags") or ()),
            last_heartbeat=_opt_float(data.get("last_heartbeat")),
            match=None
            if match is None
            else ServerMatch(ok=bool(match.get("ok")), reasons=tuple(match.get("reasons") or ())),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """A federation peer site as this site sees it."""

    name: str
    url: str = ""
    state: str = ""
    forward: bool = False
    accept: bool = False
    last_seen: float | None = None
    last_error: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Json) -> Peer:
        return cls(
            name=str(data.get("name", "")),
            url=str(data.get("url") or ""),
            state=str(data.get("state") or ""),
            forward=bool(data.get("forward", False)),
            accept=bool(data.get("accept", False)),
            last_seen=_opt_float(data.get("last_seen")),
            last_error=_opt_str(data.get("last_error")),
            raw=dict(data),
        )
