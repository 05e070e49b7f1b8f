"""Typed records of a job's detail: its tasks, its frames and their files, and the page
of tasks an answer holds (``GET /api/v1/jobs/{id}``, ``/frames``). Reached through
:mod:`spillway.client.records`, which loads this module on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

from spillway.client.records import Job, Json, TaskState, opt_float, opt_int, opt_str

__all__ = ["Frame", "FrameOutput", "JobDetail", "Task", "TasksPage"]


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
            server=opt_str(data.get("server")),
            dispatched_at=opt_float(data.get("dispatched_at")),
            started_at=opt_float(data.get("started_at")),
            finished_at=opt_float(data.get("finished_at")),
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
            url=opt_str(data.get("url")),
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
            name=opt_str(data.get("name")),
            sha256=opt_str(data.get("sha256")),
            size=opt_int(data.get("size")),
            state=str(data.get("state", "done")),
            server=opt_str(data.get("server")),
            task=opt_int(data.get("task")),
            url=opt_str(data.get("url")),
            files=tuple(FrameOutput.from_json(f) for f in data.get("files") or ()),
            preview_url=opt_str(data.get("preview_url")),
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
            next_offset=opt_int(data.get("next_offset")),
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
