"""Origin side: where a job goes, among this site and its peers, and the story of it.

:class:`Placer` gathers what :func:`scheduler.placement.decide_placement` needs (local
servers and estimated wait, each peer's advert, preference, cost and the bytes of the
job it holds) and applies the rules that span placements of one job: a job is offered
to each peer at most once (every peer of an earlier epoch is excluded), and never to a
site on its forwarding path (the sites it went through before this one, from the offer
it was accepted with). :func:`replaced_reason` keeps the whole story of a job that went
through several candidates for ``spillway job``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Protocol

from federation.interfaces import AcceptedOffers, PeerCapacities, ServerViews
from federation.peers import FederationConfig
from scheduler.placement import (
    LOCAL_SITE_NAMES,
    Placement,
    decide_placement,
    estimate_local_wait_s,
)
from scheduler.profile import JobProfile, matches
from scheduler.ranking import rank_peers
from site_agent.errors import BadRequestError
from site_agent.store.records import LOCAL, JobRecord

DEFAULT_FRAME_S = 1.0
SPLIT_REASON = "split: renders here, parts go to peers with free capable slots; "
REPLACED = "re-placed: "
_THEN = " → "


class LocalLoad(Protocol):
    async def local_frames_waiting(self) -> int: ...

    async def seconds_per_frame(self) -> float | None: ...


class ForwardPeers(Protocol):
    async def forward_peers(self, job_id: str) -> list[str]: ...


class Placer:
    """Placement decisions for the origin side (:class:`~federation.forwarding.Forwarding`)."""

    def __init__(
        self,
        *,
        name: str,
        config: FederationConfig,
        jobs: LocalLoad,
        forwards: ForwardPeers,
        peers: PeerCapacities,
        views: ServerViews,
        offers: AcceptedOffers | None,
    ) -> None:
        self._name = name
        self._config = config
        self._jobs = jobs
        self._forwards = forwards
        self._peers = peers
        self._views = views
        self._offers = offers

    async def place(
        self, job: JobRecord, requested: str | None, exclude: frozenset[str] = frozenset()
    ) -> JobRecord:
        """Decide where ``job`` runs; never at a peer in ``exclude``, on its path, or tried before."""
        config = self._config
        if requested is not None and requested.strip().lower() in {*LOCAL_SITE_NAMES, self._name}:
            requested = "local"
        if requested not in (None, "local"):
            peer = config.peer(requested)
            if peer is not None and not peer.allow_forward_to:
                raise BadRequestError(
                    f"this site does not forward jobs to {requested} ([[peers]] forward = false)"
                )
        exclude = exclude | set(await self.path(job)) | set(await self.tried(job))
        targets = [p for p in config.peers if p.allow_forward_to]
        views = await self._views.server_views()
        capable_slots = sum(v.slots for v in views if v.online and matches(job.profile, v))
        per_frame = await self._jobs.seconds_per_frame() or DEFAULT_FRAME_S
        wait = estimate_local_wait_s(
            queued_frames_ahead=await self._jobs.local_frames_waiting(),
            capable_slots=capable_slots,
            avg_frame_s=per_frame,
        )
        decision = decide_placement(
            job.profile,
            local_servers=views,
            peers=self._peers.capacities(targets, job.manifest),
            estimated_wait_s=wait,
            overflow_after_s=config.overflow_after_s,
            requested_site=requested,
            allow_forward=job.forward_allowed,
            exclude=exclude,
            job_bytes=sum(entry.size for entry in job.manifest),
            avg_frame_s=per_frame,
        )
        local_capable = any(matches(job.profile, v) for v in views)
        if requested is None and local_capable and (job.split or self._split_overflow(decision)):
            reason = f"{SPLIT_REASON}{decision.reason}"
            return dataclasses.replace(job, placement=LOCAL, placement_reason=reason, split=True)
        if decision.site is None:
            return dataclasses.replace(job, placement=LOCAL, placement_reason=decision.reason)
        return dataclasses.replace(
            job,
            placement=decision.site,
            placement_reason=decision.reason,
            placement_epoch=job.placement_epoch + 1,
            remote_job_id=None,
        )

    def _split_overflow(self, decision: Placement) -> bool:
        """``[federation] split``: a job forwarded on overflow is split instead."""
        return self._config.split and decision.site is not None

    def onward_candidates(self, profile: JobProfile, exclude: Collection[str]) -> list[str]:
        """Peers that advertise a server for ``profile``, best first, none in ``exclude``."""
        targets = [p for p in self._config.peers if p.allow_forward_to]
        ranking = rank_peers(profile, self._peers.capacities(targets), exclude=exclude)
        return [c.name for c in ranking.candidates]

    async def path(self, job: JobRecord) -> tuple[str, ...]:
        """The sites a job accepted from a peer went through before this one (empty for ours)."""
        if job.origin_job_id is None or self._offers is None:
            return ()
        offer = await self._offers.offer_by_job(job.id)
        if offer is None:
            return ()
        path = offer.body.get("path") or (offer.site,)
        return tuple(str(site) for site in path)

    async def tried(self, job: JobRecord) -> list[str]:
        """Peers an earlier placement of this job went to: a job is offered to a peer once."""
        if job.placement_epoch == 0:
            return []
        return await self._forwards.forward_peers(job.id)


REPLACED = "re-placed: "
_THEN = " → "


def replaced_reason(old_reason: str, why: str, decision: str) -> str:
    """``re-placed: <every earlier why, oldest first> → <the new decision>``.

    Keeps the whole story of a job that went through several candidates:
    ``re-placed: facility-a refused (package blender not accepted) → forwarded to facility-b: ...``.
    """
    earlier = ""
    if old_reason.startswith(REPLACED) and _THEN in old_reason:
        earlier = old_reason.removeprefix(REPLACED).split(_THEN, 1)[0] + "; "
    return f"{REPLACED}{earlier}{why}{_THEN}{decision}"
