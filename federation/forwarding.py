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
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from federation.capacity import local_views
from federation.client import PeerUnavailableError
from federation.errors import FederationError, UploadError
from federation.peers import PeerConfig
from federation.protocol import (
    Cancel,
    Commit,
    CommitReply,
    JobSpec,
    ManifestEntry,
    Offer,
    OfferReply,
)
from federation.transfer import upload_blob
from scheduler.placement import LOCAL_SITE_NAMES, decide_placement, estimate_local_wait_s
from scheduler.profile import matches
from site_agent.errors import BadRequestError
from site_agent.store.fed_store import ForwardRow
from site_agent.store.records import LOCAL, JobRecord

if TYPE_CHECKING:
    from federation.service import FederationService

log = logging.getLogger(__name__)

DEFAULT_FRAME_S = 1.0


class _Retry(Exception):
    """One forwarding attempt failed in a way worth retrying."""


class Forwarding:
    def __init__(self, service: FederationService, *, poll_interval_s: float = 5.0) -> None:
        self._service = service
        self.poll_interval_s = poll_interval_s
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}

    # --- placement --------------------------------------------------------
    async def place(
        self, job: JobRecord, requested: str | None, exclude: frozenset[str] = frozenset()
    ) -> JobRecord:
        service = self._service
        if requested is not None and requested.strip().lower() in {*LOCAL_SITE_NAMES, service.name}:
            requested = "local"
        if requested not in (None, "local"):
            peer = service.config.peer(requested)
            if peer is not None and not peer.allow_forward_to:
                raise BadRequestError(
                    f"this site does not forward jobs to {requested} ([[peers]] forward = false)"
                )
        targets = [p for p in service.config.peers if p.allow_forward_to and p.name not in exclude]
        views = await local_views(service)
        capable_slots = sum(v.slots for v in views if v.online and matches(job.profile, v))
        per_frame = await service.store.fed_seconds_per_frame() or DEFAULT_FRAME_S
        wait = estimate_local_wait_s(
            queued_frames_ahead=await service.store.fed_local_frames_waiting(),
            capable_slots=capable_slots,
            avg_frame_s=per_frame,
        )
        decision = decide_placement(
            job.profile,
            local_servers=views,
            peers=service.book.capacities(targets),
            estimated_wait_s=wait,
            overflow_after_s=service.config.overflow_after_s,
            requested_site=requested,
            allow_forward=job.forward_allowed,
        )
        if decision.site is None:
            return dataclasses.replace(job, placement=LOCAL, placement_reason=decision.reason)
        return dataclasses.replace(
            job,
            placement=decision.site,
            placement_reason=decision.reason,
            placement_epoch=job.placement_epoch + 1,
            remote_job_id=None,
        )

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
        service = self._service
        peer = service.config.peer(peer_name)
        if peer is None:
            log.error("job %s is placed at unknown peer %s; re-placing it", job_id, peer_name)
            await self.replace(job_id, epoch, f"peer {peer_name} is no longer configured")
            return
        await service.store.fed_start_forward(job_id, epoch, peer.name, at=service.clock())
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
        job = await self._service.site.store.get_job(job_id)
        if job is None or job.state.finished or job.placement_epoch != epoch:
            return None
        return job

    async def _forward_once(self, job_id: str, epoch: int, peer: PeerConfig) -> None:
        service = self._service
        job = await self._current(job_id, epoch)
        if job is None:
            return  # cancelled or re-placed meanwhile
        key = f"{service.name}:{job.id}:{epoch}"
        try:
            reply = await service.client.send(peer, "/fed/v1/offer", _offer(job, key), OfferReply)
            service.book.contact_ok(peer.name)
            if not reply.accepted:
                await self._rejected(job, peer, reply)
                return
            remote_id = reply.remote_job_id or await self._upload_and_commit(job, peer, key, reply)
        except PeerUnavailableError as exc:
            service.book.contact_failed(peer.name, str(exc))
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
        service, epoch = self._service, job.placement_epoch
        if await self._current(job.id, epoch) is None:  # unfenced write below: don't revert
            await self._abandon(job.id, epoch, peer, remote_id)
            return
        await service.site.store.set_job_placement(
            job.id,
            placement=peer.name,
            reason=job.placement_reason,
            epoch=epoch,
            remote_job_id=remote_id,
            at=service.clock(),
        )
        await service.store.fed_set_forward_state(
            job.id, epoch, "committed", remote_job_id=remote_id, at=service.clock()
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
        await self._service.store.fed_set_forward_state(
            job_id, epoch, "abandoned", remote_job_id=remote_id, at=self._service.clock()
        )
        await self._send_cancel(job_id, epoch, peer.name, remote_id)

    async def _upload_and_commit(
        self, job: JobRecord, peer: PeerConfig, key: str, reply: OfferReply
    ) -> str:
        service = self._service
        missing = set(reply.missing)
        unique = {a.sha256 for a in job.manifest}
        sent_bytes = sent_blobs = 0
        for sha in sorted(missing & unique):
            sent_bytes += await upload_blob(
                service.client.session,
                peer.url,
                sha,
                service.site.assets.path_for(sha),
                request_options=service.client.options(peer),
            )
            sent_blobs += 1
        await service.store.fed_add_transfer(
            job.id,
            job.placement_epoch,
            bytes_sent=sent_bytes,
            blobs_sent=sent_blobs,
            blobs_skipped=len(unique - missing),
            at=service.clock(),
        )
        log.info(
            "job %s: sent %d blobs (%d bytes) to %s, %d already there",
            job.id,
            sent_blobs,
            sent_bytes,
            peer.name,
            len(unique - missing),
        )
        commit = await service.client.send(peer, "/fed/v1/commit", Commit(key=key), CommitReply)
        return commit.remote_job_id

    async def _rejected(self, job: JobRecord, peer: PeerConfig, reply: OfferReply) -> None:
        reason = f"{peer.name} rejected the job: {'; '.join(reply.reasons) or 'no reason given'}"
        log.warning("job %s: %s", job.id, reason)
        await self._service.store.fed_set_forward_state(
            job.id, job.placement_epoch, "rejected", remote_job_id=None, at=self._service.clock()
        )
        await self.replace(job.id, job.placement_epoch, reason, exclude=frozenset({peer.name}))

    # --- re-placement, cancel ----------------------------------------------
    async def replace(
        self, job_id: str, old_epoch: int, why: str, exclude: frozenset[str] = frozenset()
    ) -> None:
        """Move the job to a new placement (epoch + 1): another peer that can run it, or here."""
        service = self._service
        job = await self._current(job_id, old_epoch)
        if job is None:
            return
        placed = await self.place(
            dataclasses.replace(job, placement=LOCAL), None, exclude=exclude | {job.placement}
        )
        reason = f"re-placed: {why}; {placed.placement_reason}"
        new_epoch = await service.store.fed_replace_job(
            job_id,
            old_epoch=old_epoch,
            placement=placed.placement,
            reason=reason,
            at=service.clock(),
        )
        if new_epoch is None:
            return
        if placed.placement == LOCAL:
            service.site.dispatcher.wake()
        else:
            job = await service.site.store.get_job(job_id)
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
        await self._service.enqueue(
            peer=peer,
            kind="cancel",
            job_id=job_id,
            message=msg,
            msg_id=f"cancel:{job_id}:{epoch}",
            final=True,
        )

    # --- reconciliation ------------------------------------------------------
    async def resume(self) -> None:
        """After a restart: carry on forwarding placements that never committed."""
        for row in await self._service.store.fed_open_forwards():
            if row.state == "offering":
                job = await self._current(row.job_id, row.epoch)
                if job is not None:
                    self.start(job)

    async def reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                for row in await self._service.store.fed_open_forwards():
                    await self._reconcile(row)
            except Exception:  # one bad round must not end the loop
                log.exception("federation reconciliation round failed")

    async def _reconcile(self, row: ForwardRow) -> None:
        service = self._service
        now = service.clock()
        peer = service.config.peer(row.peer)
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
                service.book.contact_failed(peer.name, str(exc))
            except FederationError as exc:
                log.warning("polling %s for job %s: %s", peer.name, row.job_id, exc)
        if quiet_for > service.config.lease_s:
            await self._lease_expired(row, quiet_for)

    async def _lease_expired(self, row: ForwardRow, quiet_for: float) -> None:
        log.warning(
            "job %s: %s unreachable for %.0fs (lease %.0fs); re-placing",
            row.job_id,
            row.peer,
            quiet_for,
            self._service.config.lease_s,
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
        service = self._service
        if row.remote_job_id is None:
            return
        status = await service.client.get_json(peer, f"/fed/v1/jobs/{row.remote_job_id}")
        service.book.contact_ok(peer.name)
        state = str(status.get("state"))
        await service.store.fed_forward_contact(
            row.job_id,
            row.epoch,
            remote_state=state,
            frames_done=int(status.get("frames_done", 0)),
            at=service.clock(),
        )
        if state in ("done", "failed", "cancelled"):
            await service.apply_status(peer, row, status)


def _offer(job: JobRecord, key: str) -> Offer:
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
    manifest = tuple(ManifestEntry(path=a.path, sha256=a.sha256, size=a.size) for a in job.manifest)
    return Offer(
        key=key, origin_job_id=job.id, epoch=job.placement_epoch, job=spec, manifest=manifest
    )
