"""The agent's Prometheus metrics, served at ``/metrics``.

One registry per agent (no global default registry, so several agents in one
process, as in the tests, keep their numbers apart). Counters move with the
lifecycle's events and the dispatcher's rounds; gauges (jobs by state, servers
by status, free slots, federation bytes and outbox depth) are computed when
scraped. Federation, a layer above, registers its numbers through
:meth:`SiteMetrics.watch_federation` (this module does not import it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scheduler.profile import ServerView

from .lifecycle.events import Event, JobCreated, TaskFinished, TasksAssigned, TasksRequeued
from .store.records import JobRecord, JobState, TaskState

__all__ = ["CONTENT_TYPE", "DatabaseCounters", "FederationStats", "MetricSources", "SiteMetrics"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRIC_EVENTS = (JobCreated, TasksAssigned, TaskFinished, TasksRequeued)
"""The lifecycle events the counters follow."""
# Frames take from a fraction of a second (the built-in tracer) to hours (film frames).
_FRAME_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
_DISPATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class FederationStats(Protocol):
    """What federation reports about itself (its service fits)."""

    def transferred_bytes(self) -> Mapping[str, int]:
        """Bytes moved to and from peers so far, by direction (``sent``, ``received``)."""
        ...

    def capped_bytes(self) -> Mapping[str, int]:
        """Bytes each capped peer's bandwidth cap has let through, both directions together."""
        ...

    async def outbox_depth(self) -> int:
        """Messages to peers not yet acknowledged."""
        ...


class DatabaseCounters(Protocol):
    """How much work the database adapter did (the SQLite adapter counts it)."""

    @property
    def statements(self) -> int: ...

    @property
    def handoffs(self) -> int:
        """Waits on the database's thread (several statements may go in one)."""
        ...


class JobReads(Protocol):
    async def get(self, job_id: str) -> JobRecord | None: ...


class MetricSources(Protocol):
    """What the gauges are computed from at scrape time."""

    async def job_state_counts(self) -> dict[JobState, int]: ...


ServerViews = Callable[[], Awaitable[Sequence[ServerView]]]


@dataclass
class _Snapshot:
    """The gauges' values, refreshed before each scrape."""

    jobs: dict[str, int] = field(default_factory=dict)
    servers: dict[str, int] = field(default_factory=dict)
    free_slots: int = 0
    federation_bytes: dict[str, int] = field(default_factory=dict)
    capped_bytes: dict[str, int] = field(default_factory=dict)
    outbox_depth: int | None = None
    database: DatabaseCounters | None = None


class _ScrapeCollector(Collector):
    """Yields the snapshot's values as metric families."""

    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        jobs = GaugeMetricFamily("spillway_jobs", "Jobs by state", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], snap.jobs.get(state.value, 0))
        yield jobs
        servers = GaugeMetricFamily(
            "spillway_servers", "Render servers by status", labels=["status"]
        )
        for status, n in sorted(snap.servers.items()):
            servers.add_metric([status], n)
        yield servers
        yield GaugeMetricFamily(
            "spillway_free_slots", "Free slots of dispatchable servers", value=snap.free_slots
        )
        if snap.database is not None:
            yield CounterMetricFamily(
                "spillway_sqlite_statements",
                "SQL statements run on the SQLite database",
                value=snap.database.statements,
            )
            yield CounterMetricFamily(
                "spillway_sqlite_handoffs",
                "Waits on the SQLite connection's thread (a transaction's writes share one)",
                value=snap.database.handoffs,
            )
        if snap.outbox_depth is not None:
            moved = CounterMetricFamily(
                "spillway_federation_bytes",
                "Bytes moved to and from peer sites",
                labels=["direction"],
            )
            for direction, n in sorted(snap.federation_bytes.items()):
                moved.add_metric([direction], n)
            yield moved
            capped = CounterMetricFamily(
                "spillway_federation_capped_bytes",
                "Bytes let through by a peer's bandwidth cap (max_mbps), uploads and fetches",
                labels=["peer"],
            )
            for peer, n in sorted(snap.capped_bytes.items()):
                capped.add_metric([peer], n)
            yield capped
            yield GaugeMetricFamily(
                "spillway_federation_outbox_depth",
                "Messages to peer sites not yet acknowledged",
                value=snap.outbox_depth,
            )


