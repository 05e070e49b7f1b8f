"""Chunked, resumable blob upload between sites (origin -> remote).

HTTP shape, under ``{base_url}/fed/v1/blobs/{sha256}``:

``HEAD``
    ``200`` with ``Blob-Complete: 1`` when the receiver already stores the blob;
    otherwise ``200`` with ``Upload-Offset: N`` (bytes of the partial blob it
    holds; a ``404`` means 0).
``PATCH``
    Headers ``Upload-Offset: N`` (where this chunk starts), ``Upload-Length: T``
    (the blob's total size) and ``Content-Type: application/offset+octet-stream``;
    the body is the chunk. Answers ``204`` with the new ``Upload-Offset``; when the
    chunk completes the blob, the receiver verifies the sha256 and answers ``200``
    with ``Blob-Complete: 1``, or ``422`` (content discarded) when it did not
    match. ``409`` with the receiver's ``Upload-Offset`` when the chunk does not
    start where the partial blob ends; ``413`` when a chunk or blob is too big.

The sender (:func:`upload_blob`) asks for the offset, sends the rest in chunks,
and after a dropped connection asks again and resumes, so an interrupted
transfer re-sends at most the chunk that was in flight. The receiver side is
:class:`ResumableReceiver` (storage logic) wired into aiohttp by
:class:`BlobUploadEndpoint`. Authorisation (which peer may upload which blob) is
the caller's job, e.g. a middleware that checks the peer certificate and the
blob's presence in an accepted offer.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from federation.bandwidth import BLOCK_BYTES, TokenBucket
from federation.errors import (
    BlobTooLargeError,
    OffsetMismatchError,
    TamperedBlobError,
    TransferError,
    UploadError,
)
from federation.upload_threads import Answer, FileRange, UploadConnections
from spillway.core.checks import is_sha256

__all__ = [
    "BLOB_COMPLETE",
    "BLOBS_PATH",
    "CHUNK_SIZE",
    "OFFSET_CONTENT_TYPE",
    "UPLOAD_LENGTH",
    "UPLOAD_OFFSET",
    "BlobUploadEndpoint",
    "ResumableReceiver",
    "blob_url",
    "upload_blob",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
BLOBS_PATH = "/fed/v1/blobs"
UPLOAD_OFFSET = "Upload-Offset"
UPLOAD_LENGTH = "Upload-Length"
BLOB_COMPLETE = "Blob-Complete"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
DEFAULT_MAX_BLOB_SIZE = 64 * 1024**3
_HASH_BLOCK = 1024 * 1024
_WRITE_SLICE = 256 * 1024
_KEPT_BUFFERS = 8
Buffer = bytes | bytearray | memoryview
SEND_BLOCK = 1024 * 1024
"""Bytes per write of an uncapped chunk upload."""


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
    chunk_size: int
    timeout: aiohttp.ClientTimeout
    options: dict[str, Any]
    bucket: TokenBucket | None = None
    connections: UploadConnections | None = None
    sent: int = 0

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
    chunk_size: int = CHUNK_SIZE,
    timeout_s: float = 60,
    request_options: Mapping[str, Any] | None = None,
    attempts: int = 6,
    backoff_s: float = 0.5,
    bucket: TokenBucket | None = None,
    connections: UploadConnections | None = None,
) -> int:
    """Upload the file ``path`` as blob ``sha256`` to the site at ``base_url``.

    Resumes from whatever the receiver already holds, and after connection
    errors, timeouts and 429/5xx answers retries (exponential backoff with
    jitter, ``attempts`` in all) from the receiver's offset. ``timeout_s`` bounds
    each request. ``request_options`` are passed to every request; between sites
    that is ``tls.request_options(peer.name)`` (mutual TLS, peer name checked).
    ``bucket``, when given, paces the bytes (the peer's bandwidth cap, shared with
    its other streams). ``connections``, when given, sends uncapped uploads through
    blocking TLS sockets in its worker threads (see :mod:`federation.upload_threads`)
    with the TLS context and peer name of ``request_options``; ``session`` then
    serves only capped uploads. Returns the number of bytes sent (0 when the
    receiver already had the blob). Raises :class:`UploadError`.
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
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        options=dict(request_options or {}),
        bucket=bucket,
        connections=connections,
    )
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
                await _upload_from_remote_offset(upload)
    except _RETRYABLE as exc:
        raise UploadError(
            sha256=sha256,
            problem=f"gave up after {attempts} attempts ({exc!r}); check that {base_url} is "
            "reachable and retry later: the upload resumes where it stopped",
        ) from exc
    return upload.sent


