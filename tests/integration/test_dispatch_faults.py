"""One job's fault stays that job's: the dispatcher over a real store (SQLite and PostgreSQL).

A job whose Assign cannot be encoded fails alone, a job whose capable servers all
avoid it fails with the renderer's own error, an unexpected error does not end
the dispatch loop, and an attempt handed back by the agent blames no server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from render_server import protocol
from scheduler.profile import JobProfile
from site_agent.connections import ConnectionRegistry, ServerConnection
from site_agent.dispatcher import Dispatcher
from site_agent.lifecycle import Lifecycle
from site_agent.store import (
    DispatchSnapshot,
    JobRecord,
    JobState,
    ServerRecord,
    ServerStatus,
    Store,
    TaskClaim,
    TaskState,
)
from spillway.core.records import FileEntry

POVRAY = JobProfile(package="povray", max_attempts=3)


def make_server(name: str) -> ServerRecord:
    return ServerRecord(
        id=f"id-{name}",
        name=name,
        host=f"{name}.farm",
        cores=16,
        memory_mb=65_536,
        gpus=(),
        os="linux",
        cpu_model="EPYC",
        packages={"povray": "3.7.0.10"},
        tags=frozenset(),
        slots=2,
        status=ServerStatus.IDLE,
        last_heartbeat=50.0,
        registered_at=40.0,
    )


def make_job(job_id: str, *, created_at: float) -> JobRecord:
    return JobRecord(
        id=job_id,
        name=f"shot {job_id}",
        owner="ana",
        origin_site="studio",
        priority=0,
        profile=POVRAY,
        frames="0-7",
        frame_count=8,
        chunk_size=1,
        scene="scene.pov",
        manifest=(FileEntry(path="scene.pov", sha256="a" * 64, size=1200),),
        output_name="shot",
        output_ext="png",
        created_at=created_at,
        updated_at=created_at,
    )


class RecordingSocket:
    """Stands in for a render server's WebSocket: keeps the messages sent to it."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[protocol.Message] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(protocol.decode(data))


async def connect(
    store: Store, registry: ConnectionRegistry, name: str
) -> tuple[ServerRecord, RecordingSocket]:
    record = await store.upsert_server(make_server(name))
    ws = RecordingSocket()
    conn = ServerConnection(record=record, ws=ws, last_seen=0.0, reconciled=True)  # type: ignore[arg-type]
    registry.add(conn)
    return record, ws


async def add_job(lifecycle: Lifecycle, job_id: str, *, created_at: float, **fields: Any) -> None:
    job = dataclasses.replace(make_job(job_id, created_at=created_at), **fields)
    await lifecycle.create(job, [(f,) for f in range(8)])


async def test_job_whose_assign_cannot_be_encoded_fails_alone(store: Store) -> None:
    lifecycle = Lifecycle(store)
    registry = ConnectionRegistry()
    _, ws = await connect(store, registry, "r1")
    # A file name that was not UTF-8 on the client arrives as a lone surrogate.
    bad_manifest = (FileEntry(path="caf\udce9.png", sha256="c" * 64, size=10),)
    await add_job(lifecycle, "poison", created_at=1.0, manifest=bad_manifest)
    await add_job(lifecycle, "good", created_at=2.0)
    dispatcher = Dispatcher(store, lifecycle, registry)

    assert await dispatcher.dispatch_once() > 0

    poison = await store.get_job("poison")
    assert poison is not None and poison.state == JobState.FAILED
    assert "cannot be sent to render servers" in poison.error
    assert {t.state for t in await store.list_tasks("poison")} == {TaskState.FAILED}
    assigned = {m.job_id for m in ws.sent if isinstance(m, protocol.Assign)}
    assert assigned == {"good"}
    good = await store.get_job("good")
    assert good is not None and good.state == JobState.RUNNING


