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
from .events import EventBus, JobCancelled, JobFinished, JobsReleased

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

    async def _emit_settled(self, settled: DependentsSettled) -> None:
        """The events of what a job's end did to the jobs waiting for it (after the commit)."""
        for job_id in settled.failed:
            await self._events.emit(JobFinished(job_id=job_id, state=JobState.FAILED))
        for job, stopped in settled.cancelled:
            await self._events.emit(JobCancelled(job=job, stopped=stopped))
        if settled.released:
            await self._events.emit(JobsReleased(job_ids=settled.released))


def no_job(job_id: str) -> NotFoundError:
    return NotFoundError(f"job {job_id} does not exist; list jobs with `spillway jobs`")
