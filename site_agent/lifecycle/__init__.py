"""Job and task lifecycle: the state machines, the one service that changes state, its events.

See :mod:`.states` (the transition tables), :mod:`.service` (:class:`Lifecycle`)
and :mod:`.events` (what subscribers hear after each committed transition).
"""

from __future__ import annotations

from .base import LifecycleStore, TransactionHook
from .events import (
    Event,
    JobCancelled,
    JobCreated,
    JobFinished,
    JobPriorityChanged,
    JobReplaced,
    JobsReleased,
    JobStateChanged,
    TaskFinished,
    TasksAssigned,
    TasksRelayed,
    TasksRequeued,
    TasksStarted,
    TasksWithdrawn,
)
from .reclaim import WithdrawalHook
from .service import Lifecycle
from .split import PartChunk
from .states import (
    JOB_TRANSITIONS,
    TASK_TRANSITIONS,
    JobEvent,
    TaskEvent,
    TransitionRefusedError,
)

__all__ = [
    "JOB_TRANSITIONS",
    "TASK_TRANSITIONS",
    "Event",
    "TransactionHook",
    "JobCancelled",
    "JobCreated",
    "JobEvent",
    "JobFinished",
    "JobPriorityChanged",
    "JobReplaced",
    "JobsReleased",
    "JobStateChanged",
    "Lifecycle",
    "LifecycleStore",
    "PartChunk",
    "TaskEvent",
    "TaskFinished",
    "TasksAssigned",
    "TasksRelayed",
    "TasksRequeued",
    "TasksStarted",
    "TasksWithdrawn",
    "TransitionRefusedError",
    "WithdrawalHook",
]
