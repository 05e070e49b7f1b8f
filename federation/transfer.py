"""Chunked, resumable blob upload between sites (origin -> remote).

HTTP shape, under ``{base_url}/fed/v1/blobs/{sha256}``:

``HEAD``
    ``200`` with ``Blob-Complete: 1`` when the receiver already stores the blob;
    otherwise ``200`` with ``Upload-Offset: N`` (bytes of the partial blob it
    holds; a ``404`` means 0).
``PATCH``
    Headers ``Upload-Offset: N`` (where this body starts), ``Upload-Length: T``
    (the blob's total size) and ``Content-Type: application/offset+octet-stream``;
    the body is any part of the blob from ``N``, up to all the rest of it. The
    receiver writes and hashes it as it arrives and answers once all of it is
    synced: ``204`` with the new ``Upload-Offset``; when the body completes the
    blob, the receiver verifies the sha256 and answers ``200`` with
    ``Blob-Complete: 1`` (the blob is then durable and recorded), or ``422``
    (content discarded) when it did not match. ``409`` with the receiver's
    ``Upload-Offset`` when the body does not start where the partial blob ends;
    ``413`` when the blob is too big; ``503`` while an earlier request for the
    same blob is still being received.

The sender (:func:`upload_blob`) asks for the offset and sends the rest in one
request (no waiting for the disk between chunks: the receiver syncs in the
background, every :data:`~federation.blob_append.CHECKPOINT_BYTES`, and records
the synced offset); after a dropped connection it asks again and resumes from
what the receiver holds: a cut stream keeps every byte that arrived, so only the
bytes in flight in the network are sent again. A small blob sent whole (at most
:data:`DIRECT_MAX`, from offset 0) is the exception: the receiver keeps no
durable-offset record for it (:mod:`federation.blob_append`), so a cut one starts
over from 0. The receiver side is
:class:`federation.blob_receiver.ResumableReceiver` (storage logic) wired into
aiohttp by :class:`federation.blob_receiver.BlobUploadEndpoint`. Authorisation (which peer may upload which blob) is
the caller's job, e.g. a middleware that checks the peer certificate and the
blob's presence in an accepted offer.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from federation.bandwidth import TokenBucket
from federation.errors import (
    UploadError,
)
from federation.upload_threads import Answer, FileRange, UploadConnections
from spillway.core.checks import is_sha256

__all__ = [
    "BLOB_COMPLETE",
    "BLOB_PORT",
    "BLOBS_PATH",
    "CHUNK_SIZE",
    "OFFSET_CONTENT_TYPE",
    "UPLOAD_LENGTH",
    "UPLOAD_OFFSET",
    "blob_url",
    "upload_blob",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
BLOBS_PATH = "/fed/v1/blobs"
UPLOAD_OFFSET = "Upload-Offset"
UPLOAD_LENGTH = "Upload-Length"
BLOB_COMPLETE = "Blob-Complete"
BLOB_PORT = "Blob-Port"
"""In a ``HEAD`` answer: the port of the receiver's threaded blob listener, same host
(:mod:`federation.blob_listener`); ``PATCH`` bodies go there when the upload is threaded."""
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
SEND_BLOCK = 1024 * 1024
"""Bytes per write of an uncapped upload."""
DIRECT_MAX = CHUNK_SIZE
"""A blob up to this size that the receiver reported missing goes to its blob listener from
offset 0 without a ``HEAD`` (which cost as much as a small body); should the receiver hold
some or all of it after all, at most this many bytes were sent for nothing."""


def blob_url(base_url: str, sha256: str) -> str:
    return f"{base_url.rstrip('/')}{BLOBS_PATH}/{sha256}"


# --- sender ---------------------------------------------------------------------


class _RetryableStatus(Exception):
    """The receiver answered 429 or 5xx; worth retrying."""


_RETRYABLE = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
    _RetryableStatus,
    OSError,  # the threaded path: connection, timeout and TLS errors of blocking sockets
    http.client.HTTPException,
)


def _worth_retrying(exc: BaseException) -> bool:
    # A certificate that does not prove the peer will not prove it on the next try either.
    return isinstance(exc, _RETRYABLE) and not isinstance(
        exc, (ssl.SSLCertVerificationError, aiohttp.ClientConnectorCertificateError)
    )


@dataclass(slots=True, kw_only=True)
class _Upload:
    session: aiohttp.ClientSession
    url: str
    sha256: str
    path: Path
    size: int
    chunk_size: int | None
    timeout_s: float
    options: dict[str, Any]
    bucket: TokenBucket | None = None
    connections: UploadConnections | None = None
    sent: int = 0
    stream_url: str | None = None
    """Where threaded PATCH bodies go: the receiver's blob listener (its ``Blob-Port``)."""
    stream_refused: bool = False
    missing: bool = False
    """The receiver reported the blob missing: the first attempt may skip the ``HEAD``."""

    def count_sent(self, count: int) -> None:
        # Called from an upload thread too, while the loop awaits that request.
        self.sent += count

    @property
    def threaded(self) -> bool:
        # A capped upload stays on the loop: the bucket paces blocks there, and at a capped
        # rate the encryption's CPU does not matter.
        return self.connections is not None and self.bucket is None


