"""Transfers under a per-peer ``max_mbps`` cap over mutual TLS on loopback: how close to the cap.

Two measurements share these helpers: the asset upload (``bench.transfer``, the
upload code with the peer's bucket) and frames coming back (here): the origin's
own fetch path (``PeerClient.download`` paced by the peer's bucket, ``fetch_frame``
into a real ``FrameStorage``, hash-verified, ``FETCH_CONCURRENCY`` frames at
once) from a stand-in remote site in a process of its own
(:mod:`bench.transfer_remote`) that serves stored frames as the federation does:
with ``send_frame`` on its aiohttp route, naming its blob listener (``Blob-Port``),
which serves the later frames of an uncapped fetch from its threads. Each reports
the rate over the whole transfer (bytes over wall seconds, first request to last
answer), the lowest and highest rate over any ``WINDOW_S`` window, from the
bucket's count of granted bytes sampled every ``SAMPLE_S``, and the CPU seconds
per GiB (both ends: this process and the remote site's, or the uploader alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from federation.bandwidth import BandwidthLimits, TokenBucket, mbps_to_bytes_per_s
from federation.certs import TlsContexts, TlsFiles
from federation.client import PeerClient
from federation.fetch_all import FETCH_CONCURRENCY
from federation.peers import PeerConfig
from federation.protocol import FrameOutput
from federation.streaming import fetch_frame
from site_agent.storage import FrameStorage

from .common import own_cpu_s as _cpu_s
from .transfer_remote import FRAME_BYTES, FRAME_JOB, MIB, RemoteSite, remote_site

CAP_MBPS = 200.0
"""Both capped runs: 200 Mbit/s (25 MB/s), for about CAP_SECONDS each."""
CAP_SECONDS = 4.0
WINDOW_S = 2.5
"""The cap holds within 10 % over windows this long (the bucket saves 0.25 s of it)."""
SAMPLE_S = 0.05


async def measure(
    prefix: str, bucket: TokenBucket, move: Callable[[], Awaitable[int]]
) -> dict[str, Any]:
    """Run ``move`` (returns the bytes it moved) with ``bucket`` as the cap; the rates."""
    samples = [(time.perf_counter(), bucket.granted)]

    async def sample() -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            samples.append((time.perf_counter(), bucket.granted))

    sampler = asyncio.create_task(sample())
    started, cpu = time.perf_counter(), _cpu_s()
    try:
        moved = await move()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    cap = bucket.rate
    windows = _window_rates(samples)
    return {
        f"{prefix}_bytes": moved,
        f"{prefix}_s": elapsed,
        f"{prefix}_mbps": moved * 8 / 1e6 / elapsed,
        f"{prefix}_share": moved / elapsed / cap,
        f"{prefix}_cpu_s_per_gib": cpu / (moved / 2**30),
        f"{prefix}_window_min_share": min(windows) / cap if windows else None,
        f"{prefix}_window_max_share": max(windows) / cap if windows else None,
    }


def _window_rates(samples: list[tuple[float, int]]) -> list[float]:
    """Granted bytes per second over each ``WINDOW_S`` window that ends by the last grant."""
    last_change = min(t for t, granted in samples if granted == samples[-1][1])
    rates = []
    j = 0
    for t, granted in samples:
        while j < len(samples) and samples[j][0] < t + WINDOW_S:
            j += 1
        if j == len(samples) or samples[j][0] > last_change:
            break
        rates.append((samples[j][1] - granted) / (samples[j][0] - t))
    return rates


async def capped_fetch(root: Path, remote: TlsFiles, origin_tls: TlsContexts) -> dict[str, Any]:
    """Frames fetched back from a remote under the cap, as the origin fetches them."""
    count = max(1, int(mbps_to_bytes_per_s(CAP_MBPS) * CAP_SECONDS) // FRAME_BYTES)
    async with remote_site(root / "remote", remote, frames=count) as site:
        peer = PeerConfig(name="remote", url=site.url, max_mbps=CAP_MBPS)
        # The origin's client with the peer's cap; its bucket starts empty, as at an agent's start.
        limits = BandwidthLimits([(peer.name, peer.max_mbps)])
        bucket = limits.bucket(peer.name)
        assert bucket is not None
        client = PeerClient("origin", origin_tls, limits=limits)
        fetch = _Fetch(root / "origin", site)
        there = await site.cpu_s()
        try:
            measured = await measure("fetch_capped", bucket, lambda: fetch.all(client, peer))
        finally:
            await client.close()
        remote_cpu = await site.cpu_s() - there
    moved = measured["fetch_capped_bytes"]
    measured["fetch_capped_cpu_s_per_gib"] += remote_cpu / (moved / 2**30)
    return {"frames_back": count, "frame_bytes": FRAME_BYTES, **measured}


async def frames_back(
    root: Path, remote: TlsFiles, origin_tls: TlsContexts, total_bytes: int
) -> dict[str, Any]:
    """``total_bytes`` of frames fetched back without a cap, as the origin fetches them,
    from a remote site in a process of its own; CPU seconds per GiB of each end."""
    count = max(1, total_bytes // FRAME_BYTES)
    async with remote_site(root / "remote", remote, frames=count) as site:
        client = PeerClient("origin", origin_tls)
        fetch = _Fetch(root / "origin", site)
        try:
            there = await site.cpu_s()
            started, cpu = time.perf_counter(), _cpu_s()
            moved = await fetch.all(client, PeerConfig(name="remote", url=site.url))
            elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
            remote_cpu = await site.cpu_s() - there
        finally:
            await client.close()
    gib = moved / 2**30
    return {
        "frames_back_bytes": moved,
        "frames_back_s": elapsed,
        "frames_back_mib_s": moved / MIB / elapsed,
        "frames_back_cpu_s_per_gib": (cpu + remote_cpu) / gib,
        "frames_back_origin_cpu_s_per_gib": cpu / gib,
        "frames_back_remote_cpu_s_per_gib": remote_cpu / gib,
    }


class _Fetch:
    """The origin's side: every frame the remote serves, fetched as a forwarded job's
    finished frames are (``fetch_frame``, ``FETCH_CONCURRENCY`` at once) into a real
    frame storage, each hash-verified before it is stored."""

    def __init__(self, root: Path, site: RemoteSite) -> None:
        self.storage = FrameStorage(root, max_frame_bytes=1 << 40)
        self.folder = self.storage.job_dir("shot", "job")
        self.folder.mkdir(parents=True)
        self.frames = site.frames

    async def all(self, client: PeerClient, peer: PeerConfig) -> int:
        slots = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(frame: FrameOutput) -> None:
            async with slots:
                await fetch_frame(
                    client, self.storage, peer, FRAME_JOB, frame, self.folder, frame.name
                )

        await asyncio.gather(*(one(f) for f in self.frames))
        assert all((self.folder / f.name).stat().st_size == f.size for f in self.frames)
        return sum(f.size for f in self.frames)
