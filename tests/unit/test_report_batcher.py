"""The report batcher's group commit: a start waits for the next report's transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from site_agent.batcher import ReportBatcher
from site_agent.store.records import (
    CompletionReport,
    FrameRecord,
    LogReport,
    StartedReport,
    TaskOutcome,
)


class Sink:
    """Records each batch it is asked to apply (one transaction each)."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[int], list[int], list[int]]] = []

    async def apply_reports(
        self,
        started: Sequence[StartedReport],
        frames: Sequence[FrameRecord],
        completions: Sequence[CompletionReport],
        *,
        at: float,
        logs: Sequence[LogReport] = (),
    ) -> list[TaskOutcome | None]:
        self.batches.append(
            (
                [r.task_id for r in started],
                [r.task_id for r in completions],
                [r.task_id for r in logs],
            )
        )
        return [None] * len(completions)


def start(task_id: int) -> StartedReport:
    return StartedReport(
        task_id=task_id, attempt=1, server_id="s1", job_id="j1", at=1.0, lease_expires_at=99.0
    )


def done(task_id: int) -> CompletionReport:
    return CompletionReport(task_id=task_id, attempt=1, server_id="s1", job_id="j1", at=2.0)


async def hops(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_start_and_the_completion_after_it_are_one_transaction() -> None:
    sink = Sink()
    batcher = ReportBatcher(sink, start_delay_s=60.0)
    batcher.started(start(1))
    await hops()
    assert sink.batches == []  # waiting for company
    await batcher.completed(done(1))
    assert sink.batches == [([1], [1], [])]


async def test_another_report_takes_waiting_starts_along() -> None:
    sink = Sink()
    batcher = ReportBatcher(sink, start_delay_s=60.0)
    batcher.started(start(1))
    batcher.started(start(2))
    batcher.log(LogReport(task_id=3, attempt=1, server_id="s1", text="line\n"))
    await batcher.close()
    assert sink.batches == [([1, 2], [], [3])]


async def test_a_lone_start_is_written_after_its_delay() -> None:
    sink = Sink()
    batcher = ReportBatcher(sink, start_delay_s=0.01)
    batcher.started(start(1))
    for _ in range(200):  # bounded: 10 s at most
        if sink.batches:
            break
        await asyncio.sleep(0.05)
    assert sink.batches == [([1], [], [])]


async def test_close_writes_waiting_starts_at_once() -> None:
    sink = Sink()
    batcher = ReportBatcher(sink, start_delay_s=60.0)
    batcher.started(start(1))
    await batcher.close()
    assert sink.batches == [([1], [], [])]
