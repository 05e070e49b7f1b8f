"""Dispatch planning: which waiting task runs on which free render-server slot.

:func:`plan_dispatch` is pure: the site agent loads views of jobs, waiting
tasks and servers, asks for a plan, then claims each assignment atomically in
the store (a plan made from a stale view simply loses the claim).

Ordering: higher priority first; among equal priority, this site's own jobs
before jobs accepted from a peer (unless that peer's policy says
``own_first = false``), then fair share (the job with the fewest running tasks,
counting this plan's assignments, goes next), then the older job, then the
lower id. Jobs accepted from a peer with ``max_slots`` never hold more slots
together than that. A task goes to the capable server with
the most free slots (ties by name) so concurrent work spreads across hosts.

Look-ahead: a server that keeps a queue takes tasks beyond its free slots, each
started the moment a slot frees, without a round trip to the agent. Once every
free slot is planned, the jobs named in ``lookahead`` (those with short tasks)
fill those queue places in the same order; a job not named there that still
waits for a slot blocks the queues of every server it could run on, so no
task is queued ahead of it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scheduler.profile import JobProfile, ServerView, matches

__all__ = [
    "Assignment",
    "GuestLimit",
    "JobView",
    "TaskView",
    "plan_dispatch",
    "round_slices",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobView:
    """A job that has waiting tasks, as the dispatcher sees it."""

    id: str
    priority: int
    created_at: float
    profile: JobProfile
    running_tasks: int
    running_servers: frozenset[str]
    avoid_servers: frozenset[str] = frozenset()
    ready: bool = True
    """False while a job it depends on has not ended as it waits for (it is not planned)."""
    guest_of: str | None = None
    """The peer site this job was accepted from; None for this site's own jobs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestLimit:
    """How the dispatcher treats the jobs accepted from one peer."""

    max_slots: int | None = None
    """Slots those jobs may hold at once (None: no limit)."""
    own_first: bool = True
    """This site's own jobs go before them at equal priority."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskView:
    """A waiting task; ``attempt`` counts the dispatches made so far."""

    id: int
    job_id: str
    attempt: int
    frames: tuple[int, ...]
    failed_on: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """Run ``task_id`` on ``server_id``; ``attempt`` is the new attempt number."""

    task_id: int
    job_id: str
    server_id: str
    attempt: int


FIRST_SLICE = 32
MAX_SLICE = 256
"""A plan is claimed and sent in slices (:func:`round_slices`): the first of FIRST_SLICE
assignments, each next one twice as large, up to MAX_SLICE."""

_HeapEntry = tuple[int, str, str]  # (-free slots, server name, server id)


@dataclass(slots=True, kw_only=True)
class _JobState:
    """Mutable per-plan bookkeeping for one job (never escapes this module)."""

    job: JobView
    tasks: list[TaskView]
    eligible: frozenset[str]
    heap: list[_HeapEntry]
    servers: set[str] = field(default_factory=set)
    next_task: int = 0
    planned: int = 0
    """Tasks of the job this plan assigned (fair share counts them as running)."""


class _Planner:
    """One planning pass: free-slot accounting plus cached capability lookups.

    Jobs whose profiles match the same servers share one lazily-corrected heap
    of (most free slots, name); per-job avoid lists and per-task failed_on sets
    are skipped at pick time, so a slot taken by one job costs the others at
    most one stale-entry fix per shared heap rather than one per job.
    """

    def __init__(self, servers: Sequence[ServerView], *, ahead: bool = False) -> None:
        """``ahead``: plan the servers' free queue places instead of their free slots."""
        self.free: dict[str, int] = {}
        self.names: dict[str, str] = {}
        # Servers with identical capabilities share one matches() evaluation.
        self._groups: dict[tuple[object, ...], list[ServerView]] = {}
        self._capable: dict[JobProfile, frozenset[str]] = {}
        self._heaps: dict[frozenset[str], list[_HeapEntry]] = {}
        for server in servers:
            if not server.online or server.id in self.names:
                continue
            self.names[server.id] = server.name
            free = server.ahead_slots if ahead else server.free_slots
            if free > 0:
                self.free[server.id] = free
            signature = (
                server.cores,
                server.memory_mb,
                server.gpus,
                frozenset(server.tags),
                frozenset(server.packages.items()),
            )
            self._groups.setdefault(signature, []).append(server)

    def capable(self, profile: JobProfile) -> frozenset[str]:
        """Online servers able to run ``profile`` (free or not)."""
        found = self._capable.get(profile)
        if found is None:
            found = frozenset(
                server.id
                for group in self._groups.values()
                if matches(profile, group[0])
                for server in group
            )
            self._capable[profile] = found
        return found

    def heap(self, capable: frozenset[str]) -> list[_HeapEntry]:
        """The shared heap over the free servers among ``capable``."""
        heap = self._heaps.get(capable)
        if heap is None:
            heap = [(-self.free[sid], self.names[sid], sid) for sid in capable if sid in self.free]
            heapq.heapify(heap)
            self._heaps[capable] = heap
        return heap

    def pick_from_heap(
        self, heap: list[_HeapEntry], avoid: frozenset[str], skip: frozenset[str]
    ) -> tuple[str | None, bool]:
        """Pop the freest valid server in neither ``avoid`` nor ``skip``.

        Returns (server or None, whether a usable slot remains for the job,
        i.e. one that was only skipped). Skipped entries are pushed back.
        """
        set_aside: list[_HeapEntry] = []
        chosen: str | None = None
        skipped_usable = False
        while heap:
            neg_free, name, sid = heap[0]
            current = self.free.get(sid, 0)
            if current == 0:
                heapq.heappop(heap)
            elif -neg_free != current:
                # Another job consumed a slot since this entry was pushed.
                heapq.heapreplace(heap, (-current, name, sid))
            elif sid in avoid or sid in skip:
                skipped_usable = skipped_usable or sid not in avoid
                set_aside.append(heapq.heappop(heap))
            else:
                chosen = sid
                heapq.heappop(heap)
                if current > 1:
                    heapq.heappush(heap, (1 - current, name, sid))
                break
        for entry in set_aside:
            heapq.heappush(heap, entry)
        return chosen, chosen is not None or skipped_usable

    def pick_from(
        self, candidates: set[str], eligible: frozenset[str], skip: frozenset[str]
    ) -> tuple[str | None, bool]:
        """Freest server among a job's current servers (used once max_servers is reached)."""
        usable = [sid for sid in candidates if sid in eligible and self.free.get(sid, 0) > 0]
        preferred = [sid for sid in usable if sid not in skip]
        if not preferred:
            return None, bool(usable)
        return min(preferred, key=lambda sid: (-self.free[sid], self.names[sid], sid)), True


