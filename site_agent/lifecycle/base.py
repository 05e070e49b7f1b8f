"""What the lifecycle's transitions share: the store they need and the event bus.

:class:`TransitionsBase` is the common base of the transition groups
(:mod:`.control`, :mod:`.placement`) that :class:`~.service.Lifecycle` combines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..errors import NotFoundError
from ..store.base import JobTransaction
from ..store.database import Connection
from ..store.records import DependentsSettled, JobRecord, JobState
from .events import Event, EventBus, JobCancelled, JobFinished, JobsReleased

TransactionHook = Callable[[Connection], Awaitable[None]]
"""Another package's statements, run in the transition's transaction before it commits
(federation updates its forward record with the job)."""


class LifecycleStore(Protocol):
    """What the lifecycle needs of the store: transactions and two reads."""

    def transaction(self) -> AbstractAsyncContextManager[JobTransaction]: ...

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def server_failures(self, job_id: str) -> dict[str, int]: ...


class TransitionsBase:
    """The store and the event bus every transition group uses."""

    _store: LifecycleStore
    _events: EventBus


def settled_events(settled: DependentsSettled) -> list[Event]:
    """The events of what a job's end did to the jobs waiting for it (staged in its
    transaction, emitted after it like the job's own)."""
    events: list[Event] = [JobFinished(job_id=j, state=JobState.FAILED) for j in settled.failed]
    events += [JobCancelled(job=job, stopped=stopped) for job, stopped in settled.cancelled]
    if settled.released:
        events.append(JobsReleased(job_ids=settled.released))
    return events


def no_job(job_id: str) -> NotFoundError:
    return NotFoundError(f"job {job_id} does not exist; list jobs with `spillway jobs`")
