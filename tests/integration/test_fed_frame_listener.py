"""Frames fetched back from the remote's blob listener over real mutual TLS, with the
federation API's own handler and a real ``Acceptance`` and ``FrameStorage`` at the remote,
the origin's ``PeerClient`` and ``fetch_frame`` into a real ``FrameStorage``: the first
frame comes through ``/fed/v1``, which names the listener; later ones come from the
listener, whole, hash-verified and accounted once each; the listener refuses what
``/fed/v1`` refuses (no certificate, another CA, an unknown site, another peer's job, a
file outside the frame); a listener that went away or refuses sends the origin back to
``/fed/v1``."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from federation.accept import Acceptance
from federation.api import (
    BLOBS,
    FederationEndpoints,
    blob_listener_handler,
    build_federation_app,
    frame_listener_handler,
)
from federation.blob_listener import BlobListener
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.client import PeerClient
from federation.peers import FederationConfig, PeerConfig
from federation.protocol import FrameFileOutput, FrameOutput
from federation.streaming import BadFrameError, fetch_frame
from federation.transfer import url_origin
from site_agent.storage import FrameStorage, stored_name
from site_agent.store.records import FrameFile, FrameRecord
from spillway.core.records import FileKind


def _preview(frame: int) -> str:
    return stored_name(f"shot_{frame:04d}.jpg", FileKind.PREVIEW)


def _files(root: Path, site: str, ca: str = "ca") -> TlsFiles:
    return TlsFiles(
        ca=root / ca / "ca.pem",
        cert=root / f"certs-{ca}" / f"{site}.pem",
        key=root / f"certs-{ca}" / f"{site}-key.pem",
    )


@dataclass
class _Jobs:
    """The remote's records: studio's job ``rj1`` (two frames, one with a preview) and
    render-b's job ``rj2``."""

    frames: dict[tuple[str, int], FrameRecord] = field(default_factory=dict)

    async def get_job(self, job_id: str) -> Any:
        return SimpleNamespace(id=job_id, name="shot") if job_id in ("rj1", "rj2") else None

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        return self.frames.get((job_id, frame))

    async def offer_by_job(self, job_id: str) -> Any:
        site = {"rj1": "studio", "rj2": "render-b"}.get(job_id)
        return SimpleNamespace(site=site) if site else None


