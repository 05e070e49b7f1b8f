"""The render-server side of the agent: the WebSocket and the frame upload route."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from aiohttp import WSCloseCode, web

from render_server import protocol

from .appkeys import SITE
from .auth import check_server
from .config import SiteConfig
from .connections import ActiveTask, ConnectionRegistry, ServerConnection
from .monitor import Requeue
from .reports import TaskReports, Wakeup
from .server_identity import identity_refusal, key_hash
from .server_socket import ServerSocket, hello_or_refuse, messages, refuse
from .store.records import FrameFile, ServerRecord, ServerStatus, TaskRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenDone:
    """A TaskDone whose inline frames a connection worker already wrote durably."""

    TYPE: ClassVar[str] = "task_done"
    msg: protocol.TaskDone
    files: list[FrameFile]
    """What was stored, in the order of ``msg.frames`` (whose bytes were left out)."""


Incoming = protocol.Message | WrittenDone
"""A report as the agent handles it."""


class EndpointStore(Protocol):
    """The store calls of the render-server endpoint (server rows, task reads)."""

    async def get_server_by_name(self, name: str) -> ServerRecord | None: ...

    async def upsert_server(self, server: ServerRecord) -> ServerRecord: ...

    async def set_server_status(
        self, server_id: str, status: ServerStatus, *, at: float
    ) -> None: ...

    async def active_tasks(
        self, *, server_id: str | None = None, job_id: str | None = None
    ) -> list[TaskRecord]: ...

    async def get_task(self, task_id: int) -> TaskRecord | None: ...

    async def get_server(self, server_id: str) -> ServerRecord | None: ...


class ConnectionWatch(Protocol):
    """The heartbeat monitor, as the endpoint tells it about connections."""

    def connected(self, server_id: str) -> None: ...

    def disconnected(self, server_id: str, *, last_seen: float) -> None: ...

    def heartbeat(self, server_id: str, at: float) -> None: ...


class RenderSite(Protocol):
    """What the render-server endpoint uses of the site agent."""

    @property
    def config(self) -> SiteConfig: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def store(self) -> EndpointStore: ...

    @property
    def connections(self) -> ConnectionRegistry: ...

    @property
    def monitor(self) -> ConnectionWatch: ...

    @property
    def dispatcher(self) -> Wakeup: ...

    @property
    def reports(self) -> TaskReports: ...

    @property
    def lifecycle(self) -> Requeue: ...

    @property
    def workers(self) -> ConnectionHandoff | None: ...


class ConnectionHandoff(Protocol):
    """The connection workers, when the agent has them (``[agent] workers``)."""

    async def hand_off(self, request: web.Request) -> bool:
        """Give the request's socket to a worker; False when none can take it now."""
        ...


async def websocket(request: web.Request) -> web.StreamResponse:
    site: RenderSite = request.app[SITE]
    if site.workers is not None and await site.workers.hand_off(request):
        return web.Response(status=101)  # never written: the socket is the worker's now
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    hello = await hello_or_refuse(ws, request.remote)
    conn = await accept(site, ws, hello, request.remote or "") if hello is not None else None
    if conn is not None:
        await serve(site, conn, _from_socket(site, conn, ws))
    return ws


async def accept(
    site: RenderSite,
    ws: ServerSocket,
    hello: protocol.Hello,
    remote: str,
    make: type[ServerConnection] = ServerConnection,
) -> ServerConnection | None:
    """Check a server's hello (token, identity) and register it; None when refused.

    ``make`` is the connection type: a socket served here, or one a worker holds.
    """
    refusal = check_server(hello.token, remote, site.config.auth)
    if refusal:
        log.warning("render server %r from %s refused: %s", hello.name, remote, refusal)
        await refuse(ws, refusal)
        return None
    existing = await site.store.get_server_by_name(hello.name)
    refusal = identity_refusal(existing, hello, site.connections)
    if refusal:
        log.warning("render server %r from %s refused: %s", hello.name, remote, refusal)
        await refuse(ws, refusal)
        return None
    return await _register(site, ws, hello, existing, remote, make)


async def _from_socket(
    site: RenderSite, conn: ServerConnection, ws: web.WebSocketResponse
) -> AsyncIterator[Incoming]:
    def touch() -> None:
        conn.last_seen = site.clock()

    async for msg, _ in messages(ws, conn.record.name, touch):
        yield msg


async def _register(
    site: RenderSite,
    ws: ServerSocket,
    hello: protocol.Hello,
    existing: ServerRecord | None,
    remote: str,
    make: type[ServerConnection],
) -> ServerConnection:
    now = site.clock()
    record = await site.store.upsert_server(
        ServerRecord(
            id=existing.id if existing else f"s-{uuid.uuid4().hex[:10]}",
            name=hello.name,
            host=hello.host or remote,
            cores=hello.cores,
            memory_mb=hello.memory_mb,
            gpus=tuple(hello.gpus),
            os=hello.os,
            cpu_model=hello.cpu_model,
            packages=dict(hello.packages),
            tags=frozenset(hello.tags),
            slots=hello.slots,
            status=ServerStatus.IDLE,
            last_heartbeat=now,
            registered_at=existing.registered_at if existing else now,
            key_hash=(existing.key_hash if existing else "") or key_hash(hello.key),
        )
    )
    conn = make(
        record=record,
        ws=ws,
        last_seen=now,
        disabled=record.status == ServerStatus.DISABLED,
        instance=hello.instance,
        queue=min(hello.queue, site.config.scheduling.lookahead * hello.slots),
    )
    old = site.connections.add(conn)
    if old is not None:
        await old.ws.close(code=WSCloseCode.GOING_AWAY, message=b"replaced by a new connection")
    keep = await _reconcile_running(site, conn, hello.running, hello.queued)
    site.monitor.connected(record.id)
    await conn.send(
        protocol.Welcome(
            server_id=record.id,
            site=site.config.name,
            heartbeat_interval_s=site.config.scheduling.heartbeat_interval_s,
            keep=keep,
        )
    )
    log.info(
        "render server %s (%s) connected from %s: %s slots, packages %s",
        record.name,
        record.id,
        remote,
        record.slots,
        dict(record.packages),
    )
    site.dispatcher.wake()
    return conn


