"""Which webhook events a lifecycle event makes, their stable ids, and their payloads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from site_agent.lifecycle import (
    Event,
    JobCancelled,
    JobCreated,
    JobFinished,
    JobReplaced,
    JobStateChanged,
    TasksAssigned,
)
from site_agent.store.records import LOCAL, JobRecord, JobState

SUBSCRIBED: tuple[type[Event], ...] = (
    JobCreated,
    TasksAssigned,
    JobStateChanged,
    JobFinished,
    JobCancelled,
    JobReplaced,
)
"""The lifecycle events webhooks listen to (plus JobsReleased: see the service)."""

_ENDED = {JobState.DONE: "job.done", JobState.FAILED: "job.failed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Occurrence:
    """A webhook event about one job."""

    event: str
    job_id: str


def occurrences(event: Event) -> list[Occurrence]:
    """The webhook events of one lifecycle event (a forward of a job released later is
    made by the service, which looks the job up)."""
    if isinstance(event, JobCreated):
        job = event.job
        first = "job.accepted" if job.origin_job_id is not None else "job.submitted"
        found = [Occurrence(event=first, job_id=job.id)]
        if job.placement != LOCAL and event.ready:
            found.append(Occurrence(event="job.forwarded", job_id=job.id))
        return found
    if isinstance(event, TasksAssigned):
        return [Occurrence(event="job.started", job_id=j) for j in event.started_jobs]
    if isinstance(event, JobStateChanged) and event.state == JobState.RUNNING:
        return [Occurrence(event="job.started", job_id=event.job_id)]  # started at its peer
    if isinstance(event, JobFinished) and event.state in _ENDED:
        return [Occurrence(event=_ENDED[event.state], job_id=event.job_id)]
    if isinstance(event, JobCancelled):
        return [Occurrence(event="job.cancelled", job_id=event.job.id)]
    if isinstance(event, JobReplaced) and event.placement != LOCAL:
        return [Occurrence(event="job.forwarded", job_id=event.job_id)]
    return []


def message_id(site: str, endpoint: str, event: str, job: JobRecord) -> str:
    """The delivery's ``webhook-id``: the same for the same transition, whoever emits it twice.

    A job can pass the same way again (retried, re-rendered, forwarded anew): the
    transition's time (or the placement epoch of a forward) tells those apart.
    """
    if event == "job.forwarded":
        marker = f"epoch {job.placement_epoch}"
    elif event in ("job.submitted", "job.accepted"):
        marker = repr(job.created_at)
    elif event in ("job.done", "job.failed", "job.cancelled"):
        marker = repr(job.finished_at if job.finished_at is not None else job.updated_at)
    else:
        marker = repr(job.updated_at)
    seed = f"{site}\n{endpoint}\n{event}\n{job.id}\n{marker}"
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def payload(event: str, job: JobRecord, *, site: str, at: float) -> str:
    """The JSON body (Standard Webhooks shape: ``type``, ``timestamp``, ``data``)."""
    body: dict[str, Any] = {
        "type": event,
        "timestamp": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "site": site,
            "job": {
                "id": job.id,
                "name": job.name,
                "owner": job.owner,
                "state": job.state.value,
                "priority": job.priority,
                "frames": job.frames,
                "frame_count": job.frame_count,
                "requirement": job.profile.requirement,
                "origin_site": job.origin_site,
                "origin_job_id": job.origin_job_id,
                "placement": job.placement,
                "remote_job_id": job.remote_job_id,
                "error": job.error,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
            },
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
