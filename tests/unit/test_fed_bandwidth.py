"""Per-peer bandwidth caps: the token bucket (injected clock), pacing, and ``max_mbps`` in TOML."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from federation.bandwidth import BLOCK_BYTES, BandwidthLimits, TokenBucket, mbps_to_bytes_per_s
from federation.errors import FederationConfigError
from federation.peers import parse_peers


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_megabits_per_second() -> None:
    assert mbps_to_bytes_per_s(16) == 2_000_000


async def test_a_transfer_takes_at_least_its_size_over_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(1_000_000, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        await bucket.take(60_000)
    # The bucket starts empty: 6 MB at 1 MB/s take 6 s, not a burst less.
    assert t.now == pytest.approx(6.0)


async def test_concurrent_streams_share_one_cap() -> None:
    t = FakeTime()
    bucket = TokenBucket(2_000_000, clock=t.clock, sleep=t.sleep)
    moved = 0

    async def stream() -> None:
        nonlocal moved
        for _ in range(25):
            await bucket.take(BLOCK_BYTES)
            moved += BLOCK_BYTES

    await asyncio.gather(*(stream() for _ in range(4)))
    assert moved / t.now <= 2_000_000 * 1.001


async def test_idle_time_saves_at_most_one_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(1_000, burst=500, clock=t.clock, sleep=t.sleep)
    t.now = 100.0  # a long idle spell
    await bucket.take(500)
    assert t.now == 100.0  # the saved burst passes at once
    await bucket.take(1_000)
    assert t.now == pytest.approx(101.0)  # then the rate again


def test_a_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(0)


async def test_pacing_a_download_only_for_capped_peers() -> None:
    t = FakeTime()
    limits = BandwidthLimits([("facility", 8.0), ("studio", None)])
    bucket = limits.bucket("facility")
    assert bucket is not None and limits.bucket("studio") is None
    bucket._clock, bucket._sleep, bucket._last = t.clock, t.sleep, 0.0  # test clock

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 100_000

    got = [len(b) async for b in limits.paced("facility", body())]
    assert sum(got) == 1_000_000 and t.now == pytest.approx(1.0)  # 8 Mbit/s = 1 MB/s
    assert [len(b) async for b in limits.paced("studio", body())] == got
    assert t.now == pytest.approx(1.0)


def test_max_mbps_in_a_peers_entry() -> None:
    [peer] = parse_peers([{"name": "facility", "url": "https://f:1", "max_mbps": 100}], source="s")
    assert peer.max_mbps == 100.0
    [free] = parse_peers([{"name": "facility", "url": "https://f:1"}], source="s")
    assert free.max_mbps is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be positive, got 0; leave the key out for no cap"),
        (-5, "must be positive"),
        ("100M", "must be a number of megabits per second, got '100M'"),
        (True, "must be a number of megabits per second"),
    ],
)
def test_a_bad_max_mbps_names_the_file_and_key(value: object, message: str) -> None:
    with pytest.raises(FederationConfigError) as caught:
        parse_peers(
            [{"name": "facility", "url": "https://f:1", "max_mbps": value}], source="s.toml"
        )
    text = str(caught.value)
    assert "s.toml" in text and "peers[0].max_mbps" in text and message in text
