"""Which tasks a progress snapshot carries: only what changed since the origin acknowledged.

Per accepted job, :class:`SnapshotDeltas` keeps the tasks as the origin has them
(the values of every acknowledged snapshot, applied in order) and the snapshots sent
since, not acknowledged yet. A new snapshot carries every task whose value differs
from the acknowledged one, plus every task any unacknowledged snapshot carried: a
snapshot that is lost, or replaced in the outbox before it went, loses nothing (the
next one carries its tasks again, with their values now), and a task that changed and
changed back since the last acknowledgement is sent too. The origin applies a
snapshot only when its number is above the last it applied, so each snapshot it
applies brings it to the remote's state at that number.

Kept in memory: after a restart (or for a job never acknowledged) a snapshot carries
every task, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from federation.protocol import TaskProgress


@dataclass(slots=True)
class _Job:
    acked: dict[int, TaskProgress] = field(default_factory=dict)
    acked_seq: int = 0
    sent: list[tuple[int, dict[int, TaskProgress]]] = field(default_factory=list)
    """Snapshots sent and not acknowledged yet: (seq, the tasks it carried)."""


class SnapshotDeltas:
    """Acknowledged task values and unacknowledged snapshots, per accepted job."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}

    def delta(self, job_id: str, tasks: Sequence[TaskProgress]) -> tuple[TaskProgress, ...]:
        """The tasks of the job's current snapshot ``tasks`` that the next one must carry."""
        job = self._jobs.get(job_id)
        if job is None:
            return tuple(tasks)
        pending = {index for _, carried in job.sent for index in carried}
        return tuple(t for t in tasks if t.index in pending or job.acked.get(t.index) != t)

    def sent(self, job_id: str, seq: int, tasks: Sequence[TaskProgress]) -> None:
        """Snapshot ``seq`` carrying ``tasks`` is in the outbox."""
        job = self._jobs.setdefault(job_id, _Job())
        job.sent.append((seq, {t.index: t for t in tasks}))

    def acknowledged(self, job_id: str, seq: int) -> None:
        """The origin processed snapshot ``seq`` of the job (and so every older one it got)."""
        job = self._jobs.get(job_id)
        if job is None or seq <= job.acked_seq:
            return
        for number, carried in job.sent:
            if number <= seq:
                job.acked.update(carried)
        job.sent = [(n, c) for n, c in job.sent if n > seq]
        job.acked_seq = seq

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
