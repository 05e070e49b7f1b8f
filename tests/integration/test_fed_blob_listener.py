"""The threaded blob listener (``[federation] blob_port``) over real mutual TLS, with the
federation API's own handler: uploads go there, a cut stream resumes and is accounted once,
peers are checked as on ``/fed/v1``, other request shapes get a clear error, and a sender
whose listener is unreachable falls back to ``/fed/v1``."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from bench.cut_proxy import CutProxy
from federation.api import BLOBS, FederationEndpoints, blob_listener_handler, build_federation_app
from federation.blob_listener import BlobListener
from federation.blob_receiver import BlobUploadEndpoint
from federation.certs import TlsContexts, init_ca, issue_site_cert
from federation.peers import FederationConfig, PeerConfig
from federation.transfer import BLOBS_PATH, CHUNK_SIZE, upload_blob
from federation.upload_threads import UploadConnections
from site_agent.store.base import StoreError
from tests.integration.test_fed_blob_accounting import _Blobs, _files, _Store

CHECKPOINT = CHUNK_SIZE
"""Blob streams are synced and recorded every chunk here (``chunk_checkpoints``)."""
pytestmark = pytest.mark.usefixtures("chunk_checkpoints")


class _Picky(_Blobs):
    """Only studio's blobs are part of an open offer."""

    async def blob_allowed(self, peer: PeerConfig, sha256: str) -> bool:
        return peer.name == "studio"


@dataclass
class Facility:
    url: str
    listener: BlobListener
    blobs: BlobUploadEndpoint
    accepted: _Blobs
    store: _Store
    refused: list[str]


@pytest.fixture
async def facility(tmp_path: Path) -> AsyncIterator[Facility]:
    init_ca(tmp_path / "ca")
    for site in ("studio", "render-b", "stranger", "facility"):
        issue_site_cert(tmp_path / "ca", site, tmp_path / "certs")
    accepted, store = _Picky(), _Store(tmp_path / "store")
    refused: list[str] = []
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
        acceptance=accepted,  # type: ignore[arg-type]
        results=None,  # type: ignore[arg-type]
        controls=None,  # type: ignore[arg-type]
        book=None,  # type: ignore[arg-type]
        blobs=SimpleNamespace(
            max_blob_bytes=store.max_blob_bytes,
            partial_dir=store.partial_dir,
            has=store.has,
            adopt=store.adopt,
        ),
        refused=refused.append,
    )
    app = build_federation_app(endpoints)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = TlsContexts(_files(tmp_path, "facility")).server_context()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    host, port = runner.addresses[0][:2]
    listener = BlobListener("127.0.0.1", 0, ctx, blob_listener_handler(app), timeout_s=10)
    app[BLOBS].stream_port = await listener.start()
    try:
        yield Facility(f"https://{host}:{port}", listener, app[BLOBS], accepted, store, refused)
    finally:
        await listener.close()
        await runner.cleanup()