def _choose_server(planner: _Planner, state: _JobState, task: TaskView) -> tuple[str | None, bool]:
    """Pick a server for ``task``, avoiding servers it failed on when any alternative exists.

    Returns (server or None, whether the job still has any usable free slot).
    """
    skip: frozenset[str] = frozenset()
    if task.failed_on and any(sid not in task.failed_on for sid in state.eligible):
        skip = task.failed_on
    profile = state.job.profile
    if profile.max_servers and len(state.servers) >= profile.max_servers:
        return planner.pick_from(state.servers, state.eligible, skip)
    return planner.pick_from_heap(state.heap, state.job.avoid_servers, skip)


def _assign_next(planner: _Planner, state: _JobState, assigned: set[int]) -> Assignment | None:
    """Assign the job's next placeable task, or return None when the job can take no more."""
    while state.next_task < len(state.tasks):
        task = state.tasks[state.next_task]
        state.next_task += 1
        if task.id in assigned:
            continue
        server_id, job_has_slots = _choose_server(planner, state, task)
        if server_id is None:
            if not job_has_slots:
                state.next_task -= 1  # still the job's next task (for the queues' pass)
                return None
            continue  # only servers this task already failed on are free; it waits
        planner.free[server_id] -= 1
        state.servers.add(server_id)
        state.planned += 1
        assigned.add(task.id)
        return Assignment(
            task_id=task.id, job_id=task.job_id, server_id=server_id, attempt=task.attempt + 1
        )
    return None


def _job_states(
    planner: _Planner, jobs: Sequence[JobView], tasks: Sequence[TaskView]
) -> list[_JobState]:
    by_job: dict[str, list[TaskView]] = {}
    for task in tasks:
        by_job.setdefault(task.job_id, []).append(task)
    states: list[_JobState] = []
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen or job.id not in by_job or not job.ready:
            continue
        seen.add(job.id)
        capable = planner.capable(job.profile)
        eligible = capable - job.avoid_servers if job.avoid_servers else capable
        if not eligible:
            continue
        states.append(
            _JobState(
                job=job,
                tasks=by_job[job.id],
                eligible=eligible,
                heap=planner.heap(capable),
                servers=set(job.running_servers),
            )
        )
    return states


