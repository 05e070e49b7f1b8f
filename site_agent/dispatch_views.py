"""What a dispatch round derives from records: the scheduler's views of a snapshot (the
jobs and tasks it plans for) and the Assign message of a claimed attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from render_server import protocol
from scheduler.dependencies import dispatchable, frames_ready
from scheduler.dispatch import JobView, TaskView
from scheduler.frames import frame_bounds
from scheduler.retry import bad_servers

from .store.records import DispatchSnapshot, JobRecord


def job_views(snap: DispatchSnapshot, threshold: int) -> list[JobView]:
    views = []
    for job in snap.jobs:
        running = snap.running.get(job.id)
        failures = snap.server_failures.get(job.id, {})
        views.append(
            JobView(
                id=job.id,
                priority=job.priority,
                created_at=job.created_at,
                profile=job.profile,
                running_tasks=running.tasks if running else 0,
                running_servers=running.servers if running else frozenset(),
                avoid_servers=bad_servers(failures, threshold),
                guest_of=job.origin_site if job.origin_job_id is not None else None,
                ready=dispatchable(snap.upstreams.get(job.id, ())),
            )
        )
    return views


def ready_tasks(snap: DispatchSnapshot) -> tuple[list[TaskView], bool]:
    """The waiting tasks whose frames are not held back by a frame dependency, and whether
    any task is held back."""
    views = task_views(snap)
    if not snap.upstream_frames:
        return views, False
    ready = [
        v
        for v in views
        if frames_ready(
            v.frames, snap.upstreams.get(v.job_id, ()), snap.upstream_frames.get(v.job_id, {})
        )
    ]
    return ready, len(ready) < len(views)


def task_views(snap: DispatchSnapshot) -> list[TaskView]:
    return [
        TaskView(
            id=t.id,
            job_id=t.job_id,
            attempt=t.attempt,
            frames=t.frames,
            failed_on=snap.failed_on.get(t.id, frozenset()),
        )
        for t in snap.waiting
    ]


class Attempt(Protocol):
    """The attempt an Assign is for (a task record, or a probe)."""

    @property
    def id(self) -> int: ...

    @property
    def attempt(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Probe:
    id: int = 0
    attempt: int = 1


PROBE = _Probe()
"""A stand-in attempt: whether a job's Assign encodes does not depend on which attempt."""


def assign_message(job: JobRecord, task: Attempt, frames: tuple[int, ...]) -> protocol.Assign:
    """The Assign of one attempt: its frames within the job's whole range (an animation's
    clock runs over the job, not the chunk), and the overrides if any (resolution, samples,
    no denoising). Raises if
    the job's fields cannot go on the wire."""
    settings = job.settings
    first, last = frame_bounds(job.frames)
    width, height = settings.get("width"), settings.get("height")
    return protocol.Assign(
        task_id=task.id,
        attempt=task.attempt,
        job_id=job.id,
        job_name=job.name,
        package=job.profile.package,
        version=job.profile.version,
        engine=job.profile.engine,
        scene=job.scene,
        manifest=list(job.manifest),
        frames=list(frames),
        output_name=job.output_name,
        output_ext=job.output_ext,
        width=int(width) if width else None,
        height=int(height) if height else None,
        timeout_s=job.profile.task_timeout_s,
        threads=max(1, job.profile.min_cores),
        first_frame=first,
        last_frame=last,
        samples=int(settings["samples"]) if settings.get("samples") else None,
        denoise=False if settings.get("denoise") is False else None,
    )


_PER_ATTEMPT = ("task_id", "attempt", "frames")
"""The fields of an Assign that differ between the attempts of one job."""


class AssignEncoder:
    """The encoded Assigns of a round's attempts: each job's fields encoded once.

    ``protocol.encode(assign_message(...))`` checks and converts the job's ~20
    fields for every task (~8 µs a task, the most of a dispatch round's per-task
    work); they are the same for all attempts of a job, so each job's Assign is
    encoded once and only :data:`_PER_ATTEMPT` set per task. The bytes are the same.
    """

    def __init__(self, jobs: Mapping[str, JobRecord]) -> None:
        self._jobs = jobs
        self._templates: dict[str, dict[str, Any]] = {}

    def encode(self, job_id: str, task: Attempt, frames: tuple[int, ...]) -> bytes:
        """The Assign of ``task`` (of job ``job_id``) as :func:`protocol.encode` makes it."""
        template = self._templates.get(job_id)
        if template is None:
            template = self._template(job_id)
        body = template.copy()
        body["task_id"] = task.id
        body["attempt"] = task.attempt
        body["frames"] = list(frames)
        data: bytes = msgpack.packb(body, use_bin_type=True)
        return data

    def _template(self, job_id: str) -> dict[str, Any]:
        template = msgpack.unpackb(
            protocol.encode(assign_message(self._jobs[job_id], PROBE, (0,))), raw=False
        )
        if not isinstance(template, dict) or not set(_PER_ATTEMPT) <= template.keys():
            raise RuntimeError(f"an encoded Assign has no fields {_PER_ATTEMPT}")
        self._templates[job_id] = template
        return template
