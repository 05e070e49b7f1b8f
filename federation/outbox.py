"""Durable delivery of messages to peers: notifications and progress (R -> O), cancels
(O -> R), pauses and resumes (either way).

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
import time
from collections.abc import Callable, Sequence

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.interfaces import OutboxRows, PeerContact, PeerSender
from federation.peers import PeerConfig
from federation.protocol import Ack, Cancel, Message, Notify, Pause, Progress, Resume
from federation.store import OutboxEntry

log = logging.getLogger(__name__)

KINDS: dict[str, type[Message]] = {
    "notify": Notify,
    "cancel": Cancel,
    "progress": Progress,
    "pause": Pause,
    "resume": Resume,
}
PATHS = {kind: f"/fed/v1/{kind}" for kind in KINDS}
SCAN_INTERVAL_S = 2.0
# A final notification makes the origin fetch every frame before it answers; progress
# only starts the fetches of the frames it reports.
TIMEOUTS_S = {"notify": 300.0, "cancel": 30.0, "progress": 60.0, "pause": 30.0, "resume": 30.0}


class Outbox:
    """Writes messages for peers durably and delivers them until acknowledged."""

    def __init__(
        self,
        rows: OutboxRows,
        client: PeerSender,
        contact: PeerContact,
        peers: Sequence[PeerConfig],
        *,
        clock: Callable[[], float] = time.time,
        max_backoff_s: float = 15.0,
    ) -> None:
        self._rows = rows
        self._client = client
        self._contact = contact
        self._peers = {p.name: p for p in peers}
        self._clock = clock
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def enqueue(
        self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
    ) -> None:
        """Write a message to the durable outbox and wake the delivery loop."""
        await self._rows.enqueue(
            msg_id=msg_id,
            peer=peer,
            kind=kind,
            job_id=job_id,
            body=message.to_body(),
            final=final,
            at=self._clock(),
        )
        self.wake()

    async def run(self) -> None:
        """Deliver pending entries until cancelled; each entry has its own delivery task."""
        try:
            while True:
                self._wake.clear()
                try:
                    for entry in await self._rows.pending_outbox(limit=500):
                        if entry.id not in self._inflight and entry.peer in self._peers:
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

    async def _deliver(self, entry: OutboxEntry) -> None:
        peer = self._peers[entry.peer]
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
        await self._rows.outbox_delivered(entry.id, at=self._clock())
        log.info("%s %s delivered to %s", entry.kind, entry.id, entry.peer)

    async def _attempt(self, entry: OutboxEntry, peer: PeerConfig, message: Message) -> None:
        try:
            await self._client.send(
                peer,
                PATHS[entry.kind],
                message,
                Ack,
                msg_id=entry.id,
                timeout_s=TIMEOUTS_S[entry.kind],
            )
        except PeerUnavailableError as exc:
            self._contact.contact_failed(entry.peer, str(exc))
            await self._rows.outbox_attempt(entry.id, str(exc))
            log.info(
                "delivery of %s to %s failed (%s); retrying with backoff", entry.id, entry.peer, exc
            )
            raise
        except PeerRefusedError as exc:
            await self._rows.outbox_attempt(entry.id, str(exc))
            raise
        self._contact.contact_ok(entry.peer)
