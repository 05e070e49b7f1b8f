"""Blob chunks sent (and frames received) through blocking TLS sockets in worker threads,
over kept-alive connections.

Why threads here: asyncio's TLS transport encrypts through a memory BIO on the
event loop, holding the loop (and the GIL) for every record, and the same loop
also decrypts, writes and hashes what arrives. A blocking ``ssl.SSLSocket``
encrypts and sends in C with the GIL released, so an upload's encryption runs on
another core while the loop serves everything else. On the 2-core VM this cut
the sender's CPU per GiB and roughly doubled the mutual-TLS throughput
(docs/benchmarks.md, transfer).

Each call (:meth:`UploadConnections.request`) is one HTTP request and its whole
answer; :meth:`UploadConnections.get` is a ``GET`` whose body is read block by block
(a frame fetched back); both run in this object's own thread pool (not the loop's default executor,
which the receiver's disk writes use: an in-process sender and receiver must not
wait on each other's threads). Connections are kept per (URL origin, TLS
context, peer name) and reused while idle for less than ``idle_s``; a rotated
certificate rebuilds the context, so new connections use it. The peer's
identity is checked on every new connection as :class:`SiteCheckingSSLObject`
does for asyncio connections: an unknown site fails the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from federation.errors import PeerIdentityError
from federation.identity import verify_peer

__all__ = [
    "STREAM_SOCKET_BUFFER",
    "Answer",
    "Download",
    "FileRange",
    "UploadConnections",
    "UploadSlots",
]

# The context itself (not its id) so that a rotated certificate's new context never matches.
_Key = tuple[str, str, int, ssl.SSLContext | None, str]
_Run = Callable[..., "asyncio.Future[Any]"]
"""Runs a function with its arguments in the pool's threads."""


SEND_BLOCK = 1024 * 1024
"""Bytes read from disk and encrypted per step: small enough to stay in the CPU cache
between the read and the encryption, large enough for few system calls."""

STREAM_SOCKET_BUFFER = 384 * 1024
"""The socket buffer each end of a blob stream asks for (the sender's for sending, the
receiver's for receiving; Linux doubles it for its bookkeeping). It bounds the bytes in
flight, which a cut connection loses and the sender sends again, to about one 4 MiB chunk:
without it, buffers grow to tens of MiB on a fast link whose receiver is the slower end.
Per stream that is the window the old stop-and-wait chunks had, without the wait for the
receiver's disk."""


class UploadSlots:
    """How many blobs of one transfer are uploaded at once: ``streams`` large ones, and
    beside them ``small_streams`` of at most ``small_max`` bytes. A small blob costs
    mostly per blob (a request, opening, syncing and adopting a file) and little disk
    bandwidth, so small ones keep moving while the large ones wait for the disk."""

    def __init__(self, streams: int, small_streams: int, small_max: int) -> None:
        self._large = asyncio.Semaphore(streams)
        self._small = asyncio.Semaphore(small_streams)
        self.small_max = small_max

    def slot(self, size: int) -> asyncio.Semaphore:
        """The semaphore an upload of ``size`` bytes holds while it runs."""
        return self._small if size <= self.small_max else self._large


