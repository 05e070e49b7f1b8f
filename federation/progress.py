"""Remote side: relay a forwarded job's progress to its origin while it runs.

Every task change of an accepted job (assigned, started, finished, requeued, a
pause) marks the job; the ``fed-progress`` task turns each marked job into one
:class:`~federation.protocol.Progress` snapshot at most every
``PROGRESS_INTERVAL_S`` (longer for jobs of thousands of tasks) and writes it to the
durable outbox, where it replaces the job's undelivered older snapshot. A snapshot carries the tasks (state,
attempt, server, times, the renderer's error; the frames of done tasks with their
sha256) that changed since the last snapshot the origin acknowledged, and those of
every snapshot sent since (:class:`~federation.progress_delta.SnapshotDeltas`: a
lost snapshot loses nothing), so the origin can show the tasks and fetch each
finished frame right away; untouched tasks are never listed. Snapshots are numbered
per job (``fed_offers.progress_seq``, durable): the origin applies only a number
above the last it applied, so a duplicate, a reordered or a stale snapshot changes
nothing. Marked jobs are also re-read every ``REFRESH_S`` (a start report has no
event per job); an unchanged job is not sent again.

Pause and resume go both ways (:class:`Controls`): a user's pause of a
forwarded job at the origin is sent to the remote, and a pause by the remote's
own users to the origin, which pauses its job too. :class:`FromPeer` marks the
job whose change a peer asked for, so the change is not echoed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from federation.interfaces import MessageQueue
from federation.peers import PeerConfig
from federation.progress_delta import SnapshotDeltas
from federation.protocol import FrameOutput, Pause, Progress, Resume, TaskProgress
from federation.store import OfferRow, OutboxEntry
from site_agent.errors import ConflictError, NotFoundError
from site_agent.store.base import StoreError
from site_agent.store.records import LOCAL, FrameRecord, JobRecord, JobState, TaskRecord, TaskState

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0
"""At most one snapshot per job per interval (the first one of a burst goes at once)."""
SNAPSHOT_TASKS_PER_S = 1000
"""A job with more tasks in its snapshot gets one every ``tasks / SNAPSHOT_TASKS_PER_S`` seconds."""
REFRESH_S = 5.0
"""Jobs being relayed are re-read this often, for changes without an event (task starts)."""
_NOT_ACCEPTED_MEMORY = 10_000
"""This site's own jobs remembered as such (each costs one lookup when forgotten)."""


