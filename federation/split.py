"""Origin side: split jobs render here and send parts of their chunks to peers.

A job submitted with ``--split`` (or split by ``[federation] split`` when its
estimated local wait exceeds ``overflow_after``) stays placed here. The
``fed-split`` task sends some of its waiting chunks to each peer that advertises
free capable slots, as a *part*: a job of this site with ``part_of`` set, placed
at the peer, which :class:`~federation.forwarding.Forwarding` offers (the offer
carries the part's frames only), uploads, commits, follows and re-places like any
forwarded job. :func:`scheduler.split.plan_parts` picks the chunks: from the end of
the job (this site's dispatcher takes them from the start), at most the peer's
free capable slots, and no new part for a peer while a part of the job has chunks
it has not started (batches: the next part goes when the peer has started the
last one and advertises free slots again, so faster sites get more).

When a part's chunks come back (its frames fetched into this site's storage under
the part), the split job's tasks for them become done with those frames, linked
into the split job's own folder, so every frame of the job is in one place. A part
that ends without some chunks (failed, cancelled at the peer) returns them to the
split job's queue here; a part whose peer is lost beyond the lease is cancelled
and its chunks return the same way. A chunk is always either waiting here,
rendering here, or held by exactly one part: never rendered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from federation.interfaces import PeerCapacities, ServerViews
from federation.peers import FederationConfig
from federation.reclaim import Reclaimer
from scheduler.frames import format_frames
from scheduler.profile import matches
from scheduler.ranking import Candidate, Ranking, rank_peers
from scheduler.split import PartPlan, PeerOpening, plan_parts, same_chunking
from site_agent.errors import ConflictError
from site_agent.lifecycle import (
    Event,
    JobCancelled,
    JobCreated,
    JobFinished,
    JobReplaced,
    JobStateChanged,
    PartChunk,
    TaskFinished,
    TasksRelayed,
)
from site_agent.store.base import StoreError
from site_agent.store.records import FrameRecord, JobRecord, JobState, TaskRecord, TaskState

log = logging.getLogger(__name__)

_PAUSABLE = (JobState.QUEUED, JobState.RUNNING)
SPLIT_INTERVAL_S = 2.0
"""Split jobs and open parts are looked at this often, and at once on their events."""


class SplitRows(Protocol):
    """Reads of split jobs and their parts."""

    async def split_jobs(self) -> list[JobRecord]: ...

    async def parts(self, job_id: str) -> list[JobRecord]: ...

    async def open_parts(self) -> list[JobRecord]: ...


class SplitStore(Protocol):
    """The site's split jobs, their parts, tasks and frames."""

    @property
    def split(self) -> SplitRows: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_tasks(self, job_id: str) -> list[TaskRecord]: ...

    async def list_frames(self, job_id: str) -> list[FrameRecord]: ...


class SplitLifecycle(Protocol):
    """The lifecycle's split transitions, and cancel."""

    async def send_part(
        self,
        job_id: str,
        part: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        indices: Sequence[int],
        *,
        at: float,
    ) -> bool: ...

    async def settle_part(
        self, part: JobRecord, rendered: Sequence[PartChunk], *, ended: bool, at: float
    ) -> tuple[int, int]: ...

    async def cancel(self, job_id: str, *, at: float) -> list[TaskRecord]: ...

    async def pause(self, job_id: str, *, at: float) -> None: ...

    async def resume(self, job_id: str, *, at: float) -> None: ...


class JobDirs(Protocol):
    def job_dir(self, job_name: str, job_id: str) -> Path: ...