async def _upload_from_remote_offset(upload: _Upload) -> None:
    offset = await _remote_offset(upload)
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


def _read_chunk(path: Path, offset: int, size: int) -> bytes:
    # A bounded read from local disk; cheaper than a thread hop for a few MiB.
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


async def _remote_offset(upload: _Upload) -> int | None:
    """Bytes the receiver holds, or None when it already has the whole blob."""
    answer = await _exchange(upload, "HEAD", {})
    if answer.status == 404:
        return 0
    if answer.status != 200:
        _raise_for_status(upload, answer)
    if answer.headers.get(BLOB_COMPLETE) == "1":
        return None
    return _offset_header(upload, answer)


async def _send_chunk(upload: _Upload, offset: int) -> int | None:
    """PATCH one chunk; the new offset, or None when the blob is complete."""
    length = min(upload.chunk_size, upload.size - offset)
    headers = {
        UPLOAD_OFFSET: str(offset),
        UPLOAD_LENGTH: str(upload.size),
        "Content-Type": OFFSET_CONTENT_TYPE,
        # A known length (no chunked encoding) and one buffer from disk, sent without copies.
        "Content-Length": str(length),
    }
    upload.sent += length
    answer = await _exchange(upload, "PATCH", headers, offset=offset, length=length)
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
    """One request with the chunk at ``offset`` (``length`` bytes) as its body, answered whole."""
    if upload.threaded:
        assert upload.connections is not None
        # HEAD with an explicit empty length keeps the connection alive (see _KEEP_ALIVE).
        return await upload.connections.request(
            method,
            upload.url,
            headers=headers or {"Content-Length": "0"},
            body=FileRange(path=upload.path, offset=offset, length=length) if length else None,
            tls=upload.options.get("ssl"),
            peer=upload.options.get("server_hostname"),
            timeout_s=upload.timeout.total or 60,
        )
    data = _read_chunk(upload.path, offset, length) if length else None
    async with upload.session.request(
        method,
        upload.url,
        # Slices of the one buffer read from disk: no copy before TLS, and a few large writes
        # instead of 64 KiB ones (a BytesIO body cost a copy and 64 loop iterations per chunk).
        data=_blocks(data, upload.bucket) if data is not None else None,
        headers=headers,
        timeout=upload.timeout,
        **upload.options,
    ) as resp:
        body = await resp.read() if resp.status not in (200, 204) else b""
        headers = {name.title(): value for name, value in resp.headers.items()}
        return Answer(method=method, status=resp.status, headers=headers, body=body)


async def _blocks(data: bytes, bucket: TokenBucket | None) -> AsyncIterator[memoryview]:
    """The chunk in blocks (slices, not copies); with a bandwidth cap, small blocks, each
    sent when the cap allows."""
    view = memoryview(data)
    size = SEND_BLOCK if bucket is None else BLOCK_BYTES
    for start in range(0, len(view), size):
        block = view[start : start + size]
        if bucket is not None:
            await bucket.take(len(block))
        yield block


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


# --- receiver -------------------------------------------------------------------