class FlakySnapshots:
    """The real store, except that its first dispatch snapshot raises a bug-like error."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls = 0

    async def dispatch_snapshot(self, *, per_job_limit: int) -> DispatchSnapshot:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("an unexpected bug")
        return await self._store.dispatch_snapshot(per_job_limit=per_job_limit)


async def test_unexpected_error_does_not_end_the_dispatch_loop(store: Store) -> None:
    lifecycle = Lifecycle(store)
    registry = ConnectionRegistry()
    _, ws = await connect(store, registry, "r1")
    await add_job(lifecycle, "job-1", created_at=1.0)
    snapshots = FlakySnapshots(store)
    dispatcher = Dispatcher(snapshots, lifecycle, registry)
    loop = asyncio.create_task(dispatcher.run())
    try:
        dispatcher.wake()
        async with asyncio.timeout(10):
            while not ws.sent:
                await asyncio.sleep(0.05)
    finally:
        loop.cancel()
    assert snapshots.calls >= 2  # the failed round was logged and the loop went on


async def fail_attempt(
    lifecycle: Lifecycle, store: Store, task_id: int, server: ServerRecord, *, at: float
) -> None:
    [task] = await lifecycle.assign(
        [
            TaskClaim(
                task_id=task_id,
                job_id="job-1",
                attempt=1,
                server_id=server.id,
                lease_expires_at=at + 100,
            )
        ],
        at=at,
    )
    await lifecycle.fail_task(
        task.id,
        task.attempt,
        server.id,
        error="povray exited with status 1: Render failed",
        at=at,
        retry=True,
        log_tail="File 'scene.pov' line 2: Parse Error: No matching } in\n 'sphere'\nRender failed",
    )


async def test_job_avoided_by_every_capable_server_fails_with_the_renderer_error(
    store: Store,
) -> None:
    lifecycle = Lifecycle(store)
    registry = ConnectionRegistry()
    r1, _ = await connect(store, registry, "r1")
    r2, _ = await connect(store, registry, "r2")
    await add_job(lifecycle, "job-1", created_at=1.0)
    tasks = await store.list_tasks("job-1")
    # Three failures on each server (the avoidance threshold), each on another task, so
    # no task has used up its attempts: only the avoidance can end the job.
    for i, server in enumerate([r1, r2, r1, r2, r1, r2]):
        await fail_attempt(lifecycle, store, tasks[i].id, server, at=10.0 + i)
    dispatcher = Dispatcher(store, lifecycle, registry)

    assert await dispatcher.dispatch_once() == 0

    job = await store.get_job("job-1")
    assert job is not None and job.state == JobState.FAILED
    assert "every capable server (r1, r2)" in job.error and "avoided" in job.error
    assert "line 2: Parse Error: No matching } in 'sphere'" in job.error
    assert "spillway retry job-1" in job.error
    assert {t.state for t in await store.list_tasks("job-1")} == {TaskState.FAILED}
    # retry forgets the failures: the servers are eligible again.
    assert await lifecycle.retry_failed("job-1", at=30.0) == 8
    assert await store.server_failures("job-1") == {}


async def test_handed_back_attempt_blames_no_server(store: Store) -> None:
    lifecycle = Lifecycle(store)
    registry = ConnectionRegistry()
    r1, _ = await connect(store, registry, "r1")
    await add_job(lifecycle, "job-1", created_at=1.0)
    first = (await store.list_tasks("job-1"))[0]
    claim = TaskClaim(
        task_id=first.id, job_id="job-1", attempt=1, server_id=r1.id, lease_expires_at=99.0
    )
    [task] = await lifecycle.assign([claim], at=5.0)
    reason = "storage full: cannot write shot_0001.exr; tasks will be retried"

    back = await lifecycle.hand_back(task.id, task.attempt, r1.id, reason, at=6.0)

    assert back is not None and back.state == TaskState.WAITING and back.failures == 0
    assert await store.server_failures("job-1") == {}
    job = await store.get_job("job-1")
    assert job is not None and job.state == JobState.RUNNING and job.error == reason
    # Fenced: the same attempt handed back again (or a late report) changes nothing.
    assert await lifecycle.hand_back(task.id, task.attempt, r1.id, reason, at=7.0) is None
