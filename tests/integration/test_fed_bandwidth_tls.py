"""A peer's bandwidth cap over real mutual TLS: uploads to it and frames fetched back from it
at the same time, through the site's own ``PeerClient``, share the peer's one bucket.

Nothing here is timed: the bytes moved are compared with what the bucket granted, and
with what the cap allows in the time the transfer took (``rate * elapsed``: the bucket
starts empty), which a slower machine only makes easier to meet.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from federation.bandwidth import BandwidthLimits
from federation.blob_receiver import BlobUploadEndpoint, ResumableReceiver
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.client import PeerClient
from federation.peers import PeerConfig
from federation.protocol import FrameOutput
from federation.streaming import fetch_frame
from site_agent.frame_response import send_frame
from site_agent.storage import FrameStorage

CAP_MBPS = 40.0  # 5 MB/s: the 5 MB below take about a second
BLOB_BYTES = 2_000_000
FRAME_BYTES = 1_000_000
FRAMES = 3


class Facility:
    """The capped peer: stores uploaded blobs and serves three stored frames."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True)
        self.frames = FrameStorage(root / "frames", max_frame_bytes=1 << 30)
        self.job_dir = self.frames.job_dir("shot", "remote-job")
        self.job_dir.mkdir(parents=True)
        self.outputs: dict[int, FrameOutput] = {}
        for n in range(1, FRAMES + 1):
            data = os.urandom(FRAME_BYTES)
            name = f"shot_{n:04d}.exr"
            (self.job_dir / name).write_bytes(data)
            sha256 = hashlib.sha256(data).hexdigest()
            self.outputs[n] = FrameOutput(frame=n, sha256=sha256, size=len(data), name=name)
        receiver = ResumableReceiver(root / "partial", self._commit, is_stored=self._stored)
        self.app = web.Application()
        self.app.router.add_routes(BlobUploadEndpoint(receiver).routes())
        self.app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}", self._frame)

    async def _commit(self, sha256: str, path: Path) -> None:
        os.replace(path, self.blobs / sha256)

    async def _stored(self, sha256: str) -> bool:
        return (self.blobs / sha256).exists()

    async def _frame(self, request: web.Request) -> web.StreamResponse:
        out = self.outputs[int(request.match_info["frame"])]
        opened = await self.frames.open_frame(
            self.job_dir, out.name, job_id="remote-job", frame=out.frame, sha256=out.sha256
        )
        try:
            return await send_frame(request, opened, out.name)
        finally:
            opened.close()


def tls_of(root: Path, site: str) -> TlsContexts:
    issued = issue_site_cert(root / "ca", site, root / site)
    return TlsContexts(TlsFiles(ca=issued.ca, cert=issued.cert, key=issued.key))


@pytest.fixture
async def facility(tmp_path: Path) -> AsyncIterator[tuple[Facility, str]]:
    init_ca(tmp_path / "ca")
    site = Facility(tmp_path / "facility")
    runner = web.AppRunner(site.app)
    await runner.setup()
    server = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=tls_of(tmp_path, "facility").server_context()
    )
    await server.start()
    host, port = runner.addresses[0][:2]
    try:
        yield site, f"https://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_uploads_and_frames_back_share_the_peers_cap(
    facility: tuple[Facility, str], tmp_path: Path
) -> None:
    site, url = facility
    peer = PeerConfig(name="facility", url=url, max_mbps=CAP_MBPS)
    blob = tmp_path / "plates.bin"
    blob.write_bytes(os.urandom(BLOB_BYTES))
    sha256 = hashlib.sha256(blob.read_bytes()).hexdigest()
    storage = FrameStorage(tmp_path / "studio-frames", max_frame_bytes=1 << 30)
    job_dir = storage.job_dir("shot", "job")
    job_dir.mkdir(parents=True)

    started = time.monotonic()  # the bucket's clock, read before the bucket exists
    limits = BandwidthLimits([(peer.name, peer.max_mbps)])
    client = PeerClient("studio", tls_of(tmp_path, "studio"), limits=limits)
    try:
        fetches = [
            fetch_frame(client, storage, peer, "remote-job", out, job_dir, out.name)
            for out in site.outputs.values()
        ]
        sent, *_ = await asyncio.gather(client.upload_blob(peer, sha256, blob), *fetches)
    finally:
        await client.close()
    elapsed = time.monotonic() - started

    # Everything arrived whole, both ways.
    assert sent == BLOB_BYTES and (site.blobs / sha256).read_bytes() == blob.read_bytes()
    for out in site.outputs.values():
        assert (job_dir / out.name).read_bytes() == (site.job_dir / out.name).read_bytes()
    # Every byte of both directions went through the one bucket ...
    bucket = limits.bucket(peer.name)
    assert bucket is not None
    moved = BLOB_BYTES + FRAMES * FRAME_BYTES
    assert bucket.granted == moved == client.bytes_sent + client.bytes_received
    # ... which, starting empty, let through no more than the cap for the time it took.
    assert moved <= bucket.rate * elapsed, (moved, elapsed)
