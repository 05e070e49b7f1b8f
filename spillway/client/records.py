"""Typed records of the client API: what the agent's JSON answers hold.

Each record is frozen and built with ``from_json`` from one object of an
``/api/v1`` answer. Fields the agent may leave out get defaults (an older agent
still decodes), and ``raw`` keeps the whole object as sent, so fields added to
the API later are reachable before a record names them.

:class:`Job` and :class:`Progress` are defined here; a job's detail (tasks,
frames) in :mod:`spillway.client.detail_records` and the farm's servers and peers
in :mod:`spillway.client.farm_records`, each loaded when one of its names is first
used: creating a frozen dataclass costs about 1 ms at import, and ``spillway
submit`` or ``jobs`` need only the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spillway.core.records import JobState as JobState  # one enum each: the core's, re-exported
from spillway.core.records import TaskState as TaskState

if TYPE_CHECKING:
    from spillway.client.detail_records import Frame, FrameOutput, JobDetail, Task, TasksPage
    from spillway.client.farm_records import Health, Peer, Server, ServerMatch

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


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


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
            remote_job_id=opt_str(data.get("remote_job_id")),
            split=bool(data.get("split", False)),
            part_of=opt_str(data.get("part_of")),
            created_at=float(data.get("created_at") or 0.0),
            finished_at=opt_float(data.get("finished_at")),
            error=str(data.get("error") or ""),
            why_waiting=opt_str(data.get("why_waiting")),
            storage_dir=opt_str(data.get("storage_dir")),
            progress=Progress.from_json(data.get("progress")),
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        return self.state.finished


_LAZY = {
    **dict.fromkeys(("Frame", "FrameOutput", "JobDetail", "Task", "TasksPage"), "detail_records"),
    **dict.fromkeys(("Health", "Peer", "Server", "ServerMatch"), "farm_records"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spillway.client.records' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"spillway.client.{module}"), name)
