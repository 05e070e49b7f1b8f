"""What ``spillway job`` and ``GET /api/v1/jobs/{id}`` add for a job the federation touched:
the transfer counters and the remote's progress of a forwarded job, the peers tried, and
the chunks taken back from a split job's parts."""

from __future__ import annotations

from typing import Any, Protocol

from federation.reclaim import reclaims_json
from federation.store import FederationStore
from site_agent.store.records import JobRecord

__all__ = ["job_details"]


class SplitParts(Protocol):
    async def parts(self, job_id: str) -> list[JobRecord]: ...


async def job_details(
    forwards: FederationStore, split: SplitParts, job: JobRecord
) -> dict[str, Any]:
    """Extra fields of the job JSON (none for a job the federation never touched)."""
    parts = [p.id for p in await split.parts(job.id)] if job.split else []
    reclaims = await forwards.reclaims.of_jobs([job.id, *parts])
    extra: dict[str, Any] = {"reclaimed": reclaims_json(reclaims)} if reclaims else {}
    row = await forwards.latest_forward(job.id)
    if row is None:
        return extra
    return {
        **extra,
        "peers_tried": await forwards.forward_peers(job.id),
        "transfer": {
            "peer": row.peer,
            "epoch": row.epoch,
            "bytes_sent": row.bytes_sent,
            "blobs_sent": row.blobs_sent,
            "blobs_skipped": row.blobs_skipped,
        },
        "remote": {
            "site": row.peer,
            "job_id": row.remote_job_id,
            "state": row.remote_state,
            "forward_state": row.state,
            "frames_done": row.frames_done,
            "last_contact_at": row.last_contact_at,
        },
    }
