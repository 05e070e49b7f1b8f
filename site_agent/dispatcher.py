"""Event-driven dispatcher: plans with the pure scheduler, claims in slices of the plan, sends.

It runs when something changes (a job arrives, a task ends, a server connects or
frees a slot), not on a polling interval; a slow safety tick only covers events
lost to a crash of the loop body.

No single job can stop dispatching for the others: a job whose Assign cannot be
encoded fails alone (with the reason), a job whose capable servers all avoid it
fails instead of waiting forever, and any unexpected error of a round is logged
and the loop carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from render_server import protocol
from scheduler.dispatch import (
    Assignment,
    GuestLimit,
    JobView,
    plan_dispatch,
    round_slices,
)
from scheduler.stranded import stranded_jobs, unplaceable_jobs

from .connections import ActiveTask, ConnectionRegistry
from .dispatch_views import PROBE, AssignEncoder, assign_message, job_views, ready_tasks
from .lifecycle.events import (
    Event,
    JobCancelled,
    JobCreated,
    JobReplaced,
    JobsReleased,
    JobStateChanged,
    TaskFinished,
    TasksRequeued,
)
from .lookahead import TaskTimes
from .store.base import StoreError
from .store.records import LOCAL, DispatchSnapshot, JobRecord, TaskClaim, TaskRecord

log = logging.getLogger(__name__)

SAFETY_TICK_S = 5.0
STALL_CHECK_S = 1.0
"""At most this often the dispatcher looks for jobs no online server can run."""
COALESCE_HOPS = 2
"""Event-loop hops between a wake and the round: completions committed by one report
flush wake the dispatcher one by one, and should be planned together."""
ASSIGN_GRACE_S = 30.0
"""Extra lease time for a dispatched task to start (asset download, process start)."""
SEND_YIELD = 32
"""Sends between two yields to the event loop while the next slice is being claimed."""


WAKE_ON: tuple[type[Event], ...] = (
    JobCreated,
    JobsReleased,
    JobStateChanged,
    JobCancelled,
    TasksRequeued,
    JobReplaced,
    TaskFinished,
)
"""Lifecycle events after which waiting work or free slots may have appeared."""


class SnapshotSource(Protocol):
    async def dispatch_snapshot(self, *, per_job_limit: int) -> DispatchSnapshot: ...


class Claims(Protocol):
    async def assign(self, claims: Sequence[TaskClaim], *, at: float) -> list[TaskRecord]:
        """The lifecycle transition: claim waiting tasks; returns those won."""

    async def fail_unrunnable(self, job_id: str, reason: str, *, at: float) -> bool:
        """The lifecycle transition: the job's waiting tasks can run nowhere."""


SENDABLE_CACHE = 10_000
"""Job ids whose Assign is known to encode; the set is cleared when it grows past this."""


