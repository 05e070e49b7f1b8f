"""The one fence check: did this write, read back, come from this claim or report?

A batch writes many fenced updates with ``executemany`` (no per-row result), then
reads the tasks back. A task holds a claim or report when it is in the state the
write sets, at the same attempt and server, stamped with the write's time. Of
several writes for one task in a batch only the first can hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from site_agent.store.records import TaskRecord, TaskState


class Fenced(Protocol):
    """A claim or report on one task attempt (TaskClaim, CompletionReport)."""

    @property
    def task_id(self) -> int: ...

    @property
    def attempt(self) -> int: ...

    @property
    def server_id(self) -> str: ...


F = TypeVar("F", bound=Fenced)


def first_per_task(items: Sequence[F]) -> list[F | None]:
    """``items`` with any repeat of an earlier item's task replaced by None (it cannot win)."""
    seen: set[int] = set()
    unique: list[F | None] = []
    for item in items:
        unique.append(None if item.task_id in seen else item)
        seen.add(item.task_id)
    return unique


def _stamp(task: TaskRecord, state: TaskState) -> float | None:
    return task.dispatched_at if state is TaskState.DISPATCHED else task.finished_at


def holds(task: TaskRecord | None, item: Fenced, *, state: TaskState, at: float) -> bool:
    """Whether ``task``, read back after the write, is in ``state`` because of ``item``.

    The write stamps ``dispatched_at`` (claims) or ``finished_at`` (completions)
    with ``at``; a task changed by another write differs in one of these fields.
    """
    return (
        task is not None
        and task.state is state
        and task.attempt == item.attempt
        and task.server_id == item.server_id
        and _stamp(task, state) == at
    )
