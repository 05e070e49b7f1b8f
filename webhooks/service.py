"""The site's webhooks: lifecycle events to durable deliveries, delivered signed, with backoff.

The deliveries of an event are written inside the transaction of the transition
that makes it (a lifecycle recorder): they commit with the job's change or not
at all, so a crash right after the commit loses no event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from site_agent.config import ConfigError, WebhookConfig
from site_agent.lifecycle import Event, JobsReleased
from site_agent.outbox import DeliveryLoop, Refused, RetryLater
from site_agent.site import SiteAgent
from site_agent.store.base import StoreError
from site_agent.store.database import Connection
from site_agent.store.records import LOCAL, JobRecord

from .events import SUBSCRIBED, Occurrence, message_id, occurrences, payload
from .signing import headers, secret_key
from .store import Delivery, WebhookStore

log = logging.getLogger(__name__)

RECENT_DELIVERIES = 50
"""Deliveries ``GET /api/v1/webhooks`` lists, newest first."""
RETRY_STATUSES = frozenset({408, 425, 429})
"""4xx answers that mean "later", not "never" (with every 5xx)."""


class EventTransaction(Protocol):
    """What webhooks use of a transition's open transaction."""

    @property
    def connection(self) -> Connection: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...


class WebhookService:
    """Writes a delivery per event and endpoint, and delivers them until answered."""

    def __init__(
        self,
        *,
        site: str,
        endpoints: Sequence[WebhookConfig],
        store: WebhookStore,
        clock: Callable[[], float] = time.time,
        max_backoff_s: float = 15.0,
    ) -> None:
        self._site = site
        self._endpoints = {e.name: e for e in endpoints}
        self._keys = {e.name: secret_key(e.secret) for e in endpoints}
        self._store = store
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: DeliveryLoop[Delivery] = DeliveryLoop(
            "webhooks",
            pending=self._pending,
            attempt=self._attempt,
            finished=self._finished,
            max_backoff_s=max_backoff_s,
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._loop.run(), name="webhook-outbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- events to deliveries ------------------------------------------------
    async def record_event(self, tx: EventTransaction, event: Event) -> None:
        """Lifecycle recorder: write the deliveries of ``event`` in the transition's
        transaction (a failure to write them rolls the transition back)."""
        found = occurrences(event)
        if isinstance(event, JobsReleased):
            found += await _released_forwards(tx, event.job_ids)
        for occurrence in found:
            await self._enqueue(tx, occurrence)

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber: the transition committed, its deliveries may go now."""
        self._loop.wake()

    async def _enqueue(self, tx: EventTransaction, occurrence: Occurrence) -> None:
        wanting = [e for e in self._endpoints.values() if occurrence.event in e.events]
        if not wanting:
            return
        job = await tx.get_job(occurrence.job_id)
        if job is None:
            return
        now = self._clock()
        body = payload(occurrence.event, job, site=self._site, at=now)
        for endpoint in wanting:
            await self._store.enqueue(
                tx.connection,
                msg_id=message_id(self._site, endpoint.name, occurrence.event, job),
                endpoint=endpoint.name,
                event=occurrence.event,
                job_id=job.id,
                body=body,
                at=now,
            )

    # --- delivery ----------------------------------------------------------------
    async def _pending(self, limit: int) -> list[Delivery]:
        # An endpoint no longer configured keeps its deliveries pending (it may come back).
        return [d for d in await self._store.pending(limit) if d.endpoint in self._endpoints]

    async def _attempt(self, delivery: Delivery) -> None:
        """One POST; RetryLater or Refused unless the endpoint answered 2xx."""
        endpoint = self._endpoints[delivery.endpoint]
        assert self._session is not None, "started"
        body = delivery.body.encode()
        now = self._clock()
        sent = headers(self._keys[endpoint.name], delivery.id, int(now), body)
        try:
            async with self._session.post(
                endpoint.url,
                data=body,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
                allow_redirects=False,
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
            await self._store.attempted(delivery.id, status=None, error=error, at=now)
            log.info("webhook %s to %s failed (%s); retrying", delivery.id, endpoint.name, error)
            raise RetryLater(error) from exc
        error = "" if 200 <= status < 300 else f"HTTP {status}"
        await self._store.attempted(delivery.id, status=status, error=error, at=now)
        if status >= 500 or status in RETRY_STATUSES:
            raise RetryLater(error)
        if error:
            raise Refused(f"{endpoint.name} answered {error}")
        log.info("webhook %s %s delivered to %s", delivery.event, delivery.id, endpoint.name)

    async def _finished(self, delivery: Delivery, delivered: bool) -> None:
        await self._store.finished(delivery.id, delivered=delivered, at=self._clock())

    # --- status ------------------------------------------------------------------
    async def status_json(self) -> dict[str, Any]:
        """Each endpoint with its delivery counts, and the recent deliveries."""
        counts = await self._store.counts()
        recent = await self._store.recent(RECENT_DELIVERIES)
        return {
            "webhooks": [
                {
                    "name": e.name,
                    "url": e.url,
                    "events": list(e.events),
                    "deliveries": {
                        s: counts.get(e.name, {}).get(s, 0)
                        for s in ("pending", "delivered", "failed")
                    },
                }
                for e in self._endpoints.values()
            ],
            "deliveries": [_delivery_json(d) for d in recent],
        }


async def _released_forwards(tx: EventTransaction, job_ids: Sequence[str]) -> list[Occurrence]:
    """Released jobs placed at a peer are forwarded now."""
    found = []
    for job_id in job_ids:
        job = await tx.get_job(job_id)
        if job is not None and job.placement != LOCAL:
            found.append(Occurrence(event="job.forwarded", job_id=job_id))
    return found


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "endpoint": d.endpoint,
        "event": d.event,
        "job_id": d.job_id,
        "state": d.state,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "last_attempt_at": d.last_attempt_at,
        "finished_at": d.finished_at,
    }


async def attach_webhooks(app: web.Application, site: SiteAgent) -> None:
    """Start the site's webhooks (its config has ``[[webhooks]]``) and hook them in."""
    if not site.config.webhooks:
        return
    try:
        store = await WebhookStore.open(site.store.database)
    except StoreError as exc:
        raise ConfigError(f"cannot prepare the webhook deliveries table: {exc}") from exc
    service = WebhookService(site=site.config.name, endpoints=site.config.webhooks, store=store)
    await service.start()
    site.webhooks = service
    site.lifecycle.record(service.record_event, (*SUBSCRIBED, JobsReleased))
    site.lifecycle.subscribe(service.on_event, (*SUBSCRIBED, JobsReleased))
    log.info(
        "webhooks: %s",
        ", ".join(f"{e.name} ({len(e.events)} events)" for e in site.config.webhooks),
    )
