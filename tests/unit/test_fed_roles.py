"""Each federation role against small in-memory fakes of its narrow interfaces.

No database, no network, no TLS: the fakes below implement the Protocols of
:mod:`federation.interfaces` and are handed to the roles' real constructors,
so mypy checks that each fits. End-to-end behaviour is covered by tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, TypeVar

import pytest

from federation.accept import Acceptance, remote_job_id
from federation.certs import TlsFiles
from federation.client import PeerRefusedError, PeerUnavailableError
from federation.forwarding import Forwarding
from federation.interfaces import FileSink
from federation.notices import FinalNotices
from federation.outbox import Outbox
from federation.peers import FederationConfig, PeerConfig
from federation.protocol import (
    Ack,
    Cancel,
    Commit,
    CommitReply,
    FrameFileOutput,
    FrameOutput,
    JobSpec,
    Message,
    Notify,
    NotifyState,
    Offer,
    OfferReply,
)
from federation.reconcile import Reconciler
from federation.results import FetchError, Results
from federation.store import ForwardRow, OfferRow, OutboxEntry
from federation.streaming import FrameStream
from scheduler.dependencies import DependencyKind, Upstream
from scheduler.placement import PeerCapacity
from scheduler.profile import JobProfile, ServerView
from site_agent.errors import ConflictError, JobExistsError
from site_agent.lifecycle import TransactionHook
from site_agent.store.records import (
    LOCAL,
    FrameRecord,
    JobRecord,
    JobState,
    RelayedTask,
    TaskRecord,
)
from spillway.core.records import FileEntry, FileKind

_R = TypeVar("_R", bound=Message)
SHA = "a" * 64
DONE = DependencyKind.DONE
STUDIO = PeerConfig(name="studio", url="https://studio:8743")
FACILITY = PeerConfig(name="facility", url="https://facility:8743")


def server(name: str = "s1", *, package: str = "povray", free: int = 1) -> ServerView:
    return ServerView(
        id=name,
        name=name,
        cores=8,
        memory_mb=8192,
        gpus=0,
        packages={package: "3.7.0"},
        tags=frozenset(),
        slots=2,
        free_slots=free,
        status="idle",
    )


def make_job(job_id: str = "j1", *, placement: str = LOCAL, epoch: int = 0) -> JobRecord:
    return JobRecord(
        id=job_id,
        name=f"shot {job_id}",
        owner="ana",
        origin_site="studio",
        priority=50,
        profile=JobProfile(package="povray"),
        frames="1-2",
        frame_count=2,
        chunk_size=1,
        scene="scene.pov",
        manifest=(FileEntry(path="scene.pov", sha256=SHA, size=12),),
        output_name="shot",
        placement=placement,
        placement_epoch=epoch,
        created_at=1.0,
        updated_at=1.0,
    )


def make_offer(key: str = "studio:j1:1", *, epoch: int = 1) -> Offer:
    spec = JobSpec(
        name="shot",
        owner="ana",
        priority=50,
        profile={"package": "povray"},
        frames="1-2",
        chunk_size=1,
        scene="scene.pov",
        output_name="shot",
    )
    manifest = (FileEntry(path="scene.pov", sha256=SHA, size=12),)
    return Offer(key=key, origin_job_id="j1", epoch=epoch, job=spec, manifest=manifest)


# --- fakes of the site ---------------------------------------------------------------


class FakeJobs:
    """JobControl, ForwardedJobs, FinishedJobs and QueueDepth over a dict."""

    def __init__(self, *jobs: JobRecord) -> None:
        self.jobs = {j.id: j for j in jobs}
        self.chunks: dict[str, Sequence[tuple[int, ...]]] = {}
        self.frames: dict[str, list[FrameRecord]] = {}
        self.cancelled: list[str] = []
        self.waiting = 0
        self.upstreams: dict[str, tuple[Upstream, ...]] = {}

    async def get_job(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def create_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> None:
        if job.id in self.jobs:
            raise JobExistsError(job.id)
        self.jobs[job.id], self.chunks[job.id] = job, chunks

    async def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self._set(job_id, state=JobState.CANCELLED)

    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        return list(self.frames.get(job_id, []))

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        return next((f for f in self.frames.get(job_id, []) if f.frame == frame), None)

    async def set_job_placement(
        self,
        job_id: str,
        *,
        placement: str,
        reason: str,
        epoch: int,
        remote_job_id: str | None,
        at: float,
    ) -> None:
        self._set(job_id, placement=placement, remote_job_id=remote_job_id)

    async def replace_job(
        self,
        job_id: str,
        *,
        old_epoch: int,
        placement: str,
        reason: str,
        at: float,
        hook: TransactionHook | None = None,
    ) -> int | None:
        job = self.jobs[job_id]
        if job.placement_epoch != old_epoch or job.state.finished:
            return None
        self._set(
            job_id,
            placement=placement,
            placement_reason=reason,
            placement_epoch=old_epoch + 1,
            remote_job_id=None,
        )
        if hook is not None:
            await hook(NO_CONNECTION)
        return old_epoch + 1

    async def update_job_state(
        self,
        job_id: str,
        state: JobState,
        *,
        at: float,
        expected: Iterable[JobState] | None = None,
        error: str = "",
    ) -> bool:
        if expected is not None and self.jobs[job_id].state not in set(expected):
            return False
        self._set(job_id, state=state)
        return True

    async def remote_start(self, job_id: str, *, at: float) -> bool:
        return await self.update_job_state(
            job_id, JobState.RUNNING, at=at, expected=(JobState.QUEUED,)
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
        usage: object = None,
        tasks: Sequence[RelayedTask] = (),
    ) -> bool:
        job = self.jobs[job_id]
        if job.placement_epoch != epoch or job.state.finished:
            return False
        self.frames[job_id] = list(frames)
        self._set(job_id, state=state, error=error)
        if hook is not None:
            await hook(NO_CONNECTION)
        return True

    async def local_frames_waiting(self) -> int:
        return self.waiting

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return []

    async def server_names(self) -> dict[str, str]:
        return {}

    async def relay_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        tasks: Sequence[RelayedTask],
        at: float,
        hook: TransactionHook | None = None,
    ) -> bool:
        return self.jobs[job_id].placement_epoch == epoch

    async def record_relayed_frames(
        self,
        job_id: str,
        *,
        epoch: int,
        task: RelayedTask,
        frames: Sequence[FrameRecord],
        at: float,
    ) -> bool:
        self.frames.setdefault(job_id, []).extend(frames)
        return True

    async def seconds_per_frame(self) -> float | None:
        return 1.0

    async def job_upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        return {j: self.upstreams[j] for j in job_ids if j in self.upstreams}

    def _set(self, job_id: str, **changes: Any) -> None:
        self.jobs[job_id] = dataclasses.replace(self.jobs[job_id], **changes)


NO_CONNECTION: Any = None
"""Hooks made by the fakes below never touch their connection."""


class FakeSite:
    """ServerViews, BlobIndex, BlobFiles, FrameWriter and Wakeup."""

    def __init__(self, root: Path, *views: ServerView) -> None:
        self.views = list(views)
        self.blobs: set[str] = set()
        self.root = root
        self.wakes = 0

    async def server_views(self) -> list[ServerView]:
        return self.views

    def missing(self, hashes: Iterable[str]) -> list[str]:
        return sorted(set(hashes) - self.blobs)

    def path_for(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def job_dir(self, job_name: str, job_id: str) -> Path:
        return self.root / f"{job_name}-{job_id}"

    max_frame_bytes = 1 << 30

    def frame_path(self, job_dir: Path, file_name: str) -> Path:
        return job_dir / file_name

    def wake(self) -> None:
        self.wakes += 1


# --- fakes of the federation's rows and parts ------------------------------------------


class FakeRows:
    """OfferRows, OutboxRows and ForwardRows over dicts."""

    def __init__(self, site_jobs: Mapping[str, JobRecord] | None = None) -> None:
        self.offers: dict[str, OfferRow] = {}
        self.outbox: dict[str, OutboxEntry] = {}
        self.forwards: dict[tuple[str, int], ForwardRow] = {}
        self.site_jobs = site_jobs if site_jobs is not None else {}
        """The site's jobs (the SQL of ``unforwarded_jobs`` joins them)."""

    async def insert_offer(
        self,
        *,
        key: str,
        site: str,
        origin_job_id: str,
        epoch: int,
        body: Mapping[str, Any],
        at: float,
    ) -> OfferRow:
        row = OfferRow(
            key=key,
            site=site,
            origin_job_id=origin_job_id,
            epoch=epoch,
            body=body,
            remote_job_id=None,
            created_at=at,
            committed_at=None,
        )
        return self.offers.setdefault(key, row)

    async def get_offer(self, key: str) -> OfferRow | None:
        return self.offers.get(key)

    async def offer_by_job(self, remote_job_id: str) -> OfferRow | None:
        return next((o for o in self.offers.values() if o.remote_job_id == remote_job_id), None)

    async def pending_offers(self, site: str) -> list[OfferRow]:
        return [o for o in self.offers.values() if o.site == site and o.remote_job_id is None]

    async def commit_offer(self, key: str, remote_job_id: str, *, at: float) -> bool:
        offer = self.offers[key]
        if offer.remote_job_id is not None:
            return False
        self.offers[key] = dataclasses.replace(offer, remote_job_id=remote_job_id, committed_at=at)
        return True

    async def finished_offers_without_final(self) -> list[OfferRow]:
        return []

    async def enqueue(
        self,
        *,
        msg_id: str,
        peer: str,
        kind: str,
        job_id: str,
        body: Mapping[str, Any],
        final: bool,
        at: float,
    ) -> bool:
        entry = OutboxEntry(
            id=msg_id,
            peer=peer,
            kind=kind,
            job_id=job_id,
            body=body,
            final=final,
            attempts=0,
            created_at=at,
            delivered_at=None,
            last_error="",
        )
        return self.outbox.setdefault(msg_id, entry) is entry

    async def pending_outbox(self, limit: int = 100) -> list[OutboxEntry]:
        return [e for e in self.outbox.values() if e.delivered_at is None][:limit]

    async def outbox_delivered(self, msg_id: str, *, at: float) -> None:
        self.outbox[msg_id] = dataclasses.replace(self.outbox[msg_id], delivered_at=at)

    async def outbox_attempt(self, msg_id: str, error: str) -> None:
        entry = self.outbox[msg_id]
        self.outbox[msg_id] = dataclasses.replace(
            entry, attempts=entry.attempts + 1, last_error=error
        )

    async def start_forward(self, job_id: str, epoch: int, peer: str, *, at: float) -> None:
        self.forwards.setdefault(
            (job_id, epoch),
            ForwardRow(
                job_id=job_id,
                epoch=epoch,
                peer=peer,
                remote_job_id=None,
                state="offering",
                remote_state="",
                frames_done=0,
                bytes_sent=0,
                blobs_sent=0,
                blobs_skipped=0,
                last_contact_at=None,
                created_at=at,
                updated_at=at,
            ),
        )

    async def add_transfer(
        self,
        job_id: str,
        epoch: int,
        *,
        bytes_sent: int,
        blobs_sent: int,
        blobs_skipped: int,
        at: float,
    ) -> None:
        row = self.forwards[(job_id, epoch)]
        self.forwards[(job_id, epoch)] = dataclasses.replace(
            row, bytes_sent=row.bytes_sent + bytes_sent, blobs_sent=row.blobs_sent + blobs_sent
        )

    async def set_forward_state(
        self, job_id: str, epoch: int, state: str, *, remote_job_id: str | None, at: float
    ) -> None:
        row = self.forwards[(job_id, epoch)]
        self.forwards[(job_id, epoch)] = dataclasses.replace(
            row, state=state, remote_job_id=remote_job_id or row.remote_job_id, last_contact_at=at
        )

    async def forward_contact(
        self, job_id: str, epoch: int, *, remote_state: str, frames_done: int, at: float
    ) -> None:
        row = self.forwards[(job_id, epoch)]
        self.forwards[(job_id, epoch)] = dataclasses.replace(
            row, remote_state=remote_state, frames_done=frames_done, last_contact_at=at
        )

    def forward_state_hook(
        self, job_id: str, epoch: int, state: str, *, at: float
    ) -> TransactionHook:
        async def hook(conn: Any) -> None:
            await self.set_forward_state(job_id, epoch, state, remote_job_id=None, at=at)

        return hook

    async def get_forward(self, job_id: str, epoch: int) -> ForwardRow | None:
        return self.forwards.get((job_id, epoch))

    def progress_hook(
        self,
        job_id: str,
        epoch: int,
        *,
        seq: int,
        remote_state: str,
        frames_done: int,
        at: float,
    ) -> TransactionHook:
        async def hook(conn: Any) -> None:
            row = self.forwards[(job_id, epoch)]
            self.forwards[(job_id, epoch)] = dataclasses.replace(
                row, progress_seq=seq, remote_state=remote_state, frames_done=frames_done
            )

        return hook

    async def open_forwards(self) -> list[ForwardRow]:
        return [r for r in self.forwards.values() if r.state in ("offering", "committed")]

    async def unforwarded_jobs(self) -> list[str]:
        return [
            j.id
            for j in self.site_jobs.values()
            if j.placement != LOCAL
            and j.state is JobState.QUEUED
            and (j.id, j.placement_epoch) not in self.forwards
        ]

    async def forward_peers(self, job_id: str) -> list[str]:
        return sorted(
            {
                peer
                for (job, _), row in self.forwards.items()
                if job == job_id
                for peer in [row.peer]
            }
        )

    async def peer_open_jobs(self, site: str, *, pending_since: float) -> int:
        return sum(o.site == site for o in self.offers.values())

    async def offered_bytes_since(self, site: str, since: float) -> int:
        return sum(
            int(m["size"])
            for o in self.offers.values()
            if o.site == site and o.created_at >= since
            for m in o.body.get("manifest", ())
        )


