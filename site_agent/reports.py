"""What happens when a render server reports on a task, or a task is lost.

Every change is fenced on (task, attempt, server) in the store, so a report that
arrives after the task was requeued or reassigned changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Protocol

from render_server import protocol
from spillway.core.records import FileKind

from .completion_files import CompletionFiles
from .connections import ActiveTask, ConnectionRegistry
from .errors import AgentError, BadRequestError
from .files import FileError, StorageWriteError
from .frame_uploads import (
    IncomingFile,
    check_names,
    file_of,
    frame_record,
    upload_of,
)
from .job_cache import JobCache
from .lifecycle.events import Event, JobCancelled
from .storage import FrameStorage
from .store.base import StoreError
from .store.records import (
    CompletionReport,
    FrameFile,
    FrameRecord,
    JobRecord,
    LogReport,
    StartedReport,
    TaskOutcome,
    TaskRecord,
)

log = logging.getLogger(__name__)


class ReportReads(Protocol):
    """The store reads the report path makes."""

    async def get_job(self, job_id: str) -> JobRecord | None: ...

    async def get_task(self, task_id: int) -> TaskRecord | None: ...

    async def stored_task_frames(
        self, job_id: str, task_id: int, frames: Sequence[int]
    ) -> set[int]: ...

    async def frames_of(self, job_id: str, frames: Sequence[int]) -> list[FrameRecord]: ...

    async def frame_name_owners(self, job_id: str, names: Sequence[str]) -> dict[str, int]: ...


class ReportTransitions(Protocol):
    """The lifecycle transitions a render server's reports cause."""

    async def hand_back(
        self, task_id: int, attempt: int, server_id: str, reason: str, *, at: float
    ) -> TaskRecord | None: ...

    def start(self, report: StartedReport) -> None: ...

    def log(self, report: LogReport) -> None: ...

    async def reports_written(self) -> None: ...

    async def record_frame(self, record: FrameRecord) -> None: ...

    async def complete(
        self, report: CompletionReport, *, frames: Sequence[FrameRecord] = ()
    ) -> TaskOutcome | None: ...

    async def fail(
        self, task: TaskRecord, server_id: str, attempt: int, error: str, log_tail: str | None
    ) -> TaskOutcome | None: ...

    async def expire(self, task: TaskRecord) -> TaskOutcome | None: ...


class Wakeup(Protocol):
    def wake(self) -> None:
        """Something changed that may let the dispatcher send work."""

    def hold(self, seconds: float, reason: str) -> None:
        """Send no work for a while (this site cannot take results now)."""


AGENT_FAULT_HOLD_S = 10.0
"""How long dispatching pauses after this site failed to store or record a result."""


