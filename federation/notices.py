"""Remote side: the final notification of each job accepted here, queued for its origin.

When a job accepted from a peer ends here (done, failed or cancelled, by its
tasks or by a user of this site), :meth:`FinalNotices.job_finished` queues one
``notify`` with its frames, its tasks as they ended and what it cost, in the
durable outbox, under an id fixed by the job and the placement's epoch, so
queueing it twice sends it once. The job-finished hook queues it; a crash
between the job's last task and that insert is repaired at start-up by
:meth:`FinalNotices.repair`. Progress while the job runs is
:mod:`federation.progress`'s.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from federation.interfaces import JobControl, MessageQueue, UsageLedger
from federation.progress import task_progress
from federation.protocol import FrameFileOutput, FrameOutput, Notify, NotifyState, TaskProgress
from federation.store import OfferRow
from site_agent.store.records import FrameRecord, JobRecord, JobState

log = logging.getLogger(__name__)

_NOTIFY_STATE = {
    JobState.DONE: NotifyState.DONE,
    JobState.FAILED: NotifyState.FAILED,
    JobState.CANCELLED: NotifyState.CANCELLED,
}


class FinishedOffers(Protocol):
    """The offers jobs were accepted with (:class:`~federation.store.FederationStore`)."""

    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...

    async def finished_offers_without_final(self) -> list[OfferRow]: ...


async def usage_fields(usage: UsageLedger | None, job: JobRecord) -> dict[str, Any]:
    """What the job cost here (and beyond, for a relayed job), for its origin's ledger."""
    if usage is None or not job.state.finished:
        return {}
    totals = await usage.job_totals(job.id)
    return {"core_seconds": totals.core_seconds, "failed_attempts": totals.failed_attempts}


class FinalNotices:
    """The ``notify`` that tells an origin how the job it forwarded here ended."""

    def __init__(
        self,
        *,
        jobs: JobControl,
        offers: FinishedOffers,
        outbox: MessageQueue,
        usage: UsageLedger | None = None,
    ) -> None:
        self._jobs = jobs
        self._offers = offers
        self._outbox = outbox
        self._usage = usage

    async def job_finished(self, job_id: str) -> None:
        """The job ended here (or was cancelled here): tell its origin, if a peer sent it."""
        offer = await self._offers.offer_by_job(job_id)
        if offer is not None:
            await self._enqueue(offer)

    async def repair(self) -> None:
        """Queue the final notification of finished accepted jobs that have none (crash gap)."""
        for offer in await self._offers.finished_offers_without_final():
            log.info(
                "job %s finished without a queued notification; queueing it now",
                offer.remote_job_id,
            )
            await self._enqueue(offer)

    async def _task_progress(self, job: JobRecord) -> tuple[TaskProgress, ...]:
        """The job's tasks as they ended here, for the origin's task rows (the frames are
        in the notification already)."""
        names = await self._jobs.server_names()
        tasks = await self._jobs.list_tasks(job.id)
        return tuple(task_progress(t, names, {}) for t in tasks if t.attempt or t.server_id)

    async def _enqueue(self, offer: OfferRow) -> None:
        assert offer.remote_job_id is not None
        job = await self._jobs.get_job(offer.remote_job_id)
        if job is None or job.state not in _NOTIFY_STATE:
            return
        frames = await self._jobs.list_frames(job.id)
        outputs = tuple(_frame_output(f) for f in frames) if job.state == JobState.DONE else ()
        msg = Notify(
            origin_job_id=offer.origin_job_id,
            remote_job_id=job.id,
            epoch=offer.epoch,
            state=_NOTIFY_STATE[job.state],
            frames_done=len(frames),
            frames_total=job.frame_count,
            frames=outputs,
            error=job.error,
            **(await usage_fields(self._usage, job)),
            tasks=await self._task_progress(job),
        )
        await self._outbox.enqueue(
            peer=offer.site,
            kind="notify",
            job_id=job.id,
            message=msg,
            msg_id=f"notify:{job.id}:{offer.epoch}:final",
            final=True,
        )


def _frame_output(frame: FrameRecord) -> FrameOutput:
    files = tuple(
        FrameFileOutput(name=f.name, sha256=f.sha256, size=f.size, kind=f.kind) for f in frame.files
    )
    return FrameOutput(
        frame=frame.frame, sha256=frame.sha256, size=frame.size, name=frame.name, files=files
    )