class Dispatcher:
    def __init__(
        self,
        store: SnapshotSource,
        claims: Claims,
        connections: ConnectionRegistry,
        *,
        bad_server_threshold: int = 3,
        stall_after_s: float = 0.0,
        lookahead_below_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.task_times = TaskTimes(below_s=lookahead_below_s)
        """Which jobs' tasks are short: those queued ahead on servers that keep a queue."""
        self._stall_after_s = stall_after_s
        self._unplaceable_since: dict[str, float] = {}
        self._next_stall_check = 0.0
        self._claims = claims
        self._bad_server_threshold = bad_server_threshold
        self._connections = connections
        self._clock = clock
        self._wake = asyncio.Event()
        self._sendable: set[str] = set()
        self._hold_until = 0.0
        self._frames_held = False
        """The last round left tasks waiting for frames of another job (--after-frames)."""
        self.rounds = 0
        self.dispatched = 0
        self.guests: Mapping[str, GuestLimit] = {}
        """Per peer site: limits on the jobs accepted from it (set by federation)."""
        self.on_round: Callable[[float, int], None] | None = None
        """Told how long each round took and how many tasks it sent (the metrics)."""

    def wake(self) -> None:
        self._wake.set()

    def hold(self, seconds: float, reason: str) -> None:
        """Send nothing for ``seconds`` (the site cannot take results, e.g. storage is full).

        Work stays waiting; the safety tick resumes dispatching after the hold.
        """
        until = self._clock() + seconds
        if until > self._hold_until:
            log.warning("dispatching held for %.0fs: %s", seconds, reason)
            self._hold_until = until

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber (for the classes in WAKE_ON): wake when work may be dispatchable."""
        if isinstance(event, TaskFinished):
            newly_short = self.task_times.record(event.outcome)
            # A completion freed its slot before the commit (TaskReports wakes then); a failure
            # that is retried puts its task back to waiting.
            # A frame stored by a completion may be what a waiting task of another job waits
            # for (--after-frames): the round that woke before this commit could not see it.
            # A job whose tasks turned out short may now fill servers' queues (look-ahead).
            if event.retry or self._frames_held or newly_short:
                self._wake.set()
        elif isinstance(event, JobCreated | JobReplaced):
            if (event.job.placement if isinstance(event, JobCreated) else event.placement) == LOCAL:
                self._wake.set()
        else:
            self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SAFETY_TICK_S)
            for _ in range(COALESCE_HOPS):
                await asyncio.sleep(0)
            self._wake.clear()
            try:
                await self.fail_stalled()
                started = time.perf_counter()
                sent = await self.dispatch_once()
                if self.on_round is not None:
                    self.on_round(time.perf_counter() - started, sent)
            except StoreError as exc:
                log.error("dispatch round failed, retrying in 1s: %s", exc)
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            except Exception:
                # A bug must not end dispatching for the whole site (nothing else restarts it).
                log.exception("dispatch round failed unexpectedly, retrying in 1s")
                await asyncio.sleep(1.0)
                self._wake.set()
                continue
            if sent:
                # Some slots may still be free (claims lost to races, more work queued).
                self._wake.set()

    async def dispatch_once(self) -> int:
        """One planning round; returns the number of tasks sent."""
        if self._clock() < self._hold_until:
            return 0
        servers = self._connections.dispatchable()
        free = sum(v.free_slots for v in servers)
        # Queue places (look-ahead) count only while some job's tasks are short.
        ahead = sum(v.ahead_slots for v in servers) if self.task_times.any_short() else 0
        if free + ahead == 0:
            return 0
        snap = await self._store.dispatch_snapshot(per_job_limit=free + ahead)
        if not snap.waiting:
            return 0
        self.rounds += 1
        jobs = {j.id: j for j in snap.jobs}
        short = self.task_times.short(jobs) if ahead else None
        views = await self._runnable(job_views(snap, self._bad_server_threshold))
        tasks_ready, self._frames_held = ready_tasks(snap)
        plan = plan_dispatch(
            views,
            tasks_ready,
            servers,
            guests=self.guests,
            guest_running=snap.guest_running,
            lookahead=short or frozenset(),
        )
        plan = await self._sendable_only(plan, jobs)
        if not plan:
            return 0
        now = self._clock()
        claims = [
            TaskClaim(
                task_id=a.task_id,
                job_id=a.job_id,
                attempt=a.attempt,
                server_id=a.server_id,
                lease_expires_at=now + jobs[a.job_id].profile.task_timeout_s + ASSIGN_GRACE_S,
            )
            for a in plan
        ]
        return await self._claim_and_send(claims, jobs, {t.id: t for t in snap.waiting}, at=now)

    async def _claim_and_send(
        self,
        claims: list[TaskClaim],
        jobs: Mapping[str, JobRecord],
        tasks: Mapping[int, TaskRecord],
        *,
        at: float,
    ) -> int:
        """Claim and send ``claims`` in slices, in plan order (:func:`.round_slices`).

        Each slice is claimed in its own transaction and sent once that committed; the
        next slice's transaction runs while this slice's Assigns are written, so the
        first Assigns of a large round leave after a small claim instead of after the
        whole round's. Returns the number of tasks sent.
        """
        slices = [claims[start:stop] for start, stop in round_slices(len(claims))]
        assigns = AssignEncoder(jobs)
        pending: asyncio.Future[list[TaskRecord]] | None = None
        sent = 0
        try:
            for index, claim_slice in enumerate(slices):
                claiming = pending or asyncio.ensure_future(self._claims.assign(claim_slice, at=at))
                pending = None
                claimed = await claiming
                if index + 1 < len(slices):
                    pending = asyncio.ensure_future(self._claims.assign(slices[index + 1], at=at))
                sent += await self._send(claimed, assigns, tasks, overlap=pending is not None)
        finally:
            if pending is not None:
                # A send failed unexpectedly while the next slice was being claimed: let that
                # transaction end (its tasks, not sent, come back when their lease expires).
                with contextlib.suppress(Exception):
                    await pending
        return sent

    async def _send(
        self,
        claimed: Sequence[TaskRecord],
        assigns: AssignEncoder,
        tasks: Mapping[int, TaskRecord],
        *,
        overlap: bool,
    ) -> int:
        """Send the Assigns of tasks whose claim committed; returns how many went out.

        With ``overlap`` (the next slice is being claimed) the loop is let run every
        :data:`SEND_YIELD` sends, so that transaction's statements go on meanwhile (each
        statement's result comes back through the event loop). A task whose server is
        gone, or whose send fails, stays claimed for that server: the monitor requeues
        the tasks of a server that does not come back.
        """
        sent = 0
        for index, task in enumerate(claimed):
            if overlap and index and index % SEND_YIELD == 0:
                await asyncio.sleep(0)
            conn = self._connections.get(task.server_id or "")
            if conn is None:
                continue  # the monitor requeues tasks of servers that are gone
            conn.running[(task.id, task.attempt)] = ActiveTask.of(task)
            if await conn.send_encoded(assigns.encode(task.job_id, task, tasks[task.id].frames)):
                sent += 1
                log.debug(
                    "dispatched task %s (job %s, frames %s-%s, attempt %s) to %s",
                    task.id,
                    task.job_id,
                    task.frames[0],
                    task.frames[-1],
                    task.attempt,
                    conn.record.name,
                )
        self.dispatched += sent
        return sent

    async def fail_stalled(self) -> None:
        """Fail the jobs no online server could run for ``stall_after`` (checked every few seconds).

        A job is timed from the first check that found it unplaceable since this agent
        started; one that a capable server could run again starts over.
        """
        now = self._clock()
        if self._stall_after_s <= 0 or now < self._next_stall_check:
            return
        self._next_stall_check = now + STALL_CHECK_S
        snap = await self._store.dispatch_snapshot(per_job_limit=1)
        views = job_views(snap, self._bad_server_threshold)
        unplaceable = unplaceable_jobs(views, self._connections.views())
        since = {job_id: self._unplaceable_since.get(job_id, now) for job_id in unplaceable}
        for job_id, first in list(since.items()):
            if now - first >= self._stall_after_s:
                del since[job_id]
                await self._fail(
                    job_id,
                    f"no online render server could run it for {self._stall_after_s:g} s "
                    f"([scheduling] stall_after): {unplaceable[job_id]}; "
                    f"start or enable a capable server, then `spillway retry {job_id}`",
                )
        self._unplaceable_since = since

    async def _runnable(self, views: list[JobView]) -> list[JobView]:
        """``views`` without the jobs no connected server will run again (those fail)."""
        if not any(v.avoid_servers and not v.running_tasks for v in views):
            return views  # no job can be stranded: skip viewing every connected server
        stranded = stranded_jobs(views, self._connections.views())
        for job_id, reason in stranded.items():
            await self._fail(job_id, reason)
        return [v for v in views if v.id not in stranded] if stranded else views

    async def _sendable_only(
        self, plan: list[Assignment], jobs: dict[str, JobRecord]
    ) -> list[Assignment]:
        """``plan`` without the jobs whose Assign cannot be encoded (those fail)."""
        bad: set[str] = set()
        for job_id in {a.job_id for a in plan} - self._sendable:
            try:
                protocol.encode(assign_message(jobs[job_id], PROBE, (0,)))
            except Exception as exc:  # whatever the codec raises, this job alone is at fault
                bad.add(job_id)
                await self._fail(job_id, f"the job cannot be sent to render servers: {exc}")
            else:
                if len(self._sendable) >= SENDABLE_CACHE:
                    self._sendable.clear()
                self._sendable.add(job_id)
        return [a for a in plan if a.job_id not in bad] if bad else plan

    async def _fail(self, job_id: str, reason: str) -> None:
        try:
            await self._claims.fail_unrunnable(job_id, reason, at=self._clock())
        except StoreError as exc:
            log.error("could not fail job %s (%s): %s", job_id, reason, exc)
