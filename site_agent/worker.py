"""A connection worker: serves render servers' WebSockets for the agent in another process.

Started by the agent (``[agent] workers``, :mod:`site_agent.workers`) as
``python -m site_agent.worker``. The agent accepts each render server's
connection, reads its HTTP upgrade request and hands the socket with that
request to a worker, which answers the upgrade and from then on does the
per-message work of the connection: WebSocket framing, decoding, heartbeats
(forwarded as one liveness batch every :data:`ALIVE_INTERVAL_S`), and the
inline frames of a TaskDone, which it checks, hashes and writes durably
(``GroupSync``) before the report reaches the agent. Everything that decides
(registration, the attempt fence, the store, dispatching) stays in the agent:
the hello and every report travel to it over the worker's link
(:mod:`site_agent.worker_link`), and it answers with messages to send.

The worker writes a TaskDone's frames itself only for an attempt it sent the
Assign of and saw no Cancel for, with names of the job's own pattern (a name
another frame might hold needs the store); any other TaskDone, and one whose
write or check fails, is forwarded whole and handled by the agent as in one
process. The worker exits when its link closes (the agent stopped or died),
closing its sockets: render servers reconnect to the agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSCloseCode, web

from render_server import protocol

from .connections import ActiveTask, TaskKey
from .frame_uploads import check_inline, names_to_check, write_inline
from .server_socket import hello_or_refuse, messages
from .storage import FrameStorage
from .store.records import FrameFile
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
    without_frame_data,
)

log = logging.getLogger(__name__)
ALIVE_INTERVAL_S = 0.5
"""How often the agent hears which connections were active (well under any heartbeat timeout)."""
MAX_HANDOFF_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 2.0


@dataclass(eq=False)
class _Conn:
    id: int
    ws: web.WebSocketResponse
    name: str
    slots: int
    outbox: asyncio.Queue[bytes | Close] = field(default_factory=asyncio.Queue)
    assigned: dict[TaskKey, protocol.Assign] = field(default_factory=dict)
    """Attempts this worker sent the Assign of, not yet reported, cancelled or handed back."""
    writes: set[asyncio.Task[None]] = field(default_factory=set)


class Worker:
    def __init__(self, link: LinkWriter, storage: FrameStorage) -> None:
        self._link = link
        self._storage = storage
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._seen: set[int] = set()
        self._beats: set[int] = set()
        self._adopting: set[asyncio.Task[None]] = set()
        self.server = web.Server(self._serve, handler_cancellation=True)

    # --- sockets from the agent ------------------------------------------------------

    def adopt(self, sock: socket.socket, request: bytes) -> None:
        """Serve an accepted socket whose HTTP request the agent already read."""
        task = asyncio.create_task(self._adopt(sock, request))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _adopt(self, sock: socket.socket, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, handler = await loop.connect_accepted_socket(self.server, sock)
        except OSError as exc:
            log.info("a handed-over connection was gone before it was served: %s", exc)
            sock.close()
            return
        # The peer waits for the upgrade's answer, so nothing else was sent after the request.
        handler.data_received(request)

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        hello = await hello_or_refuse(ws, request.remote)
        if hello is None:
            return ws
        conn = _Conn(id=next(self._ids), ws=ws, name=hello.name, slots=hello.slots)
        self._conns[conn.id] = conn
        sender = asyncio.create_task(self._send_loop(conn), name=f"send-{conn.id}")
        self._link.send(
            Hello(conn=conn.id, remote=request.remote or "", data=protocol.encode(hello))
        )
        try:
            await self._read(conn)
        finally:
            if conn.writes:
                await asyncio.gather(*conn.writes, return_exceptions=True)
            del self._conns[conn.id]
            self._link.send(Gone(conn=conn.id))
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    async def _read(self, conn: _Conn) -> None:
        seen, beats = self._seen, self._beats
        async for msg, data in messages(conn.ws, conn.name, lambda: seen.add(conn.id)):
            if isinstance(msg, protocol.Heartbeat):
                beats.add(conn.id)
            elif isinstance(msg, protocol.TaskDone) and msg.frames:
                while len(conn.writes) >= conn.slots + 2:
                    await asyncio.wait(conn.writes, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._write_done(conn, msg, data))
                conn.writes.add(task)
                task.add_done_callback(conn.writes.discard)
            else:
                if isinstance(msg, protocol.TaskDone | protocol.TaskFailed):
                    conn.assigned.pop((msg.task_id, msg.attempt), None)
                self._link.send(Report(conn=conn.id, data=data))

    async def _write_done(self, conn: _Conn, msg: protocol.TaskDone, data: bytes) -> None:
        """Write a TaskDone's frames, then forward it; forward it whole when this worker
        cannot (the agent then checks and writes them as it does without workers)."""
        assign = conn.assigned.pop((msg.task_id, msg.attempt), None)
        try:
            if assign is not None:
                files = await self._write_frames(assign, msg)
                if files is not None:
                    self._link.send(
                        Written(conn=conn.id, done=without_frame_data(msg), files=files)
                    )
                    return
        except Exception as exc:  # checked and reported again by the agent
            log.info("task %s: frames left to the agent: %s", msg.task_id, exc)
        self._link.send(Report(conn=conn.id, data=data))

    async def _write_frames(
        self, assign: protocol.Assign, msg: protocol.TaskDone
    ) -> list[FrameFile] | None:
        active = ActiveTask(
            task_id=assign.task_id,
            attempt=assign.attempt,
            job_id=assign.job_id,
            frames=tuple(assign.frames),
        )
        uploads = await check_inline(active, msg.frames)
        if names_to_check(assign.output_name, assign.output_ext, uploads):
            return None
        job_dir = self._storage.job_dir(assign.job_name, assign.job_id)
        return await write_inline(self._storage, job_dir, uploads, msg.frames)

    async def _send_loop(self, conn: _Conn) -> None:
        while True:
            item = await conn.outbox.get()
            try:
                if isinstance(item, Close):
                    await asyncio.wait_for(
                        conn.ws.close(code=item.code, message=item.reason.encode()[:120]),
                        CLOSE_TIMEOUT_S,
                    )
                    return
                await conn.ws.send_bytes(item)
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                log.info("send to server %s failed: %s", conn.name, exc)
                await conn.ws.close(code=WSCloseCode.GOING_AWAY)
                return

    # --- the link ----------------------------------------------------------------------

    def on_link(self, batch: list[LinkMessage]) -> None:
        for msg in batch:
            if isinstance(msg, Send):
                conn = self._conns.get(msg.conn)
                if conn is not None:
                    _note_fence(conn, msg.data)
                    conn.outbox.put_nowait(msg.data)
            elif isinstance(msg, Close):
                conn = self._conns.get(msg.conn)
                if conn is not None:
                    conn.outbox.put_nowait(msg)
            else:
                log.error("unexpected %s from the agent; ignored", msg.TYPE)

    async def tell_alive(self) -> None:
        while True:
            await asyncio.sleep(ALIVE_INTERVAL_S)
            if self._seen or self._beats:
                seen, beats = sorted(self._seen), sorted(self._beats)
                self._seen.clear()
                self._beats.clear()
                self._link.send(Alive(seen=seen, beats=beats))

    async def close(self) -> None:
        """The agent is gone: close every render server's socket (they reconnect)."""
        closing = [
            asyncio.wait_for(
                c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"agent stopping"),
                CLOSE_TIMEOUT_S,
            )
            for c in list(self._conns.values())
        ]
        await asyncio.gather(*closing, return_exceptions=True)
        await self.server.shutdown(CLOSE_TIMEOUT_S)


