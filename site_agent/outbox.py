"""A durable outbox's delivery loop, for any kind of entry kept in a table until delivered.

The entries are written first (in their owner's table, ideally in the same
transaction as the change they announce); this loop reads the undelivered ones,
gives each its own delivery task, retries a failed try with exponential backoff
and jitter (tenacity) until it succeeds or the receiver refuses it for good,
and picks up whatever is left after a restart. What a try is, and how an entry
is marked, belongs to the owner (the webhooks package's deliveries, federation's
messages to peers in ``federation/outbox.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type
from tenacity.wait import wait_random_exponential

log = logging.getLogger(__name__)


class Entry(Protocol):
    @property
    def id(self) -> str: ...


E = TypeVar("E", bound=Entry)


class RetryLater(Exception):
    """The try failed in a way that may pass (receiver down, timeout, 5xx): retried."""


class Refused(Exception):
    """The receiver refused the entry for good: it is not tried again."""


class DeliveryLoop(Generic[E]):
    """Delivers the pending entries of one outbox until cancelled."""

    def __init__(
        self,
        name: str,
        *,
        pending: Callable[[int], Awaitable[list[E]]],
        attempt: Callable[[E], Awaitable[None]],
        finished: Callable[[E, bool], Awaitable[None]],
        max_backoff_s: float = 15.0,
        scan_interval_s: float = 2.0,
    ) -> None:
        """``attempt`` tries one delivery (raises RetryLater or Refused); ``finished`` records
        the entry as delivered (True) or refused (False)."""
        self._name = name
        self._pending = pending
        self._attempt = attempt
        self._finished = finished
        self._max_backoff_s = max_backoff_s
        self._scan_interval_s = scan_interval_s
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """New entries were written: read the table now rather than at the next scan."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    for entry in await self._pending(500):
                        if entry.id not in self._inflight:
                            task = asyncio.create_task(
                                self._deliver(entry), name=f"{self._name}-{entry.id}"
                            )
                            self._inflight[entry.id] = task
                            task.add_done_callback(self._forget)
                except Exception:  # keep delivering whatever the database hiccup was
                    log.exception("reading the %s outbox failed", self._name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._scan_interval_s)
        finally:
            await self.close()

    def _forget(self, task: asyncio.Task[None]) -> None:
        for entry_id, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[entry_id]

    async def close(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver(self, entry: E) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryLater),
            wait=wait_random_exponential(multiplier=0.5, max=self._max_backoff_s),
            reraise=True,
        )
        delivered = True
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(entry)
        except Refused as exc:
            log.error("%s entry %s refused; giving up on it: %s", self._name, entry.id, exc)
            delivered = False
        except Exception:  # the entry stays pending; the next scan tries it again
            log.exception("%s entry %s: delivery failed unexpectedly", self._name, entry.id)
            return
        await self._finished(entry, delivered)
