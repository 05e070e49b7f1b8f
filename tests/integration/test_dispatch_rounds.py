"""A large dispatch round is claimed and sent in slices (SQLite and PostgreSQL).

The slices keep the plan's order (priority, fair share), every Assign leaves only
after the transaction claiming its task committed, a failed send keeps its claim
for the monitor to requeue (as before slicing), and a slice whose claim fails sends
nothing while the slices before it stay sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from test_dispatch_faults import connect, make_job

from render_server import protocol
from scheduler.dispatch import FIRST_SLICE, MAX_SLICE, plan_dispatch
from site_agent.connections import ConnectionRegistry
from site_agent.dispatch_views import job_views, ready_tasks
from site_agent.dispatcher import Dispatcher
from site_agent.lifecycle import Lifecycle
from site_agent.store import JobState, Store, StoreError, TaskClaim, TaskRecord, TaskState

SERVERS = 150
"""Two slots each: 300 free slots, a round of four slices (32, 64, 128, 76)."""


class RecordingClaims:
    """The real lifecycle's claims, recording each transaction's task ids and the order of
    claims and sends; optionally failing one claim call (1-based) with a store error."""

    def __init__(self, lifecycle: Lifecycle, *, fail_call: int = 0) -> None:
        self._lifecycle = lifecycle
        self._fail_call = fail_call
        self.calls: list[list[int]] = []
        self.committed: set[int] = set()
        self.sent_before_commit: list[int] = []

    async def assign(self, claims: Sequence[TaskClaim], *, at: float) -> list[TaskRecord]:
        self.calls.append([c.task_id for c in claims])
        if len(self.calls) == self._fail_call:
            raise StoreError("the database went away")
        won = await self._lifecycle.assign(claims, at=at)
        self.committed.update(t.id for t in won)
        return won

    async def fail_unrunnable(self, job_id: str, reason: str, *, at: float) -> bool:
        return await self._lifecycle.fail_unrunnable(job_id, reason, at=at)


class OrderedSockets:
    """Every server's socket: one log of (task id, server id) in the order Assigns went out."""

    def __init__(self, claims: RecordingClaims) -> None:
        self.claims = claims
        self.log: list[tuple[int, str]] = []
        self.broken: set[str] = set()

    def socket(self, server_id: str) -> _Socket:
        return _Socket(self, server_id)


@dataclasses.dataclass
class _Socket:
    owner: OrderedSockets
    server_id: str
    closed: bool = False

    async def send_bytes(self, data: bytes) -> None:
        msg = protocol.decode(data)
        assert isinstance(msg, protocol.Assign)
        if msg.task_id not in self.owner.claims.committed:
            self.owner.claims.sent_before_commit.append(msg.task_id)
        if self.server_id in self.owner.broken:
            raise ConnectionResetError("connection reset by peer")
        self.owner.log.append((msg.task_id, self.server_id))


async def farm(store: Store, claims: RecordingClaims) -> tuple[ConnectionRegistry, OrderedSockets]:
    registry = ConnectionRegistry()
    sockets = OrderedSockets(claims)
    for i in range(SERVERS):
        record, _ = await connect(store, registry, f"r{i:03}")
        conn = registry.get(record.id)
        assert conn is not None
        conn.ws = sockets.socket(record.id)  # type: ignore[assignment]
    return registry, sockets


async def add_job(lifecycle: Lifecycle, job_id: str, frames: int, **fields: object) -> None:
    job = dataclasses.replace(
        make_job(job_id, created_at=1.0),
        frames=f"0-{frames - 1}",
        frame_count=frames,
        **fields,  # type: ignore[arg-type]
    )
    await lifecycle.create(job, [(f,) for f in range(frames)])


