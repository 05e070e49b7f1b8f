"""The federation API's blob route over real mutual TLS: a stream cut part way is accounted
for the bytes it stored, so what the receiving site counts adds up to the blob once."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from bench.cut_proxy import CutProxy
from federation.api import FederationEndpoints, build_federation_app
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.peers import FederationConfig, PeerConfig
from federation.transfer import CHUNK_SIZE, upload_blob
from federation.upload_threads import UploadConnections

CHECKPOINT = CHUNK_SIZE
"""Blob streams are synced and recorded every chunk here (``chunk_checkpoints``)."""
pytestmark = pytest.mark.usefixtures("chunk_checkpoints")


class _Blobs:
    """The acceptance calls the blob route makes: every blob allowed, stored bytes noted."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, int]] = []

    async def blob_allowed(self, peer: PeerConfig, sha256: str) -> bool:
        return True

    async def blob_received(self, peer: PeerConfig, sha256: str, size: int) -> None:
        self.received.append((peer.name, sha256, size))


class _Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial_dir = root / "partial"
        self.max_blob_bytes = 1 << 30
        self.partial_dir.mkdir(parents=True)

    def has(self, sha256: str) -> bool:
        return (self.root / sha256).exists()

    def adopt(self, sha256: str, path: Path, *, verified: bool = False) -> None:
        os.replace(path, self.root / sha256)


def _files(tmp_path: Path, site: str) -> TlsFiles:
    return TlsFiles(
        ca=tmp_path / "ca" / "ca.pem",
        cert=tmp_path / "certs" / f"{site}.pem",
        key=tmp_path / "certs" / f"{site}-key.pem",
    )


@pytest.fixture
async def facility(tmp_path: Path) -> AsyncIterator[tuple[str, _Blobs, _Store]]:
    init_ca(tmp_path / "ca")
    for site in ("studio", "facility"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")
    blobs, store = _Blobs(), _Store(tmp_path / "store")
    endpoints = FederationEndpoints(
        name="facility",
        config=FederationConfig(
            tls=_files(tmp_path, "facility"),
            peers=(PeerConfig(name="studio", url="https://127.0.0.1:1"),),
            listen="127.0.0.1:0",
            overflow_after_s=None,
        ),
        seen=None,  # type: ignore[arg-type]
        acceptance=blobs,  # type: ignore[arg-type]
        results=None,  # type: ignore[arg-type]
        controls=None,  # type: ignore[arg-type]
        book=None,  # type: ignore[arg-type]
        blobs=SimpleNamespace(
            max_blob_bytes=store.max_blob_bytes,
            partial_dir=store.partial_dir,
            has=store.has,
            adopt=store.adopt,
        ),
        refused=lambda _: None,
    )
    runner = web.AppRunner(build_federation_app(endpoints))
    await runner.setup()
    ctx = TlsContexts(_files(tmp_path, "facility")).server_context()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"https://{host}:{port}", blobs, store
    finally:
        await runner.cleanup()


async def test_a_cut_stream_is_accounted_for_what_it_stored(
    tmp_path: Path, facility: tuple[str, _Blobs, _Store]
) -> None:
    url, blobs, store = facility
    size = 4 * CHECKPOINT
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "scene.bin").write_bytes(data)
    target = urlsplit(url)
    proxy = CutProxy(target.hostname or "", target.port or 0, cut_after=CHECKPOINT * 3 // 2)
    port = await proxy.start()
    connections = UploadConnections()
    try:
        async with aiohttp.ClientSession() as session:
            sent = await upload_blob(
                session,
                f"https://127.0.0.1:{port}",
                sha,
                tmp_path / "scene.bin",
                request_options=TlsContexts(_files(tmp_path, "studio")).request_options("facility"),
                backoff_s=0.01,
                connections=connections,
            )
    finally:
        connections.close()
        await proxy.close()

    assert proxy.fired and sent >= size
    assert store.has(sha)
    stored = [n for peer, blob, n in blobs.received if (peer, blob) == ("studio", sha)]
    # The cut request stored part of the blob, the resumed one the rest: once in all.
    assert len(stored) >= 2 and stored[0] > 0
    assert sum(stored) == size
