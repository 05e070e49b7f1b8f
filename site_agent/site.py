"""The site agent's core object: wires the store, storage, lifecycle, dispatcher and monitors.

Each part gets the few collaborators it uses; the lifecycle's events connect
them (the dispatcher wakes on new work, the report path stops the tasks of a
cancelled job, federation subscribes when it starts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from scheduler.dependencies import Upstream, waiting_text
from scheduler.profile import ONLINE_STATUSES, explain_unmatched, matches
from scheduler.retry import bad_servers
from spillway.packages import package_names

from .assets import AssetStore
from .config import SiteConfig
from .connections import ConnectionRegistry
from .dispatcher import WAKE_ON, Dispatcher
from .errors import BadRequestError
from .files import sweep_temp_files
from .jobs import JobService
from .lifecycle import JobCancelled, JobStateChanged, Lifecycle
from .live import LiveHub
from .lookahead import QueuedTasks
from .metrics import METRIC_EVENTS, SiteMetrics
from .monitor import HeartbeatMonitor
from .reports import TaskReports
from .storage import FrameStorage
from .store.base import Store
from .store.records import LOCAL, JobRecord, JobState, ServerStatus, TaskState
from .store.sqlite import SqliteDatabase
from .store.usage import UsageLedger
from .task_logs import WAKE_ON as LOG_WAKE_ON
from .task_logs import LogWatch, TaskLogs
from .views import server_views
from .watch import JOB_WAKE_ON, JobWatch

if TYPE_CHECKING:
    from .workers import WorkerPool

log = logging.getLogger(__name__)
MIB = 1024 * 1024


class FederationHooks(Protocol):
    """What the site agent asks of the federation layer (when one is configured)."""

    async def place(self, job: JobRecord, requested: str | None) -> JobRecord: ...

    def peers_json(self) -> list[dict[str, Any]]: ...

    async def job_details(self, job: JobRecord) -> dict[str, Any]:
        """Extra fields for the job JSON (e.g. ``transfer``, ``remote``)."""
        ...

    async def close(self) -> None: ...


class WebhookHooks(Protocol):
    """What the site agent asks of the webhooks (when ``[[webhooks]]`` are configured)."""

    async def status_json(self) -> dict[str, Any]:
        """Each endpoint with its delivery counts, and the recent deliveries."""
        ...

    async def close(self) -> None: ...


class SiteAgent:
    def __init__(
        self, config: SiteConfig, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.assets = AssetStore(config.assets, max_blob_bytes=config.limits.max_blob_mb * MIB)
        self.storage = FrameStorage(config.storage, max_frame_bytes=config.limits.max_blob_mb * MIB)
        # The live stream learns a started task's job from the connections (no read).
        self.live = LiveHub(task_jobs=lambda ids: self.connections.jobs_of_tasks(ids))
        self.connections = ConnectionRegistry(on_change=self.live.servers_changed)
        self.usage = UsageLedger(store.database)
        threshold = config.scheduling.bad_server_threshold
        self.lifecycle = Lifecycle(store, bad_server_threshold=threshold, clock=clock)
        self.dispatcher = Dispatcher(
            store,
            self.lifecycle,
            self.connections,
            bad_server_threshold=threshold,
            stall_after_s=config.scheduling.stall_after_s,
            lookahead_below_s=config.scheduling.lookahead_below_s,
            clock=clock,
        )
        self.reports = TaskReports(
            store, self.lifecycle, self.connections, self.dispatcher, self.storage, clock=clock
        )
        self.monitor = HeartbeatMonitor(
            store, self.connections, self.lifecycle, self.reports, config.scheduling, clock=clock
        )
        self.known_packages = set(package_names())
        self.jobs = JobService(
            site_name=config.name,
            known_packages=self.known_packages,
            jobs=store,
            blobs=self.assets,
            placement=self,
            lifecycle=self.lifecycle,
            servers=lambda: server_views(store, self.connections),
            clock=clock,
        )
        self.federation: FederationHooks | None = None
        self.webhooks: WebhookHooks | None = None
        self.workers: WorkerPool | None = None
        """Connection workers serving render servers' sockets (``[agent] workers``), if any."""
        self.metrics = SiteMetrics(
            store, lambda: server_views(store, self.connections), self.reports.jobs
        )
        self.dispatcher.on_round = self.metrics.observe_dispatch
        if isinstance(store.database, SqliteDatabase):
            self.metrics.watch_database(store.database.counters)
        # Order matters for a cancel: drop the tasks waiting in servers' queues (a server
        # starts its next queued task when told to stop a running one), stop the others on
        # their servers, then wake the dispatcher.
        self.queued = QueuedTasks(self.connections, self.lifecycle, clock=clock)
        self.lifecycle.subscribe(self.queued.on_event, (JobCancelled, JobStateChanged))
        self.lifecycle.subscribe(self.reports.on_event, (JobCancelled,))
        self.lifecycle.subscribe(self.dispatcher.on_event, WAKE_ON)
        self.log_watch = LogWatch()
        self.logs = TaskLogs(store, self.log_watch)
        self.lifecycle.subscribe(self.log_watch.on_event, LOG_WAKE_ON)
        self.job_watch = JobWatch()
        self.lifecycle.subscribe(self.job_watch.on_event, JOB_WAKE_ON)
        self.lifecycle.subscribe(self.metrics.on_event, METRIC_EVENTS)
        self.lifecycle.subscribe(self.live.on_event)

    async def recover(self) -> None:
        """After a (re)start no server is connected yet; they are offline until they say hello.

        Temp files of frame and blob writes a killed agent left half done are deleted:
        nothing recorded points at them, and each frame or blob is sent again.
        """
        swept = await asyncio.to_thread(sweep_temp_files, self.storage.root, "*")
        swept += await asyncio.to_thread(sweep_temp_files, self.storage.root, "*/.previews")
        swept += await asyncio.to_thread(sweep_temp_files, self.assets.root, "blobs/*")
        if swept:
            log.info("site %s: deleted %d temp files of writes cut short", self.config.name, swept)
        now = self.clock()
        for server in await self.store.list_servers():
            if server.status not in (ServerStatus.OFFLINE, ServerStatus.DISABLED):
                await self.store.set_server_status(server.id, ServerStatus.OFFLINE, at=now)

    async def place(self, job: JobRecord, requested: str | None) -> JobRecord:
        if self.federation is not None:
            return await self.federation.place(job, requested)
        if requested not in (None, "", LOCAL, self.config.name):
            raise BadRequestError(
                f"no peer site named '{requested}': this site has no peers configured"
            )
        return dataclasses.replace(job, placement=LOCAL, placement_reason="rendered at this site")

    def job_storage_dir(self, job: JobRecord) -> str:
        return str(self.storage.job_dir(job.name, job.id))

    async def why_waiting(
        self, job: JobRecord, counts: dict[TaskState, int], upstreams: Sequence[Upstream] = ()
    ) -> str | None:
        """Why a job has waiting frames and nothing running, in words a user can act on."""
        if job.state == JobState.PAUSED:
            return "the job is paused; `spillway resume` continues it"
        if job.state.finished:
            return None
        held = waiting_text(upstreams)
        if held is not None:
            return held
        if job.placement != LOCAL:
            return None
        if counts.get(TaskState.WAITING, 0) == 0:
            return None
        views = await server_views(self.store, self.connections)
        avoid = bad_servers(
            await self.store.server_failures(job.id), self.config.scheduling.bad_server_threshold
        )
        capable = [
            v
            for v in views
            if v.status in ONLINE_STATUSES and v.id not in avoid and matches(job.profile, v)
        ]
        if not capable:
            return explain_unmatched(job.profile, views, avoid=avoid)
        if counts.get(TaskState.DISPATCHED, 0) + counts.get(TaskState.RUNNING, 0) == 0 and not any(
            v.free_slots for v in capable
        ):
            return f"waiting for a free slot: all {len(capable)} capable servers are busy with other work"
        return None
