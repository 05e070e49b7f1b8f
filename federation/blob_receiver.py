"""The receiving end of the blob upload protocol (see :mod:`federation.transfer`).

:class:`ResumableReceiver` keeps partial blobs on disk, each request's stream
appended off the event loop with a durable-offset record
(:mod:`federation.blob_append`), and verifies a blob before handing it on;
:class:`BlobUploadEndpoint` serves it as aiohttp ``HEAD``/``PATCH`` handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from federation.blob_append import DIRECT_MIN_BYTES, PartialBlob, StreamAppender
from federation.errors import (
    BlobBusyError,
    BlobTooLargeError,
    OffsetMismatchError,
    TamperedBlobError,
    TransferError,
)
from federation.transfer import (
    BLOB_COMPLETE,
    BLOB_PORT,
    BLOBS_PATH,
    DIRECT_MAX,
    OFFSET_CONTENT_TYPE,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
)
from federation.upload_threads import STREAM_SOCKET_BUFFER
from spillway.core.checks import is_sha256

__all__ = [
    "DEFAULT_MAX_BLOB_SIZE",
    "STORED_BYTES",
    "BlobUploadEndpoint",
    "Body",
    "ResumableReceiver",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BLOB_SIZE = 64 * 1024**3
BUSY_WAIT_S = 30.0
"""How long a request waits for an earlier stream of the same blob to end (a sender that
resumed before this side noticed the cut) before it is answered 503."""
STALL_TIMEOUT_S = 60.0
"""A PATCH body that brings no byte for this long ends (what arrived is kept): a sender
lost without a reset must not hold its blob for the next request."""
_HASH_BLOCK = 1024 * 1024
Buffer = bytes | bytearray | memoryview
Body = Callable[[StreamAppender, int], Awaitable[None]]
"""Moves a request body (at most the given number of bytes) into a partial blob's appender;
raises TimeoutError when it stalls, OSError when the stream was cut."""


class ResumableReceiver:
    """Partial blobs on disk, appended stream by stream and verified at the end.

    ``commit(sha256, path)`` is called with a fully verified, synced file and may
    move it into the asset store (it owns the file from then on; whatever is left
    at ``path`` afterwards is deleted). ``is_stored(sha256)``, when given, tells
    whether the asset store already has a blob, so a sender can skip it.
    """

    def __init__(
        self,
        partial_dir: Path,
        commit: Callable[[str, Path], Awaitable[None]],
        *,
        is_stored: Callable[[str], Awaitable[bool]] | None = None,
        max_blob_size: int = DEFAULT_MAX_BLOB_SIZE,
        busy_wait_s: float = BUSY_WAIT_S,
    ) -> None:
        self.partial_dir = partial_dir
        self._commit = commit
        self._is_stored = is_stored
        self.max_blob_size = max_blob_size
        self.busy_wait_s = busy_wait_s
        self._locks: dict[str, asyncio.Lock] = {}
        # Running sha256 of each partial blob appended in this process, so finishing a
        # blob does not read it back from disk; after a restart the file is re-read.
        self._hashes: dict[str, tuple[int, Any]] = {}
        partial_dir.mkdir(parents=True, exist_ok=True)

    def partial(self, sha256: str) -> PartialBlob:
        if not is_sha256(sha256):
            raise ValueError(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
        return PartialBlob(self.partial_dir, sha256)

    def partial_path(self, sha256: str) -> Path:
        return self.partial(sha256).data

    def offset(self, sha256: str) -> int:
        """How many bytes of the blob are held, ready to resume from (0 when none)."""
        return self.partial(sha256).offset()

    async def is_complete(self, sha256: str) -> bool:
        return self._is_stored is not None and await self._is_stored(sha256)

    @asynccontextmanager
    async def appending(
        self, sha256: str, offset: int, *, total: int | None = None
    ) -> AsyncIterator[StreamAppender]:
        """A :class:`StreamAppender` for a stream that starts at ``offset``, the blob held
        for it alone. On exit every block given to it is written and synced.

        Raises :class:`OffsetMismatchError` when ``offset`` is not where the partial
        blob ends (the sender resumes from ``current``), :class:`BlobTooLargeError`
        when ``total`` exceeds ``max_blob_size``, and :class:`BlobBusyError` when an
        earlier stream of the blob does not end within ``busy_wait_s``.
        """
        partial = self.partial(sha256)
        async with (
            self._holding(sha256, total),
            self._stream(sha256, partial, offset, recorded=True, total=total) as appender,
        ):
            yield appender

    async def receive(
        self,
        sha256: str,
        offset: int,
        total: int,
        body: Body,
        stored: Callable[[int], None],
        *,
        whole: bool = False,
    ) -> int:
        """Move ``body`` (a stream that starts at ``offset``) into the partial blob and, when
        it completes the blob, verify and commit it as :meth:`finish` does, all under one
        hold of the blob; the new offset. ``stored`` is told the bytes written and synced,
        also of a cut stream (which raises after). ``whole``: the body is the whole blob
        (from offset 0, ``total`` bytes long); a small one (up to
        :data:`~federation.transfer.DIRECT_MAX`) then gets no durable-offset record: cut,
        it starts over. Raises as :meth:`appending` and :meth:`finish` do."""
        partial = self.partial(sha256)
        whole = whole and offset == 0 and total <= DIRECT_MAX
        async with self._holding(sha256, total):
            appender: StreamAppender | None = None
            try:
                async with self._stream(
                    sha256, partial, offset, recorded=not whole, total=total
                ) as appender:
                    await body(appender, total - offset)
            finally:
                # Counted once written and synced (the appender's exit), also when cut.
                stored(appender.appended if appender is not None else 0)
            if appender.written == total:
                await self._verify_and_commit(sha256, partial, total)
        if appender.written == total:
            self._locks.pop(sha256, None)
        return appender.written

    @asynccontextmanager
    async def _holding(self, sha256: str, total: int | None) -> AsyncIterator[None]:
        """The blob held for one stream (or its verification) alone."""
        if total is not None and total > self.max_blob_size:
            raise BlobTooLargeError(sha256=sha256, limit=self.max_blob_size)
        lock = self._lock(sha256)
        try:
            if lock.locked():
                await asyncio.wait_for(lock.acquire(), self.busy_wait_s)
            else:
                await lock.acquire()  # free: taken at once (wait_for would start a task)
        except TimeoutError:
            raise BlobBusyError(sha256=sha256, waited_s=self.busy_wait_s) from None
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def _stream(
        self, sha256: str, partial: PartialBlob, offset: int, *, recorded: bool, total: int | None
    ) -> AsyncIterator[StreamAppender]:
        current = partial.offset()
        if offset != current:
            raise OffsetMismatchError(sha256=sha256, offset=offset, current=current)
        digest = self._running_hash(sha256, current)
        direct = total is not None and total - current >= DIRECT_MIN_BYTES
        appender = StreamAppender(partial, current, digest, recorded=recorded, direct=direct)
        try:
            async with appender:
                yield appender
        finally:
            # Also after a cut stream: its resumption then needs no re-read from disk.
            if appender.digest is not None and appender.intact:
                self._hashes[sha256] = (appender.written, appender.digest)

    async def append(self, sha256: str, offset: int, data: Buffer) -> int:
        """Append ``data`` at ``offset`` (synced); returns the new offset. Raises as
        :meth:`appending` does, and :class:`BlobTooLargeError` beyond ``max_blob_size``."""
        if offset + len(data) > self.max_blob_size:
            raise BlobTooLargeError(sha256=sha256, limit=self.max_blob_size)
        async with self.appending(sha256, offset) as appender:
            await appender.write(bytes(data))
        return appender.written

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
        partial = self.partial(sha256)
        async with self._lock(sha256):
            size = partial.offset()
            if size != expected_size:
                raise OffsetMismatchError(sha256=sha256, offset=expected_size, current=size)
            await self._verify_and_commit(sha256, partial, size)
        self._locks.pop(sha256, None)

    async def _verify_and_commit(self, sha256: str, partial: PartialBlob, size: int) -> None:
        """Hand the partial blob of ``size`` bytes (the blob held) to ``commit`` once it
        hashes to ``sha256``; discard it when it does not."""
        running = self._hashes.pop(sha256, None)
        if running is not None and running[0] == size:
            actual = running[1].hexdigest()
        else:
            actual = await _hash_file(partial.data, size)
        if actual != sha256:
            partial.discard()
            log.warning("blob %s: content hashes to %s; discarded", sha256, actual)
            raise TamperedBlobError(sha256=sha256, actual=actual, size=size)
        await self._commit(sha256, partial.data)
        partial.discard()

    def _lock(self, sha256: str) -> asyncio.Lock:
        return self._locks.setdefault(sha256, asyncio.Lock())


async def _hash_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        left = size
        while left and (block := handle.read(min(left, _HASH_BLOCK))):
            digest.update(block)
            left -= len(block)
            await asyncio.sleep(0)  # let other connections run while hashing a large blob
    return digest.hexdigest()


STORED_BYTES: web.RequestKey[int] = web.RequestKey("spillway-blob-stored", int)
"""Set on a PATCH request: the bytes of its body that were stored (synced), also when
the connection was cut part way (for the receiving site's accounting)."""


# Without an explicit length aiohttp's client closes the connection after every HEAD,
# which cost a TLS handshake per blob.
_KEEP_ALIVE = {"Content-Length": "0"}


class BlobUploadEndpoint:
    """aiohttp handlers for the upload protocol, over a :class:`ResumableReceiver`.

    ``app.add_routes(BlobUploadEndpoint(receiver).routes())``. A PATCH body may be
    any part of the blob up to its end: it is streamed to disk as it arrives
    (:class:`~federation.blob_append.StreamAppender`), and answered once it is synced.
    """

    def __init__(
        self, receiver: ResumableReceiver, *, stall_timeout_s: float = STALL_TIMEOUT_S
    ) -> None:
        self.receiver = receiver
        self.stall_timeout_s = stall_timeout_s
        self.stream_port: int | None = None
        """The port of this site's threaded blob listener (:mod:`federation.blob_listener`),
        offered to senders in ``HEAD`` answers as ``Blob-Port``; None: not running."""

    def routes(self, prefix: str = BLOBS_PATH) -> list[web.RouteDef]:
        return [
            web.head(f"{prefix}/{{sha256}}", self.head),
            web.patch(f"{prefix}/{{sha256}}", self.patch),
        ]

    async def head(self, request: web.Request) -> web.StreamResponse:
        return await self.answer_head(request.match_info["sha256"])

    async def patch(self, request: web.Request) -> web.StreamResponse:
        def stored(count: int) -> None:
            request[STORED_BYTES] = count

        _bound_receive_buffer(request)
        return await self.answer_patch(
            request.match_info["sha256"],
            request.headers,
            content_type=request.content_type,
            content_length=request.content_length,
            body=self.streamed(request.content.readany),
            stored=stored,
        )

    async def answer_head(self, sha256: str) -> web.Response:
        """The answer to ``HEAD`` of blob ``sha256`` (also for the threaded listener)."""
        if not is_sha256(sha256):
            return _error(400, "bad_blob_id", f"{sha256!r} is not a sha256")
        if await self.receiver.is_complete(sha256):
            return web.Response(status=200, headers={BLOB_COMPLETE: "1", **_KEEP_ALIVE})
        offset = self.receiver.offset(sha256)
        headers = {UPLOAD_OFFSET: str(offset), **_KEEP_ALIVE}
        if self.stream_port:
            headers[BLOB_PORT] = str(self.stream_port)
        return web.Response(status=200, headers=headers)

    async def answer_patch(
        self,
        sha256: str,
        headers: Mapping[str, str],
        *,
        content_type: str,
        content_length: int | None,
        body: Body,
        stored: Callable[[int], None],
    ) -> web.Response:
        """The answer to ``PATCH`` of blob ``sha256`` whose body ``body`` moves into the
        partial blob; ``stored`` is told the bytes stored (synced), also of a cut body."""
        offset, length = headers.get(UPLOAD_OFFSET, ""), headers.get(UPLOAD_LENGTH, "")
        if not is_sha256(sha256) or not offset.isdigit() or not length.isdigit():
            return _error(
                400,
                "bad_upload",
                f"need a sha256 path and numeric {UPLOAD_OFFSET} and {UPLOAD_LENGTH} headers",
            )
        if content_type != OFFSET_CONTENT_TYPE:
            return _error(415, "bad_content_type", f"send chunks as {OFFSET_CONTENT_TYPE}")
        if await self.receiver.is_complete(sha256):
            return web.Response(status=200, headers={BLOB_COMPLETE: "1"})
        start, total = int(offset), int(length)
        if start + (content_length or 0) > total:
            return _error(400, "bad_upload", f"chunk ends beyond {UPLOAD_LENGTH} {total}")
        try:
            new_offset = await self.receiver.receive(
                sha256, start, total, body, stored, whole=start == 0 and content_length == total
            )
            if new_offset < total:
                return web.Response(status=204, headers={UPLOAD_OFFSET: str(new_offset)})
        except OffsetMismatchError as exc:
            return _error(409, "offset_mismatch", str(exc), {UPLOAD_OFFSET: str(exc.current)})
        except TamperedBlobError as exc:
            return _error(422, "blob_hash_mismatch", str(exc))
        except BlobTooLargeError as exc:
            return _error(413, "blob_too_large", str(exc))
        except BlobBusyError as exc:
            return _error(503, "blob_busy", str(exc), {"Retry-After": "1"})
        except TimeoutError:
            message = f"no bytes for {self.stall_timeout_s:.0f} s; resume from the offset"
            return _error(408, "upload_stalled", message)
        except TransferError as exc:
            return _error(400, "bad_upload", str(exc))
        return web.Response(status=200, headers={BLOB_COMPLETE: "1", UPLOAD_OFFSET: str(total)})

    def streamed(self, read: Callable[[], Awaitable[bytes]]) -> Body:
        """A body ``read`` gives block by block on the loop (``b""`` at its end), each
        handed to the appender; ``stall_timeout_s`` without a block raises TimeoutError."""

        async def body(appender: StreamAppender, limit: int) -> None:
            received = 0
            async with asyncio.timeout(self.stall_timeout_s) as stall:
                loop = asyncio.get_running_loop()
                while block := await read():
                    stall.reschedule(loop.time() + self.stall_timeout_s)
                    received += len(block)
                    if received > limit:
                        raise TransferError(f"the body runs beyond its {UPLOAD_LENGTH}")
                    await appender.write(block)

        return body


def _bound_receive_buffer(request: web.Request) -> None:
    """Keep what a cut loses in flight near one chunk (see ``STREAM_SOCKET_BUFFER``)."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STREAM_SOCKET_BUFFER)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
