"""The federation service of one site agent: wiring, lifecycle and the site's hooks.

:func:`attach_federation` is called by the agent's lifecycle when the site TOML
has ``[federation]``/``[[peers]]``. It starts the mutual-TLS listener and the
named background tasks (``fed-outbox``, ``fed-advertise``, ``fed-reconcile``),
repairs what a crash may have left half done, and plugs the service into the
:class:`~site_agent.site.SiteAgent` as its ``federation`` hooks. The agent
calls :meth:`FederationService.close` on shutdown.

Roles are split by module: :mod:`federation.forwarding` (origin: placement,
offer/upload/commit, reconciliation, re-placement), :mod:`federation.results`
(origin: notifications, fetch-back), :mod:`federation.accept` (remote: offers,
commits, cancels, notifications to the origin), :mod:`federation.outbox`
(durable delivery), :mod:`federation.capacity` (adverts, peer state) and
:mod:`federation.api` (the HTTPS routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

from aiohttp import web

from federation.accept import Acceptance
from federation.api import build_federation_app
from federation.capacity import PeerBook, advertise_loop
from federation.certs import TlsContexts
from federation.client import PeerClient
from federation.errors import FederationError
from federation.forwarding import Forwarding
from federation.outbox import Outbox
from federation.peers import FederationConfig, PeerConfig, parse_federation
from federation.protocol import Message
from federation.results import Results
from site_agent.config import ConfigError
from site_agent.site import SiteAgent
from site_agent.store.base import StoreError
from site_agent.store.fed_store import FederationStore, ForwardRow
from site_agent.store.records import LOCAL, JobRecord, JobState

log = logging.getLogger(__name__)

SEEN_RETENTION_S = 7 * 86400.0
SEEN_PRUNE_INTERVAL_S = 3600.0
_STATES = {"done": JobState.DONE, "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}


class FederationService:
    """Implements :class:`~site_agent.site.FederationHooks` for one site."""

    def __init__(
        self,
        site: SiteAgent,
        config: FederationConfig,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval_s: float = 5.0,
    ) -> None:
        self.site = site
        self.config = config
        self.name = site.config.name
        self.clock = clock
        self.store = cast(FederationStore, site.store)
        self.tls = TlsContexts(config.tls)
        self.client = PeerClient(self.name, self.tls, clock=clock)
        self.book = PeerBook(config, self.store, clock=clock)
        self.outbox = Outbox(self)
        self.acceptance = Acceptance(self)
        self.forwarding = Forwarding(self, poll_interval_s=min(poll_interval_s, config.lease_s / 3))
        self.results = Results(self)
        self.refusals = 0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        await self.book.load()
        self.site.reports.on_job_finished.append(self.acceptance.on_job_finished)
        self.site.reports.on_job_progress.append(self.acceptance.on_job_progress)
        self._runner = web.AppRunner(build_federation_app(self), access_log=None)
        await self._runner.setup()
        host, port = self.config.listen_address
        await web.TCPSite(self._runner, host, port, ssl_context=self.tls.server_context()).start()
        await self.acceptance.repair_outbox()
        await self.forwarding.resume()
        self._spawn(self.outbox.run(), "fed-outbox")
        self._spawn(advertise_loop(self), "fed-advertise")
        self._spawn(self.forwarding.reconcile_loop(), "fed-reconcile")
        self._spawn(self._prune_seen_loop(), "fed-prune-seen")
        log.info(
            "site %s federation listening on https://%s:%d (peers: %s)",
            self.name,
            host,
            port,
            ", ".join(p.name for p in self.config.peers) or "none",
        )

    async def _prune_seen_loop(self) -> None:
        """Keep the replay guard's table bounded.

        A message older than the envelope's time window is refused as expired
        anyway, so its id only needs remembering for that window; ids are kept
        for SEEN_RETENTION_S (far longer) because every federation message is
        also idempotent in effect (offer and commit keys, notification epochs).
        """
        while True:
            try:
                pruned = await self.store.fed_prune_seen(before=self.clock() - SEEN_RETENTION_S)
                if pruned:
                    log.info(
                        "forgot %d federation message ids older than %.0f days",
                        pruned,
                        SEEN_RETENTION_S / 86400,
                    )
            except StoreError as exc:
                log.warning("could not prune seen federation message ids: %s", exc)
            await asyncio.sleep(SEEN_PRUNE_INTERVAL_S)

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
        await self.forwarding.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.client.close()

    # --- FederationHooks ----------------------------------------------------
    async def place(self, job: JobRecord, requested: str | None) -> JobRecord:
        return await self.forwarding.place(job, requested)

    async def after_submit(self, job: JobRecord) -> None:
        self.forwarding.start(job)

    async def after_cancel(self, job: JobRecord) -> None:
        # Re-read: a commit may have recorded the remote job id since ``job`` was loaded.
        job = await self.site.store.get_job(job.id) or job
        if job.placement != LOCAL:
            await self.forwarding.cancel(job)
        elif job.origin_job_id is not None:
            await self.acceptance.after_local_cancel(job)

    def peers_json(self) -> list[dict[str, Any]]:
        return self.book.peers_json()

    async def job_details(self, job: JobRecord) -> dict[str, Any]:
        """Extra fields of the job JSON: transfer counters and the remote's progress."""
        row = await self.store.fed_latest_forward(job.id)
        if row is None:
            return {}
        return {
            "transfer": {
                "peer": row.peer,
                "epoch": row.epoch,
                "bytes_sent": row.bytes_sent,
                "blobs_sent": row.blobs_sent,
                "blobs_skipped": row.blobs_skipped,
            },
            "remote": {
                "site": row.peer,
                "job_id": row.remote_job_id,
                "state": row.remote_state,
                "forward_state": row.state,
                "frames_done": row.frames_done,
                "last_contact_at": row.last_contact_at,
            },
        }

    # --- shared helpers -----------------------------------------------------
    async def enqueue(
        self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
    ) -> None:
        """Write a message to the durable outbox and wake its delivery loop."""
        await self.store.fed_enqueue(
            msg_id=msg_id,
            peer=peer,
            kind=kind,
            job_id=job_id,
            body=message.to_body(),
            final=final,
            at=self.clock(),
        )
        self.outbox.wake()

    async def apply_status(self, peer: PeerConfig, row: ForwardRow, status: dict[str, Any]) -> None:
        """A poll found the remote job finished: act as on its final notification."""
        from federation.protocol import FrameOutput

        job = await self.site.store.get_job(row.job_id)
        if job is None or row.remote_job_id is None:
            return
        frames = tuple(FrameOutput.from_wire(f, "status.frames") for f in status.get("frames", ()))
        log.info("poll: job %s finished at %s (%s); applying", job.id, peer.name, status["state"])
        await self.results.finish(
            peer,
            job,
            epoch=row.epoch,
            remote_job_id=row.remote_job_id,
            state=_STATES[str(status["state"])],
            frames=frames,
            error=str(status.get("error", "")),
        )

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
        service = FederationService(site, config)
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