class ResumableReceiver:
    """Partial blobs on disk, appended chunk by chunk and verified at the end.

    ``commit(sha256, path)`` is called with a fully verified file and may move it
    into the asset store (it owns the file from then on; whatever is left at
    ``path`` afterwards is deleted). ``is_stored(sha256)``, when given, tells
    whether the asset store already has a blob, so a sender can skip it.
    """

    def __init__(
        self,
        partial_dir: Path,
        commit: Callable[[str, Path], Awaitable[None]],
        *,
        is_stored: Callable[[str], Awaitable[bool]] | None = None,
        max_blob_size: int = DEFAULT_MAX_BLOB_SIZE,
    ) -> None:
        self.partial_dir = partial_dir
        self._commit = commit
        self._is_stored = is_stored
        self.max_blob_size = max_blob_size
        self._locks: dict[str, asyncio.Lock] = {}
        # Running sha256 of each partial blob appended in this process, so finishing a
        # blob does not read it back from disk; after a restart the file is re-read.
        self._hashes: dict[str, tuple[int, Any]] = {}
        partial_dir.mkdir(parents=True, exist_ok=True)

    def partial_path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
        return self.partial_dir / f"{sha256}.part"

    def offset(self, sha256: str) -> int:
        """How many bytes of the blob are held (0 when none)."""
        try:
            return self.partial_path(sha256).stat().st_size
        except FileNotFoundError:
            return 0

    async def is_complete(self, sha256: str) -> bool:
        return self._is_stored is not None and await self._is_stored(sha256)

    async def append(self, sha256: str, offset: int, data: Buffer) -> int:
        """Append ``data`` at ``offset``; returns the new offset.

        Raises :class:`OffsetMismatchError` when ``offset`` is not the current
        size (the sender then resumes from ``current``), and
        :class:`BlobTooLargeError` beyond ``max_blob_size``.
        """
        async with self._lock(sha256):
            current = self.offset(sha256)
            if offset != current:
                raise OffsetMismatchError(sha256=sha256, offset=offset, current=current)
            if current + len(data) > self.max_blob_size:
                raise BlobTooLargeError(sha256=sha256, limit=self.max_blob_size)
            # Off the event loop: the write, the fsync and the running hash all release the
            # GIL, so other streams' TLS is decrypted meanwhile (hashing while receiving).
            await asyncio.to_thread(self._write_durably, sha256, current, data)
            return current + len(data)

    def _write_durably(self, sha256: str, current: int, data: Buffer) -> None:
        digest = self._running_hash(sha256, current)
        view = memoryview(data)
        # Unbuffered, and hashed slice by slice right after each slice is written: the slice is
        # still in the CPU cache, where a second pass over the whole chunk would read it from
        # memory again (measured: file writes and hashing were most of the receiver's CPU).
        with self.partial_path(sha256).open("ab", buffering=0) as handle:
            for start in range(0, len(view), _WRITE_SLICE):
                piece = view[start : start + _WRITE_SLICE]
                written = 0
                while written < len(piece):
                    written += handle.write(piece[written:])
                if digest is not None:
                    digest.update(piece)
            # The offset we report must survive a crash, or the sender skips bytes.
            os.fsync(handle.fileno())
        if digest is not None:
            self._hashes[sha256] = (current + len(data), digest)

    def _running_hash(self, sha256: str, offset: int) -> Any:
        """The running sha256 of the blob's first ``offset`` bytes, or None when unknown
        (resumed from a file written before a restart: ``finish`` then reads it back)."""
        known = self._hashes.pop(sha256, None)
        if offset == 0:
            return hashlib.sha256()
        if known is None or known[0] != offset:
            return None
        return known[1]

    async def finish(self, sha256: str, expected_size: int) -> None:
        """Verify the complete blob and hand it to ``commit``.

        Raises :class:`TamperedBlobError` (and deletes the partial blob) when the
        content does not hash to ``sha256``.
        """
        async with self._lock(sha256):
            path = self.partial_path(sha256)
            size = self.offset(sha256)
            if size != expected_size:
                raise OffsetMismatchError(sha256=sha256, offset=expected_size, current=size)
            running = self._hashes.pop(sha256, None)
            if running is not None and running[0] == size:
                actual = running[1].hexdigest()
            else:
                actual = await _hash_file(path)
            if actual != sha256:
                path.unlink(missing_ok=True)
                log.warning("blob %s: content hashes to %s; discarded", sha256, actual)
                raise TamperedBlobError(sha256=sha256, actual=actual, size=size)
            await self._commit(sha256, path)
            path.unlink(missing_ok=True)
        self._locks.pop(sha256, None)

    def _lock(self, sha256: str) -> asyncio.Lock:
        return self._locks.setdefault(sha256, asyncio.Lock())


async def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            await asyncio.sleep(0)  # let other connections run while hashing a large blob
    return digest.hexdigest()


# Without an explicit length aiohttp's client closes the connection after every HEAD,
# which cost a TLS handshake per blob.
_KEEP_ALIVE = {"Content-Length": "0"}


