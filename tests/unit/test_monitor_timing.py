"""Heartbeat timing: a silent or closed server's tasks are requeued ``heartbeat_timeout`` after it was last heard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from aiohttp import web

from render_server.protocol import RECONNECT_MAX_DELAY_S
from site_agent.config import SchedulingConfig
from site_agent.connections import ConnectionRegistry, ServerConnection
from site_agent.monitor import HeartbeatMonitor
from site_agent.store.records import ServerRecord, ServerStatus, TaskRecord

TIMEOUT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStore:
    def __init__(self) -> None:
        self.busy: set[str] = {"s-1"}
        self.status: dict[str, ServerStatus] = {}

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None:
        return None

    async def active_task_servers(self) -> set[str]:
        return set(self.busy)

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        return []

    async def set_server_status(self, server_id: str, status: ServerStatus, *, at: float) -> None:
        self.status[server_id] = status


class FakeLifecycle:
    def __init__(self, store: FakeStore, clock: Clock) -> None:
        self.requeued_at: list[float] = []
        self._store = store
        self._clock = clock

    async def requeue_server(self, server_id: str, *, at: float) -> list[TaskRecord]:
        self.requeued_at.append(at)
        self._store.busy.discard(server_id)
        return []


class FakeReports:
    async def expire(self, task: TaskRecord) -> None:
        return None


class StoppedPeerSocket:
    """A WebSocket whose peer is SIGSTOPped: closing waits for a close frame that never comes."""

    closed = False

    async def close(self, **kwargs: Any) -> bool:
        await asyncio.Event().wait()
        return True


def _setup(
    *, check_interval_s: float = 1.0
) -> tuple[Clock, FakeStore, FakeLifecycle, ConnectionRegistry, HeartbeatMonitor]:
    """``check_interval_s``: how often a running monitor checks by itself (the tests call
    ``check_once`` themselves, with the fake clock)."""
    clock = Clock()
    store = FakeStore()
    lifecycle = FakeLifecycle(store, clock)
    connections = ConnectionRegistry()
    config = SchedulingConfig(heartbeat_timeout_s=TIMEOUT, lease_check_interval_s=check_interval_s)
    monitor = HeartbeatMonitor(store, connections, lifecycle, FakeReports(), config, clock=clock)
    return clock, store, lifecycle, connections, monitor


def _connection(last_seen: float) -> ServerConnection:
    record = ServerRecord(id="s-1", name="rs-1", host="h", cores=1, memory_mb=1)
    ws = cast(web.WebSocketResponse, StoppedPeerSocket())
    return ServerConnection(record=record, ws=ws, last_seen=last_seen, reconciled=True)


async def _tick(monitor: HeartbeatMonitor, clock: Clock, until: float) -> None:
    while clock.now < until:
        clock.now += 0.5
        await asyncio.wait_for(monitor.check_once(), 1.0)


async def test_a_silent_server_is_requeued_one_timeout_after_its_last_message() -> None:
    clock, store, lifecycle, connections, monitor = _setup()
    last_seen = clock.now
    connections.add(_connection(last_seen))
    await _tick(monitor, clock, last_seen + TIMEOUT + 1.0)
    assert connections.get("s-1") is None
    assert store.status["s-1"] == ServerStatus.OFFLINE
    assert lifecycle.requeued_at and lifecycle.requeued_at[0] <= last_seen + TIMEOUT + 1.0


async def test_a_closed_connection_counts_from_the_last_message() -> None:
    clock, _store, lifecycle, _connections, monitor = _setup()
    last_seen = clock.now
    clock.now += 2.0  # the socket closes 2 s after the last heartbeat (a killed server)
    monitor.disconnected("s-1", last_seen=last_seen)
    await _tick(monitor, clock, last_seen + TIMEOUT - 0.5)
    assert lifecycle.requeued_at == []
    await _tick(monitor, clock, last_seen + TIMEOUT + 1.0)
    assert lifecycle.requeued_at and lifecycle.requeued_at[0] <= last_seen + TIMEOUT + 1.0


async def test_after_a_restart_an_unseen_server_gets_its_reconnect_delay_too() -> None:
    clock, _store, lifecycle, _connections, monitor = _setup()
    started = clock.now
    await _tick(monitor, clock, started + TIMEOUT + 1.0)
    assert lifecycle.requeued_at == [], "a server in its reconnect backoff is not gone yet"
    await _tick(monitor, clock, started + TIMEOUT + RECONNECT_MAX_DELAY_S + 1.0)
    assert lifecycle.requeued_at, "a server that never came back is requeued"
    assert lifecycle.requeued_at[0] > started + TIMEOUT + RECONNECT_MAX_DELAY_S


async def test_after_a_restart_the_wait_counts_from_the_monitor_s_start() -> None:
    clock, _store, lifecycle, _connections, monitor = _setup(check_interval_s=3600)
    clock.now += 60.0  # recovering the store took a minute before the agent could listen
    running = asyncio.create_task(monitor.run())
    await asyncio.sleep(0)
    try:
        listening = clock.now
        await _tick(monitor, clock, listening + TIMEOUT + RECONNECT_MAX_DELAY_S - 0.5)
        assert lifecycle.requeued_at == [], "the minute of recovery is not counted"
        await _tick(monitor, clock, listening + TIMEOUT + RECONNECT_MAX_DELAY_S + 1.0)
        assert lifecycle.requeued_at
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