class AcceptedJobs(Protocol):
    """The remote site's jobs and servers as the relay reads them."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def list_frames(self, job_id: str) -> list[FrameRecord]: ...

    async def server_names(self) -> dict[str, str]:
        """Server id -> name, for every registered server."""


class ProgressOffers(Protocol):
    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...

    async def next_progress_seq(self, remote_job_id: str) -> int: ...


class FromPeer:
    """Jobs whose state a peer is changing right now (its pause or resume is being applied).

    The lifecycle emits the change's event before its call returns, so the event
    handler sees the mark and does not send the change back to that peer.
    """

    def __init__(self) -> None:
        self._jobs: set[str] = set()

    @contextlib.contextmanager
    def applying(self, job_id: str) -> Iterator[None]:
        self._jobs.add(job_id)
        try:
            yield
        finally:
            self._jobs.discard(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs


def task_progress(
    task: TaskRecord, names: Mapping[str, str], frames: Mapping[int, FrameRecord]
) -> TaskProgress:
    """One task as the origin sees it; a done task carries its recorded frames."""
    outputs: tuple[FrameOutput, ...] = ()
    if task.state == TaskState.DONE:
        outputs = tuple(
            FrameOutput(frame=n, sha256=f.sha256, size=f.size, name=f.name)
            for n in task.frames
            if (f := frames.get(n)) is not None
        )
    return TaskProgress(
        index=task.index,
        state=task.state.value,
        attempt=task.attempt,
        server=names.get(task.server_id or "", task.server_id or ""),
        started_at=task.started_at,
        finished_at=task.finished_at,
        error=task.error,
        frames=outputs,
    )


class ProgressRelay:
    """Turns task changes of accepted jobs into numbered snapshots in the outbox."""

    def __init__(
        self,
        *,
        jobs: AcceptedJobs,
        offers: ProgressOffers,
        outbox: MessageQueue,
        clock: Callable[[], float] = time.time,
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._jobs = jobs
        self._offers = offers
        self._outbox = outbox
        self._clock = clock
        self._interval_s = interval_s
        self._dirty: set[str] = set()
        self._tracked: dict[str, OfferRow] = {}
        self._not_accepted: set[str] = set()
        self._last_sent: dict[str, tuple[float, Progress]] = {}
        self._deltas = SnapshotDeltas()
        self._wake = asyncio.Event()

    async def mark(self, job_ids: Sequence[str]) -> None:
        """Some tasks of these jobs changed: relay those accepted from a peer."""
        for job_id in job_ids:
            if job_id in self._not_accepted:
                continue
            if job_id not in self._tracked:
                try:
                    offer = await self._offers.offer_by_job(job_id)
                except StoreError as exc:  # the transition is done; only its relay is lost
                    log.warning("progress of job %s not relayed: %s", job_id, exc)
                    continue
                if offer is None:
                    if len(self._not_accepted) >= _NOT_ACCEPTED_MEMORY:
                        self._not_accepted.clear()  # bounded: forgetting costs one lookup
                    self._not_accepted.add(job_id)
                    continue
                self._tracked[job_id] = offer
            self._dirty.add(job_id)
            self._wake.set()

    def forget(self, job_id: str) -> None:
        """The job finished: its final notification says the rest."""
        self._tracked.pop(job_id, None)
        self._dirty.discard(job_id)
        self._last_sent.pop(job_id, None)
        self._deltas.forget(job_id)

    def delivered(self, entry: OutboxEntry) -> None:
        """The outbox's delivery callback: the origin acknowledged a snapshot, so the next
        ones carry only what changed since."""
        seq = entry.body.get("seq")
        if entry.kind == "progress" and isinstance(seq, int):
            self._deltas.acknowledged(entry.job_id, seq)

    async def run(self) -> None:
        """Send due snapshots until cancelled (the ``fed-progress`` task)."""
        last_refresh = self._clock()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            self._wake.clear()
            now = self._clock()
            if now - last_refresh >= REFRESH_S:
                self._dirty.update(self._tracked)
                last_refresh = now
            for job_id in list(self._dirty):
                sent = self._last_sent.get(job_id)
                if sent is not None and now - sent[0] < self._spacing(sent[1]):
                    continue  # due at a later turn; the timeout wakes the loop
                self._dirty.discard(job_id)
                try:
                    await self.flush(job_id)
                except Exception:  # one job's problem must not stop the others' progress
                    log.exception("progress of job %s could not be queued", job_id)

    def _spacing(self, last: Progress) -> float:
        """Seconds between two snapshots of a job: more for jobs with many tasks, whose
        snapshots take long to build (about 30 µs per task; ``last`` is the whole job)."""
        return max(self._interval_s, len(last.tasks) / SNAPSHOT_TASKS_PER_S)

    async def flush(self, job_id: str) -> Progress | None:
        """Queue a snapshot of the job now if it changed since the last one; returns it."""
        offer = self._tracked.get(job_id)
        job = await self._jobs.get_job(job_id)
        if offer is None or job is None or job.state.finished:
            self.forget(job_id)
            return None
        snapshot = await self._snapshot(offer, job)
        sent = self._last_sent.get(job_id)
        if sent is not None and sent[1] == snapshot:
            return None
        seq = await self._offers.next_progress_seq(job_id)
        carried = self._deltas.delta(job_id, snapshot.tasks)
        msg = Progress(
            origin_job_id=snapshot.origin_job_id,
            remote_job_id=job_id,
            epoch=snapshot.epoch,
            seq=seq,
            state=snapshot.state,
            frames_done=snapshot.frames_done,
            frames_total=snapshot.frames_total,
            tasks=carried,
        )
        await self._outbox.enqueue(
            peer=offer.site,
            kind="progress",
            job_id=job_id,
            message=msg,
            msg_id=f"progress:{job_id}:{offer.epoch}:{seq}",
            final=False,
        )
        self._deltas.sent(job_id, seq, carried)
        self._last_sent[job_id] = (self._clock(), snapshot)
        return msg

    async def _snapshot(self, offer: OfferRow, job: JobRecord) -> Progress:
        """The job's progress with seq 0 (compared with the last one sent, then numbered)."""
        tasks = await self._jobs.list_tasks(job.id)
        frames = {f.frame: f for f in await self._jobs.list_frames(job.id)}
        names = await self._jobs.server_names()
        return Progress(
            origin_job_id=offer.origin_job_id,
            remote_job_id=job.id,
            epoch=offer.epoch,
            seq=0,
            state=job.state.value,
            frames_done=len(frames),
            frames_total=job.frame_count,
            tasks=tuple(
                task_progress(t, names, frames)
                for t in tasks
                if t.state != TaskState.WAITING or t.attempt or t.error
            ),
        )


