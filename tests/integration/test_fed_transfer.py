"""Resumable blob upload against a real aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from bench.cut_proxy import CutProxy
from federation.blob_receiver import BlobUploadEndpoint, ResumableReceiver
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.errors import UploadError
from federation.transfer import CHUNK_SIZE, DIRECT_MAX, UPLOAD_OFFSET, upload_blob
from federation.upload_threads import UploadConnections

CHECKPOINT = CHUNK_SIZE
"""Blob streams are synced and recorded every chunk here (``chunk_checkpoints``)."""
pytestmark = pytest.mark.usefixtures("chunk_checkpoints")

MIB = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)

    async def commit(self, sha256: str, path: Path) -> None:
        os.replace(path, self.root / sha256)

    async def has(self, sha256: str) -> bool:
        return (self.root / sha256).exists()

    def blobs(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())


class Receiver:
    """The receiving site: endpoint + store, with a PATCH hook for faults."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(tmp_path / "blobs")
        self.receiver = ResumableReceiver(
            tmp_path / "partial", self.store.commit, is_stored=self.store.has
        )
        self.endpoint = BlobUploadEndpoint(self.receiver)
        self.patches = 0
        self.heads = 0
        self.fault: Callable[[web.Request, Handler], Awaitable[web.StreamResponse]] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("HEAD", "/fed/v1/blobs/{sha256}", self.head)
        app.router.add_patch("/fed/v1/blobs/{sha256}", self.patch)
        return app

    async def head(self, request: web.Request) -> web.StreamResponse:
        self.heads += 1
        return await self.endpoint.head(request)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        self.patches += 1
        if self.fault is not None:
            return await self.fault(request, self.endpoint.patch)
        return await self.endpoint.patch(request)


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    return runner


@pytest.fixture(params=["loop", "threads"])
def connections(request: pytest.FixtureRequest) -> Iterator[UploadConnections | None]:
    """Every test runs on both sender paths: aiohttp on the loop, and blocking sockets in
    worker threads (what sites use for uncapped uploads)."""
    if request.param == "loop":
        yield None
        return
    pool = UploadConnections()
    yield pool
    pool.close()


@pytest.fixture
def remote(tmp_path: Path) -> Receiver:
    return Receiver(tmp_path / "remote")