async def expected_plan(
    store: Store, registry: ConnectionRegistry, free: int
) -> list[tuple[int, str]]:
    """The whole round's plan, as one unsliced plan_dispatch call makes it."""
    snap = await store.dispatch_snapshot(per_job_limit=free)
    tasks, _ = ready_tasks(snap)
    plan = plan_dispatch(job_views(snap, 3), tasks, registry.dispatchable())
    return [(a.task_id, a.server_id) for a in plan]


async def test_a_large_round_goes_out_in_slices_in_plan_order(store: Store) -> None:
    lifecycle = Lifecycle(store)
    claims = RecordingClaims(lifecycle)
    registry, sockets = await farm(store, claims)
    # An urgent job, then two of equal priority that share the rest fairly.
    await add_job(lifecycle, "urgent", 40, priority=5)
    await add_job(lifecycle, "shot-a", 200)
    await add_job(lifecycle, "shot-b", 200, created_at=2.0)
    plan = await expected_plan(store, registry, 2 * SERVERS)
    assert len(plan) == 2 * SERVERS

    dispatcher = Dispatcher(store, claims, registry)
    assert await dispatcher.dispatch_once() == 2 * SERVERS

    assert sockets.log == plan  # the same assignments, in the same order
    assert [len(c) for c in claims.calls] == [FIRST_SLICE, 64, 128, 300 - 224]
    assert max(len(c) for c in claims.calls) <= MAX_SLICE
    assert [t for call in claims.calls for t in call] == [t for t, _ in plan]
    assert claims.sent_before_commit == []
    by_job: dict[str, int] = {}
    for job_id in ("urgent", "shot-a", "shot-b"):
        tasks = await store.list_tasks(job_id)
        by_job[job_id] = sum(t.state == TaskState.DISPATCHED for t in tasks)
    assert by_job == {"urgent": 40, "shot-a": 130, "shot-b": 130}


async def test_a_failed_send_keeps_its_claim_for_the_monitor(store: Store) -> None:
    lifecycle = Lifecycle(store)
    claims = RecordingClaims(lifecycle)
    registry, sockets = await farm(store, claims)
    await add_job(lifecycle, "shot", 300)
    plan = await expected_plan(store, registry, 2 * SERVERS)
    # The first server of the plan: its two Assigns fall in the first and the third slice.
    broken = plan[0][1]
    sockets.broken.add(broken)
    lost = {t for t, s in plan if s == broken}
    assert len(lost) == 2

    dispatcher = Dispatcher(store, claims, registry)
    assert await dispatcher.dispatch_once() == 2 * SERVERS - 2

    assert sockets.log == [(t, s) for t, s in plan if s != broken]
    conn = registry.get(broken)
    assert conn is not None and {t for t, _ in conn.running} == lost
    # As before slicing: the attempts stay claimed for that server until the monitor
    # finds it gone and requeues them.
    requeued = await lifecycle.requeue_server(broken, at=50.0)
    assert {t.id for t in requeued} == lost
    assert all(t.state == TaskState.WAITING for t in requeued)


async def test_a_failed_claim_sends_nothing_of_its_slice(store: Store) -> None:
    lifecycle = Lifecycle(store)
    claims = RecordingClaims(lifecycle, fail_call=2)
    registry, sockets = await farm(store, claims)
    await add_job(lifecycle, "shot", 300)
    dispatcher = Dispatcher(store, claims, registry)

    with pytest.raises(StoreError):
        await dispatcher.dispatch_once()

    first_slice = claims.calls[0]
    assert [t for t, _ in sockets.log] == first_slice
    waiting = [t for t in await store.list_tasks("shot") if t.state == TaskState.WAITING]
    assert len(waiting) == 300 - FIRST_SLICE
    # The run loop retries: the next round sends the rest, no task twice.
    assert await dispatcher.dispatch_once() == 300 - FIRST_SLICE
    sent = [t for t, _ in sockets.log]
    assert sorted(sent) == sorted({t.id for t in await store.list_tasks("shot")})
    job = await store.get_job("shot")
    assert job is not None and job.state == JobState.RUNNING
    assert claims.sent_before_commit == []
