"""Remote side: accept whole jobs from peers, run them here, and notify their origin.

Offer -> (blobs) -> commit creates an ordinary local job carrying
``origin_site``/``origin_job_id``; this site's own scheduler distributes its
frames. Offers are keyed by the origin's idempotency key, and the job created
by a commit has an id derived from that key, so a retried offer or commit never
creates a second job, even after a crash between the two writes.

Progress goes to the origin through the durable outbox (:mod:`federation.progress`);
so does completion (:mod:`federation.notices`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from federation.admission import Admission, OnwardPeers, PeerLoad, may_forward_again, offer_path
from federation.interfaces import (
    BlobIndex,
    CheckedFrames,
    JobControl,
    OfferRows,
    ServerViews,
    UsageLedger,
    Wakeup,
)
from federation.notices import usage_fields
from federation.peers import PeerConfig
from federation.policy import Refusal, RefusalCode
from federation.protocol import (
    Ack,
    Cancel,
    Commit,
    CommitReply,
    Offer,
    OfferReply,
)
from federation.store import OfferRow
from scheduler.frames import chunk_frames, parse_frames
from scheduler.profile import JobProfile
from site_agent.errors import ConflictError, JobExistsError, NotFoundError
from site_agent.storage import OpenFrame
from site_agent.store.records import LOCAL, FrameRecord, JobRecord, JobState

log = logging.getLogger(__name__)


class Relay(OnwardPeers, Protocol):
    """Forwarding an accepted job on (:class:`~federation.forwarding.Forwarding`)."""

    async def place(
        self, job: JobRecord, requested: str | None, exclude: frozenset[str] = frozenset()
    ) -> JobRecord: ...


def remote_job_id(key: str) -> str:
    """The id of the job a commit creates: fixed by the offer key, so commits are idempotent."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class Acceptance:
    """The remote side of forwarding: offers, commits, cancels, status, frames, accounting."""

    def __init__(
        self,
        *,
        name: str,
        jobs: JobControl,
        offers: OfferRows,
        blobs: BlobIndex,
        frames: CheckedFrames,
        views: ServerViews,
        wakeup: Wakeup,
        known_packages: Collection[str],
        load: PeerLoad,
        relay: Relay | None = None,
        usage: UsageLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._usage = usage
        self._relay = relay
        self.admission = Admission(
            name=name,
            load=load,
            views=views,
            onward=relay,
            known_packages=known_packages,
            clock=clock,
        )
        self._jobs = jobs
        self._offers = offers
        self._blobs = blobs
        self._frames = frames
        self._wakeup = wakeup
        self._clock = clock

    # --- offer / commit -------------------------------------------------
    async def offer(self, peer: PeerConfig, offer: Offer) -> OfferReply:
        store = self._offers
        if not peer.allow_accept_from:
            return _reject(
                offer,
                Refusal(
                    code=RefusalCode.NOT_ACCEPTED,
                    message=f"site {self._name} does not accept jobs from {peer.name}",
                ),
            )
        if not offer.key.startswith(f"{peer.name}:"):
            return _reject(
                offer,
                Refusal(
                    code=RefusalCode.INVALID,
                    message=f"offer key {offer.key!r} must start with '{peer.name}:'",
                ),
            )
        existing = await store.get_offer(offer.key)
        if existing is None:
            refused = await self.admission.check(peer, offer)
            if refused:
                log.info(
                    "offer %s from %s refused: %s",
                    offer.key,
                    peer.name,
                    "; ".join(r.message for r in refused),
                )
                return _reject(offer, *refused)
            existing = await store.insert_offer(
                key=offer.key,
                site=peer.name,
                origin_job_id=offer.origin_job_id,
                epoch=offer.epoch,
                body=offer.to_body(),
                at=self._clock(),
            )
            log.info(
                "offer %s from %s accepted (%d frames of %s)",
                offer.key,
                peer.name,
                len(parse_frames(offer.job.frames)),
                offer.job.profile.get("package"),
            )
        if existing.site != peer.name:
            return _reject(
                offer,
                Refusal(code=RefusalCode.INVALID, message="this offer key belongs to another site"),
            )
        if existing.remote_job_id is not None:
            return OfferReply(key=offer.key, accepted=True, remote_job_id=existing.remote_job_id)
        missing = self._blobs.missing(m.sha256 for m in offer.manifest)
        return OfferReply(key=offer.key, accepted=True, missing=tuple(missing))

    async def blob_allowed(self, peer: PeerConfig, sha256: str) -> bool:
        """Whether ``peer`` may upload this blob: it is in one of its uncommitted offers."""
        if not peer.allow_accept_from:
            return False
        for offer in await self._offers.pending_offers(peer.name):
            if any(m.get("sha256") == sha256 for m in offer.body.get("manifest", ())):
                return True
        return False

    async def commit(self, peer: PeerConfig, commit: Commit) -> CommitReply:
        offer_row = await self._offers.get_offer(commit.key)
        if offer_row is None or offer_row.site != peer.name:
            raise NotFoundError(f"no accepted offer {commit.key!r} from {peer.name}; offer first")
        if offer_row.remote_job_id is not None:
            return CommitReply(key=commit.key, remote_job_id=offer_row.remote_job_id)
        offer = Offer.from_body(offer_row.body)
        missing = self._blobs.missing(m.sha256 for m in offer.manifest)
        if missing:
            raise ConflictError(
                f"{len(missing)} blobs of offer {commit.key} are not uploaded yet; "
                "upload them, then commit again",
                missing=missing,
            )
        job = self._job_from_offer(peer, offer)
        path = offer_path(offer, peer.name)
        if job.forward_allowed and self._relay is not None:
            # The policy allows one more hop: place it like a submission, never back along its path.
            job = await self._relay.place(job, None, exclude=frozenset(path))
        frames = parse_frames(offer.job.frames)
        try:
            await self._jobs.create_job(job, chunk_frames(frames, job.chunk_size))
        except JobExistsError:
            log.info(
                "job %s for offer %s already exists (commit retried after a crash)",
                job.id,
                commit.key,
            )
        await self._offers.commit_offer(commit.key, job.id, at=self._clock())
        log.info("offer %s from %s committed as job %s", commit.key, peer.name, job.id)
        self._wakeup.wake()
        return CommitReply(key=commit.key, remote_job_id=job.id)

    def _job_from_offer(self, peer: PeerConfig, offer: Offer) -> JobRecord:
        spec, now = offer.job, self._clock()
        return JobRecord(
            id=remote_job_id(offer.key),
            name=spec.name,
            owner=spec.owner,
            origin_site=peer.name,
            priority=spec.priority,
            profile=JobProfile.from_dict(dict(spec.profile)),
            frames=spec.frames,
            frame_count=len(parse_frames(spec.frames)),
            chunk_size=spec.chunk_size,
            scene=spec.scene,
            manifest=tuple(offer.manifest),
            output_name=spec.output_name,
            settings=dict(spec.settings),
            placement=LOCAL,
            placement_reason=f"accepted from {peer.name} (its job {offer.origin_job_id})",
            forward_allowed=may_forward_again(peer, offer_path(offer, peer.name)),
            origin_job_id=offer.origin_job_id,
            created_at=now,
            updated_at=now,
        )

    # --- cancel, status, frames ----------------------------------------
    async def cancel(self, peer: PeerConfig, cancel: Cancel) -> Ack:
        offer, job = await self.owned_job(peer, cancel.remote_job_id)
        if offer.epoch != cancel.epoch:
            log.info(
                "cancel of job %s for epoch %d ignored (offer epoch %d)",
                job.id,
                cancel.epoch,
                offer.epoch,
            )
        elif not job.state.finished:
            await self._jobs.cancel(job.id)
            log.info("job %s cancelled by its origin %s", job.id, peer.name)
        return Ack(of=cancel.remote_job_id)

    async def owned_job(self, peer: PeerConfig, job_id: str) -> tuple[OfferRow, JobRecord]:
        """The job with ``job_id`` if ``peer`` forwarded it here; 404 otherwise (no hint)."""
        offer = await self._offers.offer_by_job(job_id)
        job = await self._jobs.get_job(job_id) if offer else None
        if offer is None or job is None or offer.site != peer.name:
            raise NotFoundError(f"no job {job_id!r} forwarded by {peer.name}")
        return offer, job

    async def status(self, peer: PeerConfig, job_id: str) -> dict[str, Any]:
        offer, job = await self.owned_job(peer, job_id)
        frames = await self._jobs.list_frames(job.id)
        return {
            "remote_job_id": job.id,
            "origin_job_id": offer.origin_job_id,
            "epoch": offer.epoch,
            "state": job.state.value,
            "frames_done": len(frames),
            "frames_total": job.frame_count,
            "error": job.error,
            "frames": [_frame_dict(f) for f in frames] if job.state == JobState.DONE else [],
            **(await usage_fields(self._usage, job)),
        }

    async def frame_file(
        self, peer: PeerConfig, job_id: str, frame: int, name: str | None = None
    ) -> tuple[OpenFrame, str]:
        """The frame's main file (or its file ``name``) opened after its bytes were checked
        against the record, and its file name.

        A frame whose file is gone or no longer matches raises the storage's
        ``FrameMissingError``/``FrameCorruptError`` (the origin counts it as a bad frame).
        """
        _, job = await self.owned_job(peer, job_id)
        record = await self._jobs.get_frame(job.id, frame)
        if record is None:
            raise NotFoundError(f"frame {frame} of job {job_id} is not rendered")
        wanted = (record.name, record.sha256)
        if name is not None and name != record.name:
            match = next((f for f in record.files if f.name == name), None)
            if match is None:
                raise NotFoundError(f"frame {frame} of job {job_id} has no file {name!r}")
            wanted = (match.name, match.sha256)
        opened = await self._frames.open_frame(
            self._frames.job_dir(job.name, job.id),
            wanted[0],
            job_id=job.id,
            frame=frame,
            sha256=wanted[1],
        )
        return opened, wanted[0]

    # --- accounting -------------------------------------------------------
    async def blob_received(self, peer: PeerConfig, sha256: str, size: int) -> None:
        """Account ``size`` uploaded bytes of blob ``sha256`` to the job of ``peer``'s open offer."""
        if self._usage is None or size <= 0:
            return
        for offer in await self._offers.pending_offers(peer.name):
            if any(m.get("sha256") == sha256 for m in offer.body.get("manifest", ())):
                # The job a commit of this offer creates has an id fixed by the offer's key.
                await self._usage.record_transfer(
                    job_id=remote_job_id(offer.key), peer=peer.name, at=self._clock(), bytes_in=size
                )
                return

    async def frame_sent(self, peer: PeerConfig, job_id: str, size: int) -> None:
        """Account a frame of ``job_id`` served to ``peer`` (its origin fetching it back)."""
        if self._usage is not None and size > 0:
            await self._usage.record_transfer(
                job_id=job_id, peer=peer.name, at=self._clock(), bytes_out=size
            )


def _frame_dict(frame: FrameRecord) -> dict[str, Any]:
    files = [
        {"name": f.name, "sha256": f.sha256, "size": f.size, "kind": f.kind.value}
        for f in frame.files
    ]
    return {
        "frame": frame.frame,
        "sha256": frame.sha256,
        "size": frame.size,
        "name": frame.name,
        "files": files,
    }


def _reject(offer: Offer, *refused: Refusal) -> OfferReply:
    return OfferReply(
        key=offer.key,
        accepted=False,
        reasons=tuple(r.message for r in refused),
        codes=tuple(r.code.value for r in refused),
    )
