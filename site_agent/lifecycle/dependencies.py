"""Job dependencies in the lifecycle: edges checked when added, dependents settled when a job ends.

A job that waits for others stays ``queued`` and is not dispatched (nor
forwarded) until every job it waits for has ended as it waits for
(:func:`scheduler.dependencies.ready`, asked by the dispatcher on each round).
When a job ends, :func:`settle` runs in the same transaction as its end: the
jobs waiting for it are released, or, when it failed or was cancelled and they
wait for it to be done, fail or are cancelled with it ("upstream job X
failed"), and their own dependents with them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from scheduler.dependencies import DependencyKind, Upstream, doomed_by, find_cycle, ready

from ..errors import BadRequestError, ConflictError, NotFoundError
from ..store.base import JobTransaction
from ..store.records import (
    NOTHING_SETTLED,
    DependentsSettled,
    JobRecord,
    JobState,
    TaskRecord,
    TaskState,
)
from .states import JobEvent, TaskEvent, job_allows, job_sources, next_task_state

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 100


async def add_upstreams(
    tx: JobTransaction, job_id: str, upstreams: Sequence[tuple[str, DependencyKind]]
) -> bool:
    """Record that ``job_id`` waits for ``upstreams``; returns whether it is ready at once.

    Locks the upstream jobs (in id order) so none of them ends unseen meanwhile.
    Refuses (BadRequestError, NotFoundError, ConflictError) the job itself, unknown
    jobs, a job that already failed or was cancelled when the edge waits for it to
    be done, and an edge that would close a cycle.
    """
    if not upstreams:
        return True
    kinds = dict(upstreams)
    if len(kinds) > MAX_UPSTREAMS:
        raise BadRequestError(f"a job may wait for at most {MAX_UPSTREAMS} jobs, got {len(kinds)}")
    if job_id in kinds:
        raise BadRequestError(f"job {job_id} cannot wait for itself")
    for upstream_id in sorted(kinds):
        state = await tx.lock_job(upstream_id)
        if state is None:
            raise NotFoundError(
                f"no job '{upstream_id}' to wait for; `spillway jobs` lists the jobs of this site"
            )
        end = doomed_by(
            Upstream(job_id=upstream_id, name="", kind=kinds[upstream_id], state=state.value)
        )
        if end is not None:
            verb = "failed" if end == JobState.FAILED else "was cancelled"
            raise ConflictError(
                f"job {upstream_id} {verb}: a job waiting for it to be done could never run; "
                f"retry it first (`spillway retry {upstream_id}`), or wait for it to end "
                "however it ends (--after-any)"
            )
    cycle = find_cycle(job_id, sorted(kinds), await _edges_reachable(tx, sorted(kinds)))
    if cycle is not None:
        raise ConflictError(
            f"job {job_id} cannot wait for job {cycle[1]}: that would make a cycle "
            f"({' -> '.join(cycle)}); jobs that wait for each other could never run"
        )
    await tx.dependencies.add(job_id, sorted(kinds.items()))
    found = await tx.dependencies.upstreams([job_id])
    return ready(found.get(job_id, ()))


async def _edges_reachable(tx: JobTransaction, start: Sequence[str]) -> dict[str, list[str]]:
    """Every dependency edge reachable from ``start`` (one read per level of the graph)."""
    edges: dict[str, list[str]] = {}
    seen = set(start)
    frontier = list(start)
    while frontier:
        found = await tx.dependencies.edges_from(frontier)
        edges.update(found)
        frontier = sorted({u for ups in found.values() for u in ups} - seen)
        seen.update(frontier)
    return edges


async def settle(
    tx: JobTransaction, job_id: str, state: JobState, *, at: float
) -> DependentsSettled:
    """``job_id`` just ended in ``state`` (written in ``tx``): release or end its dependents.

    A dependent waiting for it to be done fails (or is cancelled) with it when it
    failed (or was cancelled), and so on down the chain; a dependent with nothing
    left to wait for is released. Finished dependents are left as they are.
    """
    if not state.finished:
        return NOTHING_SETTLED
    released: list[str] = []
    failed: list[str] = []
    cancelled: list[tuple[JobRecord, tuple[TaskRecord, ...]]] = []
    todo = [(job_id, state)]
    while todo:
        upstream_id, upstream_state = todo.pop()
        for dependent, kind in await tx.dependencies.dependents(upstream_id):
            edge = Upstream(job_id=upstream_id, name="", kind=kind, state=upstream_state.value)
            end = doomed_by(edge)
            if end is None:
                found = await tx.dependencies.upstreams([dependent])
                if ready(found.get(dependent, ())):
                    released.append(dependent)
                continue
            ended = await _end_dependent(tx, dependent, upstream_id, JobState(end), at)
            if ended is None:
                continue
            todo.append((dependent, JobState(end)))
            if end == JobState.FAILED:
                failed.append(dependent)
            else:
                cancelled.append(ended)
    if released or failed or cancelled:
        log.info(
            "job %s %s: released %s, failed %s, cancelled %s",
            job_id,
            state.value,
            released or "none",
            failed or "none",
            [job.id for job, _ in cancelled] or "none",
        )
    return DependentsSettled(
        released=tuple(released), failed=tuple(failed), cancelled=tuple(cancelled)
    )


async def _end_dependent(
    tx: JobTransaction, job_id: str, upstream_id: str, end: JobState, at: float
) -> tuple[JobRecord, tuple[TaskRecord, ...]] | None:
    """Fail or cancel ``job_id`` because ``upstream_id`` did; None if it had ended already.

    Returns the job as it is now and the tasks it had active (sent back to waiting).
    """
    event = JobEvent.FAIL if end == JobState.FAILED else JobEvent.CANCEL
    current = await tx.lock_job(job_id)
    if current is None or not job_allows(current, event):
        return None
    verb = "failed" if end == JobState.FAILED else "was cancelled"
    reason = (
        f"upstream job {upstream_id} {verb}; retry it, then `spillway retry {job_id}`"
        if end == JobState.FAILED
        else f"upstream job {upstream_id} {verb}"
    )
    active = tuple(await tx.active_tasks(job_id))
    await tx.requeue_job_tasks(job_id)
    if end == JobState.FAILED:
        abandoned: TaskState = next_task_state(TaskState.WAITING, TaskEvent.ABANDON)
        await tx.end_waiting_tasks(
            job_id, abandoned, at=at, error=f"upstream job {upstream_id} {verb}"
        )
    await tx.set_job_state(job_id, end, at=at, expected=job_sources(event), error=reason)
    job = await tx.get_job(job_id)
    assert job is not None  # locked above
    return job, active