class Splitter:
    """Sends parts of split jobs to peers and settles the parts that come back."""

    def __init__(
        self,
        *,
        name: str,
        config: FederationConfig,
        jobs: SplitStore,
        lifecycle: SplitLifecycle,
        peers: PeerCapacities,
        views: ServerViews,
        dirs: JobDirs,
        clock: Callable[[], float] = time.time,
        interval_s: float = SPLIT_INTERVAL_S,
        reclaimer: Reclaimer | None = None,
    ) -> None:
        self._name = name
        self._config = config
        self._jobs = jobs
        self._lifecycle = lifecycle
        self._peers = peers
        self._views = views
        self._dirs = dirs
        self._clock = clock
        self._interval_s = interval_s
        self._reclaimer = reclaimer
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """The ``fed-split`` loop: one step per wake-up or interval; errors are logged."""
        while True:
            self._wake.clear()
            try:
                await self.step()
            except StoreError as exc:
                log.warning("split jobs: store unavailable: %s", exc)
            except Exception:
                log.exception("split jobs: step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)

    def poke(self) -> None:
        self._wake.set()

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber: a split job cancelled, paused or resumed takes its open
        parts along (federation tells their peers); any change is a reason to look again."""
        if isinstance(event, JobCancelled) and event.job.split:
            for part in await self._jobs.split.parts(event.job.id):
                if not part.state.finished:
                    await self._lifecycle.cancel(part.id, at=self._clock())
        elif isinstance(event, JobStateChanged):
            await self._pause_or_resume_parts(event.job_id, event.state)
        if isinstance(
            event, (JobCancelled, JobFinished, JobReplaced, TaskFinished, TasksRelayed)
        ) or (isinstance(event, JobCreated) and event.job.split):
            self.poke()

    async def _pause_or_resume_parts(self, job_id: str, state: JobState) -> None:
        job = await self._jobs.get_job(job_id)
        if job is None or not job.split:
            return
        for part in await self._jobs.split.parts(job_id):
            try:
                if state == JobState.PAUSED and part.state in _PAUSABLE:
                    await self._lifecycle.pause(part.id, at=self._clock())
                elif state != JobState.PAUSED and part.state == JobState.PAUSED:
                    await self._lifecycle.resume(part.id, at=self._clock())
            except ConflictError as exc:  # it ended meanwhile
                log.info("split job %s: part %s left as it is: %s", job_id, part.id, exc)

    async def step(self) -> None:
        """Settle what parts brought back, send new parts where peers have room, then ask
        for unstarted chunks back where slots here (or at other peers) are idle (the
        reclaims go out in the background: this never waits on a peer)."""
        for part in await self._jobs.split.open_parts():
            await self.settle(part)
        for job in await self._jobs.split.split_jobs():
            if job.origin_job_id is None:  # a job accepted from a peer is never split again
                await self.send_parts(job)
        if self._reclaimer is not None:
            await self._reclaimer.resend()
            await self.rebalance(self._reclaimer)

    async def rebalance(self, reclaimer: Reclaimer) -> None:
        """Each split job with open parts: ask for their unstarted chunks back while its
        capable slots here, and free ones at peers holding none of them, are idle."""
        by_job: dict[str, list[JobRecord]] = {}
        for part in await self._jobs.split.open_parts():
            if part.part_of is not None and not part.state.finished:
                by_job.setdefault(part.part_of, []).append(part)
        for job_id, parts in by_job.items():
            job = await self._jobs.get_job(job_id)
            if job is None or job.origin_job_id is not None:
                continue
            _, local_free, ranking = await self._capacity(job)
            holding = {p.placement for p in parts if await self._unstarted(p)}
            elsewhere = sum(c.free_slots for c in ranking.candidates if c.name not in holding)
            await reclaimer.rebalance(job, parts, local_free + elsewhere)

    async def _capacity(self, job: JobRecord) -> tuple[int, int, Ranking]:
        """Slots here that can run ``job`` (all, and idle), and the peers ranked for it."""
        views = [v for v in await self._views.server_views() if v.online]
        capable = [v for v in views if matches(job.profile, v)]
        targets = [p for p in self._config.peers if p.allow_forward_to]
        ranking = rank_peers(
            job.profile,
            self._peers.capacities(targets, job.manifest),
            need_free=True,
            exclude=self._peers.refusing(job.id),
        )
        return sum(v.slots for v in capable), sum(v.free_slots for v in capable), ranking

    # --- settling ------------------------------------------------------------
    async def settle(self, part: JobRecord) -> None:
        """Record the chunks ``part`` brought back on its split job; return the rest if it ended."""
        assert part.part_of is not None
        job = await self._jobs.get_job(part.part_of)
        if job is None:
            return
        if part.placement_epoch > 1 and not part.state.finished:
            # Its peer was lost beyond the lease: its chunks render here instead.
            await self._lifecycle.cancel(part.id, at=self._clock())
            part = await self._jobs.get_job(part.id) or part
        rendered = await self._rendered(part, job)
        if rendered or part.state.finished:  # else nothing to write (no lock taken)
            await self._lifecycle.settle_part(
                part, rendered, ended=part.state.finished, at=self._clock()
            )

    async def _rendered(self, part: JobRecord, job: JobRecord) -> list[PartChunk]:
        """The part's done chunks whose frames are all here, linked into the job's folder."""
        frames = {f.frame: f for f in await self._jobs.list_frames(part.id)}
        src = self._dirs.job_dir(part.name, part.id)
        dst = self._dirs.job_dir(job.name, job.id)
        chunks = []
        for task in await self._jobs.list_tasks(part.id):
            outputs = [frames.get(n) for n in task.frames]
            if task.state != TaskState.DONE or any(f is None for f in outputs):
                continue
            records = tuple(f for f in outputs if f is not None)
            await asyncio.to_thread(_link_frames, src, dst, [f.name for f in records])
            chunks.append(
                PartChunk(
                    frames=task.frames,
                    server=_where(part, task),
                    started_at=task.started_at,
                    finished_at=task.finished_at or self._clock(),
                    outputs=tuple(
                        dataclasses.replace(f, job_id=job.id, server_id=_where(part, task))
                        for f in records
                    ),
                )
            )
        return chunks

    # --- sending -------------------------------------------------------------
    async def send_parts(self, job: JobRecord) -> None:
        """Send parts of ``job``'s waiting chunks to peers with free capable slots."""
        tasks = await self._jobs.list_tasks(job.id)
        waiting = [t.index for t in tasks if t.state == TaskState.WAITING]
        if not waiting:
            return
        local_slots, _, ranking = await self._capacity(job)
        parts = await self._jobs.split.parts(job.id)
        busy = {p.placement for p in parts if await self._unstarted(p)}
        openings = [
            PeerOpening(name=c.name, free_slots=c.free_slots, open_part=c.name in busy)
            for c in ranking.candidates
        ]
        by_index = {t.index: t for t in tasks}
        chosen = {c.name: c for c in ranking.candidates}
        for number, plan in enumerate(
            plan_parts(waiting, local_slots=local_slots, peers=openings), start=len(parts) + 1
        ):
            chunks = [by_index[i].frames for i in plan.indices]
            if not same_chunking(chunks, job.chunk_size):
                log.warning("split job %s: chunks %s cannot form a part", job.id, plan.indices)
                continue
            part = self._part(job, plan, chunks, number, chosen[plan.peer])
            await self._lifecycle.send_part(job.id, part, chunks, plan.indices, at=self._clock())

    async def _unstarted(self, part: JobRecord) -> bool:
        """Whether the part has chunks its peer has not started (all of them until the peer
        relays progress): the peer gets the next batch of the job only after that."""
        if part.state.finished:
            return False
        return any(t.state == TaskState.WAITING for t in await self._jobs.list_tasks(part.id))

    def _part(
        self,
        job: JobRecord,
        plan: PartPlan,
        chunks: Sequence[tuple[int, ...]],
        number: int,
        candidate: Candidate,
    ) -> JobRecord:
        frames = [frame for chunk in chunks for frame in chunk]
        now = self._clock()
        return dataclasses.replace(
            job,
            id=uuid.uuid4().hex[:12],
            name=f"{job.name}-part{number}",
            frames=format_frames(frames),
            frame_count=len(frames),
            state=JobState.QUEUED,
            placement=plan.peer,
            placement_reason=(
                f"part {number} of split job {job.id}: {len(chunks)} chunk(s) "
                f"({format_frames(frames)}) for {candidate.describe()}"
            ),
            placement_epoch=1,
            remote_job_id=None,
            split=False,
            part_of=job.id,
            origin_job_id=None,
            created_at=now,
            updated_at=now,
            finished_at=None,
            error="",
        )


def _where(part: JobRecord, task: TaskRecord) -> str:
    """``facility/node-2`` when the peer relayed its server, else the peer's name."""
    server = task.server_id or ""
    return server if server.startswith(f"{part.placement}/") else part.placement


def _link_frames(src: Path, dst: Path, names: Sequence[str]) -> None:
    """The part's frame files into the split job's folder (hard links: no copy, same bytes)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = dst / name
        if target.exists() and os.path.samefile(src / name, target):
            continue
        tmp = dst / f".{name}.{uuid.uuid4().hex[:8]}.link"
        try:
            os.link(src / name, tmp)
        except OSError:  # another filesystem: copy instead
            tmp.write_bytes((src / name).read_bytes())
        os.replace(tmp, target)
