"""Per-peer bandwidth caps (``max_mbps`` of a ``[[peers]]`` entry): one token bucket per peer.

Every stream to or from a capped peer (blob uploads, frame fetches) takes tokens
from the same bucket before it moves a block, so the cap holds for the peer as a
whole however many streams run at once. A take that overdraws the bucket
reserves the bytes and sleeps until the bucket has refilled, so concurrent
streams are served in arrival order and none starves.

The bucket starts empty and saves at most ``burst`` bytes while nobody takes:
``BURST_S`` seconds of the cap. Streams take at most ``block`` bytes at a time
(``BLOCK_BYTES``; less for caps under 2 Mbit/s, so that no block exceeds the
burst). So over any window of ``t`` seconds at most ``burst + rate * t`` bytes
pass (never more than 10 % over the cap in a window of 2.5 s or longer), and
time lost to idle gaps shorter than ``BURST_S`` is made up afterwards: every
stream waiting at once for a chunk's fsync and answer, the requests between
small files, a sleeper woken late by a busy event loop. With a burst of one
block (as before) each such gap was lost, and a 200 Mbit/s cap measured
152-184 Mbit/s.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

__all__ = [
    "BLOCK_BYTES",
    "BURST_S",
    "BandwidthLimits",
    "TokenBucket",
    "mbps_to_bytes_per_s",
]

BLOCK_BYTES = 64 * 1024
"""Most bytes moved per take on a capped stream (:attr:`TokenBucket.block`)."""

BURST_S = 0.25
"""Seconds of the cap an idle bucket saves: long enough to cover a chunk's fsync and answer
and a late wake-up on a loaded machine, short enough that a window of a few seconds stays
within 10 % of the cap."""


def mbps_to_bytes_per_s(mbps: float) -> float:
    """Megabits per second (10^6 bits, as link speeds are quoted) to bytes per second."""
    return mbps * 1_000_000 / 8


class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` bytes ahead; see the module docstring.

    ``burst`` defaults to ``BURST_S`` seconds of ``rate``. Callers take at most
    :attr:`block` bytes at a time (the window bound needs blocks no larger than the
    burst). :meth:`reserve` is safe to call from any thread (a blocking sender sleeps
    for what it returns); :meth:`take` is its form for the event loop.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a bandwidth cap must be positive, got {rate} bytes/s")
        self.rate = rate
        self.burst = rate * BURST_S if burst is None else burst
        self.block = max(1, min(BLOCK_BYTES, int(self.burst)))
        """The most bytes one take should ask for."""
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()
        self.granted = 0
        """Bytes let through so far (every stream's): what the agent's /metrics reports."""

    def reserve(self, count: int) -> float:
        """Reserve ``count`` bytes; returns the seconds to wait before sending them (0: now)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= count  # a reservation: later takers wait behind this one
            self.granted += count
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    async def take(self, count: int) -> None:
        """Wait until ``count`` more bytes may pass."""
        wait = self.reserve(count)
        if wait > 0:
            await self._sleep(wait)


class BandwidthLimits:
    """The bucket of each capped peer (none for peers without ``max_mbps``)."""

    def __init__(self, caps: Iterable[tuple[str, float | None]]) -> None:
        self._buckets = {
            name: TokenBucket(mbps_to_bytes_per_s(mbps)) for name, mbps in caps if mbps is not None
        }

    def bucket(self, peer: str) -> TokenBucket | None:
        return self._buckets.get(peer)

    def granted_bytes(self) -> dict[str, int]:
        """Bytes each capped peer's bucket has let through, both directions together."""
        return {name: bucket.granted for name, bucket in self._buckets.items()}

    async def paced(self, peer: str, blocks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``blocks`` as they arrive, each let through only when the peer's cap allows
        (split into the bucket's blocks when larger)."""
        bucket = self._buckets.get(peer)
        async for block in blocks:
            if bucket is None:
                yield block
                continue
            for start in range(0, len(block), bucket.block):
                piece = block[start : start + bucket.block] if len(block) > bucket.block else block
                await bucket.take(len(piece))
                yield piece