def _note_fence(conn: _Conn, data: bytes) -> None:
    """Follow the attempts the agent hands this connection and takes away from it."""
    try:
        msg = protocol.decode(data)
    except protocol.ProtocolError:  # the agent's own encoding: never expected
        return
    if isinstance(msg, protocol.Assign):
        conn.assigned[(msg.task_id, msg.attempt)] = msg
    elif isinstance(msg, protocol.Cancel):
        conn.assigned.pop((msg.task_id, msg.attempt), None)


def _receive_sockets(handoff: socket.socket, worker: Worker, stop: asyncio.Event) -> None:
    try:
        request, fds, _, _ = socket.recv_fds(handoff, MAX_HANDOFF_BYTES, 1)
    except BlockingIOError:
        return
    except OSError:
        stop.set()
        return
    if not fds:  # the agent closed its end
        stop.set()
        return
    worker.adopt(socket.socket(fileno=fds[0]), request)


async def run_worker(link_fd: int, handoff_fd: int, storage: Path, max_frame_bytes: int) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=link_fd))
    link = LinkWriter(writer)
    worker = Worker(link, FrameStorage(storage, max_frame_bytes=max_frame_bytes))
    handoff = socket.socket(fileno=handoff_fd)
    handoff.setblocking(False)
    stop = asyncio.Event()
    loop.add_reader(handoff.fileno(), _receive_sockets, handoff, worker, stop)
    alive = asyncio.create_task(worker.tell_alive())

    async def follow_link() -> None:
        async for batch in read_batches(reader):
            worker.on_link(batch)

    following = asyncio.create_task(follow_link())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
    loop.remove_reader(handoff.fileno())
    for task in (alive, following, stopped):
        task.cancel()
    await worker.close()
    await link.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m site_agent.worker")
    parser.add_argument("--link", type=int, required=True, help="fd of the link to the agent")
    parser.add_argument("--handoff", type=int, required=True, help="fd sockets arrive on")
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--max-frame-bytes", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log-level", type=int, default=logging.INFO)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s worker {args.index} %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Ctrl-C in a terminal reaches the whole process group: the agent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .app import new_event_loop

    loop = new_event_loop()
    try:
        loop.run_until_complete(
            run_worker(args.link, args.handoff, args.storage, args.max_frame_bytes)
        )
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