class FakeClient:
    """PeerSender, ForwardingClient and FrameDownloader with scripted answers."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Message]] = []
        self.replies: dict[str, list[Message | Exception]] = {}
        self.status: dict[str, Any] = {}
        self.files: dict[str, bytes] = {}
        self.uploaded: list[str] = []

    async def send(
        self,
        peer: PeerConfig,
        path: str,
        msg: Message,
        reply: type[_R],
        *,
        msg_id: str | None = None,
        timeout_s: float = 30,
    ) -> _R:
        self.sent.append((peer.name, path, msg))
        queue = self.replies.get(path, [])
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, reply)
        return answer

    async def get_json(self, peer: PeerConfig, path: str, *, timeout_s: float = 15) -> Any:
        answer = self.status[path]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def upload_blob(self, peer: PeerConfig, sha256: str, path: Path) -> int:
        self.uploaded.append(sha256)
        return 12

    async def download(self, peer: PeerConfig, path: str, target: FileSink) -> None:
        target.write(self.files[path])


class FakePeers:
    """PeerContact and PeerCapacities."""

    def __init__(self, *capacities: PeerCapacity) -> None:
        self.capacity = list(capacities)
        self.held: dict[str, set[str]] = {}
        self.ok: list[str] = []
        self.failed: list[str] = []
        self.refusals: list[tuple[str, str, tuple[str, ...]]] = []

    def contact_ok(self, peer: str) -> None:
        self.ok.append(peer)

    def contact_failed(self, peer: str, error: str) -> None:
        self.failed.append(peer)

    def capacities(
        self, peers: Sequence[PeerConfig], manifest: Sequence[FileEntry] = ()
    ) -> list[PeerCapacity]:
        names = {p.name for p in peers}
        return [c for c in self.capacity if c.name in names]

    def note_blobs(self, peer: str, hashes: Iterable[str]) -> None:
        self.held.setdefault(peer, set()).update(hashes)

    async def refused(
        self, peer: str, job_id: str, codes: Collection[str], reasons: Sequence[str] = ()
    ) -> None:
        self.refusals.append((peer, job_id, tuple(codes)))

    def refusing(self, job_id: str) -> frozenset[str]:
        return frozenset(peer for peer, job, _ in self.refusals if job == job_id)


class FakeQueue:
    """MessageQueue: remembers what was queued."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str, Message, bool]] = []

    async def enqueue(
        self, *, peer: str, kind: str, job_id: str, message: Message, msg_id: str, final: bool
    ) -> None:
        self.queued.append((peer, msg_id, message, final))


