"""The usage ledger on SQLite and PostgreSQL: rows written by the lifecycle's transitions,
sums by peer and by job, time windows, a peer filter and a job's totals."""

from __future__ import annotations

import dataclasses

from scheduler.profile import JobProfile
from site_agent.lifecycle import Lifecycle
from site_agent.store import (
    LOCAL,
    CompletionReport,
    JobRecord,
    JobState,
    ServerRecord,
    ServerStatus,
    Store,
    TaskClaim,
)
from site_agent.store.usage import (
    PeerUsage,
    UsageEntry,
    UsageGroup,
    UsageLedger,
    UsageQuery,
    UsageSource,
)


def job(job_id: str, *, origin_job_id: str | None = None, origin: str = "facility") -> JobRecord:
    return JobRecord(
        id=job_id,
        name=f"shot {job_id}",
        owner="ana",
        origin_site="studio" if origin_job_id else origin,
        priority=0,
        profile=JobProfile(package="povray"),
        frames="1-3",
        frame_count=3,
        chunk_size=2,
        scene="scene.pov",
        manifest=(),
        output_name="shot",
        output_ext="png",
        settings={},
        state=JobState.QUEUED,
        placement=LOCAL,
        origin_job_id=origin_job_id,
        created_at=1.0,
        updated_at=1.0,
    )


SERVER = ServerRecord(
    id="id-r1",
    name="r1",
    host="r1.farm",
    cores=16,
    memory_mb=65_536,
    packages={"povray": "3.7.0.10"},
    slots=4,
    status=ServerStatus.IDLE,
    registered_at=0.0,
)


async def render(store: Store, job_id: str) -> None:
    """Task 0 (frames 1-2) completes after 10 s; task 1 (frame 3) fails once after 5 s."""
    life = Lifecycle(store)
    first, second = await store.list_tasks(job_id)
    claims = [
        TaskClaim(task_id=t.id, job_id=job_id, attempt=1, server_id=SERVER.id, lease_expires_at=999)
        for t in (first, second)
    ]
    assert len(await life.assign(claims, at=100.0)) == 2
    done = CompletionReport(task_id=first.id, attempt=1, server_id=SERVER.id, job_id=job_id, at=110)
    assert (await life.apply_reports([], [], [done], at=110.0))[0] is not None
    failed = await life.fail_task(
        second.id, 1, SERVER.id, error="parse error", at=105.0, retry=True
    )
    assert failed is not None


async def test_attempts_are_accounted_to_the_peer_a_job_came_from(store: Store) -> None:
    await store.upsert_server(SERVER)
    life = Lifecycle(store)
    await life.create(job("guest", origin_job_id="o-1"), [(1, 2), (3,)])
    await life.create(job("own"), [(1, 2), (3,)])
    await render(store, "guest")
    await render(store, "own")
    ledger = UsageLedger(store.database)

    by_peer = {r.peer: r for r in await ledger.summary(UsageQuery())}
    assert set(by_peer) == {"", "studio"}
    guest = by_peer["studio"]
    # 16 cores in 4 slots: 4 cores per slot; 10 s + 5 s of slot time.
    assert (guest.jobs, guest.frames, guest.failed_attempts) == (1, 2, 1)
    assert guest.core_seconds == 60.0
    assert dataclasses.replace(by_peer[""], peer="studio") == guest

    # The peers view: rendered here for studio's job; this site's own work is no peer's.
    assert await ledger.peer_figures() == {"studio": PeerUsage(core_seconds_for=60.0, frames_for=2)}

    totals = await ledger.job_totals("guest")
    assert (totals.core_seconds, totals.frames, totals.failed_attempts) == (60.0, 2, 1)


async def test_sums_by_job_with_a_window_and_a_peer(store: Store) -> None:
    life = Lifecycle(store)
    await life.create(job("fwd"), [(1, 2), (3,)])
    ledger = UsageLedger(store.database)
    await ledger.record_transfer(job_id="fwd", peer="facility", at=10.0, bytes_out=6_000_000)
    await ledger.record_transfer(job_id="fwd", peer="facility", at=20.0, bytes_in=4_000)
    await ledger.record(
        [
            UsageEntry(
                job_id="fwd",
                peer="facility",
                source=UsageSource.REMOTE,
                at=30.0,
                core_seconds=12.5,
                frames=3,
                failed_attempts=2,
            ),
            UsageEntry(job_id="other", peer="elsewhere", source=UsageSource.TRANSFER, at=5.0),
        ]
    )
    [row] = await ledger.summary(UsageQuery(group=UsageGroup.JOB, peer="facility"))
    assert (row.job_id, row.name, row.peer, row.jobs) == ("fwd", "shot fwd", "facility", 1)
    assert (row.core_seconds, row.frames, row.failed_attempts) == (12.5, 3, 2)
    assert (row.bytes_in, row.bytes_out) == (4_000, 6_000_000)

    [window] = await ledger.summary(UsageQuery(peer="facility", since=15.0, until=30.0))
    assert (window.bytes_in, window.bytes_out, window.frames) == (4_000, 0, 0)
    assert await ledger.summary(UsageQuery(peer="nobody")) == []
    everyone = await ledger.summary(UsageQuery(group=UsageGroup.JOB))
    assert [r.job_id for r in everyone] == ["other", "fwd"]  # first activity first
    assert await ledger.peer_figures() == {
        "facility": PeerUsage(
            bytes_in=4_000, bytes_out=6_000_000, core_seconds_by=12.5, frames_by=3
        ),
        "elsewhere": PeerUsage(),
    }