async def _reconcile_running(
    site: RenderSite,
    conn: ServerConnection,
    reported: list[protocol.TaskRef],
    queued: list[protocol.TaskRef],
) -> list[protocol.TaskRef]:
    """After a reconnect, keep the tasks both sides agree on; requeue the rest.

    Kept tasks go into the connection's in-memory table, which the report path
    checks instead of reading each task, and the connection becomes dispatchable.
    The tasks waiting in the server's queue are kept like its running ones, after
    them (the table's order is the queue's).
    """
    try:
        active = await site.store.active_tasks(server_id=conn.server_id)
        expected = {(t.id, t.attempt): t for t in active}
        running = {(r.task_id, r.attempt) for r in reported}
        waiting = [(r.task_id, r.attempt) for r in queued]
        if expected and expected.keys() <= running | set(waiting):
            # Merge: nothing is dispatched to an unreconciled connection, but stay safe if it was.
            for key in sorted(running) + waiting:
                task = expected.get(key)
                if task is not None:
                    active_task = conn.running.setdefault(key, ActiveTask.of(task))
                    active_task.started = active_task.started or key in running
            return [protocol.TaskRef(task_id=t, attempt=a) for t, a in sorted(expected)]
        if active:
            requeued = await site.lifecycle.requeue_server(conn.server_id, at=site.clock())
            log.info(
                "server %s reconnected without %d of its tasks; requeued them",
                conn.record.name,
                len(requeued),
            )
        return []
    finally:
        conn.reconciled = True
        site.connections.may_dispatch(conn)


async def serve(site: RenderSite, conn: ServerConnection, reports: AsyncIterator[Incoming]) -> None:
    """Handle a registered server's reports until they end (its socket closed), then forget it."""
    completions = _Completions(site, conn)
    try:
        try:
            await _handle_reports(site, conn, reports, completions)
        finally:
            await completions.drain()
    finally:
        await _unregister(site, conn)


class _Completions:
    """TaskDone handlers of one connection, run beside its read loop.

    Storing a task's frames and committing its completion waits for a file-system
    sync and a group commit; meanwhile the server already reports on its next
    task. Reading those reports only after the completion made every task wait
    for the one before it. Each TaskDone releases its attempt in memory first, so
    a repeated or stale report is still ignored. At most ``slots + 2`` run at once
    per connection; the read loop waits beyond that.
    """

    def __init__(self, site: RenderSite, conn: ServerConnection) -> None:
        self._site = site
        self._conn = conn
        self._running: set[asyncio.Task[None]] = set()

    async def start(
        self, msg: protocol.TaskDone, written: Sequence[FrameFile] | None = None
    ) -> None:
        while len(self._running) >= self._conn.record.slots + 2:
            await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(
            self._site.reports.done(self._conn.server_id, msg, written),
            name=f"task-done-{msg.task_id}",
        )
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "handling a task_done from %s failed",
                self._conn.record.name,
                exc_info=task.exception(),
            )

    async def drain(self) -> None:
        """Let the completions already received finish (the connection is closing)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


async def _handle_reports(
    site: RenderSite,
    conn: ServerConnection,
    reports: AsyncIterator[Incoming],
    completions: _Completions,
) -> None:
    server_id = conn.server_id
    # Every handler takes just the message (the reports API is keyed by server id).
    handlers: dict[type[Incoming], Callable[[Any], Awaitable[None]]] = {
        protocol.Heartbeat: lambda msg: _on_heartbeat(site, conn, msg),
        protocol.TaskStarted: lambda msg: _on_started(site, conn, msg),
        protocol.TaskLog: functools.partial(site.reports.log, server_id),
        protocol.TaskDone: completions.start,
        protocol.TaskFailed: functools.partial(site.reports.failed, server_id),
        WrittenDone: lambda item: completions.start(item.msg, item.files),
    }
    async for msg in reports:
        handler = handlers.get(type(msg))
        if handler is None:
            log.warning("server %s sent unexpected %s; ignored", conn.record.name, msg.TYPE)
            continue
        await handler(msg)


async def _on_started(site: RenderSite, conn: ServerConnection, msg: protocol.TaskStarted) -> None:
    """The attempt left the server's queue, if it waited there (see ``waits_in_queue``)."""
    active = conn.running.get((msg.task_id, msg.attempt))
    if active is not None:
        active.started = True
    await site.reports.started(conn.server_id, msg)


async def _on_heartbeat(site: RenderSite, conn: ServerConnection, msg: protocol.Heartbeat) -> None:
    site.monitor.heartbeat(conn.server_id, conn.last_seen)


async def _unregister(site: RenderSite, conn: ServerConnection) -> None:
    if site.connections.remove(conn):
        site.monitor.disconnected(conn.server_id, last_seen=conn.last_seen)
        if not conn.disabled:
            await site.store.set_server_status(
                conn.server_id, ServerStatus.OFFLINE, at=site.clock()
            )
        log.info("render server %s disconnected", conn.record.name)
