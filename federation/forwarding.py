"""Origin side: place jobs, forward them whole to a peer, watch them, re-place them.

Forwarding one placement (job, epoch) at peer P:

1. ``offer`` with the idempotency key ``<origin site>:<job id>:<epoch>``; P answers with the
   blobs it lacks, or rejects with reasons (the job is then rendered here);
2. upload only the missing blobs (chunked, resumable; P verifies each sha256);
3. ``commit``: P creates the job and answers with its id there.

Each step is idempotent at P, so the sequence is simply re-run after any
failure or restart (with backoff) until it commits, or until the job was
re-placed or cancelled meanwhile. The reconciliation loop polls P for jobs that
have not been heard of for a while (covers lost notifications and partitions)
and, when P has been unreachable for longer than the lease, re-places the job
with the next epoch: here, or at another peer. Results of the old epoch are
then ignored.
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
from federation.errors import FederationError, UploadError
from federation.interfaces import (
    AcceptedOffers,
    BlobFiles,
    ForwardedJobs,
    ForwardingClient,
    ForwardRows,
    MessageQueue,
    PeerCapacities,
    RemoteFinish,
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
from federation.store import ForwardRow
from scheduler.dependencies import ready
from scheduler.profile import JobProfile
from site_agent.store.records import LOCAL, JobRecord

log = logging.getLogger(__name__)

UPLOAD_STREAMS = 4
"""Blobs of one job uploaded at once."""


class _Retry(Exception):
    """One forwarding attempt failed in a way worth retrying."""


class Forwarding:
    """The origin side: placement, offer/upload/commit, reconciliation and re-placement."""

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
        results: RemoteFinish,
        blobs: BlobFiles,
        views: ServerViews,
        wakeup: Wakeup,
        offers: AcceptedOffers | None = None,
        usage: UsageLedger | None = None,
        clock: Callable[[], float] = time.time,
        poll_interval_s: float = 5.0,
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
        self._results = results
        self._blobs = blobs
        self._views = views
        self._wakeup = wakeup
        self._clock = clock
        self.poll_interval_s = poll_interval_s
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

    async def _current(self, job_id: str, epoch: int) -> JobRecord | None:
        job = await self._jobs.get_job(job_id)
        if job is None or job.state.finished or job.placement_epoch != epoch:
            return None
        return job

    async def _forward_once(self, job_id: str, epoch: int, peer: PeerConfig) -> None:
        job = await self._current(job_id, epoch)
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
        if await self._current(job.id, epoch) is None:  # unfenced write below: don't revert
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
        if await self._current(job.id, epoch) is None:  # cancelled during the write above
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
        streams = asyncio.Semaphore(UPLOAD_STREAMS)

        async def upload(sha: str) -> None:
            nonlocal sent_bytes, sent_blobs
            async with streams:
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
        job = await self._current(job_id, old_epoch)
        if job is None:
            return
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

    # --- reconciliation ------------------------------------------------------
    async def resume(self) -> None:
        """After a restart: carry on forwarding placements that never committed, and offer
        the ready jobs placed at a peer whose forward never started.

        A job is offered after the commit that made it ready (its creation, or the end
        of the last job it waited for), by a task whose first write is its forward
        record: a crash in between leaves a queued job at a peer with no record.
        """
        for row in await self._forwards.open_forwards():
            if row.state == "offering":
                job = await self._current(row.job_id, row.epoch)
                if job is not None:
                    self.start(job)
        unforwarded = await self._forwards.unforwarded_jobs()
        upstreams = await self._jobs.job_upstreams(unforwarded) if unforwarded else {}
        for job_id in unforwarded:
            job = await self._jobs.get_job(job_id)
            if job is not None and ready(upstreams.get(job_id, ())):
                log.info("job %s: offering it to %s (never offered)", job_id, job.placement)
                self.start(job)

    async def reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                for row in await self._forwards.open_forwards():
                    await self._reconcile(row)
            except Exception:  # one bad round must not end the loop
                log.exception("federation reconciliation round failed")

    async def _reconcile(self, row: ForwardRow) -> None:
        now = self._clock()
        peer = self._config.peer(row.peer)
        quiet_for = now - (row.last_contact_at or row.created_at)
        if peer is None or quiet_for < self.poll_interval_s:
            return
        if row.state == "offering":
            job = await self._current(row.job_id, row.epoch)
            if job is not None:
                self.start(job)
        else:
            try:
                await self._poll(peer, row)
                return
            except PeerUnavailableError as exc:
                self._peers.contact_failed(peer.name, str(exc))
            except FederationError as exc:
                log.warning("polling %s for job %s: %s", peer.name, row.job_id, exc)
        if quiet_for > self._config.lease_s:
            await self._lease_expired(row, quiet_for)

    async def _lease_expired(self, row: ForwardRow, quiet_for: float) -> None:
        log.warning(
            "job %s: %s unreachable for %.0fs (lease %.0fs); re-placing",
            row.job_id,
            row.peer,
            quiet_for,
            self._config.lease_s,
        )
        job = await self._current(row.job_id, row.epoch)
        if job is not None:
            task = self._tasks.get((row.job_id, row.epoch))
            if task is not None:
                task.cancel()
            await self.cancel(job)  # best effort: reaches the peer if it ever comes back
            await self.replace(
                row.job_id, row.epoch, f"{row.peer} unreachable for {quiet_for:.0f}s"
            )

    async def _poll(self, peer: PeerConfig, row: ForwardRow) -> None:
        if row.remote_job_id is None:
            return
        status = await self._client.get_json(peer, f"/fed/v1/jobs/{row.remote_job_id}")
        self._peers.contact_ok(peer.name)
        state = str(status.get("state"))
        await self._forwards.forward_contact(
            row.job_id,
            row.epoch,
            remote_state=state,
            frames_done=int(status.get("frames_done", 0)),
            at=self._clock(),
        )
        if state in ("done", "failed", "cancelled"):
            await self._results.apply_status(peer, row, status)


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
