"""Conversions between records and rows: JSON columns, compact frame lists, booleans.

Decoding happens here, once, so the store methods and the rest of the agent
only ever see typed records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from scheduler.profile import JobProfile
from spillway.core.records import FileEntry, FileKind

from .database import Row
from .records import (
    FrameFile,
    FrameRecord,
    JobRecord,
    JobState,
    ServerRecord,
    ServerStatus,
    TaskRecord,
    TaskState,
)


def _time(value: Any) -> float | None:
    # SQLite's RETURNING hands back integral REAL values as int (seen in 3.40); normalize.
    return None if value is None else float(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def encode_frames(frames: Sequence[int]) -> str:
    """A task's frames as text: ``first:last`` or ``first:last:step`` when evenly spaced, else ``1,5,7``."""
    if len(frames) == 1:  # the common chunk size; worth the shortcut at 100,000 tasks
        return str(frames[0])
    if len(frames) >= 3:
        step = frames[1] - frames[0]
        if step > 0 and all(b - a == step for a, b in pairwise(frames)):
            return f"{frames[0]}:{frames[-1]}" if step == 1 else f"{frames[0]}:{frames[-1]}:{step}"
    return ",".join(map(str, frames))


def decode_frames(text: str) -> tuple[int, ...]:
    """Inverse of :func:`encode_frames`."""
    if text.isdigit():  # chunk 1, the common case: read for every waiting and claimed task
        return (int(text),)
    if not text:
        return ()
    if ":" in text:
        first, last, *step = (int(part) for part in text.split(":"))
        return tuple(range(first, last + 1, step[0] if step else 1))
    return tuple(int(part) for part in text.split(","))


def job_params(job: JobRecord) -> tuple[Any, ...]:
    """Values for :data:`~site_agent.store.queries.INSERT_JOB`, in column order."""
    return (
        job.id,
        job.name,
        job.owner,
        job.origin_site,
        job.priority,
        _json(job.profile.to_dict()),
        job.frames,
        job.frame_count,
        job.chunk_size,
        job.scene,
        _json([asset.to_dict() for asset in job.manifest]),
        job.output_name,
        job.output_ext,
        _json(dict(job.settings)),
        job.state.value,
        job.placement,
        job.placement_reason,
        job.placement_epoch,
        job.remote_job_id,
        job.forward_allowed,
        job.origin_job_id,
        job.created_at,
        job.updated_at,
        job.finished_at,
        job.error,
        job.split,
        job.part_of,
    )


def job_from_row(row: Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        origin_site=row["origin_site"],
        priority=row["priority"],
        profile=JobProfile.from_dict(json.loads(row["profile"])),
        frames=row["frames"],
        frame_count=row["frame_count"],
        chunk_size=row["chunk_size"],
        scene=row["scene"],
        manifest=tuple(FileEntry.from_dict(d) for d in json.loads(row["manifest"])),
        output_name=row["output_name"],
        output_ext=row["output_ext"],
        settings=json.loads(row["settings"]),
        state=JobState(row["state"]),
        placement=row["placement"],
        placement_reason=row["placement_reason"],
        placement_epoch=row["placement_epoch"],
        remote_job_id=row["remote_job_id"],
        forward_allowed=bool(row["forward_allowed"]),
        origin_job_id=row["origin_job_id"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        finished_at=_time(row["finished_at"]),
        error=row["error"],
        split=bool(row["split"]),
        part_of=row["part_of"],
    )


_TASK_STATES = {state.value: state for state in TaskState}
"""A plain lookup: the enum's call costs several times more, for every task row read."""


def task_from_row(row: Row) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        job_id=row["job_id"],
        index=row["idx"],
        frames=decode_frames(row["frames"]),
        state=_TASK_STATES[row["state"]],
        attempt=row["attempt"],
        failures=row["failures"],
        server_id=row["server_id"],
        lease_expires_at=_time(row["lease_expires_at"]),
        dispatched_at=_time(row["dispatched_at"]),
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        log_tail=row["log_tail"],
        error=row["error"],
    )


def server_params(server: ServerRecord) -> tuple[Any, ...]:
    """Values for :data:`~site_agent.store.queries.UPSERT_SERVER`, in column order."""
    return (
        server.id,
        server.name,
        server.host,
        server.cores,
        server.memory_mb,
        _json(list(server.gpus)),
        server.os,
        server.cpu_model,
        _json(dict(server.packages)),
        _json(sorted(server.tags)),
        server.slots,
        server.status.value,
        server.last_heartbeat,
        server.registered_at,
        server.key_hash,
    )


def server_from_row(row: Row) -> ServerRecord:
    return ServerRecord(
        id=row["id"],
        name=row["name"],
        host=row["host"],
        cores=row["cores"],
        memory_mb=row["memory_mb"],
        gpus=tuple(json.loads(row["gpus"])),
        os=row["os"],
        cpu_model=row["cpu_model"],
        packages=json.loads(row["packages"]),
        tags=frozenset(json.loads(row["tags"])),
        slots=row["slots"],
        status=ServerStatus(row["status"]),
        last_heartbeat=_time(row["last_heartbeat"]),
        registered_at=float(row["registered_at"]),
        key_hash=row["key_hash"],
    )


def frame_params(frame: FrameRecord) -> tuple[Any, ...]:
    """Values for :data:`~site_agent.store.queries.UPSERT_FRAME`, in column order."""
    return (
        frame.job_id,
        frame.frame,
        frame.task_id,
        frame.name,
        frame.sha256,
        frame.size,
        frame.server_id,
        frame.rendered_at,
    )


def frame_file_params(frame: FrameRecord) -> list[tuple[Any, ...]]:
    """Values for :data:`~site_agent.store.queries.INSERT_FRAME_FILE`, one tuple per file."""
    return [
        (frame.job_id, frame.frame, f.name, f.sha256, f.size, f.kind.value) for f in frame.files
    ]


def frame_file_from_row(row: Row) -> FrameFile:
    return FrameFile(
        name=row["name"], sha256=row["sha256"], size=row["size"], kind=FileKind(row["kind"])
    )


def frame_from_row(row: Row, files: Sequence[FrameFile] = ()) -> FrameRecord:
    return FrameRecord(
        files=tuple(files),
        job_id=row["job_id"],
        frame=row["frame"],
        task_id=row["task_id"],
        name=row["name"],
        sha256=row["sha256"],
        size=row["size"],
        server_id=row["server_id"],
        rendered_at=float(row["rendered_at"]),
    )
