"""The receiving end of the blob upload protocol (see :mod:`federation.transfer`).

:class:`ResumableReceiver` keeps partial blobs on disk, appended chunk by chunk
(each append durable) and verified at the end; :class:`BlobUploadEndpoint` serves
it as aiohttp ``HEAD``/``PATCH`` handlers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from federation.errors import (
    BlobTooLargeError,
    OffsetMismatchError,
    TamperedBlobError,
    TransferError,
)
from federation.transfer import (
    BLOB_COMPLETE,
    BLOBS_PATH,
    CHUNK_SIZE,
    OFFSET_CONTENT_TYPE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
)
from spillway.core.checks import is_sha256

__all__ = ["DEFAULT_MAX_BLOB_SIZE", "BlobUploadEndpoint", "ResumableReceiver"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BLOB_SIZE = 64 * 1024**3
_HASH_BLOCK = 1024 * 1024
_WRITE_SLICE = 256 * 1024
_KEPT_BUFFERS = 8
Buffer = bytes | bytearray | memoryview


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
