"""JSON shapes of the client API (documented in docs/api.md and the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.dependencies import Upstream, satisfied
from scheduler.frames import format_frames
from scheduler.profile import Match, ServerView, explain

from .connections import ConnectionRegistry, record_view
from .store.records import FrameRecord, JobRecord, ServerRecord, TaskRecord, TaskState


def job_json(
    job: JobRecord,
    counts: Mapping[TaskState, int],
    *,
    frames_done: int,
    why_waiting: str | None,
    storage_dir: str,
) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "origin_site": job.origin_site,
        "priority": job.priority,
        "state": job.state.value,
        "frames": job.frames,
        "frame_count": job.frame_count,
        "chunk_size": job.chunk_size,
        "scene": job.scene,
        "manifest": [a.to_dict() for a in job.manifest],
        "profile": job.profile.to_dict(),
        "requirement": job.profile.requirement,
        "settings": dict(job.settings),
        "placement": job.placement,
        "placement_reason": job.placement_reason,
        "placement_epoch": job.placement_epoch,
        "remote_job_id": job.remote_job_id,
        "origin_job_id": job.origin_job_id,
        "forward_allowed": job.forward_allowed,
        "split": job.split,
        "part_of": job.part_of,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "progress": {
            "frames_total": job.frame_count,
            "frames_done": frames_done,
            "tasks": {s.value: counts.get(s, 0) for s in TaskState},
        },
        "why_waiting": why_waiting,
        "storage_dir": storage_dir,
    }


def upstream_json(upstream: Upstream) -> dict[str, Any]:
    """A job this job waits for: ``kind`` done (to be done) or end (to end however it ends)."""
    return {
        "job_id": upstream.job_id,
        "name": upstream.name,
        "kind": upstream.kind.value,
        "state": upstream.state,
        "frames_done": upstream.frames_done,
        "frame_count": upstream.frame_count,
        "met": satisfied(upstream),
    }


def task_json(
    task: TaskRecord, server_names: Mapping[str, str], *, peer: str | None = None
) -> dict[str, Any]:
    """A task; ``peer`` names the site rendering it when the job was forwarded (no local server)."""
    server = server_names.get(task.server_id or "", task.server_id) if task.server_id else peer
    return {
        "id": task.id,
        "index": task.index,
        "frames": format_frames(task.frames),
        "state": task.state.value,
        "attempt": task.attempt,
        "failures": task.failures,
        "server": server,
        "dispatched_at": task.dispatched_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "error": task.error,
        "log_tail": task.log_tail,
    }


def frames_json(
    tasks: Sequence[TaskRecord], frames: Sequence[FrameRecord], server_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per-frame state: a frame is done once its output is stored, else its task's state."""
    stored = {f.frame: f for f in frames}
    rows: list[dict[str, Any]] = []
    for task in tasks:
        for n in task.frames:
            out = stored.get(n)
            state = (
                TaskState.DONE.value if out and task.state == TaskState.DONE else task.state.value
            )
            server = out.server_id if out else task.server_id
            rows.append(
                {
                    "frame": n,
                    "state": state,
                    "server": server_names.get(server or "", server),
                    "task": task.id,
                    "sha256": out.sha256 if out else None,
                    "size": out.size if out else None,
                    "name": out.name if out else None,
                }
            )
    rows.sort(key=lambda r: r["frame"])
    return rows


def server_json(
    record: ServerRecord, view: ServerView, *, running_tasks: int, match_profile: Any = None
) -> dict[str, Any]:
    """A registered server; ``view`` is its live view, or :func:`offline_view` when not connected."""
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "host": record.host,
        "status": view.status,
        "slots": record.slots,
        "free_slots": view.free_slots,
        "running_tasks": running_tasks,
        "cores": record.cores,
        "memory_mb": record.memory_mb,
        "gpus": list(record.gpus),
        "os": record.os,
        "cpu_model": record.cpu_model,
        "packages": dict(record.packages),
        "tags": sorted(record.tags),
        "last_heartbeat": record.last_heartbeat,
    }
    if match_profile is not None:
        result = explain(match_profile, view)
        body["match"] = {
            "ok": isinstance(result, Match),
            "reasons": [] if isinstance(result, Match) else list(result.reasons),
        }
    return body


def offline_view(record: ServerRecord) -> ServerView:
    """A registered server with no live connection (or disabled)."""
    return record_view(
        record, free_slots=0, status="disabled" if record.status == "disabled" else "offline"
    )


class ServerDirectory(Protocol):
    async def list_servers(self) -> list[ServerRecord]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerState:
    """A registered server with the view the scheduler has of it right now."""

    record: ServerRecord
    view: ServerView
    """Its live connection's view, or :func:`offline_view` when not connected."""
    running_tasks: int


async def server_states(
    servers: ServerDirectory, connections: ConnectionRegistry
) -> list[ServerState]:
    """Every registered server, in the store's order, paired with its current view.

    The one place that decides between a live connection's view and the
    stored record's offline view.
    """
    live = {c.server_id: c for c in connections.all()}
    states = []
    for record in await servers.list_servers():
        conn = live.get(record.id)
        states.append(
            ServerState(
                record=record,
                view=conn.view() if conn else offline_view(record),
                running_tasks=len(conn.running) if conn else 0,
            )
        )
    return states


async def server_views(
    servers: ServerDirectory, connections: ConnectionRegistry
) -> list[ServerView]:
    """The views of :func:`server_states`: what matching and placement look at."""
    return [state.view for state in await server_states(servers, connections)]
