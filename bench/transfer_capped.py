"""Transfers under a per-peer ``max_mbps`` cap over mutual TLS on loopback: how close to the cap.

Two measurements share these helpers: the asset upload (``bench.transfer``, the
upload code with the peer's bucket) and frames coming back (here): the origin's
own fetch path (``PeerClient.download`` paced by the peer's bucket, ``fetch_frame``
into a real ``FrameStorage``, hash-verified, ``FETCH_CONCURRENCY`` frames at
once) from a stand-in remote that serves stored frames as the federation does:
with ``send_frame`` on its aiohttp route, naming its blob listener (``Blob-Port``),
which serves the later frames of an uncapped fetch from its threads. Each reports the rate over the whole transfer
(bytes over wall seconds, first request to last answer), the lowest and highest
rate over any ``WINDOW_S`` window, from the bucket's count of granted bytes
sampled every ``SAMPLE_S``, and the CPU seconds per GiB (both ends: this process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from federation.bandwidth import BandwidthLimits, TokenBucket, mbps_to_bytes_per_s
from federation.blob_listener import BlobListener, BlobRequest
from federation.certs import TlsContexts
from federation.client import PeerClient
from federation.fetch_all import FETCH_CONCURRENCY
from federation.frame_listener import ServedFrame
from federation.peers import PeerConfig
from federation.protocol import FrameOutput
from federation.streaming import fetch_frame
from federation.transfer import BLOB_PORT
from site_agent.frame_response import send_frame
from site_agent.storage import FrameStorage

from .common import free_port
from .common import own_cpu_s as _cpu_s  # both ends run in this process

MIB = 1024 * 1024
CAP_MBPS = 200.0
"""Both capped runs: 200 Mbit/s (25 MB/s), for about CAP_SECONDS each."""
CAP_SECONDS = 4.0
FRAME_BYTES = 2 * MIB
"""Frames coming back: a 2 MiB file each (a compressed EXR or a large PNG)."""
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


async def capped_fetch(
    root: Path, remote_tls: TlsContexts, origin_tls: TlsContexts
) -> dict[str, Any]:
    """Frames fetched back from a remote under the cap, as the origin fetches them."""
    count = max(1, int(mbps_to_bytes_per_s(CAP_MBPS) * CAP_SECONDS) // FRAME_BYTES)
    async with _frames_at_remote(root, remote_tls, count) as (url, fetch_all):
        peer = PeerConfig(name="remote", url=url, max_mbps=CAP_MBPS)
        # The origin's client with the peer's cap; its bucket starts empty, as at an agent's start.
        limits = BandwidthLimits([(peer.name, peer.max_mbps)])
        bucket = limits.bucket(peer.name)
        assert bucket is not None
        client = PeerClient("origin", origin_tls, limits=limits)
        try:
            measured = await measure("fetch_capped", bucket, lambda: fetch_all(client, peer))
        finally:
            await client.close()
    return {"frames_back": count, "frame_bytes": FRAME_BYTES, **measured}


async def frames_back(
    root: Path, remote_tls: TlsContexts, origin_tls: TlsContexts, total_bytes: int
) -> dict[str, Any]:
    """``total_bytes`` of frames fetched back without a cap, as the origin fetches them."""
    count = max(1, total_bytes // FRAME_BYTES)
    async with _frames_at_remote(root, remote_tls, count) as (url, fetch_all):
        client = PeerClient("origin", origin_tls)
        try:
            started, cpu = time.perf_counter(), _cpu_s()
            moved = await fetch_all(client, PeerConfig(name="remote", url=url))
            elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
        finally:
            await client.close()
    return {
        "frames_back_bytes": moved,
        "frames_back_s": elapsed,
        "frames_back_mib_s": moved / MIB / elapsed,
        "frames_back_cpu_s_per_gib": cpu / (moved / 2**30),
    }


FetchAll = Callable[[PeerClient, PeerConfig], Awaitable[int]]


@contextlib.asynccontextmanager
async def _frames_at_remote(
    root: Path, remote_tls: TlsContexts, count: int
) -> AsyncIterator[tuple[str, FetchAll]]:
    """``count`` frames served by a remote's frame route; (its URL, fetch them all)."""
    remote = FrameStorage(root / "remote", max_frame_bytes=1 << 40)
    origin = FrameStorage(root / "origin", max_frame_bytes=1 << 40)
    there, here = remote.job_dir("shot", "remote-job"), origin.job_dir("shot", "job")
    there.mkdir(parents=True)
    here.mkdir(parents=True)
    frames = []
    for n in range(1, count + 1):
        data = os.urandom(FRAME_BYTES)
        name = f"shot_{n:04d}.exr"
        (there / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        frames.append(FrameOutput(frame=n, sha256=sha, size=len(data), name=name))
    by_number = {f.frame: f for f in frames}

    async def served(number: str) -> ServedFrame:
        frame = by_number[int(number)]
        opened = await remote.open_frame(
            there, frame.name, job_id="remote-job", frame=frame.frame, sha256=frame.sha256
        )
        return ServedFrame(opened=opened, name=frame.name, sent=_nothing)

    async def serve(request: web.Request) -> web.StreamResponse:
        frame = await served(request.match_info["frame"])
        # As the federation route: later frames come from the blob listener, when it runs.
        port = {BLOB_PORT: str(listener.port)}
        try:
            return await send_frame(request, frame.opened, frame.name, headers=port)
        finally:
            frame.opened.close()

    async def refuse_blobs(request: BlobRequest) -> web.Response:
        return web.Response(status=404)

    listener = BlobListener(
        "127.0.0.1",
        0,
        remote_tls.server_context(),
        refuse_blobs,
        frames=lambda request: served(request.frame),
    )

    async def fetch_all(client: PeerClient, peer: PeerConfig) -> int:
        slots = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(frame: FrameOutput) -> None:
            async with slots:
                await fetch_frame(client, origin, peer, "remote-job", frame, here, frame.name)

        await asyncio.gather(*(one(f) for f in frames))
        return sum(f.size for f in frames)

    await listener.start()
    try:
        async with _serving(serve, remote_tls) as url:
            yield url, fetch_all
    finally:
        await listener.close()


async def _nothing(size: int) -> None:
    """The stand-in remote accounts nothing."""


@contextlib.asynccontextmanager
async def _serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], tls: TlsContexts
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.server_context()).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
