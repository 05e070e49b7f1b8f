"""Per-peer bandwidth caps (``max_mbps`` of a ``[[peers]]`` entry): one token bucket per peer.

Every stream to or from a capped peer (blob uploads, frame fetches) takes tokens
from the same bucket before it moves a block, so the cap holds for the peer as a
whole however many streams run at once. A take that overdraws the bucket
reserves the bytes and sleeps until the bucket has refilled, so concurrent
streams are served in arrival order and none starves. The bucket starts empty
and holds at most ``burst`` bytes: over any window of ``t`` seconds at most
``burst + rate * t`` bytes pass, which keeps the measured rate of a transfer of a
few megabytes within a few percent of the cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

__all__ = ["BLOCK_BYTES", "BandwidthLimits", "TokenBucket", "mbps_to_bytes_per_s"]

BLOCK_BYTES = 64 * 1024
"""Bytes moved per take on a capped stream: small enough that a cap of 1 Mbit/s stays smooth."""


def mbps_to_bytes_per_s(mbps: float) -> float:
    """Megabits per second (10^6 bits, as link speeds are quoted) to bytes per second."""
    return mbps * 1_000_000 / 8


class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` bytes ahead; see the module docstring."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = BLOCK_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a bandwidth cap must be positive, got {rate} bytes/s")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._last = clock()

    async def take(self, count: int) -> None:
        """Wait until ``count`` more bytes may pass."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= count  # a reservation: later takers wait behind this one
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)


class BandwidthLimits:
    """The bucket of each capped peer (none for peers without ``max_mbps``)."""

    def __init__(self, caps: Iterable[tuple[str, float | None]]) -> None:
        self._buckets = {
            name: TokenBucket(mbps_to_bytes_per_s(mbps)) for name, mbps in caps if mbps is not None
        }

    def bucket(self, peer: str) -> TokenBucket | None:
        return self._buckets.get(peer)

    async def paced(self, peer: str, blocks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``blocks`` as they arrive, each let through only when the peer's cap allows."""
        bucket = self._buckets.get(peer)
        async for block in blocks:
            if bucket is not None:
                await bucket.take(len(block))
            yield block
