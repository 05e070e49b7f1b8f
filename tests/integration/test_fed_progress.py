"""Live progress of forwarded jobs against SQLite and PostgreSQL: the origin applying numbered
snapshots (duplicates, reordering, older placements), frames fetched as tasks finish, the
final completion fetching only what is missing, pause/resume applied in order without echo,
and the remote numbering its snapshots."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from federation.client import PeerUnavailableError
from federation.interfaces import FileSink
from federation.outbox import Outbox
from federation.peers import PeerConfig
from federation.progress import Controls, FromPeer, ProgressRelay
from federation.protocol import (
    FrameOutput,
    Message,
    Notify,
    NotifyState,
    Pause,
    Progress,
    Resume,
    TaskProgress,
)
from federation.results import Results
from federation.store import FederationStore
from federation.streaming import FrameStream
from scheduler.frames import chunk_frames, parse_frames
from scheduler.profile import JobProfile
from site_agent.errors import ConflictError
from site_agent.lifecycle import Event, JobStateChanged, Lifecycle, TransactionHook
from site_agent.storage import FrameStorage
from site_agent.store import Store
from site_agent.store.records import (
    LOCAL,
    FrameRecord,
    JobRecord,
    JobState,
    RelayedTask,
    TaskClaim,
    TaskRecord,
    TaskState,
)
from site_agent.store.usage import UsageEntry, UsageTotals
from spillway.core.records import FileEntry

FACILITY = PeerConfig(name="facility", url="https://facility:8843")
STUDIO = PeerConfig(name="studio", url="https://studio:8743")
FRAME_BYTES = {n: f"frame {n}".encode() for n in range(1, 5)}


def make_job(job_id: str, **changes: object) -> JobRecord:
    fields: dict[str, object] = {
        "id": job_id,
        "name": "shot",
        "owner": "ana",
        "origin_site": "studio",
        "priority": 50,
        "profile": JobProfile(package="povray"),
        "frames": "1-4",
        "frame_count": 4,
        "chunk_size": 1,
        "scene": "scene.pov",
        "manifest": (FileEntry(path="scene.pov", sha256="a" * 64, size=12),),
        "output_name": "shot",
        "placement": "facility",
        "placement_epoch": 1,
        "remote_job_id": "r1",
        "created_at": 100.0,
        "updated_at": 100.0,
    }
    fields.update(changes)
    return JobRecord(**fields)  # type: ignore[arg-type]


def output(n: int) -> FrameOutput:
    return FrameOutput(
        frame=n,
        sha256=hashlib.sha256(FRAME_BYTES[n]).hexdigest(),
        size=len(FRAME_BYTES[n]),
        name=f"shot_{n:04d}.png",
    )


def done(index: int, server: str = "fac-1") -> TaskProgress:
    return TaskProgress(
        index=index,
        state="done",
        attempt=1,
        server=server,
        started_at=200.0 + index,
        finished_at=210.0 + index,
        frames=(output(index + 1),),
    )


def progress(seq: int, *tasks: TaskProgress, epoch: int = 1) -> Progress:
    return Progress(
        origin_job_id="j1",
        remote_job_id="r1",
        epoch=epoch,
        seq=seq,
        state="running",
        frames_done=sum(t.state == "done" for t in tasks),
        frames_total=4,
        tasks=tasks,
    )


class Site:
    """The origin's jobs as the federation roles use them: the real store and lifecycle."""

    def __init__(self, store: Store, lifecycle: Lifecycle) -> None:
        self.store, self.lifecycle = store, lifecycle

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self.store.get_job(job_id)

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return await self.store.list_tasks(job_id)

    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        return await self.store.list_frames(job_id)

    async def server_names(self) -> dict[str, str]:
        return {}

    async def remote_start(self, job_id: str, *, at: float) -> bool:
        return await self.lifecycle.remote_start(job_id, at=at)

    async def pause(self, job_id: str) -> None:
        await self.lifecycle.pause(job_id, at=1.0)

    async def resume(self, job_id: str) -> None:
        await self.lifecycle.resume(job_id, at=1.0)

    async def relay_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        tasks: Sequence[RelayedTask],
        at: float,
        hook: TransactionHook | None = None,
    ) -> bool:
        return await self.lifecycle.relay_progress(
            job_id, epoch=epoch, tasks=tasks, at=at, hook=hook
        )

    async def record_relayed_frames(
        self,
        job_id: str,
        *,
        epoch: int,
        task: RelayedTask,
        frames: Sequence[FrameRecord],
        at: float,
    ) -> bool:
        return await self.lifecycle.record_relayed_frames(
            job_id, epoch=epoch, task=task, frames=frames, at=at
        )

    async def finish_forwarded_job(
        self,
        job_id: str,
        *,
        epoch: int,
        state: JobState,
        frames: Sequence[FrameRecord],
        error: str,
        at: float,
        hook: TransactionHook | None = None,
        usage: UsageEntry | None = None,
        tasks: Sequence[RelayedTask] = (),
    ) -> bool:
        return await self.lifecycle.finish_forwarded_job(
            job_id,
            epoch=epoch,
            state=state,
            frames=frames,
            error=error,
            at=at,
            hook=hook,
            usage=usage,
            tasks=tasks,
        )


