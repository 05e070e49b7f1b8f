"""Group commit of task reports: many started/frame/done reports, one transaction.

Hundreds of render servers report at once; one transaction per report made
the database round trips the agent's bottleneck. Callers enqueue a report and
await its flush, so a frame is recorded before its upload is answered and a
task is complete before the dispatcher hears of it. A flush starts one event
loop hop after the first report (so everything already readable joins it),
at most one flush runs at a time, and reports arriving during a flush form the
next one: the busier the database, the bigger the batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .store.base import StoreError, StoreUnavailableError
from .store.records import CompletionReport, FrameRecord, LogReport, StartedReport, TaskOutcome

log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Reports per transaction; more wait for the next flush."""
START_DELAY_S = 0.5
"""How long a start may wait for another report's transaction before it gets its own."""

Report = StartedReport | FrameRecord | CompletionReport | LogReport


class ReportSink(Protocol):
    """Applies a batch of reports in one transaction (the lifecycle)."""

    async def apply_reports(
        self,
        started: Sequence[StartedReport],
        frames: Sequence[FrameRecord],
        completions: Sequence[CompletionReport],
        *,
        at: float,
        logs: Sequence[LogReport] = (),
    ) -> list[TaskOutcome | None]: ...


@dataclass(slots=True)
class _Pending:
    report: Report
    frames: Sequence[FrameRecord] = ()
    """Frames recorded with a completion, always in its transaction."""
    done: asyncio.Future[TaskOutcome | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ReportBatcher:
    def __init__(
        self,
        sink: ReportSink,
        *,
        max_batch: int = MAX_BATCH,
        start_delay_s: float = START_DELAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._max_batch = max_batch
        self._start_delay_s = start_delay_s
        self._clock = clock
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.flushes = 0

    def started(self, report: StartedReport) -> None:
        """Queue marking the attempt running (fenced; a stale start changes nothing).

        Not awaited: the render server's connection reads its next report (usually
        that task's TaskDone) at once instead of waiting a group commit. The start
        is ahead of the completion in the queue, and a failed write only leaves the
        task's dispatch lease in place; it is logged.

        Nor is it written at once: it waits up to ``start_delay_s`` for the next
        report that is (any completion, frame or log line), whose transaction it
        joins, so a short task's start and end are one transaction, not two (on a
        farm of short tasks another slot's completion comes first). Its time is the
        report's, so the task's timings are the same; only its "running" state and
        TasksStarted event come up to ``start_delay_s`` later.
        """
        self._enqueue_unawaited(
            report, "could not mark a task running (its dispatch lease stays)", delay=True
        )

    def log(self, report: LogReport) -> None:
        """Queue output lines for the task's log tail (fenced), like a start: not awaited,
        so a chatty renderer's lines never hold up the connection's next report; a
        failed write is logged."""
        self._enqueue_unawaited(report, "could not append to a task's log")

    async def frame(self, record: FrameRecord) -> None:
        """Record an uploaded frame; returns once it is committed."""
        await self._submit(record)

    async def completed(
        self, report: CompletionReport, *, frames: Sequence[FrameRecord] = ()
    ) -> TaskOutcome | None:
        """Complete the attempt, recording ``frames`` in the same transaction (frames sent
        inline with the completion); None when its fence did not hold (a stale report)."""
        return await self._submit(report, frames)

    async def close(self) -> None:
        """Wait for the reports already queued to be written (delayed starts included)."""
        if self._queue:
            self._flush_soon()
        if self._flusher is not None:
            await self._flusher

    async def _submit(
        self, report: Report, frames: Sequence[FrameRecord] = ()
    ) -> TaskOutcome | None:
        # Not shielded on purpose: a caller that gives up still has its report written.
        return await self._enqueue(report, frames).done

    def _enqueue_unawaited(self, report: Report, failure: str, *, delay: bool = False) -> None:
        """Queue a report nobody waits for; a failure to write it is logged as ``failure``."""

        def log_failure(done: asyncio.Future[TaskOutcome | None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.warning("%s: %s", failure, done.exception())

        self._enqueue(report, delay=delay).done.add_done_callback(log_failure)

    def _enqueue(
        self, report: Report, frames: Sequence[FrameRecord] = (), *, delay: bool = False
    ) -> _Pending:
        item = _Pending(report, frames)
        self._queue.append(item)
        if not delay:
            self._flush_soon()
        elif self._timer is None and (self._flusher is None or self._flusher.done()):
            # A running flush takes it in its next round anyway.
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._start_delay_s, self._flush_soon)
        return item

    def _flush_soon(self) -> None:
        """Start writing the queue (within one loop hop) unless that is under way."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="report-batcher")

    async def _flush_all(self) -> None:
        # One hop lets every report already received this loop iteration join the batch.
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        self.flushes += 1
        try:
            results = await self._apply(batch)
        except StoreUnavailableError as exc:
            _settle_error(batch, exc)
            return
        except StoreError as exc:
            if len(batch) == 1:
                _settle_error(batch, exc)
                return
            # One bad report must not fail the others: retry each alone to find it.
            log.warning(
                "a batch of %d reports failed (%s); applying them one by one", len(batch), exc
            )
            for item in batch:
                await self._flush([item])
            return
        except BaseException as exc:
            _settle_error(batch, exc)
            raise
        for item, result in zip(batch, results, strict=True):
            if not item.done.done():
                item.done.set_result(result)

    async def _apply(self, batch: list[_Pending]) -> list[TaskOutcome | None]:
        started: list[StartedReport] = []
        frames: list[FrameRecord] = []
        completions: list[CompletionReport] = []
        logs: list[LogReport] = []
        for item in batch:
            report = item.report
            if isinstance(report, StartedReport):
                started.append(report)
            elif isinstance(report, LogReport):
                logs.append(report)
            elif isinstance(report, FrameRecord):
                frames.append(report)
            else:
                frames.extend(item.frames)
                completions.append(report)
        outcomes = iter(
            await self._sink.apply_reports(
                started, frames, completions, at=self._clock(), logs=logs
            )
        )
        return [next(outcomes) if isinstance(i.report, CompletionReport) else None for i in batch]


def _settle_error(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.done.done():
            if isinstance(exc, asyncio.CancelledError):
                item.done.cancel()
            else:
                item.done.set_exception(exc)
