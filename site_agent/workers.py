"""The agent's connection workers, as the agent (the arbiter) runs and speaks to them.

With ``[agent] workers = N`` the agent starts N worker processes
(:mod:`site_agent.worker`). Render servers still connect to the agent's one
address: the agent reads the upgrade request of ``/ws/render-server`` and hands
the socket, with that request, to a worker (``SCM_RIGHTS`` over a Unix socket,
round robin); the worker answers it and serves the WebSocket. Everything that
decides stays here: a worker forwards the hello, which is checked and registered
exactly as in one process (:func:`site_agent.render_endpoint.accept`), and each
registered server becomes a :class:`WorkerConnection` in the registry, whose
sends go over the worker's link; its reports go through the same handlers, in
the order the server sent them. The registry, the dispatcher, the lifecycle and
the store do not know where a socket is served.

A worker that dies takes its sockets with it: its servers are disconnected as
if their sockets had closed (their tasks are requeued after the heartbeat
timeout unless they reconnect first, as they do), and the worker is started
again. Stopping the agent stops its workers; a worker whose agent is gone exits
by itself (its link closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSCloseCode, web

from render_server import protocol

from .connections import ServerConnection
from .render_endpoint import Incoming, RenderSite, WrittenDone, accept, serve
from .server_socket import check_hello, refuse
from .worker_link import (
    Alive,
    Close,
    Gone,
    Hello,
    LinkMessage,
    LinkWriter,
    Report,
    Send,
    Written,
    read_batches,
)

log = logging.getLogger(__name__)
RESTART_AFTER_S = 1.0
HANDOFF_WAIT_S = 5.0
"""How long a connection may wait for a worker to take it before the agent serves it itself."""
STOP_TIMEOUT_S = 5.0


class WorkerSocket:
    """A render server's socket held by a worker: sends and closes travel over its link."""

    def __init__(self, link: LinkWriter, conn: int) -> None:
        self._link = link
        self._conn = conn
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self._link.closed

    async def send_bytes(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("the render server's connection is closed")
        self._link.send(Send(conn=self._conn, data=data))

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        if self.closed:
            return False
        self._closed = True
        reason = message.decode("utf-8", errors="replace")
        self._link.send(Close(conn=self._conn, code=int(code), reason=reason))
        return True

    def gone(self) -> None:
        """The worker reported the socket closed (or the worker is gone)."""
        self._closed = True


@dataclass(eq=False)
class WorkerConnection(ServerConnection):
    """A connected server whose socket a worker serves."""

    async def send_encoded(self, data: bytes) -> bool:
        # The link queues in order and the worker writes each socket in order: no lock,
        # no timeout here (a worker drops a socket it cannot write to).
        if self.ws.closed:
            return False
        await self.ws.send_bytes(data)
        return True


class _Inbound:
    """One socket of a worker, as the agent follows it: its reports in order."""

    def __init__(self, ws: WorkerSocket) -> None:
        self.ws = ws
        self.conn: ServerConnection | None = None
        self.queue: asyncio.Queue[Incoming | None] = asyncio.Queue()

    async def reports(self) -> AsyncIterator[Incoming]:
        while (item := await self.queue.get()) is not None:
            yield item

    def end(self) -> None:
        self.ws.gone()
        self.queue.put_nowait(None)


@dataclass(eq=False)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    link: LinkWriter
    handoff: socket.socket
    reading: asyncio.Task[None] | None = None
    alive: bool = True
    handing: asyncio.Lock = field(default_factory=asyncio.Lock)


class WorkerPool:
    """N connection workers: hands them sockets, follows their links, restarts the dead."""

    def __init__(
        self, site: RenderSite, count: int, *, storage: Path, max_frame_bytes: int
    ) -> None:
        self._site = site
        self._count = count
        self._storage = storage
        self._max_frame_bytes = max_frame_bytes
        self._workers: list[_Worker] = []
        self._inbound: dict[tuple[int, int], _Inbound] = {}
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def count(self) -> int:
        return self._count

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.alive]

    async def start(self) -> None:
        self._workers = [await self._spawn(i) for i in range(self._count)]
        log.info("%d connection workers started (pids %s)", self._count, self.pids())

    async def _spawn(self, index: int) -> _Worker:
        link, link_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handoff, handoff_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = (link_child.fileno(), handoff_child.fileno())
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "site_agent.worker",
                f"--link={fds[0]}",
                f"--handoff={fds[1]}",
                f"--storage={self._storage}",
                f"--max-frame-bytes={self._max_frame_bytes}",
                f"--index={index}",
                f"--log-level={logging.getLogger().getEffectiveLevel()}",
                pass_fds=fds,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            link_child.close()
            handoff_child.close()
        handoff.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=link)
        worker = _Worker(index=index, proc=proc, link=LinkWriter(writer), handoff=handoff)
        worker.reading = asyncio.create_task(self._follow(worker, reader), name=f"worker-{index}")
        return worker

    async def hand_off(self, request: web.Request) -> bool:
        """Give the request's socket to the next live worker; False to serve it here."""
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        live = [w for w in self._workers if w.alive]
        if transport is None or sock is None or not live or self._closing:
            return False
        worker = live[next(self._turn) % len(live)]
        head = request_head(request)
        try:
            async with asyncio.timeout(HANDOFF_WAIT_S), worker.handing:
                # A burst of connections can fill the handoff socket: wait for the worker to
                # take some (one waiter at a time: a file descriptor has one writer callback).
                while True:
                    try:
                        socket.send_fds(worker.handoff, [head], [sock.fileno()])
                        break
                    except BlockingIOError:
                        await _writable(worker.handoff)
        except (OSError, TimeoutError) as exc:  # a busy or closed worker: serve it here instead
            log.warning(
                "could not hand a connection to worker %d (%s); serving it in the agent",
                worker.index,
                exc or f"not taken within {HANDOFF_WAIT_S:.0f} s",
            )
            return False
        transport.abort()  # closes this process's copy only: the worker's keeps the connection
        return True

    # --- what workers say ------------------------------------------------------------

    async def _follow(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            async for batch in read_batches(reader):
                for msg in batch:
                    self._on(worker, msg)
        finally:
            await self._lost(worker)

    def _on(self, worker: _Worker, msg: LinkMessage) -> None:
        if isinstance(msg, Report | Written):
            inbound = self._inbound.get((worker.index, msg.conn))
            if inbound is None:
                return
            if inbound.conn is not None:
                inbound.conn.last_seen = self._site.clock()
            if isinstance(msg, Written):
                inbound.queue.put_nowait(WrittenDone(msg.done, msg.files))
                return
            try:
                report = protocol.decode(msg.data)
            except protocol.ProtocolError as exc:  # the worker decoded it once already
                log.error("worker %d forwarded a bad report: %s", worker.index, exc)
                return
            inbound.queue.put_nowait(report)
        elif isinstance(msg, Alive):
            self._alive(worker, msg)
        elif isinstance(msg, Hello):
            inbound = _Inbound(WorkerSocket(worker.link, msg.conn))
            self._inbound[(worker.index, msg.conn)] = inbound
            task = asyncio.create_task(self._run(inbound, msg), name=f"server-{msg.conn}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(msg, Gone):
            gone = self._inbound.pop((worker.index, msg.conn), None)
            if gone is not None:
                gone.end()
        else:
            log.error("unexpected %s from worker %d; ignored", msg.TYPE, worker.index)

    def _alive(self, worker: _Worker, msg: Alive) -> None:
        now = self._site.clock()
        for conn_id in msg.seen:
            inbound = self._inbound.get((worker.index, conn_id))
            if inbound is not None and inbound.conn is not None:
                inbound.conn.last_seen = now
        for conn_id in msg.beats:
            inbound = self._inbound.get((worker.index, conn_id))
            if inbound is not None and inbound.conn is not None:
                self._site.monitor.heartbeat(inbound.conn.server_id, now)

    async def _run(self, inbound: _Inbound, msg: Hello) -> None:
        """Register the server of a hello (or refuse it) and handle its reports until it goes."""
        try:
            hello = check_hello(protocol.decode(msg.data))
        except protocol.ProtocolError as exc:
            await refuse(inbound.ws, str(exc))
            return
        conn = await accept(self._site, inbound.ws, hello, msg.remote, WorkerConnection)
        if conn is None:
            return
        inbound.conn = conn
        await serve(self._site, conn, inbound.reports())

    async def _lost(self, worker: _Worker) -> None:
        """The worker's link closed: its sockets are gone with it; start it again."""
        worker.alive = False
        for key in [k for k in self._inbound if k[0] == worker.index]:
            self._inbound.pop(key).end()
        worker.handoff.close()
        with contextlib.suppress(Exception):
            await worker.link.close()
        if self._closing:
            return
        code = await _ended(worker.proc)
        log.error(
            "connection worker %d (pid %d) exited with status %s; its render servers are "
            "disconnected; starting it again",
            worker.index,
            worker.proc.pid,
            code,
        )
        await asyncio.sleep(RESTART_AFTER_S)
        if not self._closing:
            self._workers[worker.index] = await self._spawn(worker.index)

    async def close(self) -> None:
        """Stop the workers (they close their sockets) and finish their servers' reports."""
        self._closing = True
        for worker in self._workers:
            worker.handoff.close()
            await worker.link.close()
        for worker in self._workers:
            await _ended(worker.proc)
        readers = [w.reading for w in self._workers if w.reading is not None]
        await asyncio.gather(*readers, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT_S)


async def _writable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock.fileno(), on_writable)
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


async def _ended(proc: asyncio.subprocess.Process) -> int:
    """The worker's exit status once it exits; killed if it has not within STOP_TIMEOUT_S."""
    try:
        return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        log.error("connection worker (pid %d) did not stop; killing it", proc.pid)
        proc.kill()
        return await proc.wait()


def request_head(request: web.BaseRequest) -> bytes:
    """The request line and headers as the client sent them (the worker parses them again)."""
    version = request.version
    head = [
        f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}\r\n".encode()
    ]
    head.extend(name + b": " + value + b"\r\n" for name, value in request.raw_headers)
    head.append(b"\r\n")
    return b"".join(head)