class Remote:
    """The facility's frame route: serves FRAME_BYTES, counting the fetches."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def download(self, peer: PeerConfig, path: str, target: FileSink) -> None:
        self.fetched.append(path)
        target.write(FRAME_BYTES[int(path.rsplit("/", 1)[1])])


class Contact:
    def contact_ok(self, peer: str) -> None: ...

    def contact_failed(self, peer: str, error: str) -> None: ...


class Ledger:
    """The accounting ledger: frame bytes fetched back, per job."""

    def __init__(self) -> None:
        self.bytes_in: list[tuple[str, int]] = []

    async def job_totals(self, job_id: str) -> UsageTotals:
        raise AssertionError("not used at the origin")

    async def record_transfer(
        self, *, job_id: str, peer: str, at: float, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        assert peer == "facility" and bytes_out == 0
        self.bytes_in.append((job_id, bytes_in))


class Origin:
    def __init__(self, store: Store, fed: FederationStore, root: Path) -> None:
        self.store, self.fed = store, fed
        self.lifecycle = Lifecycle(store)
        self.site = Site(store, self.lifecycle)
        self.remote = Remote()
        self.ledger = Ledger()
        self.storage = FrameStorage(root, max_frame_bytes=1 << 20)
        self.stream = FrameStream(
            client=self.remote, frames=self.storage, jobs=self.site, usage=self.ledger
        )
        self.results = Results(
            name="studio",
            jobs=self.site,
            forwards=fed,
            client=self.remote,
            frames=self.storage,
            contact=Contact(),
            stream=self.stream,
            usage=self.ledger,
        )

    async def tasks(self) -> list[TaskRecord]:
        return await self.store.list_tasks("j1")


async def origin(store: Store, root: Path) -> Origin:
    o = Origin(store, await FederationStore.open(store.database), root)
    await o.lifecycle.create(make_job("j1"), chunk_frames(parse_frames("1-4"), 1))
    await o.fed.start_forward("j1", 1, "facility", at=100.0)
    return o


async def test_a_snapshot_mirrors_the_tasks_and_fetches_finished_frames(
    store: Store, tmp_path: Path
) -> None:
    o = await origin(store, tmp_path)
    running = TaskProgress(index=1, state="running", attempt=2, server="fac-2", started_at=205.0)
    assert await o.results.progress(FACILITY, progress(1, done(0), running))
    await o.stream.drain("j1")
    tasks = await o.tasks()
    assert (tasks[0].state, tasks[0].server_id, tasks[0].attempt) == (
        TaskState.DONE,
        "facility/fac-1",
        1,
    )
    assert (tasks[0].started_at, tasks[0].finished_at) == (200.0, 210.0)
    assert (tasks[1].state, tasks[1].server_id, tasks[1].attempt) == (
        TaskState.RUNNING,
        "facility/fac-2",
        2,
    )
    assert [t.state for t in tasks[2:]] == [TaskState.WAITING] * 2
    job = await store.get_job("j1")
    assert job is not None and job.state == JobState.RUNNING
    assert [f.frame for f in await store.list_frames("j1")] == [1]
    path = o.storage.job_dir("shot", "j1") / "shot_0001.png"
    assert path.read_bytes() == FRAME_BYTES[1]
    forward = await o.fed.get_forward("j1", 1)
    assert forward is not None and forward.progress_seq == 1 and forward.remote_state == "running"
    assert await store.seconds_per_frame() is None, "the peer's timings are not this site's"


async def test_duplicate_reordered_and_stale_snapshots_change_nothing(
    store: Store, tmp_path: Path
) -> None:
    o = await origin(store, tmp_path)
    failed = TaskProgress(
        index=1, state="failed", attempt=3, server="fac-2", error="povray: parse error"
    )
    assert await o.results.progress(FACILITY, progress(5, failed))
    before = await o.tasks()
    running = TaskProgress(index=1, state="running", attempt=2, server="fac-2")
    assert not await o.results.progress(FACILITY, progress(5, running))  # duplicate number
    assert not await o.results.progress(FACILITY, progress(4, running))  # older, arriving late
    assert not await o.results.progress(
        FACILITY, progress(9, running, epoch=2)
    )  # not the placement
    assert not await o.results.progress(FACILITY, progress(9, running, epoch=0))
    assert await o.tasks() == before
    assert before[1].state == TaskState.FAILED and before[1].error == "povray: parse error"
    assert await o.results.progress(FACILITY, progress(6, failed, done(0)))  # a gap is fine
    await o.stream.drain("j1")
    assert (await o.tasks())[0].state == TaskState.DONE


async def test_the_completion_fetches_only_the_frames_not_yet_here(
    store: Store, tmp_path: Path
) -> None:
    o = await origin(store, tmp_path)
    await o.results.progress(FACILITY, progress(1, done(0), done(1)))
    await o.stream.drain("j1")
    assert sorted(o.remote.fetched) == ["/fed/v1/jobs/r1/frames/1", "/fed/v1/jobs/r1/frames/2"]
    final = Notify(
        origin_job_id="j1",
        remote_job_id="r1",
        epoch=1,
        state=NotifyState.DONE,
        frames_done=4,
        frames_total=4,
        frames=tuple(output(n) for n in range(1, 5)),
        tasks=tuple(done(i, server="fac-3") for i in range(4)),
    )
    await o.results.notify(FACILITY, final)
    assert len(o.remote.fetched) == 4, o.remote.fetched
    job = await store.get_job("j1")
    assert job is not None and job.state == JobState.DONE
    tasks = await o.tasks()
    assert [t.state for t in tasks] == [TaskState.DONE] * 4
    # Tasks fetched while running keep their record; the others take the final one.
    assert [t.server_id for t in tasks] == ["facility/fac-1"] * 2 + ["facility/fac-3"] * 2
    assert [f.frame for f in await store.list_frames("j1")] == [1, 2, 3, 4]
    # Accounting: each frame's bytes counted once, streamed or fetched at the completion,
    # as the peer counts each frame it served.
    assert sorted(o.ledger.bytes_in) == sorted(("j1", len(FRAME_BYTES[n])) for n in range(1, 5))


async def test_a_replaced_job_renders_again_what_its_old_placement_did_not_bring_back(
    store: Store, tmp_path: Path
) -> None:
    o = await origin(store, tmp_path)
    running = TaskProgress(index=1, state="running", attempt=1, server="fac-2")
    await o.results.progress(FACILITY, progress(1, done(0), running))
    await o.stream.drain("j1")
    assert await o.lifecycle.replace_job(
        "j1", old_epoch=1, placement=LOCAL, reason="re-placed", at=300.0
    )
    tasks = await o.tasks()
    assert [t.state for t in tasks] == [TaskState.DONE] + [TaskState.WAITING] * 3
    assert tasks[1].server_id is None and tasks[1].attempt == 0
    assert await store.active_task_servers() == set()
    assert not await o.results.progress(FACILITY, progress(2, done(1)))  # the old placement
    assert (await o.tasks())[1].state == TaskState.WAITING


async def test_active_mirrored_tasks_are_not_this_sites_servers(
    store: Store, tmp_path: Path
) -> None:
    """The heartbeat monitor requeues active tasks of servers that are gone: a forwarded
    job's tasks mirror the peer's servers and must not look like lost local ones."""
    o = await origin(store, tmp_path)
    running = TaskProgress(index=0, state="running", attempt=1, server="fac-1")
    await o.results.progress(FACILITY, progress(1, running))
    assert (await o.tasks())[0].state == TaskState.RUNNING
    assert await store.active_task_servers() == set()


async def control_setup(
    store: Store, tmp_path: Path
) -> tuple[Origin, Controls, list[tuple[str, str, Message]]]:
    o = await origin(store, tmp_path)
    sent: list[tuple[str, str, Message]] = []

    class Queue:
        async def enqueue(
            self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
        ) -> None:
            sent.append((peer, kind, message))

    controls = Controls(jobs=o.site, rows=o.fed, outbox=Queue(), from_peer=FromPeer())

    async def on_event(event: Event) -> None:
        assert isinstance(event, JobStateChanged)
        await controls.state_changed(event.job_id, event.state)

    o.lifecycle.subscribe(on_event, (JobStateChanged,))
    return o, controls, sent


async def test_pause_and_resume_from_the_remote_apply_in_order_without_echo(
    store: Store, tmp_path: Path
) -> None:
    o, controls, sent = await control_setup(store, tmp_path)

    def pause(seq: int) -> Pause:
        return Pause(origin_job_id="j1", remote_job_id="r1", epoch=1, seq=seq)

    def resume(seq: int) -> Resume:
        return Resume(origin_job_id="j1", remote_job_id="r1", epoch=1, seq=seq)

    await controls.apply(FACILITY, pause(10))
    assert (await o.site.get_job("j1")).state == JobState.PAUSED  # type: ignore[union-attr]
    await controls.apply(FACILITY, resume(9))  # sent before the pause, arrived after it
    assert (await o.site.get_job("j1")).state == JobState.PAUSED  # type: ignore[union-attr]
    await controls.apply(FACILITY, resume(11))
    assert (await o.site.get_job("j1")).state == JobState.QUEUED  # type: ignore[union-attr]
    await controls.apply(FACILITY, resume(12))  # already so: nothing to do
    assert sent == [], "a peer's own pause/resume is not sent back to it"
    await o.lifecycle.pause("j1", at=5.0)  # this site's user
    assert [(peer, kind) for peer, kind, _ in sent] == [("facility", "pause")]
    message = sent[0][2]
    assert isinstance(message, Pause) and message.remote_job_id == "r1" and message.epoch == 1


async def test_the_remote_applies_its_origins_pause_to_the_accepted_job(
    store: Store, tmp_path: Path
) -> None:
    fed = await FederationStore.open(store.database)
    lifecycle = Lifecycle(store)
    site = Site(store, lifecycle)
    job = make_job("r9", placement=LOCAL, placement_epoch=0, remote_job_id=None, origin_job_id="j9")
    await lifecycle.create(job, chunk_frames(parse_frames("1-4"), 1))
    await fed.insert_offer(
        key="studio:j9:1", site="studio", origin_job_id="j9", epoch=1, body={}, at=1.0
    )
    await fed.commit_offer("studio:j9:1", "r9", at=2.0)
    controls = Controls(jobs=site, rows=fed, outbox=_NoQueue(), from_peer=FromPeer())
    await controls.apply(STUDIO, Pause(origin_job_id="j9", remote_job_id="r9", epoch=1, seq=3))
    assert (await store.get_job("r9")).state == JobState.PAUSED  # type: ignore[union-attr]
    await controls.apply(STUDIO, Resume(origin_job_id="j9", remote_job_id="r9", epoch=2, seq=4))
    assert (await store.get_job("r9")).state == JobState.PAUSED, "another placement's resume"  # type: ignore[union-attr]
    assert (await store.get_job_by_origin_id("j9")) == await store.get_job("r9")
    assert await store.get_job_by_origin_id("nope") is None

    # Snapshots of the accepted job are numbered durably; an unchanged one is not sent again.
    outbox = Outbox(fed, _NoClient(), Contact(), [STUDIO])
    relay = ProgressRelay(jobs=site, offers=fed, outbox=outbox)
    await relay.mark(["r9", "local-job"])
    first = await relay.flush("r9")
    assert first is not None and first.seq == 1 and first.origin_job_id == "j9"
    assert first.state == "paused" and first.tasks == ()
    assert await relay.flush("r9") is None
    await lifecycle.resume("r9", at=3.0)
    second = await relay.flush("r9")
    assert second is not None and second.seq == 2 and second.state == "queued"
    pending = await fed.pending_outbox()
    assert [e.id for e in pending] == ["progress:r9:1:2"], "the newer snapshot replaces the older"


class _NoQueue:
    async def enqueue(
        self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
    ) -> None:
        raise AssertionError("nothing is sent back to the peer that asked")


class _NoClient:
    async def send(self, *args: object, **kwargs: object) -> Message:
        raise ConflictError("not used")


async def test_a_running_job_keeps_one_progress_entry_and_its_latest_pause_or_resume(
    store: Store,
) -> None:
    fed = await FederationStore.open(store.database)

    async def put(msg_id: str, kind: str, at: float) -> None:
        await fed.enqueue(
            msg_id=msg_id, peer="studio", kind=kind, job_id="r1", body={}, final=False, at=at
        )

    for n in range(1, 4):  # each delivered before the next is queued
        await put(f"progress:r1:1:{n}", "progress", float(n))
        await fed.outbox_delivered(f"progress:r1:1:{n}", at=n + 0.5)
    await put("pause:r1:1:10", "pause", 4.0)
    await put("resume:r1:1:11", "resume", 5.0)
    await put("progress:r1:1:4", "progress", 6.0)
    kept = [await fed.get_outbox(f"progress:r1:1:{n}") for n in range(1, 5)]
    assert [e is not None for e in kept] == [False, False, False, True]
    assert [e.id for e in await fed.pending_outbox()] == ["resume:r1:1:11", "progress:r1:1:4"]


async def test_snapshots_carry_what_changed_since_the_origin_acknowledged_one(
    store: Store,
) -> None:
    """The remote's relay over the real outbox: after an acknowledged snapshot only changed
    tasks go; a snapshot replaced before delivery (lost) loses nothing."""
    fed = await FederationStore.open(store.database)
    lifecycle = Lifecycle(store)
    site = Site(store, lifecycle)
    job = make_job("r7", placement=LOCAL, placement_epoch=0, remote_job_id=None, origin_job_id="j7")
    await lifecycle.create(job, chunk_frames(parse_frames("1-4"), 1))
    await fed.insert_offer(
        key="studio:j7:1", site="studio", origin_job_id="j7", epoch=1, body={}, at=1.0
    )
    await fed.commit_offer("studio:j7:1", "r7", at=2.0)
    outbox = Outbox(fed, _NoClient(), Contact(), [STUDIO])
    relay = ProgressRelay(jobs=site, offers=fed, outbox=outbox)
    tasks = await store.list_tasks("r7")

    async def start(index: int) -> None:
        claim = TaskClaim(
            task_id=tasks[index].id, job_id="r7", attempt=1, server_id="s1", lease_expires_at=1e9
        )
        assert await lifecycle.assign([claim], at=10.0 + index)

    async def acknowledge(msg: Progress) -> None:
        entry = await fed.get_outbox(f"progress:r7:1:{msg.seq}")
        assert entry is not None
        await fed.outbox_delivered(entry.id, at=20.0)
        relay.delivered(entry)  # what the outbox calls once the origin acknowledged it

    await relay.mark(["r7"])
    await start(0)
    first = await relay.flush("r7")
    assert first is not None and [t.index for t in first.tasks] == [0]
    await acknowledge(first)
    await start(1)
    second = await relay.flush("r7")
    assert second is not None and [t.index for t in second.tasks] == [1]  # task 0 unchanged
    await start(2)  # snapshot 2 never acknowledged: replaced in the outbox by snapshot 3
    third = await relay.flush("r7")
    assert third is not None and [t.index for t in third.tasks] == [1, 2]
    assert await fed.get_outbox(f"progress:r7:1:{second.seq}") is None
    await acknowledge(third)
    await start(3)
    fourth = await relay.flush("r7")
    assert fourth is not None and [t.index for t in fourth.tasks] == [3]
    assert fourth.frames_total == 4 and fourth.state == "running"


async def test_a_failed_fetch_is_tried_again_with_a_later_snapshot_that_does_not_list_it(
    store: Store, tmp_path: Path
) -> None:
    """Snapshots carry only changes: a done task is listed until acknowledged, so a fetch
    that failed is remembered and retried with the job's next snapshot."""
    o = await origin(store, tmp_path)
    download = o.remote.download

    async def unavailable(*args: object, **kwargs: object) -> None:
        raise PeerUnavailableError("facility", "connection reset")

    o.remote.download = unavailable  # type: ignore[method-assign]
    assert await o.results.progress(FACILITY, progress(1, done(0)))
    await o.stream.drain("j1")
    assert (await o.tasks())[0].state != TaskState.DONE and await store.list_frames("j1") == []
    o.remote.download = download  # type: ignore[method-assign]
    running = TaskProgress(index=1, state="running", attempt=1, server="fac-1")
    assert await o.results.progress(FACILITY, progress(2, running))  # task 0 not listed again
    await o.stream.drain("j1")
    assert (await o.tasks())[0].state == TaskState.DONE
    assert [f.frame for f in await store.list_frames("j1")] == [1]
