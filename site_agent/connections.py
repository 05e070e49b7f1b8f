"""Live WebSocket connections of render servers, keyed by server id."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from render_server import protocol
from scheduler.profile import ServerView

from .server_socket import ServerSocket
from .store.records import FrameFile, FrameRecord, ServerRecord, TaskRecord, TaskState

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0
FULL_SCAN_S = 1.0
"""At most this long between two passes of :meth:`ConnectionRegistry.dispatchable` over
every connection (a safety net for a free slot nobody announced)."""

TaskKey = tuple[int, int]
"""(task id, attempt)."""


@dataclass(slots=True, kw_only=True)
class ActiveTask:
    """A task attempt the agent handed to a server, as the report path needs it.

    The agent is the only writer of assignments, so this in-memory copy lets
    reports skip a task read: a report for an attempt not held here is stale.
    The store's fenced updates stay the final authority.
    """

    task_id: int
    attempt: int
    job_id: str
    frames: tuple[int, ...]
    uploaded: list[FrameRecord] = field(default_factory=list)
    """Frames recorded by this agent process for this attempt (after a restart: none yet)."""
    pending: dict[int, dict[str, FrameFile]] = field(default_factory=dict)
    """Files stored for a frame whose main file has not come yet (recorded with it), by name."""
    started: bool = False
    """The server reported it started (TaskStarted): it is in a slot, not in the server's queue."""

    @classmethod
    def of(cls, task: TaskRecord) -> ActiveTask:
        return cls(
            task_id=task.id,
            attempt=task.attempt,
            job_id=task.job_id,
            frames=task.frames,
            started=task.state is TaskState.RUNNING,
        )

    def missing_frames(self) -> list[int]:
        have = {f.frame for f in self.uploaded}
        return [f for f in self.frames if f not in have]


@dataclass(eq=False)
class ServerConnection:
    """One connected render server: its capabilities and the task attempts it holds."""

    record: ServerRecord
    ws: ServerSocket
    """Its WebSocket, served in this process or held by a connection worker."""
    last_seen: float
    disabled: bool = False
    running: dict[TaskKey, ActiveTask] = field(default_factory=dict)
    """Task attempts assigned to the server and not yet reported finished, in assignment order
    (those beyond its slots wait in its queue)."""
    queue: int = 0
    """Tasks the agent may assign beyond ``slots`` (look-ahead): the server's own queue from
    its hello, at most what ``[scheduling] lookahead`` allows; 0: never more than ``slots``."""
    instance: str = ""
    """The server process's random instance id from its hello (empty from older servers)."""
    reconciled: bool = False
    """False until the hello's task list has been matched against the store: no dispatch before."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _view: tuple[tuple[int, int, str], ServerView] | None = None
    _on_release: Callable[[ServerConnection], None] | None = field(default=None, repr=False)

    @property
    def server_id(self) -> str:
        return self.record.id

    def release(self, task_id: int, attempt: int) -> ActiveTask | None:
        """Take the attempt off this server (reported, failed, cancelled, expired), freeing its
        slot; None if the server did not hold it."""
        active = self.running.pop((task_id, attempt), None)
        if active is not None and self._on_release is not None:
            self._on_release(self)
        return active

    @property
    def free_slots(self) -> int:
        if not self.reconciled:
            return 0
        return max(0, self.record.slots - len(self.running))

    @property
    def ahead_slots(self) -> int:
        """Places free in the server's queue to plan now: tasks it would hold waiting for a
        slot. A queue deeper than a task per slot is refilled in batches, once at least half
        of it is free: one dispatch round (a snapshot and a claim) then serves several tasks."""
        if not self.reconciled or not self.queue:
            return 0
        free = max(0, min(self.queue, self.record.slots + self.queue - len(self.running)))
        batch = max(1, self.queue // 2) if self.queue > self.record.slots else 1
        return free if free >= batch else 0

    def waits_in_queue(self, task_id: int, attempt: int) -> bool:
        """Whether the attempt waits in the server's queue (look-ahead), as far as the agent
        knows: of the attempts not reported started, in assignment order, the first fill the
        slots no started attempt holds and the rest wait."""
        active = self.running.get((task_id, attempt))
        if active is None or active.started or not self.queue:
            return False
        unstarted = [key for key, a in self.running.items() if not a.started]
        in_slots = self.record.slots - (len(self.running) - len(unstarted))
        return unstarted.index((task_id, attempt)) >= max(0, in_slots)

    @property
    def status(self) -> str:
        if self.disabled:
            return "disabled"
        return "busy" if self.running else "idle"

    def view(self) -> ServerView:
        """The scheduler's view, rebuilt only when free slots or status changed."""
        key = (self.free_slots, self.ahead_slots, self.status)
        if self._view is None or self._view[0] != key:
            self._view = (key, self._build_view(*key))
        return self._view[1]

    def _build_view(self, free_slots: int, ahead_slots: int, status: str) -> ServerView:
        return record_view(
            self.record, free_slots=free_slots, status=status, ahead_slots=ahead_slots
        )

    async def send(self, msg: protocol.Message) -> bool:
        """Send one message; False if the connection is gone (the caller requeues)."""
        return await self.send_encoded(protocol.encode(msg))

    async def send_encoded(self, data: bytes) -> bool:
        """Send one message as :func:`protocol.encode` made it; False if the connection is gone."""
        if self.ws.closed:
            return False
        try:
            async with self._lock, asyncio.timeout(SEND_TIMEOUT_S):
                await self.ws.send_bytes(data)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            log.warning("send to server %s failed: %s", self.record.name, exc)
            return False
        return True


