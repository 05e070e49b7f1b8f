"""Look-ahead at the agent: which jobs may queue tasks on render servers beyond their slots,
and what becomes of a queued task whose job is paused.

A render server that keeps a queue starts its next task the moment a slot frees,
instead of waiting a round trip to the agent for it. That pays only for short tasks
(for a long one the round trip is noise, and a task queued behind a long one may
wait while another server frees first), so only jobs whose finished tasks took
less than ``[scheduling] lookahead_below`` on average are queued ahead. Their
times come from the completions this agent saw (after a restart a job is timed
again from its next completions).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from render_server import protocol
from scheduler.eta import short_tasks

from .connections import ConnectionRegistry
from .lifecycle.events import Event, JobCancelled, JobStateChanged
from .store.records import JobState, TaskOutcome, TaskRecord, TaskState

log = logging.getLogger(__name__)

TIMED_JOBS = 10_000
"""Jobs whose task times are kept; the least recently timed is forgotten beyond this."""


class TaskTimes:
    """Per unfinished job: how many tasks completed and how long they took together, and
    which jobs are short (in memory)."""

    def __init__(self, *, below_s: float, size: int = TIMED_JOBS) -> None:
        self._below_s = below_s
        self._size = size
        self._times: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self._short: set[str] = set()

    def record(self, outcome: TaskOutcome) -> bool:
        """Count a completed task's time, from its start report to its completion; forget
        the job once it finished. True when this made the job short."""
        task = outcome.task
        if outcome.job_finished:
            self._forget(task.job_id)
            return False
        if task.state is not TaskState.DONE or task.started_at is None or task.finished_at is None:
            return False
        count, total = self._times.pop(task.job_id, (0, 0.0))
        count, total = count + 1, total + max(0.0, task.finished_at - task.started_at)
        self._times[task.job_id] = (count, total)
        was_short = task.job_id in self._short
        if short_tasks(done_timed=count, busy_s=total, below_s=self._below_s):
            self._short.add(task.job_id)
        else:
            self._short.discard(task.job_id)
        if len(self._times) > self._size:
            self._forget(next(iter(self._times)))
        return not was_short and task.job_id in self._short

    def _forget(self, job_id: str) -> None:
        self._times.pop(job_id, None)
        self._short.discard(job_id)

    def any_short(self) -> bool:
        return bool(self._short)

    def short(self, job_ids: Iterable[str]) -> frozenset[str]:
        """Those of ``job_ids`` whose tasks took less than ``below_s`` on average so far."""
        return frozenset(job_id for job_id in job_ids if job_id in self._short)


class Unqueue(Protocol):
    async def unqueue(
        self, task_id: int, attempt: int, server_id: str, *, at: float
    ) -> TaskRecord | None:
        """The lifecycle transition: a task out of its server's queue, back to waiting."""


class QueuedTasks:
    """What a job's cancel or pause does to its tasks waiting in servers' queues.

    A lifecycle subscriber, called before the one that stops a cancelled job's tasks:
    a server that is told to stop a running task starts its next queued one at once,
    so the queued tasks are dropped first and never start.
    """

    def __init__(
        self,
        connections: ConnectionRegistry,
        lifecycle: Unqueue,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._lifecycle = lifecycle
        self._clock = clock

    async def on_event(self, event: Event) -> None:
        if isinstance(event, JobCancelled):
            await self._drop(event.stopped)
        elif isinstance(event, JobStateChanged) and event.state is JobState.PAUSED:
            await self._unqueue(event.job_id)

    async def _drop(self, tasks: Iterable[TaskRecord]) -> None:
        """Tell the servers to drop those of ``tasks`` waiting in their queues (the job
        was cancelled: the lifecycle already put them back to waiting)."""
        for task in tasks:
            conn = self._connections.get(task.server_id or "")
            if (
                conn is not None
                and conn.waits_in_queue(task.id, task.attempt)
                and conn.release(task.id, task.attempt) is not None
            ):
                await conn.send(
                    protocol.Cancel(task_id=task.id, attempt=task.attempt, reason="job cancelled")
                )

    async def _unqueue(self, job_id: str) -> None:
        """Take the job's tasks that wait in servers' queues back (the job was paused): each
        goes back to waiting and its server drops it unstarted."""
        taken = 0
        for conn in self._connections.all():
            queued = [
                active
                for active in list(conn.running.values())
                if active.job_id == job_id and conn.waits_in_queue(active.task_id, active.attempt)
            ]
            for active in queued:
                key = (active.task_id, active.attempt)
                if await self._lifecycle.unqueue(*key, conn.server_id, at=self._clock()) is None:
                    continue  # it started meanwhile: it runs on, like the job's other tasks
                if conn.release(*key) is not None:
                    await conn.send(
                        protocol.Cancel(task_id=key[0], attempt=key[1], reason="job paused")
                    )
                    taken += 1
        if taken:
            log.info("job %s paused: %d task(s) taken out of render servers' queues", job_id, taken)
