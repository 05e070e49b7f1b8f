"""What the lifecycle tells the rest of the agent: one typed event per transition.

Events are emitted after the transition's transaction committed, to the
subscribers in the order they subscribed; a subscriber's exception reaches the
caller of the transition (as the hooks these events replaced did). Subscribers
declare the event classes they want, so an event nobody wants costs nothing.

A recorder (:meth:`EventBus.record`) hears the same events earlier, inside the
transition's transaction before it commits: what it writes there (a durable
outbox's rows) commits or rolls back with the transition, so no crash between
the commit and the subscribers can lose it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from site_agent.store.base import JobTransaction
from site_agent.store.records import JobRecord, JobState, TaskOutcome, TaskRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCreated:
    """A job and its waiting tasks exist: submitted here, or accepted from a peer."""

    job: JobRecord
    ready: bool = True
    """False while a job it waits for has not ended (see :class:`JobsReleased`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsReleased:
    """Jobs that waited for others have nothing left to wait for: they may run now."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksAssigned:
    """Waiting tasks were claimed for render servers (state dispatched)."""

    tasks: tuple[TaskRecord, ...]
    started_jobs: tuple[str, ...]
    """Jobs these claims moved from queued to running."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksStarted:
    """Render servers' start reports were applied (each fenced; a stale one changed nothing)."""

    task_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksLogged:
    """Render servers' output was appended to these tasks' logs (a reader may be waiting)."""

    task_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FramesStored:
    """Frames of running tasks were recorded before their task ended (a chunk's grid fills
    in frame by frame); the task's own end is :class:`TaskFinished`."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFinished:
    """An attempt ended: completed, failed and retried, or failed for good."""

    outcome: TaskOutcome
    retry: bool = False
    """The attempt failed and the task waits for another."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFinished:
    """The job ended done or failed (its last task, or its peer, finished it)."""

    job_id: str
    state: JobState


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStateChanged:
    """A user or a peer changed the job's state: pause, resume, retry, remote start."""

    job_id: str
    state: JobState


@dataclass(frozen=True, slots=True, kw_only=True)
class JobPriorityChanged:
    """A user changed the job's priority (dispatch order)."""

    job_id: str
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled:
    """The job was cancelled; ``stopped`` are its tasks that were active, as they were."""

    job: JobRecord
    stopped: tuple[TaskRecord, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksRequeued:
    """Active tasks went back to waiting without a failure (their server was lost)."""

    server_id: str
    tasks: tuple[TaskRecord, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReplaced:
    """The job moved to a new placement (a peer, or this site) with a new epoch."""

    job_id: str
    placement: str
    epoch: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksRelayed:
    """A forwarded job's tasks here changed as its peer reported (progress, fetched frames)."""

    job_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksWithdrawn:
    """Chunks (task positions) left the job without being rendered here: given back to the
    split job they came from, at its origin's request."""

    job_id: str
    indices: tuple[int, ...]


Event = (
    JobCreated
    | JobsReleased
    | TasksAssigned
    | TasksStarted
    | TasksLogged
    | FramesStored
    | TaskFinished
    | JobFinished
    | JobStateChanged
    | JobCancelled
    | TasksRequeued
    | JobReplaced
    | TasksRelayed
    | TasksWithdrawn
    | JobPriorityChanged
)
ALL_EVENTS: tuple[type[Event], ...] = (
    JobCreated,
    JobsReleased,
    TasksAssigned,
    TasksStarted,
    TasksLogged,
    FramesStored,
    TaskFinished,
    JobFinished,
    JobStateChanged,
    JobCancelled,
    TasksRequeued,
    JobReplaced,
    TasksRelayed,
    TasksWithdrawn,
    JobPriorityChanged,
)
Subscriber = Callable[[Event], Awaitable[None]]
Recorder = Callable[[JobTransaction, Event], Awaitable[None]]
"""Another package's statements for an event, run in the transition's transaction."""


class EventBus:
    """Subscribers and recorders per event class, called in registration order."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Event], list[Subscriber]] = {}
        self._recorders: dict[type[Event], list[Recorder]] = {}

    def subscribe(self, callback: Subscriber, kinds: Sequence[type[Event]] = ALL_EVENTS) -> None:
        """Call ``callback`` with every event of the given classes (all by default)."""
        for kind in kinds:
            self._subscribers.setdefault(kind, []).append(callback)

    def record(self, callback: Recorder, kinds: Sequence[type[Event]] = ALL_EVENTS) -> None:
        """Call ``callback`` inside the transaction of every event of the given classes."""
        for kind in kinds:
            self._recorders.setdefault(kind, []).append(callback)

    def wanted(self, kind: type[Event]) -> bool:
        return bool(self._subscribers.get(kind) or self._recorders.get(kind))

    async def stage(self, tx: JobTransaction, events: Iterable[Event]) -> None:
        """Run the recorders of ``events`` in ``tx``; one that raises rolls the transition back."""
        for event in events:
            for callback in self._recorders.get(type(event), ()):
                await callback(tx, event)

    async def emit(self, event: Event) -> None:
        for callback in self._subscribers.get(type(event), ()):
            await callback(event)

    async def emit_all(self, events: Iterable[Event]) -> None:
        """Emit ``events`` in order (after the transaction that staged them committed)."""
        for event in events:
            await self.emit(event)
