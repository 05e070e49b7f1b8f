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

import logging
import time
from collections.abc import Callable, Sequence

from federation.client import PeerRefusedError, PeerUnavailableError
from federation.interfaces import OutboxRows, PeerContact, PeerSender
from federation.peers import PeerConfig
from federation.protocol import Ack, Cancel, Message, Notify, Pause, Progress, Resume
from federation.store import OutboxEntry
from site_agent.outbox import DeliveryLoop, Refused, RetryLater

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
        delivered: Callable[[OutboxEntry], None] | None = None,
    ) -> None:
        self._rows = rows
        self._delivered = delivered
        self._client = client
        self._contact = contact
        self._peers = {p.name: p for p in peers}
        self._clock = clock
        self._loop: DeliveryLoop[OutboxEntry] = DeliveryLoop(
            "fed-outbox",
            pending=self._pending,
            attempt=self._deliver,
            finished=self._finished,
            max_backoff_s=max_backoff_s,
            scan_interval_s=SCAN_INTERVAL_S,
        )

    def wake(self) -> None:
        self._loop.wake()

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
        await self._loop.run()

    async def close(self) -> None:
        await self._loop.close()

    async def _pending(self, limit: int) -> list[OutboxEntry]:
        entries = await self._rows.pending_outbox(limit=limit)
        return [entry for entry in entries if entry.peer in self._peers]

    async def _deliver(self, entry: OutboxEntry) -> None:
        """One try (the loop retries with backoff); a duplicate counts as delivered."""
        peer = self._peers[entry.peer]
        message = KINDS[entry.kind].from_body(entry.body)
        try:
            await self._attempt(entry, peer, message)
        except PeerUnavailableError as exc:
            raise RetryLater(str(exc)) from exc
        except PeerRefusedError as exc:
            if exc.code != "duplicate":
                raise Refused(
                    f"peer {entry.peer} refused {entry.kind} for job {entry.job_id}: {exc}"
                ) from exc

    async def _finished(self, entry: OutboxEntry, delivered: bool) -> None:
        # A refused message is marked too: the peer will not take it, however often it is sent.
        await self._rows.outbox_delivered(entry.id, at=self._clock())
        if delivered:
            log.info("%s %s delivered to %s", entry.kind, entry.id, entry.peer)
            if self._delivered is not None:  # e.g. progress acknowledged: smaller snapshots
                self._delivered(entry)

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
