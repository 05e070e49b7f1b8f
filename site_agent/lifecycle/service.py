"""The lifecycle service: the one place where jobs and tasks change state.

Each method is one transition: it checks the transition table
(:mod:`site_agent.lifecycle.states`), runs the store's fenced statements in one
transaction, and after the commit emits one event (:mod:`.events`) to the
subscribers (the dispatcher, the task stopper, federation). Recorders hear the
same events inside the transaction, before it commits (webhooks write their
deliveries there). Reports from render
servers go through the :class:`~site_agent.batcher.ReportBatcher`: the
lifecycle decides, the batch applies many fenced transitions in one
transaction, and each caller's events go out after its batch committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from scheduler.dependencies import DependencyKind
from scheduler.retry import decide_retry

from ..batcher import ReportBatcher
from ..errors import ConflictError, JobExistsError
from ..store.base import StoreConflictError, StoreNotFoundError
from ..store.records import (
    LOCAL,
    NOTHING_SETTLED,
    ClaimCandidate,
    CompletionReport,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    StartedReport,
    TaskClaim,
    TaskOutcome,
    TaskRecord,
    TaskState,
)
from . import batch
from .base import LifecycleStore, no_job, settled_events
from .control import ControlTransitions
from .dependencies import add_upstreams, settle
from .events import (
    ALL_EVENTS,
    Event,
    EventBus,
    FramesStored,
    JobCreated,
    JobFinished,
    JobStateChanged,
    Recorder,
    Subscriber,
    TaskFinished,
    TasksAssigned,
    TasksLogged,
    TasksRequeued,
    TasksStarted,
)
from .faults import FaultTransitions
from .fence import first_per_task, holds
from .placement import PlacementTransitions
from .reclaim import ReclaimTransitions
from .split import SplitTransitions
from .states import JobEvent, TaskEvent, job_allows, next_job_state, task_allows

log = logging.getLogger(__name__)


class Lifecycle(
    ControlTransitions,
    PlacementTransitions,
    SplitTransitions,
    ReclaimTransitions,
    FaultTransitions,
):
    """Every job and task transition of one site; see the module docstring."""

    def __init__(
        self,
        store: LifecycleStore,
        *,
        bad_server_threshold: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._threshold = bad_server_threshold
        self._clock = clock
        self._events = EventBus()
        self.batcher = ReportBatcher(self, clock=clock)

    def subscribe(self, callback: Subscriber, kinds: Sequence[type[Event]] = ALL_EVENTS) -> None:
        """Call ``callback`` after each committed transition of the given event classes."""
        self._events.subscribe(callback, kinds)

    def record(self, callback: Recorder, kinds: Sequence[type[Event]] = ALL_EVENTS) -> None:
        """Call ``callback`` inside each transition's transaction, before it commits, with
        the transaction and each event of the given classes that it will emit.

        What ``callback`` writes commits or rolls back with the transition (a durable
        outbox); an exception it raises rolls the transition back and reaches the caller.
        """
        self._events.record(callback, kinds)

    async def close(self) -> None:
        """Wait for the reports already queued to be written."""
        await self.batcher.close()

    # --- create ---------------------------------------------------------------
    async def create(
        self,
        job: JobRecord,
        chunks: Sequence[tuple[int, ...]],
        *,
        after: Sequence[tuple[str, DependencyKind]] = (),
    ) -> JobRecord:
        """The job and one waiting task per chunk; the one entry for local and accepted jobs.

        ``after``: the jobs it waits for (checked and recorded in the same
        transaction, see :func:`.dependencies.add_upstreams`). JobExistsError if a
        job with this id exists (a retried federation commit).
        """
        try:
            async with self._store.transaction() as tx:
                count = await tx.insert_job(job, chunks)
                is_ready = await add_upstreams(tx, job.id, after)
                created = JobCreated(job=job, ready=is_ready)
                await self._events.stage(tx, [created])
        except StoreConflictError as exc:
            raise JobExistsError(str(exc)) from exc
        log.info(
            "job %s (%s) created: %d frames in %d tasks of %s, placement %s",
            job.id,
            job.name,
            job.frame_count,
            count,
            job.profile.requirement,
            job.placement,
        )
        if after:
            log.info(
                "job %s waits for %s (%s)",
                job.id,
                ", ".join(upstream for upstream, _ in after),
                "ready" if is_ready else "held back",
            )
        await self._events.emit(created)
        return job

    async def add_dependencies(
        self, job_id: str, after: Sequence[tuple[str, DependencyKind]], *, at: float
    ) -> bool:
        """A queued or paused job waits for ``after`` too; returns whether it is ready now.

        Refused when the job has started (its tasks may already run), and when an
        edge would close a cycle (see :func:`.dependencies.add_upstreams`).
        """
        async with self._store.transaction() as tx:
            state = await tx.lock_job(job_id)
            if state is None:
                raise no_job(job_id)
            if state not in (JobState.QUEUED, JobState.PAUSED) or await tx.active_tasks(job_id):
                raise ConflictError(
                    f"job {job_id} is {state}; only a queued or paused job with nothing "
                    "rendering can be made to wait for other jobs"
                )
            is_ready = await add_upstreams(tx, job_id, after)
            changed = JobStateChanged(job_id=job_id, state=state)
            await self._events.stage(tx, [changed])
        log.info("job %s now also waits for %s", job_id, ", ".join(u for u, _ in after))
        await self._events.emit(changed)
        return is_ready

    # --- dispatch -------------------------------------------------------------
    async def assign(self, claims: Sequence[TaskClaim], *, at: float) -> list[TaskRecord]:
        """Claim waiting tasks in one transaction; returns those claimed (state dispatched).

        A claim loses when its task is no longer waiting at ``attempt - 1``, or its
        job was paused, cancelled or forwarded meanwhile; of two claims for one
        task only the first counts. A job's first claims move it to running.
        """
        unique = [c for c in first_per_task(claims) if c is not None]
        if not unique:
            return []
        async with self._store.transaction() as tx:
            # Lock the jobs first (in id order), then read: no other writer can change
            # these tasks' waiting state until commit, so every claim read as winnable wins.
            await tx.lock_jobs(sorted({c.job_id for c in unique}))
            current = await tx.claim_candidates([c.task_id for c in unique])
            won = [c for c in unique if _claimable(current.get(c.task_id), c)]
            if not won:
                return []
            await tx.claim_tasks(won, at=at)
            tasks = await tx.get_tasks([c.task_id for c in won])
            claimed = [
                tasks[c.task_id]
                for c in won
                if holds(tasks.get(c.task_id), c, state=TaskState.DISPATCHED, at=at)
            ]
            # Only a job's first claims move it from queued to running (read under its lock).
            queued = {
                current[c.task_id].job_id
                for c in won
                if next_job_state(current[c.task_id].job_state, JobEvent.DISPATCH)
                != current[c.task_id].job_state
            }
            started = sorted({task.job_id for task in claimed} & queued)
            if started:
                await tx.start_jobs(started, at=at)
            events: list[Event] = []
            if self._events.wanted(TasksAssigned):
                events.append(TasksAssigned(tasks=tuple(claimed), started_jobs=tuple(started)))
                await self._events.stage(tx, events)
        await self._events.emit_all(events)
        return claimed

    # --- reports (batched) ----------------------------------------------------
    def start(self, report: StartedReport) -> None:
        """Queue marking the attempt running (fenced); not awaited, see ReportBatcher.started."""
        self.batcher.started(report)

    def log(self, report: LogReport) -> None:
        """Queue output lines for the attempt's log and tail (fenced); not awaited."""
        self.batcher.log(report)

    async def reports_written(self) -> None:
        """Wait until the reports queued so far are committed (e.g. an attempt's last
        lines, before its failure is recorded in a transaction of its own)."""
        await self.batcher.close()

    async def record_frame(self, record: FrameRecord) -> None:
        """Record an uploaded frame; returns once it is committed."""
        await self.batcher.frame(record)

    async def complete(
        self, report: CompletionReport, *, frames: Sequence[FrameRecord] = ()
    ) -> TaskOutcome | None:
        """Complete the attempt (with ``frames`` in the same transaction); None if stale."""
        outcome = await self.batcher.completed(report, frames=frames)
        if outcome is not None:
            await self._finished(outcome, retry=False)
        return outcome

    async def apply_reports(
        self,
        started: Sequence[StartedReport],
        frames: Sequence[FrameRecord],
        completions: Sequence[CompletionReport],
        *,
        at: float,
        logs: Sequence[LogReport] = (),
    ) -> list[TaskOutcome | None]:
        """Apply many reports in one transaction (the batcher's flush); all or nothing.

        Returns one outcome per completion, None where the fence did not match.
        Events of completions are emitted by :meth:`complete` for its own report
        (staged here, in the batch's transaction).
        """
        if not (started or frames or completions or logs):
            return []
        events: list[Event] = []
        if started and self._events.wanted(TasksStarted):
            events.append(TasksStarted(task_ids=tuple(r.task_id for r in started)))
        if logs and self._events.wanted(TasksLogged):
            events.append(TasksLogged(task_ids=tuple({r.task_id for r in logs})))
        if frames and self._events.wanted(FramesStored):
            events.append(FramesStored(job_ids=tuple(sorted({f.job_id for f in frames}))))
        try:
            async with self._store.transaction() as tx:
                outcomes = await batch.apply_reports(
                    tx, started, frames, completions, at=at, logs=logs
                )
                finished = [e for o in outcomes if o is not None for e in _outcome_events(o)]
                await self._events.stage(tx, [*events, *finished])
        except StoreNotFoundError as exc:
            jobs = ", ".join(sorted({f.job_id for f in frames}))
            raise StoreNotFoundError(f"cannot record frames of job {jobs}: no such job") from exc
        await self._events.emit_all(events)
        return outcomes

    # --- failures -------------------------------------------------------------
    async def fail(
        self, task: TaskRecord, server_id: str, attempt: int, error: str, log_tail: str | None
    ) -> TaskOutcome | None:
        """An attempt failed: retried, or failed for good (max attempts, or a bad server).

        A server that failed ``bad_server_threshold`` tasks of the job is avoided,
        which the retry decision counts in. None when the report was stale.
        """
        job = await self._store.get_job(task.job_id)
        if job is None:
            return None
        per_server = await self._store.server_failures(task.job_id)
        decision = decide_retry(
            failures=task.failures + 1,
            max_attempts=job.profile.max_attempts,
            server_failures_in_job=per_server.get(server_id, 0) + 1,
            bad_server_threshold=self._threshold,
        )
        outcome = await self.fail_task(
            task.id,
            attempt,
            server_id,
            error=error,
            at=self._clock(),
            retry=decision.retry,
            log_tail=log_tail,
        )
        if outcome is None:
            log.info(
                "ignored stale failure of task %s attempt %s from %s", task.id, attempt, server_id
            )
            return None
        log.warning(
            "task %s of job %s failed on %s: %s (%s)",
            task.id,
            job.id,
            server_id,
            error,
            decision.reason,
        )
        return outcome

    async def expire(self, task: TaskRecord) -> TaskOutcome | None:
        """The task's lease ran out without a report: a failed attempt."""
        job = await self._store.get_job(task.job_id)
        timeout = job.profile.task_timeout_s if job else 0
        error = f"timed out after {timeout:.0f}s without a report"
        return await self.fail(task, task.server_id or "", task.attempt, error, None)

    async def fail_task(
        self,
        task_id: int,
        attempt: int,
        server_id: str,
        *,
        error: str,
        at: float,
        retry: bool,
        log_tail: str | None = None,
    ) -> TaskOutcome | None:
        """Fenced. Counts a failure (recorded per server), then waiting if ``retry`` else failed."""
        async with self._store.transaction() as tx:
            job_id = await tx.task_job(task_id)
            if job_id is None:
                return None
            job_state = await tx.lock_job(job_id)
            assert job_state is not None  # a task's job exists (foreign key)
            # The attempt as it held its slot; a retry clears its server and times.
            before = (await tx.get_tasks([task_id])).get(task_id)
            task = await tx.fail_task(
                task_id, attempt, server_id, error=error, log_tail=log_tail, retry=retry, at=at
            )
            if task is None:
                return None
            await tx.record_failure(task, server_id, attempt, error, at=at)
            if before is not None:
                await tx.record_attempt_usage([(before, at)], failed=True)
            finished, settled = False, NOTHING_SETTLED
            if not retry:
                job_state, finished = await batch.finish_if_done(tx, job_id, job_state, at)
                if finished:
                    settled = await settle(tx, job_id, job_state, at=at)
            outcome = TaskOutcome(
                task=task, job_state=job_state, job_finished=finished, settled=settled
            )
            await self._events.stage(tx, _outcome_events(outcome, retry=retry))
        await self._finished(outcome, retry=retry)
        return outcome

    async def _finished(self, outcome: TaskOutcome, *, retry: bool) -> None:
        await self._events.emit_all(_outcome_events(outcome, retry=retry))

    async def requeue_server(self, server_id: str, *, at: float) -> list[TaskRecord]:
        """The server's active tasks go back to waiting (attempt kept, no failure counted).

        Returns the tasks as they are now (waiting, no server). Tasks keep no
        requeue time, so ``at`` only appears in the log.
        """
        async with self._store.transaction() as tx:
            tasks = await tx.requeue_server_tasks(server_id)
            events: list[Event] = []
            if tasks:
                events.append(TasksRequeued(server_id=server_id, tasks=tuple(tasks)))
                await self._events.stage(tx, events)
        if tasks:
            log.info("requeued %d task(s) of server %s at %.3f", len(tasks), server_id, at)
        await self._events.emit_all(events)
        return tasks


def _outcome_events(outcome: TaskOutcome, *, retry: bool = False) -> list[Event]:
    """An attempt's end, and its job's and the job's dependents' when it finished the job."""
    events: list[Event] = [TaskFinished(outcome=outcome, retry=retry)]
    if outcome.job_finished:
        events.append(JobFinished(job_id=outcome.task.job_id, state=outcome.job_state))
        events += settled_events(outcome.settled)
    return events


def _claimable(candidate: ClaimCandidate | None, claim: TaskClaim) -> bool:
    return (
        candidate is not None
        and candidate.job_id == claim.job_id
        and task_allows(candidate.state, TaskEvent.ASSIGN)
        and candidate.attempt == claim.attempt - 1
        and job_allows(candidate.job_state, JobEvent.DISPATCH)
        and candidate.placement == LOCAL
    )
