"""The blob stream's own listener: blocking TLS sockets in threads, beside the event loop.

Why: asyncio's TLS transport decrypts through a memory BIO on the event loop,
holding the loop (and the GIL) for every record. Here each connection has its
own thread: the handshake, ``recv`` and decryption run in C with the GIL
released, and the thread writes the body itself. Only the decisions run on the
loop, in the aiohttp route's own code (``handle``: the peer from its certificate
names, then :meth:`~federation.blob_receiver.BlobUploadEndpoint.answer_patch`),
so the checks, size limits and durability contract are the same by construction.

It speaks ``HEAD`` and ``PATCH /fed/v1/blobs/{sha256}`` (:mod:`federation.transfer`;
HTTP/1.1, a ``Content-Length`` body) and ``GET`` of a finished frame for its
origin (:mod:`federation.frame_listener`); anything else gets a JSON error (400,
404, 405, 411) and the connection is closed. Peers find it through the
``Blob-Port`` header of ``/fed/v1`` answers; TLS is the mutual-TLS server context.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from federation.blob_append import StreamAppender
from federation.blob_receiver import BlobUploadEndpoint, Body
from federation.errors import TransferError
from federation.frame_listener import FrameHandler, ServedFrame, frame_request, send_checked
from federation.identity import CertificateNames, certificate_names
from federation.listener_http import (
    MAX_LINE,
    Refused,
    blob_target,
    content_length,
    parse_head,
    send_response,
)
from federation.transfer import DIRECT_MAX
from federation.upload_threads import STREAM_SOCKET_BUFFER
from site_agent.http_errors import error_response, exception_response

__all__ = ["BODY_BLOCK", "BlobListener", "BlobRequest", "Handler", "answer"]

log = logging.getLogger(__name__)

BODY_BLOCK = 256 * 1024
"""Bytes of a body read, then written and hashed, at once by a connection's thread."""
DRAIN_MAX = DIRECT_MAX
"""A body up to this size that the answer did not need is read and dropped rather than
left unread (which would reset the connection under the answer)."""
MAX_CONNECTIONS = 64
"""Connections served at once (a thread each); more are closed at once (the sender retries)."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRequest:
    """One request on the listener, as the handler sees it."""

    method: str
    sha256: str
    headers: Mapping[str, str]
    content_type: str
    content_length: int | None
    body: Body
    """Moves the body into the blob's appender, in the connection thread."""
    names: CertificateNames | None
    """The verified client certificate's names (None: none presented)."""
    remote: str


Handler = Callable[[BlobRequest], Awaitable[web.Response]]


async def answer(
    blobs: BlobUploadEndpoint, request: BlobRequest, stored: Callable[[int], None]
) -> web.Response:
    """``blobs``' answer to ``request`` (no peer checks: the handler makes them first)."""
    if request.method == "HEAD":
        return await blobs.answer_head(request.sha256)
    return await blobs.answer_patch(
        request.sha256,
        request.headers,
        content_type=request.content_type,
        content_length=request.content_length,
        body=request.body,
        stored=stored,
    )


class BlobListener:
    """Accepts TLS connections on ``host:port`` (0: any free port) in a thread, one thread
    per connection; ``await start()`` returns the bound port, ``await close()`` stops it."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        handle: Handler,
        *,
        timeout_s: float = 60.0,
        max_connections: int = MAX_CONNECTIONS,
        frames: FrameHandler | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._context = context
        self._handle = handle
        self._frames = frames
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self.requests = 0
        """Requests parsed and handed to ``handle`` (tests check which route served)."""

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._sock = socket.create_server((self.host, self.port), backlog=64)
        self.port = self._sock.getsockname()[1]
        self._accepting = threading.Thread(
            target=self._accept, name=f"blob-listener-{self.port}", daemon=True
        )
        self._accepting.start()
        return self.port

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with self._lock:
            conns = list(self._open)
        for conn in conns:  # their threads see the stream end, answer nothing and exit
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._accepting is not None:
            await asyncio.to_thread(self._accepting.join, 5)

    # --- threads ---------------------------------------------------------------------

    def _accept(self) -> None:
        while (listening := self._sock) is not None:
            try:
                raw, addr = listening.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                log.warning(
                    "blob listener: %d connections open; refusing %s", len(self._open), addr[0]
                )
                raw.close()
                continue
            threading.Thread(
                target=self._connection, args=(raw, addr[0]), name="blob-conn", daemon=True
            ).start()

    def _connection(self, raw: socket.socket, remote: str) -> None:
        with self._lock:
            self._open.add(raw)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Bounds what a cut loses in flight, as on the aiohttp route.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STREAM_SOCKET_BUFFER)
            raw.settimeout(self.timeout_s)
            try:
                tls = self._context.wrap_socket(raw, server_side=True)
            except (OSError, ValueError) as exc:
                log.info("blob listener: TLS handshake with %s failed: %s", remote, exc)
                return
            with tls, tls.makefile("rb") as reader:
                names = certificate_names(tls)
                while self._exchange(tls, reader, names, remote):
                    pass
        except OSError as exc:
            log.debug("blob listener: connection from %s ended: %s", remote, exc)
        except RuntimeError as exc:  # the agent's loop closed under a connection
            log.debug("blob listener: connection from %s dropped: %s", remote, exc)
        finally:
            with self._lock:
                self._open.discard(raw)
            raw.close()
            self._slots.release()

    def _exchange(
        self,
        tls: ssl.SSLSocket,
        reader: io.BufferedReader,
        names: CertificateNames | None,
        remote: str,
    ) -> bool:
        """Serve one request; whether the connection may serve another."""
        line = reader.readline(MAX_LINE + 1)
        if not line:
            return False
        try:
            method, target, headers = parse_head(line, reader)
            if method == "GET" and self._frames is not None and "Content-Length" not in headers:
                frame = frame_request(target, names, remote)
                if frame is not None:
                    self.requests += 1
                    return self._serve_frame(tls, self._frames(frame))
            sha256 = blob_target(method, target)
            length = content_length(method, headers)
        except Refused as exc:
            send_response(tls, error_response(exc.status, exc.code, exc.message), keep=False)
            return False
        self.requests += 1
        feed = _BodyFeed(reader, length)
        request = BlobRequest(
            method=method,
            sha256=sha256,
            headers=headers,
            content_type=headers.get("Content-Type", "").split(";")[0].strip().lower(),
            content_length=length,
            body=feed.into,
            names=names,
            remote=remote,
        )
        answered = self._on_loop(request.method, f"blob {sha256}", self._handle(request))
        feed.pump(answered)
        response = answered.result()
        if feed.unread_small():
            # Answered without its body (a 409 or 200 to a PATCH sent without asking for the
            # offset first, or a refusal): read a small body and drop it, so that the
            # sender reads this answer rather than a reset, on a connection kept alive.
            feed.drain()
        keep = feed.consumed and (response.status < 400 or response.status == 409)
        send_response(tls, response, keep=keep)
        return keep

    def _serve_frame(self, tls: ssl.SSLSocket, answer: Awaitable[ServedFrame]) -> bool:
        """Answer a frame's ``GET`` (the connection's thread); whether to keep the connection."""
        served = self._on_loop("GET", "a frame", answer).result()
        if isinstance(served, web.Response):
            send_response(tls, served, keep=True)
            return True
        try:
            whole = send_checked(tls, served)
        finally:
            served.opened.close()
        if whole:  # accounted as on /fed/v1: a frame sent whole
            self._on_loop("GET", "a frame", served.sent(served.opened.size)).result()
        return whole

    def _on_loop(
        self, method: str, what: str, call: Awaitable[_T]
    ) -> concurrent.futures.Future[_T | web.Response]:
        """Run a handler's ``call`` on the loop; an error it raises becomes its JSON answer."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_answer(method, what, call), self._loop)