# --- pause and resume, both ways ---------------------------------------------------


class ControlledJobs(Protocol):
    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def pause(self, job_id: str) -> None:
        """Pause as a user's ``spillway pause`` would (ConflictError if it cannot)."""

    async def resume(self, job_id: str) -> None: ...


class ControlRows(Protocol):
    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None: ...

    async def claim_offer_control(self, remote_job_id: str, seq: int) -> bool: ...

    async def claim_forward_control(self, job_id: str, epoch: int, seq: int) -> bool: ...


class Controls:
    """Pause and resume of forwarded jobs, sent and applied at both ends."""

    def __init__(
        self,
        *,
        jobs: ControlledJobs,
        rows: ControlRows,
        outbox: MessageQueue,
        from_peer: FromPeer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._rows = rows
        self._outbox = outbox
        self._from_peer = from_peer
        self._clock = clock

    def _seq(self) -> int:
        # Milliseconds: one sender's pauses and resumes of a job are seconds apart.
        return int(self._clock() * 1000)

    async def state_changed(self, job_id: str, state: JobState) -> None:
        """A job was paused or resumed here: tell the peer at the other end, if any."""
        if state not in (JobState.PAUSED, JobState.QUEUED) or job_id in self._from_peer:
            return
        job = await self._jobs.get_job(job_id)
        if job is None:
            return
        kind = "pause" if state == JobState.PAUSED else "resume"
        cls = Pause if kind == "pause" else Resume
        seq = self._seq()
        if job.placement != LOCAL and job.remote_job_id is not None:
            peer, remote_id, origin_id = job.placement, job.remote_job_id, job.id
            epoch = job.placement_epoch
        elif job.origin_job_id is not None:
            offer = await self._rows.offer_by_job(job.id)
            if offer is None:
                return
            peer, remote_id, origin_id, epoch = offer.site, job.id, offer.origin_job_id, offer.epoch
        else:
            return
        msg = cls(origin_job_id=origin_id, remote_job_id=remote_id, epoch=epoch, seq=seq)
        await self._outbox.enqueue(
            peer=peer,
            kind=kind,
            job_id=job.id,
            message=msg,
            msg_id=f"{kind}:{job.id}:{epoch}:{seq}",
            final=False,
        )
        log.info(
            "job %s %s here; telling %s", job.id, "paused" if kind == "pause" else "resumed", peer
        )

    async def apply(self, peer: PeerConfig, msg: Pause | Resume) -> None:
        """A peer paused or resumed its end of a job: do the same here (older ones ignored)."""
        offer = await self._rows.offer_by_job(msg.remote_job_id)
        if offer is not None and offer.site == peer.name:  # this site runs the job
            job_id = msg.remote_job_id
            if offer.epoch != msg.epoch:
                return
            fresh = await self._rows.claim_offer_control(job_id, msg.seq)
        else:  # this site is the job's origin
            job_id = msg.origin_job_id
            job = await self._jobs.get_job(job_id)
            if job is None or job.placement != peer.name:
                raise NotFoundError(f"no job {job_id!r} placed at {peer.name}")
            if job.placement_epoch != msg.epoch:
                return
            fresh = await self._rows.claim_forward_control(job_id, msg.epoch, msg.seq)
        if not fresh:
            log.info("stale %s of job %s from %s ignored", msg.TYPE, job_id, peer.name)
            return
        with self._from_peer.applying(job_id):
            try:
                if isinstance(msg, Pause):
                    await self._jobs.pause(job_id)
                else:
                    await self._jobs.resume(job_id)
            except ConflictError as exc:  # already so, or finished: nothing to do
                log.info("%s of job %s from %s: %s", msg.TYPE, job_id, peer.name, exc)
                return
        log.info("job %s %sd by %s", job_id, msg.TYPE, peer.name)
