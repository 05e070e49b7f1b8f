"""Origin side: progress and completion of forwarded jobs, and fetching their frames back.

While the job runs, progress snapshots (:meth:`Results.progress`) mirror the
remote's tasks on this site's task rows and start fetching each finished frame
right away (:mod:`federation.streaming`), so the completion only waits for the
last frames.

A final notification (or a reconciliation poll that finds the remote job done)
makes the origin fetch every frame from the remote, verify its sha256 while
writing it atomically into this site's storage under the origin job's folder
(the same layout as local jobs), and then finish the job in one transaction
fenced on the placement epoch. Only then is the notification acknowledged: if a
fetch fails the remote is answered 503 and retries from its outbox, so both
ends are restart-safe. Frames already on disk with the right hash are not
fetched again, and up to ``FETCH_CONCURRENCY`` are fetched at once
(:mod:`federation.fetch_all`), so a retried notification for a large job
carries on where the last one stopped.

A frame that fails verification (the remote's bytes do not match the hash it
reported) or that the remote refuses outright will not get better by retrying:
the origin records the good frames and fails the job naming the bad ones, and
acknowledges, so neither side loops. Transient failures (the peer unavailable,
this site's storage full) still make the remote retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from federation.fetch_all import bad_frames_error, fetch_all
from federation.interfaces import (
    FinishedJobs,
    ForwardContact,
    FrameDownloader,
    FrameWriter,
    PeerContact,
    UsageLedger,
)
from federation.peers import PeerConfig
from federation.protocol import FrameOutput, Notify, NotifyState, Progress, TaskProgress
from federation.store import ForwardRow
from federation.streaming import (
    FetchError,
    FrameStream,
)
from scheduler.frames import parse_frames
from site_agent.errors import NotFoundError
from site_agent.store.records import (
    FrameRecord,
    JobRecord,
    JobState,
    RelayedTask,
    TaskRecord,
    TaskState,
)
from site_agent.store.usage import UsageEntry, UsageSource

log = logging.getLogger(__name__)

_STATES = {"done": JobState.DONE, "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}
_FINAL = {
    NotifyState.DONE: JobState.DONE,
    NotifyState.FAILED: JobState.FAILED,
    NotifyState.CANCELLED: JobState.CANCELLED,
}


class Results:
    """The origin side of a forwarded job's end: notifications, polls, fetching frames back."""

    def __init__(
        self,
        *,
        name: str,
        jobs: FinishedJobs,
        forwards: ForwardContact,
        client: FrameDownloader,
        frames: FrameWriter,
        contact: PeerContact,
        stream: FrameStream,
        usage: UsageLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._stream = stream
        self._usage = usage
        self._jobs = jobs
        self._forwards = forwards
        self._client = client
        self._frames = frames
        self._contact = contact
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def notify(self, peer: PeerConfig, msg: Notify) -> None:
        """Apply a notification from ``peer``; raises to make the remote retry."""
        job = await self._jobs.get_job(msg.origin_job_id)
        if job is None:
            raise NotFoundError(f"no job {msg.origin_job_id!r} at {self._name}")
        if job.placement != peer.name or job.placement_epoch != msg.epoch:
            log.info(
                "ignored %s notification for job %s from %s: epoch %d is not the current "
                "placement (%s, epoch %d)",
                msg.state.value,
                job.id,
                peer.name,
                msg.epoch,
                job.placement,
                job.placement_epoch,
            )
            return
        await self._forwards.forward_contact(
            job.id,
            msg.epoch,
            remote_state=msg.state.value,
            frames_done=msg.frames_done,
            at=self._clock(),
        )
        self._contact.contact_ok(peer.name)
        if msg.state == NotifyState.RUNNING:
            await self._jobs.remote_start(job.id, at=self._clock())
            return
        await self.finish(
            peer,
            job,
            epoch=msg.epoch,
            remote_job_id=msg.remote_job_id,
            state=_FINAL[msg.state],
            frames=msg.frames,
            error=msg.error,
            spent=(msg.core_seconds, msg.failed_attempts, msg.frames_done),
            tasks=msg.tasks,
        )

    async def progress(self, peer: PeerConfig, msg: Progress) -> bool:
        """Apply a progress snapshot from ``peer``; True if it was newer than the last applied.

        A snapshot of another placement, or not newer than the last one applied, changes
        nothing (it is still acknowledged). Done tasks not done here have their frames
        fetched in the background.
        """
        job = await self._jobs.get_job(msg.origin_job_id)
        if job is None:
            raise NotFoundError(f"no job {msg.origin_job_id!r} at {self._name}")
        if job.placement != peer.name or job.placement_epoch != msg.epoch:
            log.info(
                "ignored progress %d for job %s from %s: its placement (epoch %d) is over; "
                "the job is at %s, epoch %d",
                msg.seq,
                job.id,
                peer.name,
                msg.epoch,
                job.placement,
                job.placement_epoch,
            )
            return False
        self._contact.contact_ok(peer.name)
        async with self._locks.setdefault(job.id, asyncio.Lock()):
            row = await self._forwards.get_forward(job.id, msg.epoch)
            if row is None or msg.seq <= row.progress_seq:
                log.debug("stale progress %d of job %s ignored", msg.seq, job.id)
                return False
            here = {t.index: t for t in await self._jobs.list_tasks(job.id)}
            relayed = [_relayed(peer.name, t) for t in msg.tasks if t.index in here]
            changed = [r for r in relayed if _differs(r, here[r.index])]
            now = self._clock()
            hook = self._forwards.progress_hook(
                job.id,
                msg.epoch,
                seq=msg.seq,
                remote_state=msg.state,
                frames_done=msg.frames_done,
                at=now,
            )
            if not await self._jobs.relay_progress(
                job.id, epoch=msg.epoch, tasks=changed, at=now, hook=hook
            ):
                return False
        if msg.state == JobState.RUNNING.value or any(t.state != "waiting" for t in msg.tasks):
            await self._jobs.remote_start(job.id, at=now)
        self._fetch_done(peer, job, msg, here)
        self._stream.retry(job.id)
        return True

    def _fetch_done(
        self, peer: PeerConfig, job: JobRecord, msg: Progress, here: dict[int, TaskRecord]
    ) -> None:
        for task in msg.tasks:
            mine = here.get(task.index)
            if task.state != "done" or mine is None or mine.state == TaskState.DONE:
                continue
            if {f.frame for f in task.frames} != set(mine.frames):
                log.warning(
                    "job %s: %s reported task %d done with frames %s, expected %s; "
                    "left to the job's completion",
                    job.id,
                    peer.name,
                    task.index,
                    sorted(f.frame for f in task.frames),
                    list(mine.frames),
                )
                continue
            done = dataclasses.replace(_relayed(peer.name, task), state=TaskState.DONE)
            self._stream.start(peer, job, msg.remote_job_id, done, task.frames)

    async def apply_status(self, peer: PeerConfig, row: ForwardRow, status: dict[str, Any]) -> None:
        """A poll found the remote job finished: act as on its final notification."""
        job = await self._jobs.get_job(row.job_id)
        if job is None or row.remote_job_id is None:
            return
        frames = tuple(FrameOutput.from_wire(f, "status.frames") for f in status.get("frames", ()))
        log.info("poll: job %s finished at %s (%s); applying", job.id, peer.name, status["state"])
        try:
            await self._finish_polled(peer, job, row, status, frames)
        except FetchError as exc:  # the next poll (or the remote's notification) tries again
            log.warning("poll: job %s: %s; trying again later", job.id, exc)

    async def _finish_polled(
        self,
        peer: PeerConfig,
        job: JobRecord,
        row: ForwardRow,
        status: dict[str, Any],
        frames: Sequence[FrameOutput],
    ) -> None:
        assert row.remote_job_id is not None
        await self.finish(
            peer,
            job,
            epoch=row.epoch,
            remote_job_id=row.remote_job_id,
            state=_STATES[str(status["state"])],
            frames=frames,
            error=str(status.get("error", "")),
            spent=(
                float(status.get("core_seconds", 0.0)),
                int(status.get("failed_attempts", 0)),
                int(status.get("frames_done", 0)),
            ),
        )

    async def finish(
        self,
        peer: PeerConfig,
        job: JobRecord,
        *,
        epoch: int,
        remote_job_id: str,
        state: JobState,
        frames: Sequence[FrameOutput],
        error: str,
        spent: tuple[float, int, int] = (0.0, 0, 0),
        tasks: Sequence[TaskProgress] = (),
    ) -> bool:
        """Fetch the frames (when done) and finish the job; True if this call finished it.

        ``spent``: the core-seconds, failed attempts and frames rendered the peer reported,
        recorded in this site's ledger with the job's end. ``tasks`` (the remote's, from a
        final notification) name the servers and times on this site's task rows.
        """
        async with self._locks.setdefault(job.id, asyncio.Lock()):
            current = await self._jobs.get_job(job.id)
            if current is None or current.state.finished or current.placement_epoch != epoch:
                return False
            await self._stream.drain(job.id)
            self._stream.forget(job.id)
            records: list[FrameRecord] = []
            if state == JobState.DONE:
                expected = set(parse_frames(job.frames))
                if {f.frame for f in frames} != expected:
                    raise FetchError(
                        f"{peer.name} reported job {job.id} done with "
                        f"{len(frames)} of {len(expected)} frames"
                    )
                records, bad = await fetch_all(
                    self._client,
                    self._frames,
                    peer,
                    job,
                    remote_job_id,
                    frames,
                    usage=self._usage,
                    clock=self._clock,
                )
                if bad:
                    state, error = JobState.FAILED, bad_frames_error(bad)
            elif not error:
                error = f"the job {state.value} at {peer.name}"
            now = self._clock()
            done = await self._jobs.finish_forwarded_job(
                job.id,
                epoch=epoch,
                state=state,
                frames=records,
                error="" if state == JobState.DONE else f"at {peer.name}: {error}",
                at=now,
                tasks=[_relayed(peer.name, t) for t in tasks],
                hook=self._forwards.forward_state_hook(job.id, epoch, "finished", at=now),
                usage=UsageEntry(
                    job_id=job.id,
                    peer=peer.name,
                    source=UsageSource.REMOTE,
                    at=now,
                    core_seconds=spent[0],
                    failed_attempts=spent[1],
                    frames=spent[2],
                ),
            )
        if done:
            log.info(
                "forwarded job %s %s at %s: %d frames in %s",
                job.id,
                state.value,
                peer.name,
                len(records),
                self._frames.job_dir(job.name, job.id),
            )
        return done


def _relayed(peer: str, task: TaskProgress) -> RelayedTask:
    """The origin's row for a task as ``peer`` reports it: done only once fetched here."""
    state = _RELAYED_STATES.get(task.state, TaskState.RUNNING)
    return RelayedTask(
        index=task.index,
        state=state,
        attempt=task.attempt,
        server_id=f"{peer}/{task.server}" if task.server else None,
        started_at=task.started_at,
        finished_at=task.finished_at,
        error=task.error,
    )


_RELAYED_STATES = {
    "waiting": TaskState.WAITING,
    "dispatched": TaskState.DISPATCHED,
    "running": TaskState.RUNNING,
    "done": TaskState.RUNNING,  # rendered there, not yet fetched here
    "failed": TaskState.FAILED,
}


def _differs(relayed: RelayedTask, task: TaskRecord) -> bool:
    if task.state == TaskState.DONE:
        return False  # fetched here: stays done
    return (
        relayed.state,
        relayed.attempt,
        relayed.server_id,
        relayed.started_at,
        relayed.finished_at,
        relayed.error,
    ) != (task.state, task.attempt, task.server_id, task.started_at, task.finished_at, task.error)
