"""Heartbeat monitor: notices lost render servers and expired task leases.

A server whose WebSocket closed may be back within seconds (network blip, agent
restart), so its tasks are requeued only once it has not been heard from for
``heartbeat_timeout_s``, counted from its last message, not from the moment the
agent noticed. A connected server silent that long is dropped at once (its tasks
requeued in the same check) and its socket closed in the background: a stopped
peer never answers the close handshake. After an agent (re)start, a server that
holds tasks and has not connected yet gets ``heartbeat_timeout_s`` plus the longest
delay between a render server's reconnect attempts, counted from when the monitor
starts (the agent then accepts connections), not from when the agent began
recovering its store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import WSCloseCode

from render_server.protocol import RECONNECT_MAX_DELAY_S

from .config import SchedulingConfig
from .connections import ConnectionRegistry, ServerConnection
from .store.base import StoreError
from .store.records import ServerStatus, TaskRecord, TaskState

log = logging.getLogger(__name__)


class MonitorStore(Protocol):
    """The store calls of the monitor: heartbeats, leases, server status."""

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None: ...

    async def active_task_servers(self) -> set[str]: ...

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]: ...

    async def set_server_status(
        self, server_id: str, status: ServerStatus, *, at: float
    ) -> None: ...


class Requeue(Protocol):
    async def requeue_server(self, server_id: str, *, at: float) -> list[TaskRecord]:
        """The lifecycle transition: the server's active tasks back to waiting."""


class Expiry(Protocol):
    async def expire(self, task: TaskRecord) -> None:
        """Stop the task on its server and count a failed attempt."""


class HeartbeatMonitor:
    def __init__(
        self,
        store: MonitorStore,
        connections: ConnectionRegistry,
        lifecycle: Requeue,
        reports: Expiry,
        config: SchedulingConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._connections = connections
        self._lifecycle = lifecycle
        self._reports = reports
        self._config = config
        self._clock = clock
        self._started = clock()
        self._gone_since: dict[str, float] = {}
        self._beats: dict[str, float] = {}
        self._closing: set[asyncio.Task[bool]] = set()

    def connected(self, server_id: str) -> None:
        self._gone_since.pop(server_id, None)

    def disconnected(self, server_id: str, *, last_seen: float) -> None:
        """The server's connection closed; it counts as gone since it was last heard from."""
        self._gone_since[server_id] = min(last_seen, self._clock())

    def heartbeat(self, server_id: str, at: float) -> None:
        self._beats[server_id] = at

    async def run(self) -> None:
        # Servers unseen since the start count as gone from here, when the agent is about to
        # accept them, not from when it began recovering its store.
        self._started = self._clock()
        try:
            while True:
                await asyncio.sleep(self._config.lease_check_interval_s)
                try:
                    await self.check_once()
                except StoreError as exc:
                    log.error("heartbeat check failed: %s", exc)
        finally:
            for task in self._closing:
                task.cancel()

    async def check_once(self) -> None:
        now = self._clock()
        await self._flush_heartbeats()
        timeout = self._config.heartbeat_timeout_s
        for conn in self._connections.all():
            if now - conn.last_seen > timeout:
                await self._drop(conn, now)
        await self._requeue_lost(now, timeout)
        for task in await self._store.expired_tasks(now=now):
            if self._waits_in_queue(task):
                continue  # its timeout counts from its start (TaskStarted sets its lease)
            log.warning(
                "task %s of job %s on %s: lease expired", task.id, task.job_id, task.server_id
            )
            await self._reports.expire(task)

    def _waits_in_queue(self, task: TaskRecord) -> bool:
        """Whether the dispatched task waits in its connected server's queue (look-ahead):
        it has not started, so it has not timed out; the server starts it as a slot frees."""
        conn = self._connections.get(task.server_id or "")
        return (
            task.state is TaskState.DISPATCHED
            and conn is not None
            and conn.waits_in_queue(task.id, task.attempt)
        )

    async def _drop(self, conn: ServerConnection, now: float) -> None:
        """Forget a silent server's connection now; close its socket in the background."""
        log.warning(
            "server %s silent for %.1fs; disconnecting", conn.record.name, now - conn.last_seen
        )
        if self._connections.remove(conn):
            self._gone_since[conn.server_id] = conn.last_seen
            if not conn.disabled:
                await self._store.set_server_status(conn.server_id, ServerStatus.OFFLINE, at=now)
        closing = asyncio.create_task(
            conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"heartbeat timeout"),
            name=f"close-{conn.server_id}",
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _flush_heartbeats(self) -> None:
        if self._beats:
            beats, self._beats = list(self._beats.items()), {}
            await self._store.record_heartbeats(beats)

    async def _requeue_lost(self, now: float, grace_s: float) -> None:
        # Server ids only (an index-only read): this runs every second with every task active.
        lost_servers = {
            server_id
            for server_id in await self._store.active_task_servers()
            if server_id and self._connections.get(server_id) is None
        }
        for server_id in lost_servers:
            gone_since = self._gone_since.get(server_id)
            grace = grace_s
            if gone_since is None:
                # Not seen since this agent started: its server may be waiting out a backoff
                # begun while the agent was down; requeuing would throw away running renders.
                gone_since, grace = self._started, grace_s + RECONNECT_MAX_DELAY_S
            if now - gone_since <= grace:
                continue
            # The lifecycle's TasksRequeued event wakes the dispatcher.
            tasks = await self._lifecycle.requeue_server(server_id, at=now)
            await self._store.set_server_status(server_id, ServerStatus.OFFLINE, at=now)
            log.warning(
                "server %s gone for %.0fs; requeued %d tasks",
                server_id,
                now - gone_since,
                len(tasks),
            )
