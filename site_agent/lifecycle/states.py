"""The job and task state machines as data: (state, event) -> next state.

Every transition the agent makes is a row of :data:`JOB_TRANSITIONS` or
:data:`TASK_TRANSITIONS`; a pair that is not a row is refused. The lifecycle
service checks these tables before it writes, and derives from them the states
a fenced statement may start from (:func:`job_sources`). The tables are the
documentation too (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from site_agent.store.records import JobState, TaskState

from ..errors import ConflictError


class JobEvent(StrEnum):
    DISPATCH = "dispatch"
    """A task of the job was claimed by a render server of this site."""
    REMOTE_START = "remote_start"
    """The peer running a forwarded job reported it running."""
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    FINISH = "finish"
    """Nothing is left waiting or active and no task failed (or the peer finished it)."""
    FAIL = "fail"
    """Nothing is left waiting or active and a task failed (or the peer failed it). A job
    whose waiting tasks can run nowhere ends this way too: its waiting tasks are
    abandoned (TaskEvent.ABANDON), so it fails as soon as its active tasks end."""
    RETRY = "retry"
    """Failed tasks go back to waiting; a failed or cancelled job is queued again."""
    REPLACE = "replace"
    """The job moves to another placement (epoch + 1), keeping its state."""
    RERENDER = "rerender"
    """Chosen done or failed tasks render again; a done or failed job is queued again."""


class TaskEvent(StrEnum):
    ASSIGN = "assign"
    START = "start"
    COMPLETE = "complete"
    FAIL_RETRY = "fail_retry"
    """An attempt failed and another is allowed: back to waiting, failure counted."""
    FAIL_FINAL = "fail_final"
    REQUEUE = "requeue"
    """Taken away without a failure (server lost, job cancelled): back to waiting."""
    RESET = "reset"
    """A failed task is retried by the user: waiting, failures forgotten."""
    FORWARD_DONE = "forward_done"
    """The job was rendered at a peer: the task, never dispatched here, ends done."""
    FORWARD_FAIL = "forward_fail"
    RERENDER = "rerender"
    """The user asks for a task's frames again (missing or corrupt): waiting, a new attempt."""
    ABANDON = "abandon"
    """No render server can ever run the task (every capable server is avoided for its job,
    or its job cannot be sent to any server): waiting to failed, without an attempt.
    ``retry`` resets it like any failed task."""
    UNQUEUE = "unqueue"
    """The task waited in a render server's queue (look-ahead) and its job was paused: back
    to waiting before it started, no failure counted."""
    HAND_BACK = "hand_back"
    """The agent could not take the attempt's output (storage full, database down): back
    to waiting without a failure counted, so no render server is blamed."""


_UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED)
_ACTIVE = (TaskState.DISPATCHED, TaskState.RUNNING)

JOB_TRANSITIONS: Mapping[tuple[JobState, JobEvent], JobState] = {
    (JobState.QUEUED, JobEvent.DISPATCH): JobState.RUNNING,
    (JobState.RUNNING, JobEvent.DISPATCH): JobState.RUNNING,
    (JobState.QUEUED, JobEvent.REMOTE_START): JobState.RUNNING,
    (JobState.QUEUED, JobEvent.PAUSE): JobState.PAUSED,
    (JobState.RUNNING, JobEvent.PAUSE): JobState.PAUSED,
    (JobState.PAUSED, JobEvent.RESUME): JobState.QUEUED,
    **{(s, JobEvent.CANCEL): JobState.CANCELLED for s in _UNFINISHED},
    **{(s, JobEvent.FINISH): JobState.DONE for s in _UNFINISHED},
    **{(s, JobEvent.FAIL): JobState.FAILED for s in _UNFINISHED},
    **{(s, JobEvent.RETRY): s for s in _UNFINISHED},
    (JobState.FAILED, JobEvent.RETRY): JobState.QUEUED,
    (JobState.CANCELLED, JobEvent.RETRY): JobState.QUEUED,
    **{(s, JobEvent.REPLACE): s for s in _UNFINISHED},
    **{(s, JobEvent.RERENDER): s for s in _UNFINISHED},
    (JobState.DONE, JobEvent.RERENDER): JobState.QUEUED,
    (JobState.FAILED, JobEvent.RERENDER): JobState.QUEUED,
}
"""JobState x JobEvent -> JobState. Finished jobs (done, failed, cancelled) only take RETRY
(failed, cancelled) and RERENDER (done, failed)."""

TASK_TRANSITIONS: Mapping[tuple[TaskState, TaskEvent], TaskState] = {
    (TaskState.WAITING, TaskEvent.ASSIGN): TaskState.DISPATCHED,
    (TaskState.DISPATCHED, TaskEvent.START): TaskState.RUNNING,
    (TaskState.RUNNING, TaskEvent.START): TaskState.RUNNING,
    **{(s, TaskEvent.COMPLETE): TaskState.DONE for s in _ACTIVE},
    **{(s, TaskEvent.FAIL_RETRY): TaskState.WAITING for s in _ACTIVE},
    **{(s, TaskEvent.FAIL_FINAL): TaskState.FAILED for s in _ACTIVE},
    **{(s, TaskEvent.REQUEUE): TaskState.WAITING for s in _ACTIVE},
    (TaskState.FAILED, TaskEvent.RESET): TaskState.WAITING,
    (TaskState.WAITING, TaskEvent.FORWARD_DONE): TaskState.DONE,
    (TaskState.WAITING, TaskEvent.FORWARD_FAIL): TaskState.FAILED,
    (TaskState.DONE, TaskEvent.RERENDER): TaskState.WAITING,
    (TaskState.FAILED, TaskEvent.RERENDER): TaskState.WAITING,
    (TaskState.WAITING, TaskEvent.ABANDON): TaskState.FAILED,
    **{(s, TaskEvent.HAND_BACK): TaskState.WAITING for s in _ACTIVE},
    (TaskState.DISPATCHED, TaskEvent.UNQUEUE): TaskState.WAITING,
}
"""TaskState x TaskEvent -> TaskState. Every change of an active task is fenced on
(task, attempt, server) in the store."""


class TransitionRefusedError(ConflictError):
    """The job or task is in a state this event does not apply to."""


def job_allows(state: JobState, event: JobEvent) -> bool:
    return (state, event) in JOB_TRANSITIONS


def task_allows(state: TaskState, event: TaskEvent) -> bool:
    return (state, event) in TASK_TRANSITIONS


def next_job_state(state: JobState, event: JobEvent) -> JobState:
    """The state ``event`` moves a job in ``state`` to; TransitionRefusedError if none."""
    try:
        return JOB_TRANSITIONS[state, event]
    except KeyError:
        raise TransitionRefusedError(f"a {state} job cannot {event}", state=str(state)) from None


def next_task_state(state: TaskState, event: TaskEvent) -> TaskState:
    """The state ``event`` moves a task in ``state`` to; TransitionRefusedError if none."""
    try:
        return TASK_TRANSITIONS[state, event]
    except KeyError:
        raise TransitionRefusedError(f"a {state} task cannot {event}", state=str(state)) from None


def job_sources(event: JobEvent) -> frozenset[JobState]:
    """The job states ``event`` applies to (the ``expected`` states of its fenced update)."""
    return frozenset(state for state, e in JOB_TRANSITIONS if e is event)


def task_sources(event: TaskEvent) -> frozenset[TaskState]:
    return frozenset(state for state, e in TASK_TRANSITIONS if e is event)
