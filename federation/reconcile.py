"""Origin side: watch forwarded jobs after the commit, and re-place them when their peer is lost.

Notifications from the remote are delivered at least once, but a partition can
hold them back for a long time. :class:`Reconciler` covers that gap: its loop
(the ``fed-reconcile`` task) polls the peer for each open forward that has not
been heard of for a while, applies a final status found that way, and, once the
peer has been unreachable for longer than the lease, re-places the job with the
next epoch (here, or at another peer) through :class:`~federation.forwarding.Forwarding`.
Results of the old epoch are then ignored. After a restart, :meth:`Reconciler.resume`
carries on the forwards that never committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from federation.client import PeerUnavailableError
from federation.errors import FederationError
from federation.interfaces import ForwardedJobs, ForwardRows, PeerContact, RemoteFinish
from federation.peers import FederationConfig, PeerConfig
from federation.store import ForwardRow
from scheduler.dependencies import ready
from site_agent.store.records import JobRecord

log = logging.getLogger(__name__)


class ForwardTasks(Protocol):
    """The forwarding of each placement (:class:`~federation.forwarding.Forwarding`)."""

    def start(self, job: JobRecord) -> None:
        """Forward ``job`` at its current placement (no-op while a task already does)."""

    def stop(self, job_id: str, epoch: int) -> None:
        """Cancel the task forwarding that placement, if one runs."""

    async def current(self, job_id: str, epoch: int) -> JobRecord | None:
        """The job while it is unfinished and still at ``epoch``; else None."""

    async def cancel(self, job: JobRecord) -> None: ...

    async def replace(
        self, job_id: str, old_epoch: int, why: str, exclude: frozenset[str] = frozenset()
    ) -> None: ...


class StatusClient(Protocol):
    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any: ...


class Reconciler:
    """Restart recovery, polling of quiet peers and lease re-placement of forwarded jobs."""

    def __init__(
        self,
        *,
        config: FederationConfig,
        jobs: ForwardedJobs,
        forwards: ForwardRows,
        client: StatusClient,
        peers: PeerContact,
        results: RemoteFinish,
        forwarding: ForwardTasks,
        clock: Callable[[], float] = time.time,
        poll_interval_s: float = 5.0,
    ) -> None:
        self._config = config
        self._jobs = jobs
        self._forwards = forwards
        self._client = client
        self._peers = peers
        self._results = results
        self._forwarding = forwarding
        self._clock = clock
        self.poll_interval_s = poll_interval_s

    async def resume(self) -> None:
        """After a restart: carry on forwarding placements that never committed, and offer
        the ready jobs placed at a peer whose forward never started.

        A job is offered after the commit that made it ready (its creation, or the end
        of the last job it waited for), by a task whose first write is its forward
        record: a crash in between leaves a queued job at a peer with no record.
        """
        for row in await self._forwards.open_forwards():
            if row.state == "offering":
                job = await self._forwarding.current(row.job_id, row.epoch)
                if job is not None:
                    self._forwarding.start(job)
        unforwarded = await self._forwards.unforwarded_jobs()
        upstreams = await self._jobs.job_upstreams(unforwarded) if unforwarded else {}
        for job_id in unforwarded:
            job = await self._jobs.get_job(job_id)
            if job is not None and ready(upstreams.get(job_id, ())):
                log.info("job %s: offering it to %s (never offered)", job_id, job.placement)
                self._forwarding.start(job)

    async def run(self) -> None:
        """The ``fed-reconcile`` loop: one round every ``poll_interval_s``."""
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
            job = await self._forwarding.current(row.job_id, row.epoch)
            if job is not None:
                self._forwarding.start(job)
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
        job = await self._forwarding.current(row.job_id, row.epoch)
        if job is not None:
            self._forwarding.stop(row.job_id, row.epoch)
            await self._forwarding.cancel(job)  # best effort: reaches the peer if it comes back
            await self._forwarding.replace(
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