class ConnectionRegistry:
    """The live connections, and which of them may have a free slot.

    A dispatch round plans only for servers with a free slot. Finding them by a
    pass over every connection cost each round O(connected servers): ~2 ms at
    2,000 servers, paid by every one of the hundreds of rounds a second. Instead
    a connection becomes a candidate when it connects, frees a slot
    (:meth:`ServerConnection.release`) or changes state (:meth:`may_dispatch`), and
    stops being one when a round finds it full; a pass over all of them every
    :data:`FULL_SCAN_S` catches a slot freed any other way.
    """

    def __init__(
        self,
        on_change: Callable[[], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_id: dict[str, ServerConnection] = {}
        self._candidates: dict[str, ServerConnection] = {}
        self._clock = clock
        self._next_full_scan = 0.0
        self._on_change = on_change
        """Told when a server connects or goes (the web monitor's live stream)."""

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def add(self, conn: ServerConnection) -> ServerConnection | None:
        """Register a connection; returns the one it replaces (same server reconnecting)."""
        old = self._by_id.get(conn.server_id)
        self._by_id[conn.server_id] = conn
        conn._on_release = self.may_dispatch
        self._candidates[conn.server_id] = conn
        self._changed()
        return old

    def remove(self, conn: ServerConnection) -> bool:
        """Forget the connection if it is still the current one for its server."""
        if self._by_id.get(conn.server_id) is conn:
            del self._by_id[conn.server_id]
            self._candidates.pop(conn.server_id, None)
            self._changed()
            return True
        return False

    def may_dispatch(self, conn: ServerConnection) -> None:
        """The connection may have a free slot now (a slot freed, reconciled, enabled)."""
        if self._by_id.get(conn.server_id) is conn:
            self._candidates[conn.server_id] = conn

    def get(self, server_id: str) -> ServerConnection | None:
        return self._by_id.get(server_id)

    def all(self) -> list[ServerConnection]:
        return list(self._by_id.values())

    def jobs_of_tasks(self, task_ids: Iterable[int]) -> set[str]:
        """The jobs of those of ``task_ids`` held by a connected server (from memory)."""
        wanted = set(task_ids)
        return {
            task.job_id
            for conn in self._by_id.values()
            for task in conn.running.values()
            if task.task_id in wanted
        }

    def views(self) -> list[ServerView]:
        return [c.view() for c in self._by_id.values()]

    def dispatchable(self) -> list[ServerView]:
        """Views of the enabled servers with a free slot or a free place in their queue (the
        only ones a dispatch round plans for)."""
        now = self._clock()
        if now >= self._next_full_scan:
            self._next_full_scan = now + FULL_SCAN_S
            self._candidates = dict(self._by_id)
        views = []
        full = []
        for server_id, conn in self._candidates.items():
            if conn.disabled or (conn.free_slots == 0 and conn.ahead_slots == 0):
                full.append(server_id)
            else:
                views.append(conn.view())
        for server_id in full:
            del self._candidates[server_id]
        return views


def record_view(
    record: ServerRecord, *, free_slots: int, status: str, ahead_slots: int = 0
) -> ServerView:
    """The scheduler's view of a registered render server."""
    return ServerView(
        id=record.id,
        name=record.name,
        cores=record.cores,
        memory_mb=record.memory_mb,
        gpus=len(record.gpus),
        packages=dict(record.packages),
        tags=record.tags,
        slots=record.slots,
        free_slots=free_slots,
        status=status,
        ahead_slots=ahead_slots,
    )
