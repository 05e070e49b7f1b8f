"""Readers of the client API waiting for a change, woken by the lifecycle's events.

A long-polling request (a task's log growing, a job ending) takes a watch on
what it waits for *before* it reads the store, then waits on the watch: a
change committed between the read and the wait still wakes it, and nothing is
polled. The lifecycle's subscribers (:class:`~site_agent.task_logs.LogWatch`,
:class:`JobWatch`) wake the watches after the transition's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from typing import Generic, TypeVar

from .lifecycle.events import Event, JobCancelled, JobFinished
from .store.records import JobRecord

MAX_WAIT_S = 30.0
"""The longest one request may wait (for log text, for a job's end)."""

K = TypeVar("K")


class Waiters(Generic[K]):
    """Watches per key; each is an event set at the key's next change."""

    def __init__(self) -> None:
        self._events: dict[K, tuple[asyncio.Event, int]] = {}

    @contextlib.contextmanager
    def watch(self, key: K) -> Iterator[asyncio.Event]:
        """An event set at the next change of ``key``; take it *before* reading."""
        event, readers = self._events.get(key, (asyncio.Event(), 0))
        self._events[key] = (event, readers + 1)
        try:
            yield event
        finally:
            current = self._events.get(key)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._events[key]
                else:
                    self._events[key] = (event, current[1] - 1)

    def wake(self, keys: Collection[K]) -> None:
        for key in keys:
            entry = self._events.pop(key, None)
            if entry is not None:
                entry[0].set()

    @property
    def watched(self) -> int:
        """Keys with a waiting reader (for tests: nothing is left behind)."""
        return len(self._events)


JOB_WAKE_ON = (JobFinished, JobCancelled)


class JobWatch(Waiters[str]):
    """Requests waiting for a job to end (``GET /api/v1/jobs/{id}?wait=S``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber (:data:`JOB_WAKE_ON`): a job ended done, failed or cancelled."""
        if isinstance(event, JobFinished):
            self.wake((event.job_id,))
        elif isinstance(event, JobCancelled):
            self.wake((event.job.id,))

    async def until_ended(
        self, job_id: str, read: Callable[[str], Awaitable[JobRecord]], wait: float
    ) -> JobRecord:
        """The job as ``read`` gives it once it has ended, or after ``wait`` seconds as it is.

        ``job_id`` may be any id ``read`` resolves (an origin's id at the accepting site);
        the watch is on the job's own id, which the lifecycle's events name.
        """
        job = await read(job_id)
        deadline = self._clock() + wait
        while not job.state.finished and (left := deadline - self._clock()) > 0:
            with self.watch(job.id) as ended:
                job = await read(job.id)  # with the watch taken: an end from now on wakes it
                if job.state.finished:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), left)
            job = await read(job.id)
        return job