async def upload_blob(
    session: aiohttp.ClientSession,
    base_url: str,
    sha256: str,
    path: Path,
    *,
    chunk_size: int | None = None,
    timeout_s: float = 60,
    request_options: Mapping[str, Any] | None = None,
    attempts: int = 6,
    backoff_s: float = 0.5,
    bucket: TokenBucket | None = None,
    connections: UploadConnections | None = None,
    missing: bool = False,
) -> int:
    """Upload the file ``path`` as blob ``sha256`` to the site at ``base_url``.

    Resumes from whatever the receiver already holds, and after connection
    errors, timeouts and 429/5xx answers retries (exponential backoff with
    jitter, ``attempts`` in all) from the receiver's offset. ``chunk_size``, when
    given, is the most bytes sent per request (default: the rest of the blob in
    one). ``timeout_s`` bounds each wait for the peer (connecting, each read and
    write, the answer). ``request_options`` are passed to every request; between sites
    that is ``tls.request_options(peer.name)`` (mutual TLS, peer name checked).
    ``bucket``, when given, paces the bytes (the peer's bandwidth cap, shared with
    its other streams). ``connections``, when given, sends uncapped uploads through
    blocking TLS sockets in its worker threads (see :mod:`federation.upload_threads`)
    with the TLS context and peer name of ``request_options``; ``session`` then
    serves only capped uploads. ``missing``: the receiver has just reported that it lacks
    the blob (an offer's reply), so a small one (:data:`DIRECT_MAX`) goes straight to the
    receiver's blob listener from offset 0, without a ``HEAD`` first, once ``connections``
    knows that listener. Returns the number of bytes sent, counting bytes
    sent again after a cut (0 when the receiver already had the blob; a block is
    counted once it went out whole, so one cut part way is not). Raises
    :class:`UploadError`.
    """
    if not is_sha256(sha256):
        raise ValueError(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
    upload = _Upload(
        session=session,
        url=blob_url(base_url, sha256),
        sha256=sha256,
        path=path,
        size=_file_size(path),
        chunk_size=chunk_size,
        timeout_s=timeout_s,
        options=dict(request_options or {}),
        bucket=bucket,
        connections=connections,
        missing=missing,
    )
    try:
        # Most uploads succeed at once: tenacity's machinery is set up only after a failure.
        await _upload_from_remote_offset(upload)
        return upload.sent
    except Exception as exc:  # replayed as the retry loop's first attempt: same policy
        failed: list[Exception] = [exc]
    retrying = AsyncRetrying(
        retry=retry_if_exception(_worth_retrying),
        wait=wait_random_exponential(multiplier=backoff_s, max=30),
        stop=stop_after_attempt(attempts),
        before_sleep=lambda state: log.warning(
            "upload of blob %s to %s interrupted (%s); resuming",
            sha256,
            base_url,
            state.outcome.exception() if state.outcome else None,
        ),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if failed:
                    raise failed.pop()
                await _upload_from_remote_offset(upload)
    except _RETRYABLE as exc:
        raise UploadError(
            sha256=sha256,
            problem=f"gave up after {attempts} attempts ({exc!r}); check that {base_url} is "
            "reachable and retry later: the upload resumes where it stopped",
        ) from exc
    return upload.sent


async def _upload_from_remote_offset(upload: _Upload) -> None:
    offset = 0 if _skips_head(upload) else await _remote_offset(upload)
    while offset is not None:
        if offset > upload.size:
            raise UploadError(
                sha256=upload.sha256,
                problem=f"the receiver holds {offset} bytes but {upload.path} has only "
                f"{upload.size}; the local file changed",
            )
        offset = await _send_chunk(upload, offset)


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _skips_head(upload: _Upload) -> bool:
    """Whether this attempt sends from offset 0 without a ``HEAD`` (see ``missing``); only a
    first attempt does: after a cut or a refusal the receiver is asked."""
    missing, upload.missing = upload.missing, False
    if not (missing and upload.threaded and not upload.stream_refused):
        return False
    assert upload.connections is not None
    port = upload.connections.stream_ports.get(url_origin(upload.url))
    if port is None or upload.size > DIRECT_MAX:
        return False
    upload.stream_url = with_port(upload.url, port)
    return True


def url_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _remote_offset(upload: _Upload) -> int | None:
    """Bytes the receiver holds, or None when it already has the whole blob."""
    answer = await _exchange(upload, "HEAD", {})
    if answer.status == 404:
        return 0
    if answer.status != 200:
        _raise_for_status(upload, answer)
    if answer.headers.get(BLOB_COMPLETE) == "1":
        return None
    port = answer.headers.get(BLOB_PORT, "")
    known = upload.connections.stream_ports if upload.connections is not None else {}
    if upload.threaded and not upload.stream_refused and port.isdigit() and 0 < int(port) < 65536:
        upload.stream_url = with_port(upload.url, int(port))
        known[url_origin(upload.url)] = int(port)
    elif not port:  # no listener (any more): neither this upload nor the next skip to one
        upload.stream_url = None
        known.pop(url_origin(upload.url), None)
    return _offset_header(upload, answer)


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return parts._replace(netloc=f"{host}:{port}").geturl()


async def _send_chunk(upload: _Upload, offset: int) -> int | None:
    """PATCH the blob from ``offset`` (at most ``chunk_size`` bytes of it); the new offset,
    or None when the blob is complete."""
    left = upload.size - offset
    length = left if upload.chunk_size is None else min(upload.chunk_size, left)
    headers = {
        UPLOAD_OFFSET: str(offset),
        UPLOAD_LENGTH: str(upload.size),
        "Content-Type": OFFSET_CONTENT_TYPE,
        # A known length (no chunked encoding) and one buffer from disk, sent without copies.
        "Content-Length": str(length),
    }
    try:
        answer = await _exchange(upload, "PATCH", headers, offset=offset, length=length)
    except ConnectionRefusedError:
        if upload.stream_url is None:
            raise
        # Its blob listener is not reachable from here (a firewall, a restart): the
        # /fed/v1 route takes the body instead, for the rest of this upload.
        log.info("blob %s: %s refused; sending through /fed/v1", upload.sha256, upload.stream_url)
        assert upload.connections is not None
        upload.connections.stream_ports.pop(url_origin(upload.url), None)
        upload.stream_url, upload.stream_refused = None, True
        return offset
    if answer.status == 409:
        current = _offset_header(upload, answer)
        if current == offset:
            raise UploadError(sha256=upload.sha256, problem="receiver keeps refusing offset")
        log.info("blob %s: receiver is at %d, not %d; resyncing", upload.sha256, current, offset)
        return current
    if answer.status not in (200, 204):
        _raise_for_status(upload, answer)
    if answer.headers.get(BLOB_COMPLETE) == "1":
        return None
    new_offset = _offset_header(upload, answer)
    if new_offset >= upload.size:
        raise UploadError(
            sha256=upload.sha256, problem="receiver has every byte but did not complete"
        )
    return new_offset


async def _exchange(
    upload: _Upload, method: str, headers: dict[str, str], *, offset: int = 0, length: int = 0
) -> Answer:
    """One request with ``length`` bytes of the file from ``offset`` as its body, answered
    whole; ``upload.sent`` counts the body's bytes as they are sent."""
    body = (
        FileRange(path=upload.path, offset=offset, length=length, sent=upload.count_sent)
        if length
        else None
    )
    if upload.threaded:
        assert upload.connections is not None
        # HEAD with an explicit empty length keeps the connection alive (see _KEEP_ALIVE).
        return await upload.connections.request(
            method,
            upload.stream_url if method == "PATCH" and upload.stream_url else upload.url,
            headers=headers or {"Content-Length": "0"},
            body=body,
            tls=upload.options.get("ssl"),
            peer=upload.options.get("server_hostname"),
            timeout_s=upload.timeout_s,
        )
    # No total: a whole blob at a capped rate takes as long as it takes; each wait is bounded.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=upload.timeout_s, sock_read=upload.timeout_s
    )
    async with upload.session.request(
        method,
        upload.url,
        data=_paced_blocks(body, upload.bucket) if body is not None else None,
        headers=headers,
        timeout=timeout,
        **upload.options,
    ) as resp:
        data = await resp.read() if resp.status not in (200, 204) else b""
        headers = {name.title(): value for name, value in resp.headers.items()}
        return Answer(method=method, status=resp.status, headers=headers, body=data)


async def _paced_blocks(body: FileRange, bucket: TokenBucket | None) -> AsyncIterator[bytes]:
    """The body read from disk block by block; with a bandwidth cap, small blocks, each sent
    when the cap allows (the one place a capped upload takes from its peer's bucket)."""
    size = SEND_BLOCK if bucket is None else bucket.block
    left = body.length
    with body.path.open("rb", buffering=0) as handle:
        handle.seek(body.offset)
        while left:
            # A bounded read from local disk: cheaper on the loop than a thread hop.
            block = handle.read(min(left, size))
            if not block:
                raise OSError(f"{body.path} is shorter than expected; it changed during upload")
            if bucket is not None:
                await bucket.take(len(block))
            yield block
            left -= len(block)
            if body.sent is not None:
                body.sent(len(block))


def _offset_header(upload: _Upload, answer: Answer) -> int:
    value = answer.headers.get(UPLOAD_OFFSET, "")
    if not value.isdigit():
        raise UploadError(
            sha256=upload.sha256,
            problem=f"{answer.method} answered {answer.status} without a valid {UPLOAD_OFFSET} "
            "header; is the peer a Spillway federation listener?",
        )
    return int(value)


def _raise_for_status(upload: _Upload, answer: Answer) -> None:
    if answer.status == 429 or answer.status >= 500:
        raise _RetryableStatus(f"{answer.method} answered {answer.status}")
    try:
        detail = str(json.loads(answer.body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        detail = answer.body[:200].decode(errors="replace")
    raise UploadError(sha256=upload.sha256, problem=f"receiver answered {answer.status}: {detail}")
