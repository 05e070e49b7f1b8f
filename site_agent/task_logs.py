"""Reading a task attempt's full log: which task and attempt, which part, and waiting for more.

The report path writes each attempt's output as it arrives (``site_agent.store.task_logs``,
capped to its first 256 KiB and last 768 KiB); this module answers the client API's
``/jobs/{id}/log`` and ``/jobs/{id}/tasks/{index}/log``. Offsets count the UTF-8 bytes of the
attempt's whole output, so a reader that passes back ``next_offset`` sees each byte
once, and learns how many were cut when it fell behind the kept tail. A reader may
wait for more: :class:`LogWatch` is woken by the lifecycle's events after the commit,
never by polling.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scheduler.frames import format_frames, parse_frames

from .errors import (
    AttemptNotFoundError,
    BadRequestError,
    FrameNotFoundError,
    JobNotFoundError,
    LogNotFoundError,
    TaskNotFoundError,
)
from .lifecycle.events import Event, TaskFinished, TasksLogged, TasksRequeued
from .store.records import LOCAL, JobRecord, ServerRecord, TaskRecord, TaskState
from .store.task_logs import HEAD_BYTES, TAIL_BYTES, AttemptEnd, LogChunk
from .watch import MAX_WAIT_S as MAX_WAIT_S  # federation.remote_logs reads it here
from .watch import Waiters

REQUEUED = "requeued"
"""The state of an attempt that ended without a result (its server was lost)."""

WAKE_ON = (TasksLogged, TaskFinished, TasksRequeued)


class LogReads(Protocol):
    """The store reads a log request makes."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def list_tasks_page(
        self, job_id: str, *, offset: int, limit: int, states: Collection[TaskState] | None = None
    ) -> list[TaskRecord]: ...

    async def get_task(self, task_id: int) -> TaskRecord | None: ...

    async def get_server(self, server_id: str) -> ServerRecord | None: ...

    async def task_log_size(self, task_id: int, attempt: int) -> int: ...

    async def task_log_ends(self, task_id: int) -> dict[int, AttemptEnd]: ...

    async def task_log_chunks(
        self, task_id: int, attempt: int, *, after: int
    ) -> list[LogChunk]: ...


class RemoteLogs(Protocol):
    """Where a job sent to another site has its task logs (registered by the federation)."""

    async def read_remote(
        self, job: JobRecord, index: int, *, attempt: int | None, offset: int, wait: float
    ) -> dict[str, Any]:
        """Task ``index``'s log page as the job's site answers it (the JSON of
        :meth:`LogPage.to_json`, with ``job`` this site's id); raises
        :class:`~site_agent.errors.PeerLogUnavailableError` when that site cannot be asked."""
        ...


class LogWatch(Waiters[int]):
    """Readers waiting for a task's log to grow, woken after the report's commit."""

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber (:data:`WAKE_ON`): text arrived, or an attempt ended."""
        if isinstance(event, TasksLogged):
            self.wake(event.task_ids)
        elif isinstance(event, TaskFinished):
            self.wake((event.outcome.task.id,))
        elif isinstance(event, TasksRequeued):
            self.wake([t.id for t in event.tasks])


@dataclass(frozen=True, slots=True, kw_only=True)
class LogPage:
    """Part of one attempt's log from ``offset`` on, with what the API shows about it."""

    job_id: str
    task: TaskRecord
    attempt: int
    attempts: tuple[int, ...]
    server: str | None
    state: str
    error: str
    offset: int
    next_offset: int
    truncated_bytes: int
    text: str

    @property
    def complete(self) -> bool:
        return self.state not in (TaskState.DISPATCHED.value, TaskState.RUNNING.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job_id,
            "task": self.task.index,
            "frames": format_frames(self.task.frames),
            "attempt": self.attempt,
            "attempts": list(self.attempts),
            "server": self.server,
            "state": self.state,
            "error": self.error,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "complete": self.complete,
            "truncated_bytes": self.truncated_bytes,
            "text": self.text,
        }


def truncated_bytes(size: int) -> int:
    """Bytes cut from the middle of a log of ``size`` bytes."""
    return max(0, size - HEAD_BYTES - TAIL_BYTES)


def log_text(chunks: Sequence[LogChunk], size: int, offset: int) -> str:
    """The kept text of a ``size``-byte log from byte ``offset`` on: its head, a
    ``[N bytes cut]`` line where the middle was cut, and its tail."""
    cut_from, cut_to = HEAD_BYTES, size - TAIL_BYTES
    if cut_to <= cut_from:
        return _decode(_between(chunks, offset, size))
    head = _between(chunks, offset, cut_from) if offset < cut_from else b""
    marker = b""
    if offset < cut_to:
        marker = f"[{cut_to - max(offset, cut_from)} bytes cut]\n".encode()
        if head and not head.endswith(b"\n"):
            marker = b"\n" + marker
    return _decode(head + marker + _between(chunks, max(offset, cut_to), size))


def _between(chunks: Sequence[LogChunk], start: int, end: int) -> bytes:
    parts = []
    for chunk in chunks:
        if chunk.end <= start or chunk.start >= end:
            continue
        data = chunk.body.encode("utf-8")
        parts.append(data[max(start - chunk.start, 0) : end - chunk.start])
    return b"".join(parts)


def _decode(data: bytes) -> str:
    # A cut or an offset may fall inside a character: it shows as U+FFFD, never an error.
    return data.decode("utf-8", "replace")


def attempt_state(task: TaskRecord, attempt: int, end: AttemptEnd | None) -> str:
    """``done``/``failed`` as the attempt ended, the task's state while it is the current
    active attempt, else ``requeued`` (it ended without a result)."""
    if end is not None:
        return end.state
    if attempt == task.attempt and task.state != TaskState.WAITING:
        return task.state.value  # active, or ended before full logs were kept
    return REQUEUED