def _blob(tmp_path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    (tmp_path / "scene.bin").write_bytes(data)
    return tmp_path / "scene.bin", hashlib.sha256(data).hexdigest()


async def _upload(tmp_path: Path, url: str, path: Path, sha: str) -> int:
    connections = UploadConnections()
    try:
        async with aiohttp.ClientSession() as session:
            return await upload_blob(
                session,
                url,
                sha,
                path,
                request_options=TlsContexts(_files(tmp_path, "studio")).request_options("facility"),
                backoff_s=0.01,
                connections=connections,
            )
    finally:
        connections.close()


def _stored(facility: Facility, sha: str) -> list[int]:
    return [n for peer, blob, n in facility.accepted.received if (peer, blob) == ("studio", sha)]


@pytest.mark.parametrize("size", [256 * 1024, 3 * CHECKPOINT + 12345])
async def test_an_upload_streams_through_the_listener(
    tmp_path: Path, facility: Facility, size: int
) -> None:
    """A small blob (no durable-offset record) and a large one arrive whole and intact."""
    path, sha = _blob(tmp_path, size)

    sent = await _upload(tmp_path, facility.url, path, sha)

    assert sent == size and (facility.store.root / sha).read_bytes() == path.read_bytes()
    assert facility.listener.requests == 1  # the PATCH; the HEAD went to /fed/v1
    assert _stored(facility, sha) == [size]
    assert list(facility.store.partial_dir.iterdir()) == []


async def test_a_cut_stream_resumes_and_is_accounted_once(
    tmp_path: Path, facility: Facility
) -> None:
    size = 4 * CHECKPOINT
    path, sha = _blob(tmp_path, size)
    proxy = CutProxy("127.0.0.1", facility.listener.port, cut_after=CHECKPOINT * 3 // 2)
    facility.blobs.stream_port = await proxy.start()
    try:
        sent = await _upload(tmp_path, facility.url, path, sha)
    finally:
        await proxy.close()

    assert proxy.fired and sent >= size and facility.store.has(sha)
    stored = _stored(facility, sha)
    # The cut request stored part of the blob, the resumed one the rest: once in all.
    assert len(stored) >= 2 and stored[0] > 0
    assert sum(stored) == size


async def test_an_unreachable_listener_falls_back_to_the_fed_route(
    tmp_path: Path, facility: Facility
) -> None:
    path, sha = _blob(tmp_path, CHECKPOINT)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        facility.blobs.stream_port = closed.getsockname()[1]  # nothing listens there

        sent = await _upload(tmp_path, facility.url, path, sha)

    assert sent == CHECKPOINT and facility.store.has(sha)
    assert facility.listener.requests == 0
    assert _stored(facility, sha) == [CHECKPOINT]


# --- who may connect, and what it serves -------------------------------------------


def _request(
    facility: Facility,
    context: ssl.SSLContext,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPSConnection("127.0.0.1", facility.listener.port, context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()
        error = json.loads(payload)["error"] if payload else {}
        return resp.status, error
    finally:
        conn.close()


def _client(tmp_path: Path, site: str | None, *, ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tmp_path / "ca" / "ca.pem")
    ctx.check_hostname = False
    if site is not None:
        files = _files(ca or tmp_path, site)
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


_SHA = "ab" * 32
_PATCH = {
    "Upload-Offset": "0",
    "Upload-Length": "4",
    "Content-Type": "application/offset+octet-stream",
}


async def test_a_client_without_a_certificate_is_refused(
    tmp_path: Path, facility: Facility
) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        await asyncio.to_thread(
            _request, facility, _client(tmp_path, None), "HEAD", f"{BLOBS_PATH}/{_SHA}"
        )
    assert not facility.store.partial_dir.joinpath(f"{_SHA}.part").exists()


async def test_a_certificate_of_another_ca_is_refused(tmp_path: Path, facility: Facility) -> None:
    init_ca(tmp_path / "other" / "ca")
    issue_site_cert(tmp_path / "other" / "ca", "studio", tmp_path / "other" / "certs")
    impostor = _client(tmp_path, "studio", ca=tmp_path / "other")
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        await asyncio.to_thread(
            _request,
            facility,
            impostor,
            "PATCH",
            f"{BLOBS_PATH}/{_SHA}",
            body=b"abcd",
            headers=_PATCH,
        )
    assert facility.accepted.received == []


async def test_an_unconfigured_site_is_forbidden(tmp_path: Path, facility: Facility) -> None:
    status, error = await asyncio.to_thread(
        _request,
        facility,
        _client(tmp_path, "stranger"),
        "PATCH",
        f"{BLOBS_PATH}/{_SHA}",
        body=b"abcd",
        headers=_PATCH,
    )
    assert status == 403 and "not a configured peer" in error["message"]
    assert any("stranger" in line for line in facility.refused)
    assert facility.accepted.received == []


async def test_a_peer_without_an_offer_of_the_blob_is_forbidden(
    tmp_path: Path, facility: Facility
) -> None:
    status, error = await asyncio.to_thread(
        _request,
        facility,
        _client(tmp_path, "render-b"),
        "PATCH",
        f"{BLOBS_PATH}/{_SHA}",
        body=b"abcd",
        headers=_PATCH,
    )
    assert status == 403 and "not part of an open offer" in error["message"]
    assert not facility.store.partial_dir.joinpath(f"{_SHA}.part").exists()


async def test_a_database_failure_answers_503_as_on_the_fed_route(
    tmp_path: Path, facility: Facility, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(peer: PeerConfig, sha256: str) -> bool:
        raise StoreError("database is locked")

    monkeypatch.setattr(facility.accepted, "blob_allowed", broken)
    status, error = await asyncio.to_thread(
        _request,
        facility,
        _client(tmp_path, "studio"),
        "PATCH",
        f"{BLOBS_PATH}/{_SHA}",
        body=b"abcd",
        headers=_PATCH,
    )
    # The sender retries a 503 (the database is back soon); a 500 would read as a bug here.
    assert (status, error["code"]) == (503, "store_error")
    assert "database is locked" in error["message"]
    assert not facility.store.partial_dir.joinpath(f"{_SHA}.part").exists()


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", f"{BLOBS_PATH}/{_SHA}", {}, 405, "method_not_allowed"),
        ("POST", "/fed/v1/offer", {}, 404, "not_found"),
        (
            "PATCH",
            f"{BLOBS_PATH}/{_SHA}",
            {**_PATCH, "Transfer-Encoding": "chunked"},
            411,
            "length_required",
        ),
        (
            "PATCH",
            f"{BLOBS_PATH}/{_SHA}",
            {**_PATCH, "Content-Type": "text/plain"},
            415,
            "bad_content_type",
        ),
        ("PATCH", f"{BLOBS_PATH}/not-a-sha", _PATCH, 400, "bad_upload"),
    ],
)
async def test_a_request_shape_it_does_not_serve_gets_an_error(
    tmp_path: Path,
    facility: Facility,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    body = b"" if "Transfer-Encoding" in headers else b"abcd"
    got, error = await asyncio.to_thread(
        _request,
        facility,
        _client(tmp_path, "studio"),
        method,
        path,
        body=body,
        headers=headers,
    )
    assert (got, error["code"]) == (status, code)
    assert facility.accepted.received == []


def _raw_request(facility: Facility, context: ssl.SSLContext, head: bytes) -> bytes:
    """``head`` sent as is (no client library tidies it up); the answer's status line."""
    address = ("127.0.0.1", facility.listener.port)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(head)
        return tls.makefile("rb").readline()


@pytest.mark.parametrize(
    "header_lines",
    [
        b"Upload-Offset 0\r\n",  # no colon
        b"Upload-Offset : 0\r\n",  # a space before the colon
        b" Upload-Offset: 0\r\n",  # a continuation line
        b"X-Filler: 1\r\n" * 101,  # more lines than any blob request has
        b"X-Long: " + b"a" * 9000 + b"\r\n",
    ],
)
async def test_a_malformed_header_is_refused(
    tmp_path: Path, facility: Facility, header_lines: bytes
) -> None:
    head = f"HEAD {BLOBS_PATH}/{_SHA} HTTP/1.1\r\nHost: x\r\n".encode() + header_lines + b"\r\n"
    status = await asyncio.to_thread(_raw_request, facility, _client(tmp_path, "studio"), head)
    assert status.startswith(b"HTTP/1.1 400 ")


async def test_header_names_are_matched_whatever_their_case(
    tmp_path: Path, facility: Facility
) -> None:
    head = (
        f"PATCH {BLOBS_PATH}/{_SHA} HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
        "transfer-ENCODING: chunked\r\n\r\n"
    ).encode()
    status = await asyncio.to_thread(_raw_request, facility, _client(tmp_path, "studio"), head)
    assert status.startswith(b"HTTP/1.1 411 ")  # the lower-case Transfer-Encoding was seen