async def _answer(method: str, what: str, call: Awaitable[_T]) -> _T | web.Response:
    try:
        return await call
    except Exception as exc:
        if isinstance(exc, OSError) and method != "GET":
            # The stream broke; what arrived is stored, the sender resumes.
            log.info("blob listener: %s of %s cut: %s", method, what, exc)
            return error_response(400, "upload_cut", f"the stream broke: {exc}")
        response = exception_response(exc, f"blob listener {method} of {what}")
        if response is None:
            log.exception("blob listener: %s of %s failed", method, what)
            return error_response(500, "internal", f"{what}: the request failed")
        return response


class _BodyFeed:
    """A ``length``-byte body that the connection thread reads and writes into the partial
    blob itself, once the handler on the loop has opened it (:meth:`into`)."""

    def __init__(self, reader: io.BufferedReader, length: int) -> None:
        self._reader = reader
        self.left = length
        self.consumed = length == 0
        self._sink: tuple[StreamAppender, int] | None = None
        self._done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._wake = threading.Event()
        self._stop = False

    async def into(self, appender: StreamAppender, limit: int) -> None:
        """The handler's :data:`~federation.blob_receiver.Body`: the connection thread reads
        the body into ``appender``; this waits until it has (or raises what stopped it)."""
        if self.left > limit:
            raise TransferError("the body runs beyond its Upload-Length")
        self._sink = (appender, limit)
        self._wake.set()
        done = asyncio.wrap_future(self._done)
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            self._stop = True  # the thread stops at its next block; the appender waits for it
            await done
            raise

    def unread_small(self) -> bool:
        """Whether none of the body was read and it is at most :data:`DRAIN_MAX` bytes."""
        return not self.consumed and self._sink is None and self.left <= DRAIN_MAX

    def drain(self) -> None:
        """Read the rest of the body and drop it (the connection thread)."""
        scratch = bytearray(min(self.left, BODY_BLOCK))
        while self.left:
            count = self._reader.readinto(memoryview(scratch)[: min(self.left, len(scratch))])
            if not count:
                raise ConnectionResetError("the sender closed the connection part way")
            self.left -= count
        self.consumed = True

    def pump(self, answered: concurrent.futures.Future[web.Response]) -> None:
        """In the connection thread: once the handler asks for the body, read it into the
        appender; return early when the handler answered without it (the connection is
        then closed after the answer)."""
        answered.add_done_callback(lambda _: self._wake.set())
        self._wake.wait()
        if self._sink is None:
            return
        appender, _ = self._sink
        # One buffer, reused: written and hashed before the next read (a fresh 256 KiB
        # allocation per block costs page faults).
        view = memoryview(bytearray(BODY_BLOCK))
        try:
            while self.left and not self._stop:
                count = self._reader.readinto(view[: min(self.left, BODY_BLOCK)])
                if not count:
                    raise ConnectionResetError("the sender closed the connection part way")
                self.left -= count
                appender.write_here(view[:count])
            if not self.left:
                appender.finish_here()  # synced and closed here: no more thread hops
        except BaseException as exc:  # a reset, a timeout (the stall limit), a failed write
            self._done.set_exception(exc)
        else:
            self.consumed = not self.left
            self._done.set_result(None)