@pytest.fixture
async def base_url(remote: Receiver) -> AsyncIterator[str]:
    runner = await serve(remote.app())
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_blob(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def test_upload_in_chunks(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", 10 * MIB)

    sent = await upload_blob(
        session, base_url, sha, tmp_path / "scene.bin", chunk_size=MIB, connections=connections
    )

    assert sent == 10 * MIB
    assert remote.patches == 10
    assert remote.store.blobs() == [sha]
    assert (remote.store.root / sha).read_bytes() == (tmp_path / "scene.bin").read_bytes()
    # A second upload finds the blob complete and sends nothing.
    assert (
        await upload_blob(session, base_url, sha, tmp_path / "scene.bin", connections=connections)
        == 0
    )
    assert remote.patches == 10
    if connections is not None:  # one kept-alive connection for the 2 HEADs and 10 PATCHes
        assert connections.opened == 1


async def test_the_whole_blob_goes_in_one_request(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", 3 * CHECKPOINT + 5)

    sent = await upload_blob(
        session, base_url, sha, tmp_path / "scene.bin", connections=connections
    )

    assert sent == 3 * CHECKPOINT + 5
    assert (remote.heads, remote.patches) == (1, 1)
    assert (remote.store.root / sha).read_bytes() == (tmp_path / "scene.bin").read_bytes()
    assert list(remote.receiver.partial_dir.iterdir()) == []  # neither data nor record left


async def test_stream_cut_mid_blob_resumes_from_what_arrived(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    """The network drops the one stream part way (past a checkpoint, between two): the
    receiver keeps every byte that reached it, not just the last checkpoint, and the
    sender resumes from there."""
    size = 4 * CHECKPOINT
    sha = make_blob(tmp_path / "scene.bin", size)
    starts: list[int] = []

    async def note_start(request: web.Request, handler: Handler) -> web.StreamResponse:
        starts.append(int(request.headers[UPLOAD_OFFSET]))
        return await handler(request)

    remote.fault = note_start
    target = urlsplit(base_url)
    proxy = CutProxy(target.hostname or "", target.port or 0, cut_after=CHECKPOINT * 3 // 2)
    port = await proxy.start()
    try:
        sent = await upload_blob(
            session,
            f"http://127.0.0.1:{port}",
            sha,
            tmp_path / "scene.bin",
            backoff_s=0.01,
            connections=connections,
        )
    finally:
        await proxy.close()

    assert proxy.fired
    assert starts[0] == 0 and len(starts) >= 2  # a third when the HEAD came before the flush
    resumed_at = starts[-1]
    # The delivered bytes include the request's head; aiohttp may drop its last read.
    assert proxy.delivered - 512 * 1024 <= resumed_at < proxy.delivered
    assert sent >= size + (proxy.delivered - resumed_at) - 1024
    assert hashlib.sha256((remote.store.root / sha).read_bytes()).hexdigest() == sha


async def test_a_stalled_stream_keeps_what_arrived_and_frees_the_blob(
    tmp_path: Path, remote: Receiver, base_url: str, session: aiohttp.ClientSession
) -> None:
    """A sender that goes quiet without closing (a lost peer, no reset) holds the blob only
    until the stall timeout; the bytes it sent are kept and the next upload resumes there
    (a blob larger than DIRECT_MAX: a small one sent whole starts over, see below)."""
    remote.endpoint.stall_timeout_s = 0.3
    sha = make_blob(tmp_path / "scene.bin", DIRECT_MAX + MIB)
    data = (tmp_path / "scene.bin").read_bytes()
    reader, writer = await _start_patch(base_url, data, MIB // 2)

    answer = await asyncio.wait_for(reader.readline(), 10)  # then nothing more is sent

    assert b" 408 " in answer
    writer.close()
    assert remote.receiver.offset(sha) == MIB // 2
    sent = await upload_blob(session, base_url, sha, tmp_path / "scene.bin")
    assert sent == len(data) - MIB // 2
    assert remote.store.blobs() == [sha]


@pytest.mark.parametrize("stored_before_cut", [True, False])
async def test_cut_connection_resumes_from_the_receivers_offset(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
    stored_before_cut: bool,
) -> None:
    """The 4th PATCH loses its connection, either after or before the chunk is stored."""
    sha = make_blob(tmp_path / "scene.bin", 10 * MIB)

    async def cut_fourth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if remote.patches != 4:
            return await handler(request)
        if stored_before_cut:
            await handler(request)
        else:
            await request.content.read(MIB // 2)  # half the chunk arrived
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=204)

    remote.fault = cut_fourth

    sent = await upload_blob(
        session,
        base_url,
        sha,
        tmp_path / "scene.bin",
        chunk_size=MIB,
        backoff_s=0.01,
        connections=connections,
    )

    assert remote.heads == 2  # the start, and once more to resume
    assert 10 * MIB <= sent <= 11 * MIB  # at most the chunk in flight is sent again
    if stored_before_cut:
        assert sent == 10 * MIB
    # Else the cut chunk went again; the sender counts it the first time only as far as
    # whole blocks of it went out before the cut, which depends on the socket's timing.
    assert remote.store.blobs() == [sha]
    assert hashlib.sha256((remote.store.root / sha).read_bytes()).hexdigest() == sha


async def test_resumes_a_partial_blob_left_by_an_earlier_run(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", 3 * MIB + 5)
    await remote.receiver.append(sha, 0, (tmp_path / "scene.bin").read_bytes()[: 2 * MIB])

    sent = await upload_blob(
        session, base_url, sha, tmp_path / "scene.bin", chunk_size=MIB, connections=connections
    )

    assert sent == MIB + 5
    assert remote.store.blobs() == [sha]


async def test_tampered_content_is_refused_and_nothing_stored(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", 3 * MIB)
    with (tmp_path / "scene.bin").open("r+b") as handle:  # corrupted after hashing
        handle.seek(2 * MIB)
        handle.write(b"evil")

    with pytest.raises(UploadError, match="422.*discarded"):
        await upload_blob(
            session, base_url, sha, tmp_path / "scene.bin", chunk_size=MIB, connections=connections
        )

    assert remote.store.blobs() == []
    assert remote.receiver.offset(sha) == 0


async def test_empty_blob(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "empty", 0)
    assert (
        await upload_blob(session, base_url, sha, tmp_path / "empty", connections=connections) == 0
    )
    assert remote.store.blobs() == [sha]


async def test_gives_up_after_bounded_attempts(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", MIB)

    async def unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
        return web.json_response({"error": {"code": "busy", "message": "busy"}}, status=503)

    remote.fault = unavailable

    with pytest.raises(UploadError, match="gave up after 3 attempts.*resumes"):
        await upload_blob(
            session,
            base_url,
            sha,
            tmp_path / "scene.bin",
            attempts=3,
            backoff_s=0.01,
            connections=connections,
        )
    assert remote.patches == 3


async def test_client_errors_are_not_retried(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    sha = make_blob(tmp_path / "scene.bin", 2 * MIB)
    remote.receiver.max_blob_size = MIB

    with pytest.raises(UploadError, match="413.*limit of 1048576 bytes"):
        await upload_blob(session, base_url, sha, tmp_path / "scene.bin", connections=connections)
    assert remote.patches == 1
    assert remote.receiver.offset(sha) == 0


async def test_upload_over_mutual_tls(
    tmp_path: Path, remote: Receiver, connections: UploadConnections | None
) -> None:
    init_ca(tmp_path / "ca")
    for site in ("studio", "facility"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")

    def files(site: str) -> TlsFiles:
        return TlsFiles(
            ca=tmp_path / "ca" / "ca.pem",
            cert=tmp_path / "certs" / f"{site}.pem",
            key=tmp_path / "certs" / f"{site}-key.pem",
        )

    runner = await serve(remote.app(), TlsContexts(files("facility")).server_context())
    host, port = runner.addresses[0][:2]
    sha = make_blob(tmp_path / "scene.bin", MIB + 1)
    try:
        async with aiohttp.ClientSession() as session:
            sent = await upload_blob(
                session,
                f"https://{host}:{port}",
                sha,
                tmp_path / "scene.bin",
                request_options=TlsContexts(files("studio")).request_options("facility"),
                connections=connections,
            )
    finally:
        if connections is not None:  # the client's kept-alive connection, before the server
            connections.close()
        await runner.cleanup()
    assert sent == MIB + 1
    assert remote.store.blobs() == [sha]


async def _start_patch(
    base_url: str, data: bytes, sent: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A PATCH of the whole blob ``data`` from offset 0 whose first ``sent`` bytes are
    sent (the rest never is, until the caller writes it)."""
    sha = hashlib.sha256(data).hexdigest()
    target = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    writer.write(
        f"PATCH /fed/v1/blobs/{sha} HTTP/1.1\r\nHost: x\r\nUpload-Offset: 0\r\n"
        f"Upload-Length: {len(data)}\r\nContent-Length: {len(data)}\r\n"
        "Content-Type: application/offset+octet-stream\r\n\r\n".encode()
        + data[:sent]
    )
    await writer.drain()
    return reader, writer


async def _poll(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not check():
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(("size", "recorded"), [(MIB, False), (DIRECT_MAX + MIB, True)])
async def test_only_a_blob_beyond_direct_max_gets_a_durable_record(
    tmp_path: Path, remote: Receiver, base_url: str, size: int, recorded: bool
) -> None:
    """A small blob sent whole is never given a ``.durable`` record, while it streams nor
    after; a larger one is, so a cut part way resumes from what was synced."""
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    partial = remote.receiver.partial(sha)
    _, writer = await _start_patch(base_url, data, MIB // 2)
    await _poll(lambda: partial.data.exists() and partial.data.stat().st_size >= MIB // 4)

    assert partial.record.exists() is recorded

    writer.write(data[MIB // 2 :])
    await writer.drain()
    await _poll(lambda: remote.store.blobs() == [sha])
    writer.close()
    assert (remote.store.root / sha).read_bytes() == data
    assert list(remote.receiver.partial_dir.iterdir()) == []


async def test_a_cut_small_blob_starts_over_and_completes(
    tmp_path: Path,
    remote: Receiver,
    base_url: str,
    session: aiohttp.ClientSession,
    connections: UploadConnections | None,
) -> None:
    """Half of a small blob sent whole arrives, then the connection drops: the receiver
    offers no offset to resume from (nothing was recorded), so the sender sends it all
    again, and the blob is stored whole."""
    size = MIB
    sha = make_blob(tmp_path / "small.bin", size)
    data = (tmp_path / "small.bin").read_bytes()
    partial = remote.receiver.partial(sha)
    _, writer = await _start_patch(base_url, data, size // 2)
    await _poll(lambda: partial.data.exists() and partial.data.stat().st_size >= size // 4)
    writer.close()

    assert remote.receiver.offset(sha) == 0
    sent = await upload_blob(
        session, base_url, sha, tmp_path / "small.bin", backoff_s=0.01, connections=connections
    )

    assert sent == size  # every byte again: none of the cut stream counted
    assert (remote.store.root / sha).read_bytes() == data
    assert list(remote.receiver.partial_dir.iterdir()) == []
