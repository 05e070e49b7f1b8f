"""Small blobs the receiver reported missing go straight to its blob listener, without a
``HEAD`` first, over real mutual TLS with the federation API's own handler: the receiver's
offset still wins (a partly held blob resumes from it), a blob it already stores is answered
complete, a refusal reaches the sender as an answer, a listener that went away is not tried again, and
the connection stays open after
each of these (the listener reads the unneeded body and drops it)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from federation.blob_receiver import BlobUploadEndpoint
from federation.certs import TlsContexts
from federation.errors import UploadError
from federation.transfer import DIRECT_MAX, upload_blob
from federation.upload_threads import UploadConnections
from tests.integration.test_fed_blob_listener import (
    Facility,
    _blob,
    _files,
    _stored,
    facility,  # noqa: F401  (the fixture)
)


class _Sender:
    """One site's uploads, on one set of kept-alive connections, as its client makes them."""

    def __init__(self, tmp_path: Path, url: str, site: str = "studio") -> None:
        self.url = url
        self.options = TlsContexts(_files(tmp_path, site)).request_options("facility")
        self.connections = UploadConnections()

    async def upload(self, path: Path, sha: str, *, missing: bool = True) -> int:
        async with aiohttp.ClientSession() as session:
            return await upload_blob(
                session,
                self.url,
                sha,
                path,
                request_options=self.options,
                backoff_s=0.01,
                connections=self.connections,
                missing=missing,
            )


def _count_heads(blobs: BlobUploadEndpoint) -> list[str]:
    asked: list[str] = []
    real = blobs.answer_head

    async def counted(sha256: str) -> web.Response:
        asked.append(sha256)
        return await real(sha256)

    blobs.answer_head = counted  # type: ignore[method-assign]
    return asked


def _small_blob(tmp_path: Path, name: str, size: int = 256 * 1024) -> tuple[Path, str]:
    folder = tmp_path / name
    folder.mkdir()
    return _blob(folder, size)


@pytest.fixture
async def sender(tmp_path: Path, facility: Facility) -> AsyncIterator[_Sender]:  # noqa: F811
    """A sender that has uploaded one blob, so it knows the facility's blob listener."""
    sender = _Sender(tmp_path, facility.url)
    await sender.upload(*_small_blob(tmp_path, "first"))
    yield sender
    sender.connections.close()


async def test_a_missing_small_blob_is_sent_without_asking_its_offset(
    tmp_path: Path,
    facility: Facility,  # noqa: F811
    sender: _Sender,
) -> None:
    heads = _count_heads(facility.blobs)
    path, sha = _small_blob(tmp_path, "second")

    sent = await sender.upload(path, sha)

    assert sent == path.stat().st_size and facility.store.has(sha)
    assert heads == [] and _stored(facility, sha) == [sent]
    # Not reported missing, or too large: the offset is asked first, as before.
    other, other_sha = _small_blob(tmp_path, "third")
    await sender.upload(other, other_sha, missing=False)
    large, large_sha = _small_blob(tmp_path, "large", DIRECT_MAX + 1)
    await sender.upload(large, large_sha)
    assert heads == [other_sha, large_sha]


async def test_a_partly_held_blob_resumes_from_the_receivers_offset(
    tmp_path: Path,
    facility: Facility,  # noqa: F811
    sender: _Sender,
) -> None:
    path, sha = _small_blob(tmp_path, "partial")
    data = path.read_bytes()
    held = await facility.blobs.receiver.append(sha, 0, data[:100_000])
    opened = sender.connections.opened

    sent = await sender.upload(path, sha)

    # The first body was read and dropped (a 409 with the offset), then the rest sent.
    assert sent == len(data) + len(data) - held
    assert facility.store.has(sha)
    assert sender.connections.opened == opened  # the same connection throughout


async def test_a_stored_blob_is_answered_complete(
    tmp_path: Path,
    facility: Facility,  # noqa: F811
    sender: _Sender,
) -> None:
    path, sha = _small_blob(tmp_path, "again")
    await sender.upload(path, sha)
    opened = sender.connections.opened

    sent = await sender.upload(path, sha)

    assert sent == path.stat().st_size  # at most DIRECT_MAX sent for nothing
    assert _stored(facility, sha) == [sent]  # stored and accounted once
    await sender.upload(*_small_blob(tmp_path, "next"))
    assert sender.connections.opened == opened  # the connection was kept for the next


async def test_a_refused_direct_patch_is_answered_not_reset(
    tmp_path: Path,
    facility: Facility,  # noqa: F811
    sender: _Sender,
) -> None:
    # render-b is a configured peer, but the blob is not part of an offer of its.
    other = _Sender(tmp_path, facility.url, "render-b")
    other.connections.stream_ports.update(sender.connections.stream_ports)
    path, sha = _small_blob(tmp_path, "refused")
    heads = _count_heads(facility.blobs)
    try:
        with pytest.raises(UploadError, match="403.*open offer"):
            await other.upload(path, sha)
        assert other.connections.opened == 1 and heads == []  # one answer, no retry
    finally:
        other.connections.close()
    assert not facility.store.has(sha)


async def test_a_listener_that_went_away_is_forgotten(
    tmp_path: Path,
    facility: Facility,  # noqa: F811
    sender: _Sender,
) -> None:
    origin = next(iter(sender.connections.stream_ports))
    with socket.socket() as closed:  # a port where nothing listens
        closed.bind(("127.0.0.1", 0))
        sender.connections.stream_ports[origin] = closed.getsockname()[1]
    served = facility.listener.requests
    path, sha = _small_blob(tmp_path, "fallback")

    sent = await sender.upload(path, sha)

    # Refused: the rest went through /fed/v1, and the stale port was dropped.
    assert sent == path.stat().st_size and facility.store.has(sha)
    assert facility.listener.requests == served and origin not in sender.connections.stream_ports
    # The next upload asks HEAD, learns the listener again and uses it.
    await sender.upload(*_small_blob(tmp_path, "after"))
    assert facility.listener.requests == served + 1
    assert sender.connections.stream_ports[origin] == facility.blobs.stream_port
