"""The site agent as the federation roles see it: one adapter that fits the narrow interfaces.

:class:`SiteLink` implements the site-side Protocols of :mod:`federation.interfaces`
(``JobControl``, ``ForwardedJobs``, ``FinishedJobs``, ``QueueDepth``, ``ServerViews``)
over a :class:`~site_agent.site.SiteAgent`: reads go to its store, state changes to
its lifecycle (the one home of every job and task transition) or its job controls.
:mod:`federation.service` hands it to each role; unit tests hand the roles fakes.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dependencies import Upstream
from scheduler.profile import ServerView
from site_agent.lifecycle import TransactionHook
from site_agent.site import SiteAgent
from site_agent.store.records import FrameRecord, JobRecord, JobState, RelayedTask, TaskRecord
from site_agent.store.usage import UsageEntry
from site_agent.views import server_views


class SiteLink:
    """The site agent as the federation roles see it (``JobControl`` and ``ServerViews``).

    The one place federation reaches into :class:`~site_agent.site.SiteAgent`
    beyond handing its parts (store, assets, storage, dispatcher) to the roles.
    """

    def __init__(self, site: SiteAgent) -> None:
        self._site = site

    async def get_job(self, job_id: str) -> JobRecord | None:
        return await self._site.store.get_job(job_id)

    async def create_job(self, job: JobRecord, chunks: Sequence[tuple[int, ...]]) -> None:
        await self._site.lifecycle.create(job, chunks)

    async def cancel(self, job_id: str) -> None:
        await self._site.jobs.control(job_id, "cancel")

    async def list_frames(self, job_id: str) -> list[FrameRecord]:
        return await self._site.store.list_frames(job_id)

    async def get_frame(self, job_id: str, frame: int) -> FrameRecord | None:
        return await self._site.store.get_frame(job_id, frame)

    async def server_views(self) -> list[ServerView]:
        return await server_views(self._site.store, self._site.connections)

    async def list_tasks(self, job_id: str) -> list[TaskRecord]:
        return await self._site.store.list_tasks(job_id)

    async def server_names(self) -> dict[str, str]:
        return {s.id: s.name for s in await self._site.store.list_servers()}

    async def pause(self, job_id: str) -> None:
        await self._site.jobs.control(job_id, "pause")

    async def resume(self, job_id: str) -> None:
        await self._site.jobs.control(job_id, "resume")

    async def relay_progress(
        self,
        job_id: str,
        *,
        epoch: int,
        tasks: Sequence[RelayedTask],
        at: float,
        hook: TransactionHook | None = None,
    ) -> bool:
        return await self._site.lifecycle.relay_progress(
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
        return await self._site.lifecycle.record_relayed_frames(
            job_id, epoch=epoch, task=task, frames=frames, at=at
        )

    # --- ForwardedJobs and FinishedJobs: the lifecycle's placement transitions ---
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
        await self._site.store.set_job_placement(
            job_id,
            placement=placement,
            reason=reason,
            epoch=epoch,
            remote_job_id=remote_job_id,
            at=at,
        )

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
        return await self._site.lifecycle.replace_job(
            job_id, old_epoch=old_epoch, placement=placement, reason=reason, at=at, hook=hook
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
        return await self._site.lifecycle.finish_forwarded_job(
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

    async def remote_start(self, job_id: str, *, at: float) -> bool:
        return await self._site.lifecycle.remote_start(job_id, at=at)

    async def local_frames_waiting(self) -> int:
        return await self._site.store.local_frames_waiting()

    async def seconds_per_frame(self) -> float | None:
        return await self._site.store.seconds_per_frame()

    async def job_upstreams(self, job_ids: Sequence[str]) -> dict[str, tuple[Upstream, ...]]:
        return await self._site.store.job_upstreams(job_ids)