class BlobUploadEndpoint:
    """aiohttp handlers for the upload protocol, over a :class:`ResumableReceiver`.

    ``app.add_routes(BlobUploadEndpoint(receiver).routes())``.
    """

    def __init__(self, receiver: ResumableReceiver, *, max_chunk_size: int = 4 * CHUNK_SIZE):
        self.receiver = receiver
        self.max_chunk_size = max_chunk_size
        # Chunk buffers for reuse: a fresh 4 MiB buffer per chunk cost a page fault per 4 KiB
        # (and the zeroing) on the loop's thread.
        self._buffers: list[bytearray] = []

    def routes(self, prefix: str = BLOBS_PATH) -> list[web.RouteDef]:
        return [
            web.head(f"{prefix}/{{sha256}}", self.head),
            web.patch(f"{prefix}/{{sha256}}", self.patch),
        ]

    async def head(self, request: web.Request) -> web.StreamResponse:
        sha256 = request.match_info["sha256"]
        if not is_sha256(sha256):
            return _error(400, "bad_blob_id", f"{sha256!r} is not a sha256")
        if await self.receiver.is_complete(sha256):
            return web.Response(status=200, headers={BLOB_COMPLETE: "1", **_KEEP_ALIVE})
        offset = self.receiver.offset(sha256)
        return web.Response(status=200, headers={UPLOAD_OFFSET: str(offset), **_KEEP_ALIVE})

    async def patch(self, request: web.Request) -> web.StreamResponse:
        sha256 = request.match_info["sha256"]
        offset, length = (
            request.headers.get(UPLOAD_OFFSET, ""),
            request.headers.get(UPLOAD_LENGTH, ""),
        )
        if not is_sha256(sha256) or not offset.isdigit() or not length.isdigit():
            return _error(
                400,
                "bad_upload",
                f"need a sha256 path and numeric {UPLOAD_OFFSET} and {UPLOAD_LENGTH} headers",
            )
        if request.content_type != OFFSET_CONTENT_TYPE:
            return _error(415, "bad_content_type", f"send chunks as {OFFSET_CONTENT_TYPE}")
        if await self.receiver.is_complete(sha256):
            return web.Response(status=200, headers={BLOB_COMPLETE: "1"})
        if (request.content_length or 0) > self.max_chunk_size:
            return _error(
                413, "chunk_too_large", f"send chunks of at most {self.max_chunk_size} bytes"
            )
        buffer = self._buffer(request.content_length or 0)
        response = await self._receive(request, sha256, int(offset), int(length), buffer)
        # Reached only when the chunk is on disk or refused: no thread holds the buffer. After
        # an exception (a cancelled request among them) a write may still run: not reused then.
        if len(buffer) == CHUNK_SIZE and len(self._buffers) < _KEPT_BUFFERS:
            self._buffers.append(buffer)
        return response

    async def _receive(
        self, request: web.Request, sha256: str, offset: int, length: int, buffer: bytearray
    ) -> web.Response:
        data = await self._read_body(request, buffer)
        if data is None:
            return _error(
                413, "chunk_too_large", f"send chunks of at most {self.max_chunk_size} bytes"
            )
        if offset + len(data) > length:
            return _error(400, "bad_upload", f"chunk ends beyond {UPLOAD_LENGTH} {length}")
        return await self._append(sha256, offset, length, data)

    def _buffer(self, size: int) -> bytearray:
        if size <= CHUNK_SIZE and self._buffers:
            return self._buffers.pop()
        return bytearray(CHUNK_SIZE if 0 < size <= CHUNK_SIZE else size)

    async def _append(self, sha256: str, offset: int, length: int, data: Buffer) -> web.Response:
        try:
            new_offset = await self.receiver.append(sha256, offset, data)
            if new_offset < length:
                return web.Response(status=204, headers={UPLOAD_OFFSET: str(new_offset)})
            await self.receiver.finish(sha256, length)
        except OffsetMismatchError as exc:
            return _error(409, "offset_mismatch", str(exc), {UPLOAD_OFFSET: str(exc.current)})
        except TamperedBlobError as exc:
            return _error(422, "blob_hash_mismatch", str(exc))
        except BlobTooLargeError as exc:
            return _error(413, "blob_too_large", str(exc))
        except TransferError as exc:
            return _error(400, "bad_upload", str(exc))
        return web.Response(status=200, headers={BLOB_COMPLETE: "1", UPLOAD_OFFSET: str(length)})

    async def _read_body(self, request: web.Request, buffer: bytearray) -> Buffer | None:
        if request.content_length == 0:
            return b""
        if request.content_length is not None:
            body = memoryview(buffer)[: request.content_length]
            return await _read_exactly(request.content, body)
        data = bytearray()
        async for block in request.content.iter_chunked(64 * 1024):
            data += block
            if len(data) > self.max_chunk_size:
                return None
        return bytes(data)


async def _read_exactly(content: aiohttp.StreamReader, view: memoryview) -> memoryview:
    """The body into ``view`` (a reused buffer), block by block as it is decrypted.

    ``readexactly`` joins the blocks twice (once per read, once at the end): two more copies
    of every chunk on the event loop, which also decrypts every stream. A cut connection
    raises ``IncompleteReadError`` and ends the request.
    """
    # Let up to a whole chunk queue up before aiohttp pauses the socket (default: 128 KiB);
    # the method is missing from older aiohttp, whose limit then stays.
    raise_limit = getattr(content, "set_read_chunk_size", None)
    if raise_limit is not None:
        raise_limit(len(view))
    size, filled = len(view), 0
    while filled < size:
        block = await content.readany()
        if not block:
            raise asyncio.IncompleteReadError(bytes(view[:filled]), size)
        view[filled : filled + len(block)] = block
        filled += len(block)
    return view


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
