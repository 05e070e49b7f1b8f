"""Durable delivery of messages to peers: notifications (R -> O) and cancels (O -> R).

A message is first written to the ``fed_outbox`` table, then delivered by the
``fed-outbox`` task until the peer acknowledges it. Each entry has a stable
message id, so a resend after a lost answer is recognised by the receiver
(``409 duplicate``), which counts as delivered. Entries survive restarts: the
loop picks up whatever is undelivered. Retries back off exponentially with
jitter (tenacity); a peer that refuses a message outright (other 4xx) gets it
no more, and the refusal is logged and kept on the entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.peers import PeerConfig
from federation.protocol import Ack, Cancel, Message, Notify
from site_agent.store.fed_store import OutboxEntry

if TYPE_CHECKING:
    from federation.service import FederationService

log = logging.getLogger(__name__)

PATHS = {"notify": "/fed/v1/notify", "cancel": "/fed/v1/cancel"}
KINDS: dict[str, type[Message]] = {"notify": Notify, "cancel": Cancel}
SCAN_INTERVAL_S = 2.0
# A final notification makes the origin fetch every frame before it answers.
TIMEOUTS_S = {"notify": 300.0, "cancel": 30.0}


class Outbox:
    def __init__(self, service: FederationService, *, max_backoff_s: float = 15.0) -> None:
        self._service = service
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver pending entries until cancelled; each entry has its own delivery task."""
        try:
            while True:
                self._wake.clear()
                try:
                    for entry in await self._service.store.fed_pending_outbox(limit=500):
                        if entry.id not in self._inflight and entry.peer in self._peers():
                            task = asyncio.create_task(
                                self._deliver(entry), name=f"fed-outbox-{entry.id}"
                            )
                            self._inflight[entry.id] = task
                            task.add_done_callback(self._forget)
                except Exception:  # keep delivering whatever the database hiccup was
                    log.exception("reading the federation outbox failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), SCAN_INTERVAL_S)
        finally:
            await self.close()

    def _forget(self, task: asyncio.Task[None]) -> None:
        for msg_id, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[msg_id]

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _peers(self) -> set[str]:
        return {p.name for p in self._service.config.peers}

    async def _deliver(self, entry: OutboxEntry) -> None:
        service = self._service
        peer = service.config.peer(entry.peer)
        assert peer is not None
        message = KINDS[entry.kind].from_body(entry.body)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(PeerUnavailableError),
            wait=wait_random_exponential(multiplier=0.5, max=self._max_backoff_s),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(entry, peer, message)
        except PeerRefusedError as exc:
            if exc.code != "duplicate":
                log.error(
                    "peer %s refused %s %s for job %s; giving up on it: %s",
                    entry.peer,
                    entry.kind,
                    entry.id,
                    entry.job_id,
                    exc,
                )
        await service.store.fed_outbox_delivered(entry.id, at=service.clock())
        log.info("%s %s delivered to %s", entry.kind, entry.id, entry.peer)

    async def _attempt(self, entry: OutboxEntry, peer: PeerConfig, message: Message) -> None:
        service = self._service
        try:
            await service.client.send(
                peer,
                PATHS[entry.kind],
                message,
                Ack,
                msg_id=entry.id,
                timeout_s=TIMEOUTS_S[entry.kind],
            )
        except PeerUnavailableError as exc:
            service.book.contact_failed(entry.peer, str(exc))
            await service.store.fed_outbox_attempt(entry.id, str(exc))
            log.info(
                "delivery of %s to %s failed (%s); retrying with backoff", entry.id, entry.peer, exc
            )
            raise
        except PeerRefusedError as exc:
            await service.store.fed_outbox_attempt(entry.id, str(exc))
            raise
        service.book.contact_ok(entry.peer)