class SiteMetrics:
    """The metrics of one agent; ``render()`` gives the Prometheus text format."""

    def __init__(self, sources: MetricSources, servers: ServerViews, jobs: JobReads) -> None:
        self._sources = sources
        self._servers = servers
        self._jobs = jobs
        self._federation: FederationStats | None = None
        self._snapshot = _Snapshot()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_created = Counter("spillway_jobs_created", "Jobs created here", registry=r)
        self.tasks_dispatched = Counter(
            "spillway_tasks_dispatched", "Task attempts sent to render servers", registry=r
        )
        self.tasks_completed = Counter(
            "spillway_tasks_completed", "Task attempts that rendered all their frames", registry=r
        )
        self.tasks_failed = Counter(
            "spillway_tasks_failed",
            "Task attempts that failed (retried: the task waits for another attempt)",
            ["outcome"],
            registry=r,
        )
        self.tasks_requeued = Counter(
            "spillway_tasks_requeued",
            "Active tasks sent back to waiting: their server was lost, or their job paused "
            "while they waited in a server's queue",
            registry=r,
        )
        self.frame_seconds = Histogram(
            "spillway_frame_render_seconds",
            "Render time per frame (a task's time over its frames), by package",
            ["package"],
            buckets=_FRAME_BUCKETS,
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "spillway_dispatch_latency_seconds",
            "Time of a dispatch round that sent work, from snapshot to assignments sent",
            buckets=_DISPATCH_BUCKETS,
            registry=r,
        )
        r.register(_ScrapeCollector(self._snapshot))

    def watch_federation(self, stats: FederationStats) -> None:
        """Report federation's bytes and outbox depth (called when federation starts)."""
        self._federation = stats

    def watch_database(self, counters: DatabaseCounters) -> None:
        """Report the database adapter's statement and hand-off counts (SQLite)."""
        self._snapshot.database = counters

    def observe_dispatch(self, seconds: float, sent: int) -> None:
        """Dispatcher hook: one round took ``seconds`` and sent ``sent`` tasks."""
        if sent:
            self.dispatch_latency.observe(seconds)

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber (for :data:`METRIC_EVENTS`); never fails the transition."""
        try:
            await self._count(event)
        except Exception:  # a metric must not break a state change's caller
            log.exception("metrics: counting %s failed", type(event).__name__)

    async def _count(self, event: Event) -> None:
        if isinstance(event, JobCreated):
            self.jobs_created.inc()
        elif isinstance(event, TasksAssigned):
            self.tasks_dispatched.inc(len(event.tasks))
        elif isinstance(event, TasksRequeued):
            self.tasks_requeued.inc(len(event.tasks))
        elif isinstance(event, TaskFinished):
            await self._finished(event)

    async def _finished(self, event: TaskFinished) -> None:
        task = event.outcome.task
        if task.state != TaskState.DONE:
            self.tasks_failed.labels("retried" if event.retry else "final").inc()
            return
        self.tasks_completed.inc()
        if task.started_at is None or task.finished_at is None or not task.frames:
            return
        job = await self._jobs.get(task.job_id)
        package = job.profile.package if job is not None else "unknown"
        per_frame = max(0.0, task.finished_at - task.started_at) / len(task.frames)
        child = self.frame_seconds.labels(package)
        for _ in task.frames:
            child.observe(per_frame)

    async def render(self) -> bytes:
        """Refresh the gauges and return the text exposition of every metric."""
        await self._refresh()
        return generate_latest(self.registry)

    async def _refresh(self) -> None:
        snap = self._snapshot
        snap.jobs = {s.value: n for s, n in (await self._sources.job_state_counts()).items()}
        servers: dict[str, int] = {}
        free = 0
        for view in await self._servers():
            servers[view.status] = servers.get(view.status, 0) + 1
            free += view.free_slots
        snap.servers, snap.free_slots = servers, free
        if self._federation is not None:
            snap.federation_bytes = dict(self._federation.transferred_bytes())
            snap.capped_bytes = dict(self._federation.capped_bytes())
            snap.outbox_depth = await self._federation.outbox_depth()
