"""Remote side: whether to accept one offer, with every reason when not.

The checks, in order: the offer is well formed (profile, frames, scene in the
manifest); this site knows the package; the peer's policy
(:mod:`federation.policy`: path, hop limit, packages, priority, queued jobs,
bytes per day, hours); and someone can run it: a server here, or, when the
policy lets this site forward the job again, a peer off the job's path.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Collection
from typing import Protocol

from federation.interfaces import ServerViews
from federation.peers import PeerConfig
from federation.policy import OfferFacts, Refusal, RefusalCode, closed_now, refusals
from federation.protocol import Offer
from scheduler.errors import SchedulerError
from scheduler.frames import parse_frames
from scheduler.profile import JobProfile, explain_unmatched, matches

PENDING_OFFER_WINDOW_S = 3600.0
"""An uncommitted offer counts against ``max_queued_jobs`` for this long."""
DAY_S = 86400.0


class PeerLoad(Protocol):
    """What a peer already has here (:class:`~federation.store.FederationStore`)."""

    async def peer_open_jobs(self, site: str, *, pending_since: float) -> int: ...

    async def offered_bytes_since(self, site: str, since: float) -> int: ...


class OnwardPeers(Protocol):
    """Peers this site could forward a job to (:class:`~federation.forwarding.Forwarding`)."""

    def onward_candidates(self, profile: JobProfile, exclude: Collection[str]) -> list[str]: ...


def offer_path(offer: Offer, sender: str) -> tuple[str, ...]:
    """The sites the offered job went through, its origin first; older peers send none."""
    return offer.path or (sender,)


def may_forward_again(peer: PeerConfig, path: tuple[str, ...]) -> bool:
    """Whether a job accepted from ``peer`` along ``path`` may be forwarded once more."""
    return len(path) + 1 <= peer.policy.max_hops


class Admission:
    """Checks one offer against this site's packages, the peer's policy and its servers."""

    def __init__(
        self,
        *,
        name: str,
        load: PeerLoad,
        views: ServerViews,
        onward: OnwardPeers | None,
        known_packages: Collection[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._load = load
        self._views = views
        self._onward = onward
        self._known_packages = known_packages
        self._clock = clock

    async def check(self, peer: PeerConfig, offer: Offer) -> list[Refusal]:
        """Every reason to refuse ``offer`` from ``peer``; empty when it is accepted."""
        if not peer.allow_accept_from:
            return [
                _refuse(
                    RefusalCode.NOT_ACCEPTED,
                    f"site {self._name} does not accept jobs from {peer.name}",
                )
            ]
        path = offer_path(offer, peer.name)
        if path[-1] != peer.name:
            return [
                _refuse(
                    RefusalCode.INVALID, f"the offer's path must end with its sender {peer.name}"
                )
            ]
        try:
            profile = JobProfile.from_dict(dict(offer.job.profile))
            parse_frames(offer.job.frames)
        except SchedulerError as exc:
            return [_refuse(RefusalCode.INVALID, str(exc))]
        if offer.job.scene not in {m.path for m in offer.manifest}:
            return [
                _refuse(
                    RefusalCode.INVALID, f"the scene {offer.job.scene!r} is not in the manifest"
                )
            ]
        if profile.package not in self._known_packages:
            return [
                _refuse(
                    RefusalCode.INCAPABLE,
                    f"this site does not know render package {profile.package!r}",
                )
            ]
        found = refusals(peer.policy, await self._facts(peer, offer, profile, path))
        if not found:
            found += await self._capable(peer, profile, path)
        return found

    async def closed(self, peer: PeerConfig) -> list[Refusal]:
        """What refuses any offer from ``peer`` now (:func:`~federation.policy.closed_now`)."""
        queued_jobs, bytes_today, local_time = await self._load_facts(peer)
        return closed_now(
            peer.policy, queued_jobs=queued_jobs, bytes_today=bytes_today, local_time=local_time
        )

    async def _facts(
        self, peer: PeerConfig, offer: Offer, profile: JobProfile, path: tuple[str, ...]
    ) -> OfferFacts:
        queued_jobs, bytes_today, local_time = await self._load_facts(peer)
        return OfferFacts(
            site=self._name,
            package=profile.package,
            priority=offer.job.priority,
            path=path,
            offer_bytes=sum(m.size for m in offer.manifest),
            queued_jobs=queued_jobs,
            bytes_today=bytes_today,
            local_time=local_time,
        )

    async def _load_facts(self, peer: PeerConfig) -> tuple[int, int, datetime.time]:
        """``peer``'s open jobs here, its bytes accepted over the last day, the local time."""
        now = self._clock()
        queued_jobs = await self._load.peer_open_jobs(
            peer.name, pending_since=now - PENDING_OFFER_WINDOW_S
        )
        bytes_today = await self._load.offered_bytes_since(peer.name, now - DAY_S)
        return queued_jobs, bytes_today, datetime.datetime.fromtimestamp(now).time()

    async def _capable(
        self, peer: PeerConfig, profile: JobProfile, path: tuple[str, ...]
    ) -> list[Refusal]:
        views = await self._views.server_views()
        if any(matches(profile, v) for v in views):
            return []
        here = f"no server at {self._name} can run it: {explain_unmatched(profile, views)}"
        if self._onward is not None and may_forward_again(peer, path):
            onward = self._onward.onward_candidates(profile, {*path, self._name})
            if onward:
                return []  # accepted to be forwarded on (the policy allows one more hop)
            here += "; no peer off its path advertises one either"
        return [_refuse(RefusalCode.INCAPABLE, here)]


def _refuse(code: RefusalCode, message: str) -> Refusal:
    return Refusal(code=code, message=message)