class TaskReports:
    """A render server's reports on its task attempts, checked against what it holds.

    The transitions themselves are the lifecycle's; this class checks each report
    against the server's connection (a stale one is ignored), writes frames to
    storage, and tells servers to stop tasks taken away from them.
    """

    def __init__(
        self,
        store: ReportReads,
        lifecycle: ReportTransitions,
        connections: ConnectionRegistry,
        dispatcher: Wakeup,
        storage: FrameStorage,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._lifecycle = lifecycle
        self._connections = connections
        self._dispatcher = dispatcher
        self._storage = storage
        self._clock = clock
        self.jobs = JobCache(store)
        self.files = CompletionFiles(store, storage, self.jobs, clock=clock)

    async def started(self, server_id: str, msg: protocol.TaskStarted) -> None:
        active = await self.lookup(server_id, msg.task_id, msg.attempt)
        job = await self.jobs.get(active.job_id) if active else None
        if active is None or job is None:
            log.info(
                "ignored stale start of task %s attempt %s from %s",
                msg.task_id,
                msg.attempt,
                server_id,
            )
            return
        # A start reported late (after a reconnect) counts from when it really happened;
        # a task said to have run longer than its timeout has timed out now.
        timeout = job.profile.task_timeout_s
        at = self._clock() - min(max(0.0, msg.running_for_s), timeout)
        self._lifecycle.start(
            StartedReport(
                task_id=msg.task_id,
                attempt=msg.attempt,
                server_id=server_id,
                job_id=active.job_id,
                at=at,
                lease_expires_at=at + timeout,
            )
        )

    async def log(self, server_id: str, msg: protocol.TaskLog) -> None:
        # The full log's append is fenced on the attempt alone: the server is checked here.
        if await self.lookup(server_id, msg.task_id, msg.attempt) is None:
            log.info("ignored stale log of task %s from %s", msg.task_id, server_id)
            return
        # Queued for the next group commit: one transaction per log message, awaited
        # before the connection's next report, cost every task of a chatty renderer a
        # commit in a row (7 % of a 2-slot farm's makespan with 0.3 s frames).
        self._lifecycle.log(
            LogReport(task_id=msg.task_id, attempt=msg.attempt, server_id=server_id, text=msg.text)
        )

    async def done(
        self,
        server_id: str,
        msg: protocol.TaskDone,
        written: Sequence[FrameFile] | None = None,
    ) -> None:
        """A TaskDone; ``written``: its inline frames as a connection worker already stored
        them (durably, in the order of ``msg.frames``); None: they are written here."""
        active = self._release(server_id, msg.task_id, msg.attempt)
        released = active is not None
        if released:
            # The slot is free now: plan its next task while this one is written and committed.
            # Claims are fenced in the store, so dispatching before the commit is safe.
            self._dispatcher.wake()
        else:
            active = await self.lookup(server_id, msg.task_id, msg.attempt)
        if active is None:
            log.info(
                "ignored stale completion of task %s attempt %s from %s",
                msg.task_id,
                msg.attempt,
                server_id,
            )
            return
        inline: list[FrameRecord] = []
        if msg.frames:
            try:
                inline = await self.files.inline(server_id, active, msg.frames, written)
            except StorageWriteError as exc:
                await self.agent_fault(server_id, active, str(exc))
                return
            except (AgentError, FileError) as exc:
                # Like a refused upload: that attempt fails (and is retried), nothing of it is recorded.
                task = await self._store.get_task(msg.task_id)
                if task is not None:
                    await self._lifecycle.fail(
                        task, server_id, msg.attempt, f"inline frames refused: {exc}", msg.log_tail
                    )
                self._dispatcher.wake()
                return
            active.uploaded.extend(inline)
        err = await self.files.incomplete(active, msg.outputs)
        if err:
            # A success report without every output uploaded is a failure of that attempt.
            task = await self._store.get_task(msg.task_id)
            if task is not None:
                await self._lifecycle.fail(task, server_id, msg.attempt, err, msg.log_tail)
            self._dispatcher.wake()
            return
        # Inline frames are recorded in the completion's transaction: one group commit per task.
        outcome = await self._lifecycle.complete(
            CompletionReport(
                task_id=msg.task_id,
                attempt=msg.attempt,
                server_id=server_id,
                job_id=active.job_id,
                at=self._clock(),
                log_tail=msg.log_tail,
            ),
            frames=inline,
        )
        if not released:
            self._dispatcher.wake()  # an attempt known only to the store (a reconnect): wake once committed
        if outcome is None:
            log.info(
                "ignored stale completion of task %s attempt %s from %s",
                msg.task_id,
                msg.attempt,
                server_id,
            )
        else:
            log.debug("task %s of job %s done on %s", msg.task_id, active.job_id, server_id)

    async def store_frame(
        self,
        server_id: str,
        active: ActiveTask,
        frame: int,
        chunks: AsyncIterable[bytes],
        *,
        expected_sha256: str,
        name: str | None = None,
        kind: FileKind = FileKind.MAIN,
    ) -> FrameFile:
        """Store one uploaded file of a frame of a fenced attempt: write it, verify it.

        A main file records the frame with the files of it that came before (its
        other outputs, its preview), committed on return; those are only kept in
        memory until then. ``name`` None: a render server older than named outputs
        (the frame is stored as ``<output_name>_<frame:04d>.<ext>``). The caller has
        checked that the server holds the attempt. When this site cannot store or
        record it (StorageWriteError, StoreError) the attempt is handed back (see
        :meth:`agent_fault`) and the error re-raised.
        """
        if frame not in active.frames:
            raise BadRequestError(f"frame {frame} is not part of task {active.task_id}")
        job = await self.files.job(active)
        upload = upload_of(job.output_name, job.output_ext, frame, name, kind)
        await check_names(self._store, job, [upload])
        try:
            stored = await self.write_frame(job, upload, chunks, expected_sha256=expected_sha256)
            if kind != FileKind.MAIN:
                active.pending.setdefault(frame, {})[stored.name] = stored
                return stored
            record = frame_record(
                server_id, active, frame, stored, active.pending.pop(frame, {}), at=self._clock()
            )
            await self._lifecycle.record_frame(record)
        except StorageWriteError as exc:
            await self.agent_fault(server_id, active, str(exc))
            raise
        except StoreError as exc:
            await self.agent_fault(server_id, active, f"the resource database failed: {exc}")
            raise
        active.uploaded.append(record)
        return stored

    async def agent_fault(self, server_id: str, active: ActiveTask, error: str) -> None:
        """This site could not take the attempt's output: no render server is to blame.

        The server is told to stop the attempt, which goes back to waiting without a
        failure counted; the job shows the reason meanwhile, and dispatching pauses
        for :data:`AGENT_FAULT_HOLD_S` so a full disk is not met again at once.
        """
        reason = f"{error}; tasks will be retried"
        conn = self._connections.get(server_id)
        if conn is not None and conn.release(active.task_id, active.attempt) is not None:
            await conn.send(
                protocol.Cancel(task_id=active.task_id, attempt=active.attempt, reason=reason)
            )
        self._dispatcher.hold(AGENT_FAULT_HOLD_S, reason)
        try:
            await self._lifecycle.hand_back(
                active.task_id, active.attempt, server_id, reason, at=self._clock()
            )
        except StoreError as exc:  # the lease expiry requeues it later
            log.error("could not hand back task %s: %s", active.task_id, exc)
        self._dispatcher.wake()

    async def write_frame(
        self,
        job: JobRecord,
        upload: IncomingFile,
        chunks: AsyncIterable[bytes],
        *,
        expected_sha256: str,
    ) -> FrameFile:
        """Write one file of a frame atomically and verify it; the caller records it."""
        job_dir = self._storage.job_dir(job.name, job.id)
        digest, size = await self._storage.write_frame(
            job_dir, upload.name, chunks, expected_sha256=expected_sha256
        )
        return file_of(upload, digest, size)

    def held(self, server_id: str, task_id: int, attempt: int) -> ActiveTask | None:
        """The attempt if the server's connection holds it (no query)."""
        conn = self._connections.get(server_id)
        return conn.running.get((task_id, attempt)) if conn is not None else None

    async def lookup(self, server_id: str, task_id: int, attempt: int) -> ActiveTask | None:
        """The attempt if the server still holds it; None means the report is stale.

        Normally answered from the server's connection without a query. Memory
        lags the store only around a reconnect (an upload retried before the
        server's hello, a report read from the replaced socket), so a miss asks
        the store, which answers exactly as every report was checked before.
        """
        active = self.held(server_id, task_id, attempt)
        if active is not None:
            return active
        task = await self._store.get_task(task_id)
        if (
            task is None
            or task.attempt != attempt
            or task.server_id != server_id
            or not task.state.active
        ):
            return None
        return ActiveTask.of(task)

    async def failed(self, server_id: str, msg: protocol.TaskFailed) -> None:
        self._release(server_id, msg.task_id, msg.attempt)
        # The renderer's last lines, queued just before this report, go in the log first.
        await self._lifecycle.reports_written()
        task = await self._store.get_task(msg.task_id)
        if task is not None:
            await self._lifecycle.fail(task, server_id, msg.attempt, msg.error, msg.log_tail)
        self._dispatcher.wake()

    async def expire(self, task: TaskRecord) -> None:
        """A task's lease ran out: stop it on its server and count it as a failed attempt."""
        conn = self._connections.get(task.server_id or "")
        if conn is not None:
            conn.release(task.id, task.attempt)
            await conn.send(
                protocol.Cancel(task_id=task.id, attempt=task.attempt, reason="timed out")
            )
        await self._lifecycle.expire(task)
        self._dispatcher.wake()

    def _release(self, server_id: str, task_id: int, attempt: int) -> ActiveTask | None:
        conn = self._connections.get(server_id)
        return conn.release(task_id, attempt) if conn is not None else None

    async def on_event(self, event: Event) -> None:
        """Lifecycle subscriber: a cancelled job's active tasks are stopped on their servers."""
        if isinstance(event, JobCancelled):
            await self.stop_tasks(event.stopped, "job cancelled")

    async def stop_tasks(self, tasks: Sequence[TaskRecord], reason: str) -> None:
        """Tell servers to stop tasks that were taken away from them (cancel, requeue)."""
        for task in tasks:
            conn = self._connections.get(task.server_id or "")
            if conn is not None and conn.release(task.id, task.attempt) is not None:
                await conn.send(
                    protocol.Cancel(task_id=task.id, attempt=task.attempt, reason=reason)
                )
        self._dispatcher.wake()