class TaskLogs:
    """The log API's answers over the store; waits are woken by :class:`LogWatch`."""

    def __init__(
        self,
        store: LogReads,
        watch: LogWatch,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._watch = watch
        self._clock = clock
        self.remote: RemoteLogs | None = None
        """Asked for the logs of a job placed at another site (none: they are not found here)."""

    async def answer(
        self,
        job_id: str,
        *,
        frame: int | None = None,
        index: int | None = None,
        attempt: int | None,
        offset: int,
        wait: float,
    ) -> dict[str, Any]:
        """The API's log page of task ``index`` (or of the task holding ``frame``); a job
        placed at another site is read there, through :attr:`remote`."""
        job = await self._job(job_id)
        if index is None:
            assert frame is not None, "pass a frame or a task index"
            index = await self._index_of_frame(job, frame)
        if job.placement != LOCAL and self.remote is not None:
            await self._task_row(job, index)  # this site's task rows mirror the remote's
            return await self.remote.read_remote(
                job, index, attempt=attempt, offset=offset, wait=wait
            )
        task = await self.task_at(job, index)
        page = await self.read(task, attempt=attempt, offset=offset, wait=wait)
        return page.to_json()

    async def task_of_frame(self, job_id: str, frame: int) -> TaskRecord:
        job = await self._job(job_id)
        return await self.task_at(job, await self._index_of_frame(job, frame))

    async def _index_of_frame(self, job: JobRecord, frame: int) -> int:
        frames = await asyncio.to_thread(parse_frames, job.frames)  # a long spec takes a while
        at = bisect.bisect_left(frames, frame)
        if at == len(frames) or frames[at] != frame:
            raise FrameNotFoundError(
                f"job {job.id} has no frame {frame}; its frames are {job.frames}"
            )
        return at // job.chunk_size

    async def task_of_index(self, job_id: str, index: int) -> TaskRecord:
        return await self.task_at(await self._job(job_id), index)

    async def task_at(self, job: JobRecord, index: int) -> TaskRecord:
        task = await self._task_row(job, index)
        if job.placement != LOCAL and task.attempt == 0:
            raise LogNotFoundError(
                f"job {job.id} was sent to site {job.placement}; its logs are kept there"
            )
        return task

    async def _task_row(self, job: JobRecord, index: int) -> TaskRecord:
        tasks = (
            await self._store.list_tasks_page(job.id, offset=index, limit=1) if index >= 0 else []
        )
        if not tasks or tasks[0].index != index:
            raise TaskNotFoundError(
                f"job {job.id} has no task {index}; see its tasks with `spillway job {job.id}`"
            )
        return tasks[0]

    async def read(
        self, task: TaskRecord, *, attempt: int | None, offset: int, wait: float
    ) -> LogPage:
        """The attempt's log from ``offset``; with ``wait`` seconds, waits for text beyond
        ``offset`` or the attempt's end, whichever comes first."""
        if not 0 <= wait <= MAX_WAIT_S:
            raise BadRequestError(f"wait must be between 0 and {MAX_WAIT_S:.0f} seconds")
        deadline = self._clock() + wait
        while True:
            with self._watch.watch(task.id) as changed:
                page = await self._page(task, attempt, offset)
                left = deadline - self._clock()
                if page.text or page.complete or left <= 0:
                    return page
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
            attempt = page.attempt  # keep reading the attempt first chosen
            task = await self._store.get_task(task.id) or task

    async def _page(self, task: TaskRecord, attempt: int | None, offset: int) -> LogPage:
        # Every claim is the next attempt (fenced on attempt - 1), so they are 1..task.attempt.
        attempts = range(1, task.attempt + 1)
        if not attempts:
            raise LogNotFoundError(
                f"task {task.index} of job {task.job_id} has not run yet, so it has no log; "
                "it appears once a render server starts the task"
            )
        chosen = max(attempts) if attempt is None else attempt
        if chosen not in attempts:
            known = f"1 to {task.attempt}" if task.attempt > 1 else "only 1"
            raise AttemptNotFoundError(
                f"task {task.index} of job {task.job_id} has no attempt {chosen}; "
                f"its attempts are {known}"
            )
        size = await self._store.task_log_size(task.id, chosen)
        if offset < 0 or offset > size:
            raise BadRequestError(
                f"offset {offset} is outside the log of attempt {chosen} ({size} bytes); "
                "pass 0 or a next_offset from an earlier answer"
            )
        end = (await self._store.task_log_ends(task.id)).get(chosen)
        chunks = await self._store.task_log_chunks(task.id, chosen, after=offset)
        return LogPage(
            job_id=task.job_id,
            task=task,
            attempt=chosen,
            attempts=tuple(attempts),
            server=await self._server_name(task, chosen, end),
            state=attempt_state(task, chosen, end),
            error=end.error if end is not None else "",
            offset=offset,
            next_offset=size,
            truncated_bytes=truncated_bytes(size),
            text=log_text(chunks, size, offset),
        )

    async def _server_name(
        self, task: TaskRecord, attempt: int, end: AttemptEnd | None
    ) -> str | None:
        server_id = end.server_id if end is not None else None
        if server_id is None and attempt == task.attempt:
            server_id = task.server_id
        if server_id is None:
            return None
        server = await self._store.get_server(server_id)
        return server.name if server is not None else server_id

    async def _job(self, job_id: str) -> JobRecord:
        job = await self._store.get_job(job_id)
        if job is None:
            raise JobNotFoundError(
                f"no job {job_id!r}; `spillway jobs` lists the jobs of this site"
            )
        return job