class FakeFinish:
    """RemoteFinish: remembers polled statuses."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, dict[str, Any]]] = []

    async def apply_status(self, peer: PeerConfig, row: ForwardRow, status: dict[str, Any]) -> None:
        self.applied.append((row.job_id, status))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fed_config(*peers: PeerConfig, lease_s: float = 60.0) -> FederationConfig:
    tls = TlsFiles(ca=Path("ca.pem"), cert=Path("site.pem"), key=Path("site.key"))
    return FederationConfig(
        tls=tls, peers=peers, listen="127.0.0.1:0", overflow_after_s=None, lease_s=lease_s
    )


async def until(condition: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Let background tasks run until ``condition`` holds."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)


# --- Acceptance (remote side) ------------------------------------------------------


@dataclasses.dataclass
class Remote:
    acceptance: Acceptance
    notices: FinalNotices
    jobs: FakeJobs
    rows: FakeRows
    queue: FakeQueue
    site: FakeSite


def remote(tmp_path: Path, *views: ServerView) -> Remote:
    jobs, rows, queue = FakeJobs(), FakeRows(), FakeQueue()
    site = FakeSite(tmp_path, *(views or (server(),)))
    acceptance = Acceptance(
        name="facility",
        jobs=jobs,
        offers=rows,
        blobs=site,
        frames=site,
        views=site,
        wakeup=site,
        known_packages={"povray", "blender"},
        load=rows,
        clock=Clock(),
    )
    notices = FinalNotices(jobs=jobs, offers=rows, outbox=queue)
    return Remote(acceptance, notices, jobs, rows, queue, site)


async def test_an_offer_a_server_here_can_run_is_accepted_with_the_missing_blobs(
    tmp_path: Path,
) -> None:
    r = remote(tmp_path)
    reply = await r.acceptance.offer(STUDIO, make_offer())
    assert reply.accepted and reply.missing == (SHA,) and reply.remote_job_id is None
    assert list(r.rows.offers) == ["studio:j1:1"]
    assert await r.acceptance.blob_allowed(STUDIO, SHA)
    assert not await r.acceptance.blob_allowed(FACILITY, SHA)


async def test_an_offer_no_server_here_can_run_is_rejected_and_not_recorded(
    tmp_path: Path,
) -> None:
    r = remote(tmp_path, server(package="blender"))
    reply = await r.acceptance.offer(STUDIO, make_offer())
    assert not reply.accepted
    assert "no server at facility can run it" in reply.reasons[0]
    assert r.rows.offers == {}


async def test_an_offer_keyed_for_another_site_is_rejected(tmp_path: Path) -> None:
    r = remote(tmp_path)
    reply = await r.acceptance.offer(STUDIO, make_offer("facility:j1:1"))
    assert not reply.accepted and "must start with 'studio:'" in reply.reasons[0]


async def test_commit_waits_for_the_blobs_then_creates_one_job_however_often_retried(
    tmp_path: Path,
) -> None:
    r = remote(tmp_path)
    await r.acceptance.offer(STUDIO, make_offer())
    with pytest.raises(ConflictError, match="not uploaded yet"):
        await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))
    r.site.blobs.add(SHA)
    first = await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))
    again = await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))
    assert first.remote_job_id == again.remote_job_id == remote_job_id("studio:j1:1")
    job = r.jobs.jobs[first.remote_job_id]
    assert (job.origin_site, job.origin_job_id, job.forward_allowed) == ("studio", "j1", False)
    assert r.jobs.chunks[job.id] == [(1,), (2,)]
    assert r.site.wakes == 1
    offer_again = await r.acceptance.offer(STUDIO, make_offer())
    assert offer_again.remote_job_id == first.remote_job_id


async def test_a_commit_retried_after_a_crash_between_its_writes_adopts_the_job(
    tmp_path: Path,
) -> None:
    r = remote(tmp_path)
    r.site.blobs.add(SHA)
    await r.acceptance.offer(STUDIO, make_offer())
    await r.jobs.create_job(make_job(remote_job_id("studio:j1:1")), [(1,), (2,)])
    reply = await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))
    assert reply.remote_job_id == remote_job_id("studio:j1:1")
    assert r.rows.offers["studio:j1:1"].remote_job_id == reply.remote_job_id


async def test_a_cancel_of_another_epoch_is_ignored(tmp_path: Path) -> None:
    r = remote(tmp_path)
    r.site.blobs.add(SHA)
    await r.acceptance.offer(STUDIO, make_offer(epoch=1))
    job_id = (await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))).remote_job_id
    stale = Cancel(origin_job_id="j1", remote_job_id=job_id, epoch=0)
    assert (await r.acceptance.cancel(STUDIO, stale)).of == job_id
    assert r.jobs.cancelled == []
    await r.acceptance.cancel(STUDIO, dataclasses.replace(stale, epoch=1))
    assert r.jobs.cancelled == [job_id]


async def test_a_finished_accepted_job_queues_one_final_notification(tmp_path: Path) -> None:
    r = remote(tmp_path)
    r.site.blobs.add(SHA)
    await r.acceptance.offer(STUDIO, make_offer())
    job_id = (await r.acceptance.commit(STUDIO, Commit(key="studio:j1:1"))).remote_job_id
    await r.jobs.update_job_state(job_id, JobState.DONE, at=5.0)
    r.jobs.frames[job_id] = [
        FrameRecord(
            job_id=job_id,
            frame=1,
            task_id=1,
            name="shot_0001.png",
            sha256=SHA,
            size=3,
            server_id="s1",
            rendered_at=4.0,
        )
    ]
    await r.notices.job_finished(job_id)
    [(peer, msg_id, message, final)] = r.queue.queued
    assert (peer, msg_id, final) == ("studio", f"notify:{job_id}:1:final", True)
    assert isinstance(message, Notify) and message.state == NotifyState.DONE
    assert [f.frame for f in message.frames] == [1]


# --- Forwarding (origin side) ------------------------------------------------------


@dataclasses.dataclass
class Origin:
    forwarding: Forwarding
    reconciler: Reconciler
    jobs: FakeJobs
    rows: FakeRows
    client: FakeClient
    peers: FakePeers
    queue: FakeQueue
    finish: FakeFinish
    site: FakeSite
    clock: Clock


def origin(tmp_path: Path, *jobs: JobRecord, views: Sequence[ServerView] = ()) -> Origin:
    fake_jobs, client, queue = FakeJobs(*jobs), FakeClient(), FakeQueue()
    rows = FakeRows(fake_jobs.jobs)
    capable = PeerCapacity(name="facility", servers=(server("f1"),), queue_depth=0)
    peers, finish, site, clock = (
        FakePeers(capable),
        FakeFinish(),
        FakeSite(tmp_path, *views),
        Clock(),
    )
    forwarding = Forwarding(
        name="studio",
        config=fed_config(FACILITY, lease_s=60.0),
        jobs=fake_jobs,
        forwards=rows,
        client=client,
        peers=peers,
        outbox=queue,
        blobs=site,
        views=site,
        wakeup=site,
        clock=clock,
    )
    reconciler = Reconciler(
        config=fed_config(FACILITY, lease_s=60.0),
        jobs=fake_jobs,
        forwards=rows,
        client=client,
        peers=peers,
        results=finish,
        forwarding=forwarding,
        clock=clock,
        poll_interval_s=0.001,
    )
    return Origin(
        forwarding, reconciler, fake_jobs, rows, client, peers, queue, finish, site, clock
    )


async def test_a_job_a_local_server_can_run_stays_here(tmp_path: Path) -> None:
    o = origin(tmp_path, views=[server()])
    placed = await o.forwarding.place(make_job(), None)
    assert placed.placement == LOCAL and placed.placement_epoch == 0


async def test_a_job_no_local_server_can_run_goes_to_a_capable_peer(tmp_path: Path) -> None:
    o = origin(tmp_path, views=[server(package="blender")])
    placed = await o.forwarding.place(make_job(), None)
    assert placed.placement == "facility" and placed.placement_epoch == 1
    unreachable = dataclasses.replace(o.peers.capacity[0], reachable=False)
    o.peers.capacity = [unreachable]
    assert (await o.forwarding.place(make_job(), None)).placement == LOCAL


async def test_forwarding_offers_uploads_the_missing_blobs_and_records_the_commit(
    tmp_path: Path,
) -> None:
    job = make_job(placement="facility", epoch=1)
    o = origin(tmp_path, job)
    o.client.replies["/fed/v1/offer"] = [
        OfferReply(key="studio:j1:1", accepted=True, missing=(SHA,))
    ]
    o.client.replies["/fed/v1/commit"] = [CommitReply(key="studio:j1:1", remote_job_id="r1")]
    o.forwarding.start(job)
    await until(lambda: o.rows.forwards.get(("j1", 1)) is not None)
    await until(lambda: o.rows.forwards[("j1", 1)].state == "committed")
    assert o.client.uploaded == [SHA]
    assert o.jobs.jobs["j1"].remote_job_id == "r1"
    assert o.rows.forwards[("j1", 1)].bytes_sent == 12
    offer = o.client.sent[0][2]
    assert isinstance(offer, Offer) and offer.key == "studio:j1:1"
    await o.forwarding.close()


async def test_resume_offers_ready_jobs_at_a_peer_that_were_never_offered(
    tmp_path: Path,
) -> None:
    """The agent stopped right after a job placed at a peer became ready (created, or
    released by its upstream): no forward record exists, nothing else will offer it."""
    at_peer = {j: make_job(j, placement="facility", epoch=1) for j in ("new", "released", "held")}
    running = make_job("busy", placement="facility", epoch=1)
    o = origin(tmp_path, *at_peer.values(), running, make_job("here"))
    o.jobs.upstreams["released"] = (Upstream(job_id="up1", name="up1", kind=DONE, state="done"),)
    o.jobs.upstreams["held"] = (
        Upstream(job_id="up1", name="up1", kind=DONE, state="done"),
        Upstream(job_id="up2", name="up2", kind=DONE, state="running"),
    )
    await o.rows.start_forward("busy", 1, "facility", at=0.0)
    await o.rows.set_forward_state("busy", 1, "committed", remote_job_id="r1", at=0.0)
    o.client.replies["/fed/v1/offer"] = [PeerUnavailableError("facility", "down")]

    await o.reconciler.resume()
    await until(lambda: {"new", "released"} <= {j for j, _ in o.rows.forwards})
    assert sorted(o.rows.forwards) == [("busy", 1), ("new", 1), ("released", 1)]
    await until(
        lambda: (
            {m.origin_job_id for _, _, m in o.client.sent if isinstance(m, Offer)}
            == {"new", "released"}
        )
    )
    await o.forwarding.close()


async def test_a_rejected_offer_re_places_the_job_here(tmp_path: Path) -> None:
    job = make_job(placement="facility", epoch=1)
    o = origin(tmp_path, job, views=[server()])
    o.client.replies["/fed/v1/offer"] = [
        OfferReply(key="studio:j1:1", accepted=False, reasons=("busy",))
    ]
    o.forwarding.start(job)
    await until(lambda: o.jobs.jobs["j1"].placement_epoch == 2)
    assert o.jobs.jobs["j1"].placement == LOCAL
    # Marked rejected, then abandoned by the re-placement in the same step.
    assert o.rows.forwards[("j1", 1)].state == "abandoned"
    assert o.site.wakes == 1
    await o.forwarding.close()


async def test_a_peer_silent_beyond_the_lease_loses_the_job(tmp_path: Path) -> None:
    job = dataclasses.replace(
        make_job(placement="facility", epoch=1), remote_job_id="r1", state=JobState.RUNNING
    )
    o = origin(tmp_path, job, views=[server()])
    await o.rows.start_forward("j1", 1, "facility", at=0.0)
    await o.rows.set_forward_state("j1", 1, "committed", remote_job_id="r1", at=0.0)
    o.client.status["/fed/v1/jobs/r1"] = PeerUnavailableError("facility", "timed out")
    o.clock.now = 30.0  # within the lease: polled, kept
    loop = asyncio.create_task(o.reconciler.run())
    await until(lambda: "facility" in o.peers.failed)
    assert o.jobs.jobs["j1"].placement_epoch == 1
    o.clock.now = 61.0  # beyond the 60 s lease
    await until(lambda: o.jobs.jobs["j1"].placement_epoch == 2)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert o.jobs.jobs["j1"].placement == LOCAL and o.site.wakes == 1
    assert o.rows.forwards[("j1", 1)].state == "abandoned"
    [(peer, msg_id, message, _)] = o.queue.queued
    assert (peer, msg_id) == ("facility", "cancel:j1:1")
    assert isinstance(message, Cancel) and message.remote_job_id == "r1"


async def test_a_poll_that_finds_the_remote_job_done_applies_it(tmp_path: Path) -> None:
    job = dataclasses.replace(make_job(placement="facility", epoch=1), remote_job_id="r1")
    o = origin(tmp_path, job)
    await o.rows.start_forward("j1", 1, "facility", at=0.0)
    await o.rows.set_forward_state("j1", 1, "committed", remote_job_id="r1", at=0.0)
    o.client.status["/fed/v1/jobs/r1"] = {"state": "done", "frames_done": 2, "frames": []}
    o.clock.now = 10.0
    loop = asyncio.create_task(o.reconciler.run())
    await until(lambda: bool(o.finish.applied))
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert o.finish.applied[0][0] == "j1"
    assert o.rows.forwards[("j1", 1)].remote_state == "done"


# --- Results (origin side) ---------------------------------------------------------

FRAME_BYTES = {1: b"frame one", 2: b"frame two"}


def outputs(*, corrupt: bool = False) -> tuple[FrameOutput, ...]:
    return tuple(
        FrameOutput(
            frame=n,
            sha256=hashlib.sha256(b"other" if corrupt and n == 2 else data).hexdigest(),
            size=len(data),
            name=f"shot_{n:04d}.png",
        )
        for n, data in FRAME_BYTES.items()
    )


@dataclasses.dataclass
class Back:
    results: Results
    jobs: FakeJobs
    rows: FakeRows
    client: FakeClient
    site: FakeSite


async def back(tmp_path: Path) -> Back:
    job = dataclasses.replace(make_job(placement="facility", epoch=1), remote_job_id="r1")
    jobs, rows, client, site = FakeJobs(job), FakeRows(), FakeClient(), FakeSite(tmp_path)
    await rows.start_forward("j1", 1, "facility", at=0.0)
    for n, data in FRAME_BYTES.items():
        client.files[f"/fed/v1/jobs/r1/frames/{n}"] = data
    results = Results(
        name="studio",
        jobs=jobs,
        forwards=rows,
        client=client,
        frames=site,
        contact=FakePeers(),
        stream=FrameStream(client=client, frames=site, jobs=jobs),
        clock=Clock(),
    )
    return Back(results, jobs, rows, client, site)


def notify(state: NotifyState, *, epoch: int = 1, corrupt: bool = False) -> Notify:
    return Notify(
        origin_job_id="j1",
        remote_job_id="r1",
        epoch=epoch,
        state=state,
        frames_done=2,
        frames_total=2,
        frames=outputs(corrupt=corrupt) if state == NotifyState.DONE else (),
    )


async def test_a_final_notification_fetches_the_frames_and_finishes_the_job_once(
    tmp_path: Path,
) -> None:
    b = await back(tmp_path)
    await b.results.notify(FACILITY, notify(NotifyState.DONE))
    job = b.jobs.jobs["j1"]
    assert job.state == JobState.DONE
    assert [f.frame for f in b.jobs.frames["j1"]] == [1, 2]
    assert b.rows.forwards[("j1", 1)].state == "finished"
    job_dir = b.site.job_dir(job.name, job.id)
    assert (job_dir / "shot_0002.png").read_bytes() == b"frame two"
    b.jobs.frames["j1"] = []
    await b.results.notify(FACILITY, notify(NotifyState.DONE))  # a redelivery
    assert b.jobs.frames["j1"] == []


async def test_every_file_of_a_frame_is_fetched_and_recorded_with_it(tmp_path: Path) -> None:
    b = await back(tmp_path)
    extra = {
        "shot_0001_R.png": (FileKind.EXTRA, b"right view"),
        ".previews/shot_0001.png.png": (FileKind.PREVIEW, b"preview"),
    }
    for name, (_, data) in extra.items():
        b.client.files[f"/fed/v1/jobs/r1/frames/1/files/{name}"] = data
    files = tuple(
        FrameFileOutput(
            name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind
        )
        for name, (kind, data) in extra.items()
    )
    first, second = outputs()
    msg = dataclasses.replace(
        notify(NotifyState.DONE), frames=(dataclasses.replace(first, files=files), second)
    )
    await b.results.notify(FACILITY, msg)
    assert b.jobs.jobs["j1"].state == JobState.DONE
    job_dir = b.site.job_dir(b.jobs.jobs["j1"].name, "j1")
    for name, (_, data) in extra.items():
        assert (job_dir / name).read_bytes() == data
    recorded = {f.frame: f for f in b.jobs.frames["j1"]}
    assert {(f.name, f.kind) for f in recorded[1].files} == {
        (name, kind) for name, (kind, _) in extra.items()
    }
    assert recorded[2].files == ()


async def test_a_frame_file_name_that_leaves_the_job_folder_fails_that_frame(
    tmp_path: Path,
) -> None:
    b = await back(tmp_path)
    bad = FrameFileOutput(name="sub/x.exr", sha256="a" * 64, size=1, kind=FileKind.EXTRA)
    first, second = outputs()
    msg = dataclasses.replace(
        notify(NotifyState.DONE), frames=(dataclasses.replace(first, files=(bad,)), second)
    )
    await b.results.notify(FACILITY, msg)
    job = b.jobs.jobs["j1"]
    assert job.state == JobState.FAILED and "unusable file name" in job.error
    assert [f.frame for f in b.jobs.frames["j1"]] == [2]


async def test_a_notification_of_an_older_placement_is_ignored(tmp_path: Path) -> None:
    b = await back(tmp_path)
    await b.results.notify(FACILITY, notify(NotifyState.DONE, epoch=0))
    await b.results.notify(FACILITY, notify(NotifyState.FAILED, epoch=2))
    assert b.jobs.jobs["j1"].state == JobState.QUEUED
    assert b.rows.forwards[("j1", 1)].state == "offering"


async def test_a_frame_with_the_wrong_hash_fails_the_job_and_keeps_the_good_frames(
    tmp_path: Path,
) -> None:
    """Fetching the same corrupt bytes again cannot help: the origin records the good frames,
    fails the job naming the bad one, and acknowledges (the notification does not raise)."""
    b = await back(tmp_path)
    await b.results.notify(FACILITY, notify(NotifyState.DONE, corrupt=True))
    job = b.jobs.jobs["j1"]
    assert job.state == JobState.FAILED
    assert "1 frame(s) could not be fetched: 2" in job.error
    assert "failed verification" in job.error
    assert [f.frame for f in b.jobs.frames["j1"]] == [1]
    job_dir = b.site.job_dir(job.name, job.id)
    assert sorted(p.name for p in job_dir.iterdir()) == ["shot_0001.png"]


async def test_a_frame_the_peer_cannot_serve_now_finishes_nothing(tmp_path: Path) -> None:
    """A transient failure (the peer unavailable) still makes the remote retry."""
    b = await back(tmp_path)
    path = next(p for p in b.client.files if p.endswith("/frames/2"))
    del b.client.files[path]
    original = b.client.download

    async def unavailable(peer: PeerConfig, path: str, sink: Any) -> None:
        if path not in b.client.files:
            raise PeerUnavailableError("facility", "answered 503 (busy)")
        await original(peer, path, sink)

    b.client.download = unavailable  # type: ignore[method-assign]
    with pytest.raises(FetchError, match="cannot fetch frame 2"):
        await b.results.notify(FACILITY, notify(NotifyState.DONE))
    assert b.jobs.jobs["j1"].state == JobState.QUEUED
    assert "j1" not in b.jobs.frames


async def test_progress_marks_the_job_running_and_failure_records_the_peer(
    tmp_path: Path,
) -> None:
    b = await back(tmp_path)
    await b.results.notify(FACILITY, notify(NotifyState.RUNNING))
    assert b.jobs.jobs["j1"].state == JobState.RUNNING
    assert b.rows.forwards[("j1", 1)].remote_state == "running"
    await b.results.notify(FACILITY, notify(NotifyState.FAILED))
    job = b.jobs.jobs["j1"]
    assert job.state == JobState.FAILED and job.error.startswith("at facility:")


# --- Outbox ------------------------------------------------------------------------


async def test_the_outbox_retries_until_acknowledged_and_then_stops(tmp_path: Path) -> None:
    rows, client, peers = FakeRows(), FakeClient(), FakePeers()
    client.replies["/fed/v1/notify"] = [
        PeerUnavailableError("studio", "connection refused"),
        Ack(of="m1"),
    ]
    outbox = Outbox(rows, client, peers, [STUDIO], clock=Clock(), max_backoff_s=0.01)
    message = notify(NotifyState.RUNNING)
    await outbox.enqueue(
        peer="studio", kind="notify", job_id="r1", message=message, msg_id="m1", final=False
    )
    loop = asyncio.create_task(outbox.run())
    await until(lambda: rows.outbox["m1"].delivered_at is not None)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert rows.outbox["m1"].attempts == 1
    assert peers.failed == ["studio"] and peers.ok == ["studio"]
    assert await rows.pending_outbox() == []
    assert [path for _, path, _ in client.sent] == ["/fed/v1/notify", "/fed/v1/notify"]


async def test_a_message_the_peer_already_has_counts_as_delivered(tmp_path: Path) -> None:
    rows, client = FakeRows(), FakeClient()
    client.replies["/fed/v1/cancel"] = [PeerRefusedError("facility", 409, "duplicate", "seen")]
    outbox = Outbox(rows, client, FakePeers(), [FACILITY], clock=Clock(), max_backoff_s=0.01)
    cancel = Cancel(origin_job_id="j1", remote_job_id="r1", epoch=1)
    await outbox.enqueue(
        peer="facility", kind="cancel", job_id="j1", message=cancel, msg_id="c1", final=True
    )
    await outbox.enqueue(
        peer="nobody", kind="cancel", job_id="j2", message=cancel, msg_id="c2", final=True
    )
    loop = asyncio.create_task(outbox.run())
    await until(lambda: rows.outbox["c1"].delivered_at is not None)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert len(client.sent) == 1  # one try; an unconfigured peer's entry waits untouched
    assert rows.outbox["c2"].delivered_at is None


async def test_an_offline_local_server_is_no_capacity(tmp_path: Path) -> None:
    offline = dataclasses.replace(server(), status="offline", free_slots=0)
    o = origin(tmp_path, views=[offline])
    placed = await o.forwarding.place(make_job(), None)
    assert placed.placement == "facility", placed.placement_reason
    assert "no online local server has povray" in placed.placement_reason
