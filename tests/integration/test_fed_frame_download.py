"""Frames fetched from an uncapped peer over real mutual TLS arrive through blocking TLS
sockets in worker threads (``UploadConnections.get``), as uncapped uploads are sent: whole
and in order, on a kept-alive connection; a refusal is the peer's answer; a reader that
stops early leaves no connection half read for the next fetch; a capped peer's frames stay
on the loop, paced."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from federation.bandwidth import BandwidthLimits
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.client import PeerClient, PeerRefusedError
from federation.peers import PeerConfig

FRAME = os.urandom(3 * 1024 * 1024 + 4321)


def _files(root: Path, site: str) -> TlsFiles:
    return TlsFiles(
        ca=root / "ca" / "ca.pem",
        cert=root / "certs" / f"{site}.pem",
        key=root / "certs" / f"{site}-key.pem",
    )


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[str]:
    init_ca(tmp_path / "ca")
    for site in ("origin", "remote"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")

    async def frame(request: web.Request) -> web.Response:
        return web.Response(body=FRAME, content_type="application/octet-stream")

    async def missing(request: web.Request) -> web.Response:
        error = {"error": {"code": "not_found", "message": "no frame 9 in job j1"}}
        return web.json_response(error, status=404)

    app = web.Application()
    app.router.add_get("/fed/v1/jobs/j1/frames/1", frame)
    app.router.add_get("/fed/v1/jobs/j1/frames/9", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    context = TlsContexts(_files(tmp_path, "remote")).server_context()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}"
    finally:
        await runner.cleanup()


class _Collect:
    def __init__(self, stop_after: int | None = None) -> None:
        self.data = bytearray()
        self.stop_after = stop_after

    @property
    def size(self) -> int:
        return len(self.data)

    def write(self, block: bytes | memoryview) -> None:
        self.data += block
        if self.stop_after is not None and len(self.data) >= self.stop_after:
            raise ValueError("hash mismatch")  # as a verifying writer stops


async def test_an_uncapped_peers_frames_arrive_through_threads(tmp_path: Path, remote: str) -> None:
    client = PeerClient("origin", TlsContexts(_files(tmp_path, "origin")))
    peer = PeerConfig(name="remote", url=remote)
    try:
        for _ in range(2):
            got = _Collect()
            await client.download(peer, "/fed/v1/jobs/j1/frames/1", got)
            assert bytes(got.data) == FRAME
        uploads = client._upload_connections()
        assert uploads.opened == 1  # threaded, and the connection was kept for the second
        assert client.bytes_received == 2 * len(FRAME)

        with pytest.raises(PeerRefusedError, match="no frame 9"):
            await client.download(peer, "/fed/v1/jobs/j1/frames/9", _Collect())

        with pytest.raises(ValueError, match="hash mismatch"):
            await client.download(peer, "/fed/v1/jobs/j1/frames/1", _Collect(stop_after=1))
        opened = uploads.opened
        got = _Collect()
        await client.download(peer, "/fed/v1/jobs/j1/frames/1", got)
        assert bytes(got.data) == FRAME
        assert uploads.opened == opened + 1  # the half-read connection was not reused
    finally:
        await client.close()


async def test_a_capped_peers_frames_stay_on_the_loop(tmp_path: Path, remote: str) -> None:
    limits = BandwidthLimits([("remote", 1000.0)])
    client = PeerClient("origin", TlsContexts(_files(tmp_path, "origin")), limits=limits)
    try:
        got = _Collect()
        await client.download(
            PeerConfig(name="remote", url=remote), "/fed/v1/jobs/j1/frames/1", got
        )
        assert bytes(got.data) == FRAME
        assert client._uploads is None and limits.granted_bytes()["remote"] == len(FRAME)
    finally:
        await client.close()
