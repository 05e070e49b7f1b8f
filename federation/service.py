"""The federation service of one site agent: wiring, lifecycle and the site's hooks.

:func:`attach_federation` is called by the agent's lifecycle when the site TOML
has ``[federation]``/``[[peers]]``. It starts the mutual-TLS listener and the
named background tasks (``fed-outbox``, ``fed-advertise``, ``fed-reconcile``),
repairs what a crash may have left half done, and plugs the service into the
:class:`~site_agent.site.SiteAgent` as its ``federation`` hooks. The agent
calls :meth:`FederationService.close` on shutdown.

:class:`FederationService` is wiring and lifecycle only: it opens the
federation's own tables (:class:`~federation.store.FederationStore`, on the
site's database) and hands each role the few collaborators it uses (see
:mod:`federation.interfaces`); :class:`~federation.site_link.SiteLink` is the
site agent seen through those interfaces. Roles are split by module:
:mod:`federation.listeners` (the ``/fed/v1`` app and the blob listener),
:mod:`federation.forwarding` (origin: placement, offer/upload/commit),
:mod:`federation.reconcile` (origin: polling, lease, re-placement), :mod:`federation.results`
(origin: notifications, fetch-back), :mod:`federation.accept` (remote: offers,
commits, cancels), :mod:`federation.notices` (remote: final notifications to the
origin), :mod:`federation.outbox`
(durable delivery), :mod:`federation.capacity` (adverts, peer state) and
:mod:`federation.api` (the HTTPS routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from federation.accept import Acceptance
from federation.api import FederationEndpoints
from federation.bandwidth import BandwidthLimits
from federation.capacity import Advertiser, PeerBook
from federation.certs import TlsContexts
from federation.client import PeerClient
from federation.errors import FederationError
from federation.forwarding import Forwarding
from federation.job_view import job_details
from federation.listeners import Listeners, prune_seen_forever
from federation.notices import FinalNotices
from federation.outbox import Outbox
from federation.peers import FederationConfig, parse_federation
from federation.progress import Controls, FromPeer, ProgressRelay
from federation.reclaim import Reclaimer, Withdrawals
from federation.reconcile import Reconciler
from federation.remote_logs import LogServing, RemoteLogReader
from federation.results import Results
from federation.site_link import SiteLink
from federation.split import Splitter
from federation.store import FederationStore
from federation.streaming import FrameStream
from scheduler.dispatch import GuestLimit
from site_agent.config import ConfigError
from site_agent.lifecycle import (
    Event,
    JobCancelled,
    JobCreated,
    JobFinished,
    JobReplaced,
    JobsReleased,
    JobStateChanged,
    TaskFinished,
    TasksAssigned,
    TasksRelayed,
    TasksRequeued,
    TasksWithdrawn,
)
from site_agent.site import SiteAgent
from site_agent.store.records import LOCAL, JobRecord

log = logging.getLogger(__name__)


class FederationService:
    """Implements :class:`~site_agent.site.FederationHooks` for one site."""

    def __init__(
        self,
        site: SiteAgent,
        config: FederationConfig,
        store: FederationStore,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.config = config
        self.name = site.config.name
        self.clock = clock
        self.store = store
        self.tls = TlsContexts(config.tls)
        self.client = PeerClient(
            self.name,
            self.tls,
            clock=clock,
            limits=BandwidthLimits((p.name, p.max_mbps) for p in config.peers),
        )
        self.book = PeerBook(config, store, clock=clock)
        self.refusals = 0
        self._site = site
        self.listeners = Listeners(self.name, config, self.tls)
        self._tasks: list[asyncio.Task[None]] = []
        self._wire(site, poll_interval_s=min(poll_interval_s, config.lease_s / 3))

    def _wire(self, site: SiteAgent, *, poll_interval_s: float) -> None:
        link, store, clock = SiteLink(site), self.store, self.clock
        self.outbox = Outbox(
            store,
            self.client,
            self.book,
            self.config.peers,
            clock=clock,
            delivered=lambda entry: self.relay.delivered(entry),
        )
        self.stream = FrameStream(
            client=self.client, frames=site.storage, jobs=link, clock=clock, usage=site.usage
        )
        self.results = Results(
            name=self.name,
            jobs=link,
            forwards=store,
            client=self.client,
            frames=site.storage,
            contact=self.book,
            stream=self.stream,
            usage=site.usage,
            clock=clock,
        )
        self.relay = ProgressRelay(jobs=link, offers=store, outbox=self.outbox, clock=clock)
        self.from_peer = FromPeer()
        self.controls = Controls(
            jobs=link, rows=store, outbox=self.outbox, from_peer=self.from_peer, clock=clock
        )
        self.forwarding = Forwarding(
            name=self.name,
            config=self.config,
            jobs=link,
            forwards=store,
            client=self.client,
            peers=self.book,
            outbox=self.outbox,
            blobs=site.assets,
            views=link,
            wakeup=site.dispatcher,
            offers=store,
            usage=site.usage,
            clock=clock,
        )
        self.reconciler = Reconciler(
            config=self.config,
            jobs=link,
            forwards=store,
            client=self.client,
            peers=self.book,
            results=self.results,
            forwarding=self.forwarding,
            clock=clock,
            poll_interval_s=poll_interval_s,
        )
        self.notices = FinalNotices(jobs=link, offers=store, outbox=self.outbox, usage=site.usage)
        self.acceptance = Acceptance(
            name=self.name,
            jobs=link,
            offers=store,
            blobs=site.assets,
            frames=site.storage,
            views=link,
            wakeup=site.dispatcher,
            known_packages=site.known_packages,
            load=store,
            relay=self.forwarding,
            usage=site.usage,
            clock=clock,
        )
        self.reclaimer = Reclaimer(
            name=self.name,
            config=self.config,
            rows=store.reclaims,
            jobs=site.store,
            lifecycle=site.lifecycle,
            client=self.client,
            clock=clock,
            chunks_back=lambda: self.splitter.poke(),
        )
        self.splitter = Splitter(
            name=self.name,
            config=self.config,
            jobs=site.store,
            lifecycle=site.lifecycle,
            peers=self.book,
            views=link,
            dirs=site.storage,
            clock=clock,
            reclaimer=self.reclaimer,
        )
        self.advertiser = Advertiser(
            self.config, link, site.store, self.client, self.book, self.acceptance.admission
        )
        # Jobs accepted from a peer: its max_slots and own_first apply in this site's dispatcher.
        site.dispatcher.guests = {
            peer.name: GuestLimit(max_slots=peer.policy.max_slots, own_first=peer.policy.own_first)
            for peer in self.config.peers
        }
        self.endpoints = FederationEndpoints(
            name=self.name,
            config=self.config,
            seen=store,
            acceptance=self.acceptance,
            results=self.results,
            controls=self.controls,
            book=self.book,
            blobs=site.assets,
            refused=self.log_refusal,
            clock=clock,
            logs=LogServing(self.acceptance, site.logs),
            withdrawals=Withdrawals(
                jobs=self.acceptance, rows=store.reclaims, lifecycle=site.lifecycle, clock=clock
            ),
        )
        self.remote_logs = RemoteLogReader(self.config, self.client)

    # --- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        await self.book.load()
        self._site.lifecycle.subscribe(
            self._on_job_event, (JobCreated, JobsReleased, JobCancelled, JobFinished)
        )
        self._site.lifecycle.subscribe(
            self._on_progress_event,
            (
                TaskFinished,
                TasksAssigned,
                TasksRequeued,
                TasksRelayed,
                TasksWithdrawn,
                JobStateChanged,
            ),
        )
        self._site.lifecycle.subscribe(
            self.splitter.on_event,
            (
                JobCreated,
                JobCancelled,
                JobFinished,
                JobReplaced,
                JobStateChanged,
                TaskFinished,
                TasksRelayed,
            ),
        )
        await self.listeners.start(self.endpoints)
        await self.notices.repair()
        await self.reconciler.resume()
        self._spawn(self.outbox.run(), "fed-outbox")
        self._spawn(self.relay.run(), "fed-progress")
        self._spawn(self.advertiser.run(), "fed-advertise")
        self._spawn(self.reconciler.run(), "fed-reconcile")
        self._spawn(prune_seen_forever(self.store, self.clock), "fed-prune-seen")
        self._spawn(self.splitter.run(), "fed-split")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def close(self) -> None:
        """Stop the loops and the listener; idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.reclaimer.close()
        await self.forwarding.close()
        await self.stream.close()
        await self.listeners.close()
        await self.client.close()

    async def _on_job_event(self, event: Event) -> None:
        """Lifecycle subscriber: forward new remote placements, propagate cancels, notify origins."""
        if isinstance(event, JobCreated):
            # A job waiting for others is offered to its peer only once released.
            if event.job.placement != LOCAL and event.ready:
                self.forwarding.start(event.job)
        elif isinstance(event, JobsReleased):
            for job_id in event.job_ids:
                job = await self._site.store.get_job(job_id)
                if job is not None and job.placement != LOCAL:
                    self.forwarding.start(job)
        elif isinstance(event, JobCancelled):
            await self._cancelled(event.job)
        elif isinstance(event, JobFinished):
            self.relay.forget(event.job_id)
            await self.notices.job_finished(event.job_id)

    async def _on_progress_event(self, event: Event) -> None:
        """Lifecycle subscriber: relay accepted jobs' progress, pass pauses/resumes on."""
        if isinstance(event, TaskFinished):
            if not event.outcome.job_finished:
                await self.relay.mark([event.outcome.task.job_id])
        elif isinstance(event, TasksAssigned | TasksRequeued):
            await self.relay.mark(sorted({t.job_id for t in event.tasks}))
        elif isinstance(event, TasksRelayed | TasksWithdrawn):  # relayed on; reclaimed
            await self.relay.mark([event.job_id])
        elif isinstance(event, JobStateChanged):
            await self.relay.mark([event.job_id])
            await self.controls.state_changed(event.job_id, event.state)

    async def _cancelled(self, job: JobRecord) -> None:
        """A job cancelled here: its peer stops it (forwarded), or its origin hears (accepted)."""
        # Re-read: a commit may have recorded the remote job id since ``job`` was loaded.
        job = await self._site.store.get_job(job.id) or job
        if job.placement != LOCAL:
            await self.forwarding.cancel(job)
        elif job.origin_job_id is not None:
            self.relay.forget(job.id)
            await self.notices.job_finished(job.id)

    # --- FederationHooks ----------------------------------------------------
    async def place(self, job: JobRecord, requested: str | None) -> JobRecord:
        return await self.forwarding.place(job, requested)

    def peers_json(self) -> list[dict[str, Any]]:
        return self.book.peers_json()

    # --- site_agent.metrics.FederationStats ---------------------------------
    def transferred_bytes(self) -> dict[str, int]:
        return {"sent": self.client.bytes_sent, "received": self.client.bytes_received}

    def capped_bytes(self) -> dict[str, int]:
        return self.client.limits.granted_bytes()

    async def outbox_depth(self) -> int:
        return await self.store.outbox_depth()

    async def job_details(self, job: JobRecord) -> dict[str, Any]:
        return await job_details(self.store, self._site.store.split, job)

    def log_refusal(self, what: str) -> None:
        self.refusals += 1
        log.warning("federation request refused: %s", what)


async def attach_federation(app: web.Application, site: SiteAgent) -> None:
    """Start federation for ``site`` (its config has ``[federation]``) and hook it in."""
    assert site.config.federation is not None
    try:
        config = parse_federation(
            site.config.federation, source=site.config.source, base_dir=site.config.base_dir
        )
    except FederationError as exc:
        raise ConfigError(str(exc)) from exc
    store = await FederationStore.open(site.store.database)
    try:
        service = FederationService(site, config, store)
    except FederationError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        await service.start()
    except OSError as exc:
        await service.close()
        raise ConfigError(
            f"{site.config.source}: cannot listen on federation address "
            f"{config.listen}: {exc.strerror or exc}"
        ) from exc
    site.federation = service
    site.logs.remote = service.remote_logs  # forwarded jobs' logs are read at their site
    site.metrics.watch_federation(service)
