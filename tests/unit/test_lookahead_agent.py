"""Look-ahead at the agent: queue places of a connection, which held attempts wait in the
server's queue, lease expiry that spares them, and which jobs count as short."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aiohttp import web

from site_agent.config import SchedulingConfig
from site_agent.connections import ActiveTask, ConnectionRegistry, ServerConnection
from site_agent.lookahead import TaskTimes
from site_agent.monitor import HeartbeatMonitor
from site_agent.store.records import (
    JobState,
    ServerRecord,
    ServerStatus,
    TaskOutcome,
    TaskRecord,
    TaskState,
)


def _conn(*, slots: int = 1, queue: int = 1) -> ServerConnection:
    record = ServerRecord(id="s-1", name="rs", host="h", cores=1, memory_mb=1, slots=slots)
    ws = cast(web.WebSocketResponse, object())
    return ServerConnection(record=record, ws=ws, last_seen=0.0, reconciled=True, queue=queue)


def _hold(conn: ServerConnection, task_id: int, *, started: bool = False) -> None:
    conn.running[(task_id, 1)] = ActiveTask(
        task_id=task_id, attempt=1, job_id="j", frames=(task_id,), started=started
    )


def test_queue_places_open_once_the_slots_are_taken() -> None:
    conn = _conn(slots=2, queue=2)
    assert (conn.free_slots, conn.ahead_slots) == (2, 2)
    for task_id in (1, 2, 3):
        _hold(conn, task_id)
    assert (conn.free_slots, conn.ahead_slots) == (0, 1)
    _hold(conn, 4)
    assert (conn.free_slots, conn.ahead_slots) == (0, 0)
    assert _conn(queue=0).ahead_slots == 0, "a server without a queue gets no more than slots"


def test_a_queue_deeper_than_a_task_per_slot_is_refilled_half_at_a_time() -> None:
    conn = _conn(slots=2, queue=4)
    for task_id in range(6):
        _hold(conn, task_id)
    assert conn.ahead_slots == 0
    conn.release(0, 1)
    assert conn.ahead_slots == 0, "one free place of four: not worth a round yet"
    conn.release(1, 1)
    assert conn.ahead_slots == 2


def test_the_attempts_beyond_the_slots_not_started_wait_in_the_queue() -> None:
    conn = _conn(slots=2, queue=2)
    _hold(conn, 1, started=True)
    _hold(conn, 2)  # assigned, not reported started yet: it holds the second slot
    _hold(conn, 3)
    _hold(conn, 4)
    assert [conn.waits_in_queue(t, 1) for t in (1, 2, 3, 4)] == [False, False, True, True]
    conn.running[(2, 1)].started = True
    assert [conn.waits_in_queue(t, 1) for t in (3, 4)] == [True, True]
    conn.release(1, 1)
    assert [conn.waits_in_queue(t, 1) for t in (3, 4)] == [False, True]


class Store:
    def __init__(self, expired: list[TaskRecord]) -> None:
        self.expired = expired

    async def record_heartbeats(self, beats: Sequence[tuple[str, float]]) -> None:
        return None

    async def active_task_servers(self) -> set[str]:
        return {"s-1"}

    async def expired_tasks(self, *, now: float) -> list[TaskRecord]:
        return self.expired

    async def set_server_status(self, server_id: str, status: ServerStatus, *, at: float) -> None:
        return None


class Lifecycle:
    async def requeue_server(self, server_id: str, *, at: float) -> list[TaskRecord]:
        return []


class Reports:
    def __init__(self) -> None:
        self.expired: list[int] = []

    async def expire(self, task: TaskRecord) -> None:
        self.expired.append(task.id)


def _task(task_id: int, state: TaskState) -> TaskRecord:
    return TaskRecord(
        id=task_id, job_id="j", index=task_id, frames=(task_id,), state=state, attempt=1,
        server_id="s-1", lease_expires_at=1.0,
    )  # fmt: skip


async def test_a_task_waiting_in_its_servers_queue_does_not_time_out() -> None:
    conn = _conn(slots=1, queue=1)
    _hold(conn, 1)  # in the slot, never reported started: stuck
    _hold(conn, 2)  # behind it in the queue
    connections = ConnectionRegistry()
    connections.add(conn)
    conn.last_seen = 100.0
    store = Store([_task(1, TaskState.DISPATCHED), _task(2, TaskState.DISPATCHED)])
    reports = Reports()
    monitor = HeartbeatMonitor(
        store, connections, Lifecycle(), reports, SchedulingConfig(), clock=lambda: 100.0
    )
    await monitor.check_once()
    assert reports.expired == [1]


def _done(job_id: str, seconds: float, *, finished: bool = False) -> TaskOutcome:
    task = TaskRecord(
        id=1, job_id=job_id, index=0, frames=(1,), state=TaskState.DONE,
        started_at=10.0, finished_at=10.0 + seconds,
    )  # fmt: skip
    return TaskOutcome(task=task, job_state=JobState.RUNNING, job_finished=finished)


def test_jobs_are_short_by_the_mean_time_of_their_completed_tasks() -> None:
    times = TaskTimes(below_s=2.0)
    assert not times.any_short()
    assert times.record(_done("a", 0.5)), "a became short"
    assert not times.record(_done("a", 0.5)), "and stays so"
    assert times.record(_done("b", 1.0))
    assert not times.record(_done("b", 5.0))
    assert times.short(["a", "b", "c"]) == {"a"}
    times.record(_done("a", 0.1, finished=True))
    assert not times.any_short(), "a finished job is forgotten"