def plan_dispatch(
    jobs: Sequence[JobView],
    tasks: Sequence[TaskView],
    servers: Sequence[ServerView],
    *,
    guests: Mapping[str, GuestLimit] | None = None,
    guest_running: Mapping[str, int] | None = None,
    lookahead: frozenset[str] = frozenset(),
) -> list[Assignment]:
    """Plan which waiting tasks start now and where.

    Only online (idle/busy) servers with free slots receive work, one slot per
    assignment. A task goes only to a server that matches its job's profile and
    is not in ``job.avoid_servers``; servers in ``task.failed_on`` are used only
    when no other online capable server exists for the job. ``max_servers``
    counts distinct servers including ``job.running_servers``. Tasks whose job
    is not in ``jobs``, or is not ``ready`` (it waits for another job), are
    ignored; a task id is assigned at most once. ``guests`` holds the limits per peer for jobs with ``guest_of`` set (a peer
    not listed gets the default :class:`GuestLimit`); ``guest_running`` counts
    the tasks already active for each peer's jobs. ``lookahead``: the jobs whose
    tasks may also go to the servers' free queue places (``ahead_slots``), after
    every free slot (see the module's docstring).
    """
    limits = guests or {}
    budget = _guest_budgets(limits, guest_running or {})
    planner = _Planner(servers)
    states = _job_states(planner, jobs, tasks)
    assigned: set[int] = set()
    plan = _fill(planner, states, limits, budget, assigned, lookahead=None)
    if lookahead and any(server.ahead_slots > 0 for server in servers):
        ahead = _Planner(servers, ahead=True)
        for state in states:
            state.heap = ahead.heap(ahead.capable(state.job.profile))
        plan += _fill(ahead, states, limits, budget, assigned, lookahead=lookahead)
    return plan


def _fill(
    planner: _Planner,
    states: list[_JobState],
    limits: Mapping[str, GuestLimit],
    budget: dict[str, int],
    assigned: set[int],
    *,
    lookahead: frozenset[str] | None,
) -> list[Assignment]:
    """Assign the jobs' tasks to the planner's free places in dispatch order.

    ``lookahead`` None: every job may take a place (free slots). Otherwise (queue
    places) only those jobs: one that is not, coming first, takes the places of
    every server it could run on off the plan.
    """
    remaining = sum(planner.free.values())
    queue = [
        (
            -state.job.priority,
            _guest_rank(state.job, limits),
            state.job.running_tasks + state.planned,
            state.job.created_at,
            state.job.id,
            index,
        )
        for index, state in enumerate(states)
        if state.next_task < len(state.tasks)
    ]
    heapq.heapify(queue)
    plan: list[Assignment] = []
    while queue and remaining > 0:
        neg_priority, rank, running, created_at, job_id, index = heapq.heappop(queue)
        state = states[index]
        guest = state.job.guest_of
        if guest is not None and budget.get(guest, 1) <= 0:
            continue  # that peer's jobs hold all the slots its policy allows
        if lookahead is not None and job_id not in lookahead:
            for server_id in state.eligible:  # it waits for a slot there: queue nothing ahead
                remaining -= planner.free.pop(server_id, 0)
            continue
        assignment = _assign_next(planner, state, assigned)
        if assignment is None:
            continue
        plan.append(assignment)
        remaining -= 1
        if guest is not None and guest in budget:
            budget[guest] -= 1
        heapq.heappush(queue, (neg_priority, rank, running + 1, created_at, job_id, index))
    return plan


def round_slices(count: int) -> list[tuple[int, int]]:
    """(start, stop) of the slices, in plan order, that a plan of ``count`` assignments is
    claimed and sent in: the first is small (:data:`FIRST_SLICE`) so the first tasks start
    early, each next one doubles, up to :data:`MAX_SLICE`, so a large plan costs few claims.
    Slicing keeps the plan's order, so priority and fair share are those of the whole plan.
    """
    bounds: list[tuple[int, int]] = []
    start, size = 0, FIRST_SLICE
    while start < count:
        stop = min(count, start + size)
        bounds.append((start, stop))
        start, size = stop, min(MAX_SLICE, size * 2)
    return bounds


def _guest_rank(job: JobView, limits: Mapping[str, GuestLimit]) -> int:
    """0 for this site's jobs (and a peer's whose policy waives own_first), 1 for guests."""
    if job.guest_of is None:
        return 0
    return 1 if limits.get(job.guest_of, GuestLimit()).own_first else 0


def _guest_budgets(limits: Mapping[str, GuestLimit], running: Mapping[str, int]) -> dict[str, int]:
    return {
        site: limit.max_slots - running.get(site, 0)
        for site, limit in limits.items()
        if limit.max_slots is not None
    }
