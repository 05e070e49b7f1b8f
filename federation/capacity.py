"""Capacity advertisement between peers, and what this site knows about each peer.

Every ``advertise_interval`` this site tells each peer it accepts jobs from what
it could render for them (:class:`~federation.protocol.CapacityAdvert`). The
last advert received from each peer is kept in memory and in the store; with
reachability (last successful contact either way) it feeds placement and
``GET /api/v1/peers``.

An advert can be stale by the time an offer made on it arrives. A refused offer
therefore counts at once: the refusing peer shows no free slot until its next
advert (:meth:`PeerBook.refused`; ``GET /api/v1/peers`` shows the refusal and no free
slot), and one that refused a job for a reason of the job (priority, package, ...) is
not offered that job (or another part of that split job) again, across restarts too
(``fed_job_refusals``). The advert itself says what the peer's policy allows right now: no free
slot while that peer's queue is full, its daily bytes are spent or it is outside the
accepted hours (:func:`~federation.policy.closed_now`), so an offer is not made only to
be refused, advert after advert.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from federation.client import PeerUnavailableError
from federation.errors import FederationError
from federation.interfaces import AdvertRows, PeerContact, PeerSender, QueueDepth, ServerViews
from federation.peer_view import PeerState, Refused, peer_json
from federation.peers import FederationConfig, PeerConfig
from federation.policy import LOAD_CODES, AcceptPolicy, Refusal
from federation.protocol import Ack, CapacityAdvert, ServerCapacity
from scheduler.placement import PeerCapacity
from scheduler.profile import ServerView
from site_agent.store.base import StoreError
from spillway.core.records import FileEntry

log = logging.getLogger(__name__)

CAPACITY_PATH = "/fed/v1/capacity"
MAX_HELD_BLOBS = 100_000
MAX_REFUSED_JOBS = 10_000
JOB_REFUSAL_KEEP_S = 30 * 86_400.0
"""How long a refusal of a job for a reason of the job is kept in the store."""


class PeerBook:
    """Per peer: its last capacity advert and whether it is reachable."""

    def __init__(
        self,
        config: FederationConfig,
        store: AdvertRows,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._peers = {p.name: PeerState() for p in config.peers}
        self._held: dict[str, set[str]] = {p.name: set() for p in config.peers}
        self._refused_jobs: dict[str, set[str]] = {p.name: set() for p in config.peers}

    @property
    def stale_after_s(self) -> float:
        return max(3 * self._config.advertise_interval_s, 15.0)

    async def load(self) -> None:
        for peer, job_id in await self._store.job_refusals(MAX_REFUSED_JOBS):
            if peer in self._refused_jobs:
                self._refused_jobs[peer].add(job_id)
        for row in await self._store.list_adverts():
            state = self._peers.get(row.name)
            if state is not None:
                try:
                    state.advert = CapacityAdvert.from_body(row.advert)
                    state.advert_at = row.last_seen
                except FederationError:
                    log.warning("stored capacity advert of %s is unreadable; ignored", row.name)

    async def record_advert(self, peer: str, advert: CapacityAdvert) -> None:
        now = self._clock()
        state = self._peers[peer]
        state.advert, state.advert_at, state.refusal = advert, now, None
        self.contact_ok(peer)
        await self._store.save_advert(peer, advert.to_body(), at=now)

    def contact_ok(self, peer: str) -> None:
        state = self._peers.get(peer)
        if state is not None:
            state.last_ok, state.failing_since, state.last_error = self._clock(), None, ""

    def contact_failed(self, peer: str, error: str) -> None:
        state = self._peers.get(peer)
        if state is not None:
            if state.failing_since is None:
                log.warning("peer %s became unreachable: %s", peer, error)
            state.failing_since = state.failing_since or self._clock()
            state.last_error = error

    def reachable(self, peer: str) -> bool:
        state = self._peers.get(peer)
        if state is None or state.failing_since is not None or state.last_ok is None:
            return False
        return self._clock() - state.last_ok <= self.stale_after_s

    async def refused(
        self, peer: str, job_id: str, codes: Collection[str], reasons: Sequence[str] = ()
    ) -> None:
        """``peer`` refused an offer of ``job_id`` (for a part: its split job's id).

        Until its next advert the peer counts as having no free slot: the advert the
        offer was made on was stale, and the next job or part must not bounce off it
        too (in memory: after a restart at most one more offer meets the same refusal).
        A refusal for a reason of the job itself (any code not in
        :data:`~federation.policy.LOAD_CODES`) also keeps that job from the peer for
        good (:meth:`refusing`); that one is stored, so a restart does not offer the
        job again only to be refused again.
        """
        state = self._peers.get(peer)
        if state is None:
            return
        now = self._clock()
        state.refusal = Refused(job_id=job_id, codes=tuple(codes), reasons=tuple(reasons), at=now)
        if not codes or any(code not in LOAD_CODES for code in codes):
            jobs = self._refused_jobs[peer]
            if len(jobs) >= MAX_REFUSED_JOBS:
                jobs.clear()
            jobs.add(job_id)
            try:
                await self._store.save_job_refusal(
                    peer, job_id, reasons, at=now, keep_s=JOB_REFUSAL_KEEP_S
                )
            except StoreError as exc:  # the job moves on regardless; only a restart forgets
                log.warning("job %s: refusal by %s kept in memory only: %s", job_id, peer, exc)

    def refusing(self, job_id: str) -> frozenset[str]:
        """Peers that refused ``job_id`` for a reason of the job itself."""
        return frozenset(peer for peer, jobs in self._refused_jobs.items() if job_id in jobs)

    def note_blobs(self, peer: str, hashes: Iterable[str]) -> None:
        """Remember blobs ``peer`` holds, so placement prefers it for jobs that reuse them.

        Kept in memory only (a restart forgets; the offer reply is authoritative
        anyway) and bounded: past ``MAX_HELD_BLOBS`` per peer the set starts over.
        """
        held = self._held.get(peer)
        if held is None:
            return
        held.update(hashes)
        if len(held) > MAX_HELD_BLOBS:
            held.clear()

    def capacities(
        self, peers: Sequence[PeerConfig], manifest: Sequence[FileEntry] = ()
    ) -> list[PeerCapacity]:
        """Placement's view of ``peers`` (no advert yet: no servers)."""
        result = []
        sizes = {entry.sha256: entry.size for entry in manifest}
        for peer in peers:
            held = self._held.get(peer.name, set())
            state = self._peers.get(peer.name) or PeerState()
            servers = (
                tuple(
                    _view(peer.name, s, spent=state.refusal is not None)
                    for s in state.advert.servers
                )
                if state.advert
                else ()
            )
            result.append(
                PeerCapacity(
                    name=peer.name,
                    servers=servers,
                    reachable=self.reachable(peer.name),
                    queue_depth=state.advert.queue_depth if state.advert else 0,
                    preference=peer.preference,
                    cost=peer.cost,
                    held_bytes=sum(size for sha, size in sizes.items() if sha in held),
                )
            )
        return result

    def peers_json(self) -> list[dict[str, Any]]:
        """``GET /api/v1/peers``: each peer as placement sees it now (:mod:`~federation.peer_view`)."""
        now = self._clock()
        return [
            peer_json(peer, self._peers[peer.name], reachable=self.reachable(peer.name), now=now)
            for peer in self._config.peers
        ]


def _view(peer: str, server: ServerCapacity, *, spent: bool = False) -> ServerView:
    """``spent``: the peer refused an offer since this advert; its free slots are not."""
    return ServerView(
        id=f"{peer}/{server.name}",
        name=server.name,
        cores=server.cores,
        memory_mb=server.memory_mb,
        gpus=server.gpus,
        packages=dict(server.packages),
        tags=frozenset(server.tags),
        slots=server.slots,
        free_slots=0 if spent else server.free_slots,
        status=server.status,
    )


def advert_for(
    advert: CapacityAdvert, policy: AcceptPolicy, *, closed: bool = False
) -> CapacityAdvert:
    """What one peer is told: only the packages its policy accepts, and no more free
    slots than its ``max_slots`` (the peer ranks on this; the offer check is the rule);
    none while ``closed`` (any offer of it would be refused now: its queue here is full,
    its bytes for the day are spent, or it is outside the accepted hours)."""
    budget = 0 if closed else policy.max_slots
    servers = []
    for server in advert.servers:
        packages = {
            name: version
            for name, version in server.packages.items()
            if policy.packages is None or name in policy.packages
        }
        if not packages:
            continue
        free = server.free_slots if budget is None else min(server.free_slots, budget)
        if budget is not None:
            budget -= free
        servers.append(dataclasses.replace(server, packages=packages, free_slots=free))
    return CapacityAdvert(servers=tuple(servers), queue_depth=advert.queue_depth)


class PeerQuotas(Protocol):
    """The acceptance checks that hold for every offer of a peer (:class:`~federation.admission.Admission`)."""

    async def closed(self, peer: PeerConfig) -> list[Refusal]: ...


class Advertiser:
    """Tells every peer this site accepts jobs from what it could render for them."""

    def __init__(
        self,
        config: FederationConfig,
        views: ServerViews,
        queue: QueueDepth,
        client: PeerSender,
        contact: PeerContact,
        quotas: PeerQuotas | None = None,
    ) -> None:
        self._config = config
        self._views = views
        self._queue = queue
        self._client = client
        self._contact = contact
        self._quotas = quotas

    async def build(self) -> CapacityAdvert:
        servers = tuple(
            ServerCapacity(
                name=v.name,
                cores=v.cores,
                memory_mb=v.memory_mb,
                gpus=v.gpus,
                packages=dict(v.packages),
                tags=tuple(sorted(v.tags)),
                slots=v.slots,
                free_slots=v.free_slots,
                status=v.status,
            )
            for v in await self._views.server_views()
        )
        return CapacityAdvert(servers=servers, queue_depth=await self._queue.local_frames_waiting())

    async def run(self) -> None:
        """Send a capacity advert to every peer we accept jobs from, forever."""
        targets = [p for p in self._config.peers if p.allow_accept_from]
        while True:
            try:
                advert = await self.build()
                await asyncio.gather(
                    *[self._advertise(peer, await self.advert_to(peer, advert)) for peer in targets]
                )
            except Exception:  # the loop must outlive any one bad round
                log.exception("capacity advertisement round failed")
            await asyncio.sleep(self._config.advertise_interval_s)

    async def advert_to(self, peer: PeerConfig, advert: CapacityAdvert) -> CapacityAdvert:
        """``advert`` as ``peer`` is told it (:func:`advert_for`)."""
        closed = self._quotas is not None and bool(await self._quotas.closed(peer))
        return advert_for(advert, peer.policy, closed=closed)

    async def _advertise(self, peer: PeerConfig, advert: CapacityAdvert) -> None:
        try:
            await self._client.send(peer, CAPACITY_PATH, advert, Ack, timeout_s=10)
        except PeerUnavailableError as exc:
            self._contact.contact_failed(peer.name, str(exc))
        except FederationError as exc:
            log.warning("capacity advert to %s refused: %s", peer.name, exc)
        else:
            self._contact.contact_ok(peer.name)
