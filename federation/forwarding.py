"""Origin side: place jobs, forward them whole to a peer, re-place them.

Forwarding one placement (job, epoch) at peer P:

1. ``offer`` with the idempotency key ``<origin site>:<job id>:<epoch>``; P answers with the
   blobs it lacks, or rejects with reasons (the job is then rendered here);
2. upload only the missing blobs (chunked, resumable; P verifies each sha256);
3. ``commit``: P creates the job and answers with its id there.

Each step is idempotent at P, so the sequence is simply re-run after any
failure or restart (with backoff) until it commits, or until the job was
re-placed or cancelled meanwhile. What happens after the commit (polling quiet
peers, re-placing the job when P has been unreachable beyond the lease) is
:mod:`federation.reconcile`'s; it re-places through :meth:`Forwarding.replace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from federation.client import PeerUnavailableError
from federation.errors import UploadError
from federation.interfaces import (
    AcceptedOffers,
    BlobFiles,
    ForwardedJobs,
    ForwardingClient,
    ForwardRows,
    MessageQueue,
    PeerCapacities,
    ServerViews,
    UsageLedger,
    Wakeup,
)
from federation.peers import FederationConfig, PeerConfig
from federation.placing import Placer, replaced_reason
from federation.protocol import (
    Cancel,
    Commit,
    CommitReply,
    JobSpec,
    Offer,
    OfferReply,
)
from federation.transfer import DIRECT_MAX
from federation.upload_threads import UploadSlots
from scheduler.profile import JobProfile
from site_agent.store.records import LOCAL, JobRecord

log = logging.getLogger(__name__)

UPLOAD_STREAMS = 4
"""Blobs of one job uploaded at once, and beside them as many small ones (``DIRECT_MAX``)."""
SMALL_UPLOAD_STREAMS = 4


class _Retry(Exception):
    """One forwarding attempt failed in a way worth retrying."""


class Forwarding:
    """The origin side: placement, offer/upload/commit and re-placement."""

    def __init__(
        self,
        *,
        name: str,
        config: FederationConfig,
        jobs: ForwardedJobs,
        forwards: ForwardRows,
        client: ForwardingClient,
        peers: PeerCapacities,
        outbox: MessageQueue,
        blobs: BlobFiles,
        views: ServerViews,
        wakeup: Wakeup,
        offers: AcceptedOffers | None = None,
        usage: UsageLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._usage = usage
        self._offers = offers
        self._config = config
        self._jobs = jobs
        self._forwards = forwards
        self._client = client
        self._peers = peers
        self._outbox = outbox
        self._blobs = blobs
        self._views = views
        self._wakeup = wakeup
        self._clock = clock
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._placer = Placer(
            name=name,
            config=config,
            jobs=jobs,
            forwards=forwards,
            peers=peers,
            views=views,
            offers=offers,
        )

    # --- placement (federation.placing) -------------------------------------
    async def place(
        self, job: JobRecord, requested: str | None, exclude: frozenset[str] = frozenset()
    ) -> JobRecord:
        """Decide where ``job`` runs (:meth:`federation.placing.Placer.place`)."""
        return await self._placer.place(job, requested, exclude)

    def onward_candidates(self, profile: JobProfile, exclude: Collection[str]) -> list[str]:
        """Peers that advertise a server for ``profile``, best first, none in ``exclude``."""
        return self._placer.onward_candidates(profile, exclude)

    # --- forwarding -------------------------------------------------------
    def start(self, job: JobRecord) -> None:
        """Forward ``job`` at its current placement, in a task owned by this object."""
        key = (job.id, job.placement_epoch)
        if key in self._tasks or job.placement == LOCAL:
            return
        task = asyncio.create_task(
            self._forward(job.id, job.placement_epoch, job.placement),
            name=f"fed-forward-{job.id}-{job.placement_epoch}",
        )
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _forward(self, job_id: str, epoch: int, peer_name: str) -> None:
        peer = self._config.peer(peer_name)
        if peer is None:
            log.error("job %s is placed at unknown peer %s; re-placing it", job_id, peer_name)
            await self.replace(job_id, epoch, f"peer {peer_name} is no longer configured")
            return
        await self._forwards.start_forward(job_id, epoch, peer.name, at=self._clock())
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            wait=wait_random_exponential(multiplier=0.5, max=15),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._forward_once(job_id, epoch, peer)
        except Exception:
            log.exception("forwarding job %s to %s failed", job_id, peer.name)

    def stop(self, job_id: str, epoch: int) -> None:
        """Cancel the task forwarding that placement, if one runs (its lease ran out)."""
        task = self._tasks.get((job_id, epoch))
        if task is not None:
            task.cancel()

    async def current(self, job_id: str, epoch: int) -> JobRecord | None:
        """The job while it is unfinished and still at ``epoch``; else None."""
        job = await self._jobs.get_job(job_id)
        if job is None or job.state.finished or job.placement_epoch != epoch:
            return None
        return job

    async def _forward_once(self, job_id: str, epoch: int, peer: PeerConfig) -> None:
        job = await self.current(job_id, epoch)
        if job is None:
            return  # cancelled or re-placed meanwhile
        key = f"{self._name}:{job.id}:{epoch}"
        path = (*await self._placer.path(job), self._name)
        try:
            reply = await self._client.send(
                peer, "/fed/v1/offer", _offer(job, key, path), OfferReply
            )
        except PeerUnavailableError as exc:
            self._peers.contact_failed(peer.name, str(exc))
            log.warning("offering job %s to %s: %s", job_id, peer.name, exc)
            if await self._next_candidate(job, peer, f"{peer.name} unreachable"):
                return
            raise _Retry() from exc
        try:
            self._peers.contact_ok(peer.name)
            if not reply.accepted:
                await self._rejected(job, peer, reply)
                return
            self._peers.note_blobs(peer.name, {m.sha256 for m in job.manifest} - set(reply.missing))
            remote_id = reply.remote_job_id or await self._upload_and_commit(job, peer, key, reply)
        except PeerUnavailableError as exc:
            self._peers.contact_failed(peer.name, str(exc))
            log.warning("forwarding job %s: %s", job_id, exc)
            raise _Retry() from exc
        except UploadError as exc:
            log.warning("forwarding job %s: %s", job_id, exc)
            raise _Retry() from exc
        await self._record_commit(job, peer, remote_id)

    async def _record_commit(self, job: JobRecord, peer: PeerConfig, remote_id: str) -> None:
        """Store the peer's job id, unless the job was cancelled or re-placed meanwhile.

        A cancel or re-placement during the offer/upload found no remote job to stop,
        so here the peer is told to stop the job it just created.
        """
        epoch = job.placement_epoch
        if await self.current(job.id, epoch) is None:  # unfenced write below: don't revert
            await self._abandon(job.id, epoch, peer, remote_id)
            return
        await self._jobs.set_job_placement(
            job.id,
            placement=peer.name,
            reason=job.placement_reason,
            epoch=epoch,
            remote_job_id=remote_id,
            at=self._clock(),
        )
        await self._forwards.set_forward_state(
            job.id, epoch, "committed", remote_job_id=remote_id, at=self._clock()
        )
        if await self.current(job.id, epoch) is None:  # cancelled during the write above
            await self._abandon(job.id, epoch, peer, remote_id)
            return
        log.info("job %s forwarded to %s as its job %s", job.id, peer.name, remote_id)

    async def _abandon(self, job_id: str, epoch: int, peer: PeerConfig, remote_id: str) -> None:
        log.info(
            "job %s was cancelled or re-placed while being forwarded; stopping it at %s",
            job_id,
            peer.name,
        )
        await self._forwards.set_forward_state(
            job_id, epoch, "abandoned", remote_job_id=remote_id, at=self._clock()
        )
        await self._send_cancel(job_id, epoch, peer.name, remote_id)

    async def _upload_and_commit(
        self, job: JobRecord, peer: PeerConfig, key: str, reply: OfferReply
    ) -> str:
        missing = set(reply.missing)
        unique = {a.sha256 for a in job.manifest}
        sent_bytes = sent_blobs = 0
        slots = UploadSlots(UPLOAD_STREAMS, SMALL_UPLOAD_STREAMS, DIRECT_MAX)
        sizes = {a.sha256: a.size for a in job.manifest}

        async def upload(sha: str) -> None:
            nonlocal sent_bytes, sent_blobs
            async with slots.slot(sizes[sha]):
                sent = await self._client.upload_blob(peer, sha, self._blobs.path_for(sha))
            sent_bytes += sent
            sent_blobs += 1
            self._peers.note_blobs(peer.name, (sha,))
            if self._usage is not None:
                await self._usage.record_transfer(
                    job_id=job.id, peer=peer.name, at=self._clock(), bytes_out=sent
                )

        # Several blobs in parallel streams: one TLS stream is bound by one core's crypto
        # and the round trip per chunk; the peer's bandwidth cap is shared by all of them.
        try:
            async with asyncio.TaskGroup() as group:
                for sha in sorted(missing & unique):
                    group.create_task(upload(sha))
        except BaseExceptionGroup as failures:
            raise _first_failure(failures) from None
        await self._forwards.add_transfer(
            job.id,
            job.placement_epoch,
            bytes_sent=sent_bytes,
            blobs_sent=sent_blobs,
            blobs_skipped=len(unique - missing),
            at=self._clock(),
        )
        log.info(
            "job %s: sent %d blobs (%d bytes) to %s, %d already there",
            job.id,
            sent_blobs,
            sent_bytes,
            peer.name,
            len(unique - missing),
        )
        commit = await self._client.send(peer, "/fed/v1/commit", Commit(key=key), CommitReply)
        return commit.remote_job_id

    async def _rejected(self, job: JobRecord, peer: PeerConfig, reply: OfferReply) -> None:
        reason = f"{peer.name} refused ({'; '.join(reply.reasons) or 'no reason given'})"
        log.warning("job %s: %s [%s]", job.id, reason, ", ".join(reply.codes))
        await self._peers.refused(peer.name, job.part_of or job.id, reply.codes, reply.reasons)
        await self._forwards.set_forward_state(
            job.id, job.placement_epoch, "rejected", remote_job_id=None, at=self._clock()
        )
        await self.replace(job.id, job.placement_epoch, reason, exclude=frozenset({peer.name}))

    async def _next_candidate(self, job: JobRecord, peer: PeerConfig, why: str) -> bool:
        """Move an offer the peer cannot be reached for to the next capable peer, if any.

        With no other peer the offer is retried here until it answers or the lease
        ends (the job cannot run here either, or it would not have been forwarded).
        """
        if job.remote_job_id is not None:
            return False  # committed there: only the lease moves it
        others = self.onward_candidates(
            job.profile, {peer.name, *await self._placer.path(job), *await self._placer.tried(job)}
        )
        if not others:
            return False
        await self.replace(job.id, job.placement_epoch, why, exclude=frozenset({peer.name}))
        return True

    # --- re-placement, cancel ----------------------------------------------
    async def replace(
        self, job_id: str, old_epoch: int, why: str, exclude: frozenset[str] = frozenset()
    ) -> None:
        """Move the job to a new placement (epoch + 1): another peer that can run it, or here."""
        job = await self.current(job_id, old_epoch)
        if job is None:
            return
        if job.part_of is not None:
            # A part comes home: fed-split settles it, its chunks wait in the split job
            # again and go to the next peer with room, or render here.
            placed = dataclasses.replace(
                job, placement=LOCAL, placement_reason=f"its chunks return to job {job.part_of}"
            )
        else:
            placed = await self.place(
                dataclasses.replace(job, placement=LOCAL), None, exclude=exclude | {job.placement}
            )
        reason = replaced_reason(job.placement_reason, why, placed.placement_reason)
        now = self._clock()
        new_epoch = await self._jobs.replace_job(
            job_id,
            old_epoch=old_epoch,
            placement=placed.placement,
            reason=reason,
            at=now,
            hook=self._forwards.forward_state_hook(job_id, old_epoch, "abandoned", at=now),
        )
        if new_epoch is None:
            return
        if placed.placement == LOCAL:
            self._wakeup.wake()
        else:
            job = await self._jobs.get_job(job_id)
            if job is not None:
                self.start(job)

    async def cancel(self, job: JobRecord) -> None:
        """Tell the peer to stop the job (durably, through the outbox)."""
        if job.remote_job_id is None:
            return  # not committed yet: the forwarding task stops it (_record_commit)
        await self._send_cancel(job.id, job.placement_epoch, job.placement, job.remote_job_id)

    async def _send_cancel(self, job_id: str, epoch: int, peer: str, remote_id: str) -> None:
        # One id per placement: queueing it twice (cancel racing a commit) sends it once.
        msg = Cancel(origin_job_id=job_id, remote_job_id=remote_id, epoch=epoch)
        await self._outbox.enqueue(
            peer=peer,
            kind="cancel",
            job_id=job_id,
            message=msg,
            msg_id=f"cancel:{job_id}:{epoch}",
            final=True,
        )


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first upload failure, as callers expect it (not wrapped in a group)."""
    first = group.exceptions[0]
    return _first_failure(first) if isinstance(first, BaseExceptionGroup) else first


def _offer(job: JobRecord, key: str, path: tuple[str, ...]) -> Offer:
    spec = JobSpec(
        name=job.name,
        owner=job.owner,
        priority=job.priority,
        profile=job.profile.to_dict(),
        frames=job.frames,
        chunk_size=job.chunk_size,
        scene=job.scene,
        output_name=job.output_name,
        settings=dict(job.settings),
    )
    return Offer(
        key=key,
        origin_job_id=job.id,
        epoch=job.placement_epoch,
        job=spec,
        manifest=job.manifest,
        path=path,
    )