@dataclass
class _Usage:
    sent: list[tuple[str, str, int]] = field(default_factory=list)

    async def record_transfer(
        self, *, job_id: str, peer: str, at: float, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        self.sent.append((peer, job_id, bytes_out))


@dataclass
class Remote:
    url: str
    listener: BlobListener
    storage: FrameStorage
    outputs: dict[str, FrameOutput]
    usage: _Usage


def _store(storage: FrameStorage, jobs: _Jobs, job: str, frame: int) -> FrameOutput:
    folder = storage.job_dir("shot", job)
    (folder / _preview(frame)).parent.mkdir(parents=True, exist_ok=True)
    data, preview = os.urandom(3 * 1024 * 1024 + frame), os.urandom(5000)
    name = f"shot_{frame:04d}.exr"
    (folder / name).write_bytes(data)
    (folder / _preview(frame)).write_bytes(preview)
    sha, psha = hashlib.sha256(data).hexdigest(), hashlib.sha256(preview).hexdigest()
    extra = FrameFile(name=_preview(frame), sha256=psha, size=len(preview), kind=FileKind.PREVIEW)
    jobs.frames[(job, frame)] = FrameRecord(
        job_id=job,
        frame=frame,
        task_id=None,
        name=name,
        sha256=sha,
        size=len(data),
        server_id="s1",
        rendered_at=0.0,
        files=(extra,),
    )
    return FrameOutput(
        frame=frame,
        sha256=sha,
        size=len(data),
        name=name,
        files=(FrameFileOutput(name=extra.name, sha256=psha, size=extra.size, kind=extra.kind),),
    )


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[Remote]:
    init_ca(tmp_path / "ca")
    for site in ("studio", "render-b", "stranger", "facility"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs-ca")
    init_ca(tmp_path / "other")
    issue_site_cert(tmp_path / "other", "studio", tmp_path / "certs-other")
    storage, jobs, usage = (
        FrameStorage(tmp_path / "remote", max_frame_bytes=1 << 30),
        _Jobs(),
        _Usage(),
    )
    outputs = {
        f"{job}/{n}": _store(storage, jobs, job, n)
        for job, n in (("rj1", 1), ("rj1", 2), ("rj1", 3), ("rj2", 1))
    }
    acceptance = Acceptance(
        name="facility",
        jobs=jobs,  # type: ignore[arg-type]
        offers=jobs,  # type: ignore[arg-type]
        blobs=None,  # type: ignore[arg-type]
        frames=storage,
        views=None,  # type: ignore[arg-type]
        wakeup=None,  # type: ignore[arg-type]
        known_packages=(),
        load=None,  # type: ignore[arg-type]
        usage=usage,  # type: ignore[arg-type]
    )
    endpoints = FederationEndpoints(
        name="facility",
        config=FederationConfig(
            tls=_files(tmp_path, "facility"),
            peers=(
                PeerConfig(name="studio", url="https://127.0.0.1:1"),
                PeerConfig(name="render-b", url="https://127.0.0.1:2"),
            ),
            listen="127.0.0.1:0",
            overflow_after_s=None,
        ),
        seen=None,  # type: ignore[arg-type]
        acceptance=acceptance,
        results=None,  # type: ignore[arg-type]
        controls=None,  # type: ignore[arg-type]
        book=None,  # type: ignore[arg-type]
        blobs=SimpleNamespace(max_blob_bytes=1, partial_dir=tmp_path / "partial"),  # type: ignore[arg-type]
        refused=lambda what: None,
    )
    app = build_federation_app(endpoints)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = TlsContexts(_files(tmp_path, "facility")).server_context()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    host, port = runner.addresses[0][:2]
    listener = BlobListener(
        "127.0.0.1", 0, ctx, blob_listener_handler(app), frames=frame_listener_handler(app)
    )
    app[BLOBS].stream_port = await listener.start()
    try:
        yield Remote(f"https://{host}:{port}", listener, storage, outputs, usage)
    finally:
        await listener.close()
        await runner.cleanup()


async def _fetch(
    client: PeerClient, remote: Remote, here: FrameStorage, key: str, peer: str = "facility"
) -> Path:
    job, _ = key.split("/")
    folder = here.job_dir("shot", job)
    output = remote.outputs[key]
    facility = PeerConfig(name=peer, url=remote.url)
    await fetch_frame(client, here, facility, job, output, folder, output.name)
    return folder


async def test_later_frames_come_from_the_listener_whole_and_accounted_once(
    tmp_path: Path, remote: Remote
) -> None:
    client = PeerClient("studio", TlsContexts(_files(tmp_path, "studio")))
    here = FrameStorage(tmp_path / "origin", max_frame_bytes=1 << 30)
    try:
        await _fetch(client, remote, here, "rj1/1")
        # /fed/v1 answered the preview, naming the listener, which sent the main file.
        assert remote.listener.requests == 1
        assert client._upload_connections().stream_ports == {
            url_origin(remote.url): remote.listener.port
        }
        folder = await _fetch(client, remote, here, "rj1/2")
        assert remote.listener.requests == 3  # and both files of the next frame
    finally:
        await client.close()
    there = remote.storage.job_dir("shot", "rj1")
    for name in ("shot_0001.exr", "shot_0002.exr", _preview(1), _preview(2)):
        assert (folder / name).read_bytes() == (there / name).read_bytes()
    assert not list(folder.glob(".*.part")) and not list(
        (folder / _preview(1)).parent.glob(".*.part")
    )
    sizes = [remote.outputs[k].size for k in ("rj1/1", "rj1/2")]
    await _accounted(remote, 4)
    assert sorted(n for _, _, n in remote.usage.sent) == sorted([5000, 5000, *sizes])
    assert {(peer, job) for peer, job, _ in remote.usage.sent} == {("studio", "rj1")}


async def test_frames_fetched_at_once_are_each_counted(tmp_path: Path, remote: Remote) -> None:
    """The origin's received-bytes counter (``spillway_federation_bytes_total``) adds every
    frame of fetches running concurrently, as a job's completion fetches them."""
    client = PeerClient("studio", TlsContexts(_files(tmp_path, "studio")))
    here = FrameStorage(tmp_path / "origin", max_frame_bytes=1 << 30)
    keys = [k for k in remote.outputs if k.startswith("rj1/")]
    try:
        await _fetch(client, remote, here, keys[0])  # the listener is known from here on
        before = client.bytes_received
        await asyncio.gather(*(_fetch(client, remote, here, key) for key in keys[1:]))
    finally:
        await client.close()
    files = [remote.outputs[k] for k in keys[1:]]
    assert len(files) >= 2
    assert client.bytes_received - before == sum(
        f.size + sum(x.size for x in f.files) for f in files
    )


async def test_a_frame_that_fails_its_check_is_refused_there_too(
    tmp_path: Path, remote: Remote
) -> None:
    client = PeerClient("studio", TlsContexts(_files(tmp_path, "studio")))
    here = FrameStorage(tmp_path / "origin", max_frame_bytes=1 << 30)
    try:
        await _fetch(client, remote, here, "rj1/1")
        bad = remote.storage.job_dir("shot", "rj1") / "shot_0002.exr"
        bad.write_bytes(b"changed")
        with pytest.raises(BadFrameError, match="refused by facility"):
            await _fetch(client, remote, here, "rj1/2")
        # The listener sent the preview and refused the main file; so did /fed/v1.
        assert remote.listener.requests == 3
    finally:
        await client.close()
    assert not (here.job_dir("shot", "rj1") / "shot_0002.exr").exists()


async def test_an_unreachable_listener_sends_the_origin_back_to_fed_v1(
    tmp_path: Path, remote: Remote
) -> None:
    client = PeerClient("studio", TlsContexts(_files(tmp_path, "studio")))
    here = FrameStorage(tmp_path / "origin", max_frame_bytes=1 << 30)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    try:
        client._upload_connections().stream_ports[url_origin(remote.url)] = closed.getsockname()[1]
        folder = await _fetch(client, remote, here, "rj1/1")
        assert (folder / "shot_0001.exr").stat().st_size == remote.outputs["rj1/1"].size
        # /fed/v1 answered the preview, naming the real listener, which sent the main file.
        assert remote.listener.requests == 1
        assert (
            client._upload_connections().stream_ports[url_origin(remote.url)]
            == remote.listener.port
        )
    finally:
        closed.close()
        await client.close()


async def _accounted(remote: Remote, count: int) -> None:
    """Wait until ``count`` files were accounted: the listener accounts a file once it has
    sent it whole, which may be just after the origin has read its last byte."""
    for _ in range(500):
        if len(remote.usage.sent) >= count:
            return
        await asyncio.sleep(0.01)


def _context(tmp_path: Path, site: str | None, ca: str = "ca") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.pem"))
    ctx.check_hostname = False
    if site is not None:
        files = _files(tmp_path, site, ca)
        ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


def _get(port: int, path: str, ctx: ssl.SSLContext) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if resp.status != 200 else {"size": len(body)}
    finally:
        conn.close()


async def test_the_listener_refuses_what_fed_v1_refuses(tmp_path: Path, remote: Remote) -> None:
    port = remote.listener.port
    frame = "/fed/v1/jobs/rj1/frames/1"

    def get(path: str, site: str | None = "studio", ca: str = "ca") -> tuple[int, dict[str, Any]]:
        return _get(port, path, _context(tmp_path, site, ca))

    for site, ca in ((None, "ca"), ("studio", "other")):  # no certificate; another CA's
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(get, frame, site, ca)
    status, body = await asyncio.to_thread(get, frame, "stranger")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "not a configured peer" in body["error"]["message"]
    status, body = await asyncio.to_thread(get, "/fed/v1/jobs/rj2/frames/1")  # render-b's
    assert status == 404 and "no job 'rj2' forwarded by studio" in body["error"]["message"]
    outside = f"{frame}/files/{quote('../../rj2/shot_0001.exr', safe='')}"
    status, body = await asyncio.to_thread(get, outside)
    assert status == 404 and "has no file" in body["error"]["message"]
    status, body = await asyncio.to_thread(get, "/fed/v1/jobs/rj1/frames/one")
    assert status == 400 and "whole number" in body["error"]["message"]
    status, _ = await asyncio.to_thread(get, "/fed/v1/jobs/rj1/frames/9")
    assert status == 404
    # render-b fetches its own job's frame there; nothing of studio's was sent.
    status, body = await asyncio.to_thread(get, "/fed/v1/jobs/rj2/frames/1", "render-b")
    assert (status, body) == (200, {"size": remote.outputs["rj2/1"].size})
    await _accounted(remote, 1)
    assert [(peer, job) for peer, job, _ in remote.usage.sent] == [("render-b", "rj2")]