def bound_send_buffer(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SOCKET_BUFFER)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRange:
    """A request body: ``length`` bytes of the file at ``path`` from ``offset``; ``sent``,
    when given, is called with the size of each block once it is sent."""

    path: Path
    offset: int
    length: int
    sent: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One HTTP answer, read whole (the blob protocol's answers are a few headers)."""

    method: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _PeerConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` that authenticates the server as site ``peer`` (SNI, chain, names)."""

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext, peer: str, timeout: float
    ) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._ctx = context
        self._peer = peer

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bound_send_buffer(raw)
        try:
            tls = self._ctx.wrap_socket(raw, server_hostname=self._peer)
        except BaseException:
            raw.close()
            raise
        if self._ctx.check_hostname:
            try:
                verify_peer(tls, self._peer)
            except PeerIdentityError as exc:
                tls.close()
                raise ssl.SSLCertVerificationError(str(exc)) from exc
        self.sock = tls


class _PlainConnection(http.client.HTTPConnection):
    """HTTP without TLS (tests, a site behind a TLS-terminating proxy), same send buffer."""

    def connect(self) -> None:
        super().connect()
        bound_send_buffer(self.sock)


class UploadConnections:
    """Worker threads and the kept-alive connections they send blob chunks on.

    ``request`` reads the ``body`` from disk in the worker thread block by block into
    the connection's one buffer (no allocation per chunk, and the loop never touches
    the bytes), sends it, and returns an :class:`Answer` or raises ``OSError`` (connection,
    timeout, TLS) or ``http.client.HTTPException`` (a malformed or missing
    answer); the connection is then discarded. ``close`` ends both.
    """

    def __init__(self, *, threads: int = 16, idle_s: float = 5.0) -> None:
        # An upload holds a thread for its whole request, a download only per block read:
        # room for a job's 8 upload streams (large and small) and frames fetched meanwhile.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="blob-upload")
        self._idle: dict[_Key, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self.idle_s = idle_s
        self.opened = 0  # connections made (a test checks they are reused)
        self.stream_ports: dict[str, int] = {}
        """Receivers' blob listener ports by the origin (``https://host:port``) of their
        ``/fed/v1`` listener, as their ``HEAD`` answers named them (``Blob-Port``)."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: FileRange | None = None,
        tls: ssl.SSLContext | None = None,
        peer: str | None = None,
        timeout_s: float = 60,
    ) -> Answer:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._exchange, method, url, headers, body, tls, peer, timeout_s
        )

    @asynccontextmanager
    async def get(
        self, url: str, *, tls: ssl.SSLContext | None, peer: str | None, timeout_s: float = 60
    ) -> AsyncIterator[Download]:
        """``GET url`` on a kept-alive connection; the answer's body is read in this
        object's threads (decrypted there, in C with the GIL released), block by block.
        The connection is kept for the next request only when the body was read whole."""
        loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        key: _Key = (parts.scheme, parts.hostname or "", parts.port or 0, tls, peer or "")
        conn, resp = await loop.run_in_executor(
            self._pool, self._start, key, parts, tls, peer, timeout_s
        )
        download = Download(resp, partial(loop.run_in_executor, self._pool))
        try:
            yield download
        finally:
            await download.settle()
            if download.whole and not resp.will_close:
                self._give_back(key, conn)
            else:
                conn.close()

    def _start(
        self,
        key: _Key,
        parts: SplitResult,
        tls: ssl.SSLContext | None,
        peer: str | None,
        timeout_s: float,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._take(key) or self._open(parts, tls, peer, timeout_s)
        try:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for _, conn in conns:
                conn.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: FileRange | None,
        tls: ssl.SSLContext | None,
        peer: str | None,
        timeout_s: float,
    ) -> Answer:
        parts = urlsplit(url)
        key: _Key = (parts.scheme, parts.hostname or "", parts.port or 0, tls, peer or "")
        conn = self._take(key) or self._open(parts, tls, peer, timeout_s)
        try:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            blocks = _file_blocks(body, _scratch(conn)) if body is not None else None
            conn.request(method, target, body=blocks, headers=headers)
            resp = conn.getresponse()
            answer = Answer(
                method=method,
                status=resp.status,
                headers={name.title(): value for name, value in resp.getheaders()},
                body=resp.read(),
            )
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._give_back(key, conn)
        return answer

    def _open(
        self, parts: SplitResult, tls: ssl.SSLContext | None, peer: str | None, timeout_s: float
    ) -> http.client.HTTPConnection:
        host, port = parts.hostname or "", parts.port
        with self._lock:
            self.opened += 1
        if parts.scheme == "https":
            context = tls if tls is not None else ssl.create_default_context()
            return _PeerConnection(
                host, port or 443, context=context, peer=peer or host, timeout=timeout_s
            )
        return _PlainConnection(host, port or 80, timeout=timeout_s)

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        with self._lock:
            conns = self._idle.get(key, [])
            while conns:
                since, conn = conns.pop()
                if now - since < self.idle_s:
                    return conn
                conn.close()
        return None

    def _give_back(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append((time.monotonic(), conn))


GET_BLOCK = 256 * 1024
"""Bytes of a downloaded body read (and decrypted) per step in a worker thread."""


class Download:
    """A ``GET``'s answer (:meth:`UploadConnections.get`): ``status``, ``headers``, and the
    body read in the pool's threads: handed to the caller on the loop block by block (the
    next read while the caller handles the last one), or to a writer in the thread."""

    def __init__(self, resp: http.client.HTTPResponse, run: _Run) -> None:
        self.status = resp.status
        self.headers = {name.title(): value for name, value in resp.getheaders()}
        self.whole = False
        self._resp = resp
        self._run = run
        self._pending: asyncio.Future[Any] | None = None
        self._stop = False

    def _read(self, size: int) -> asyncio.Future[bytes]:
        return self._run(self._resp.read, size)

    async def into(self, write: Callable[[memoryview], None]) -> int:
        """Read the whole body in a pool thread, calling ``write`` there with each block (a
        view of one reused buffer, valid until ``write`` returns); the bytes read."""
        self._pending = self._run(self._copy, write)
        read: int = await self._pending
        self._pending = None
        return read

    def _copy(self, write: Callable[[memoryview], None]) -> int:
        view = memoryview(bytearray(GET_BLOCK))
        read = 0
        while not self._stop and (count := self._resp.readinto(view)):
            write(view[:count])
            read += count
        self.whole = not self._stop
        return read

    async def body(self) -> bytes:
        """The whole body (a short one: an error's JSON)."""
        return b"".join([block async for block in self.blocks()])

    async def blocks(self, size: int = GET_BLOCK) -> AsyncIterator[bytes]:
        self._pending = self._read(size)
        while True:
            block = await self._pending
            self._pending = None
            if not block:
                self.whole = True
                return
            self._pending = self._read(size)  # read ahead while the caller writes this one
            yield block

    async def settle(self) -> None:
        """Wait for a read still running in a thread (the caller stopped early)."""
        pending, self._pending = self._pending, None
        self._stop = True  # a copy (into) stops at its next block
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)


def _scratch(conn: http.client.HTTPConnection) -> bytearray:
    # One buffer per connection, and a connection serves one request at a time.
    buffer: bytearray | None = getattr(conn, "_spillway_block", None)
    if buffer is None:
        buffer = bytearray(SEND_BLOCK)
        setattr(conn, "_spillway_block", buffer)  # noqa: B010
    return buffer


def _file_blocks(body: FileRange, buffer: bytearray) -> Iterator[memoryview]:
    view = memoryview(buffer)
    left = body.length
    with body.path.open("rb", buffering=0) as handle:
        handle.seek(body.offset)
        while left:
            count = handle.readinto(view[: min(left, len(view))])
            if not count:
                # Fewer bytes than the announced length would leave the receiver waiting.
                raise OSError(f"{body.path} is shorter than expected; it changed during upload")
            yield view[:count]
            left -= count
            if body.sent is not None:
                body.sent(count)
