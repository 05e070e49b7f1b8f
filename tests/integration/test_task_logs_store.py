"""Every attempt's full log on SQLite and PostgreSQL: appended, capped, ended, read and waited for."""

from __future__ import annotations

import asyncio

import pytest

from scheduler.profile import JobProfile
from site_agent.errors import AttemptNotFoundError, BadRequestError, LogNotFoundError
from site_agent.lifecycle import Lifecycle
from site_agent.store import (
    CompletionReport,
    JobRecord,
    LogReport,
    ServerRecord,
    ServerStatus,
    Store,
    TaskClaim,
    TaskRecord,
)
from site_agent.store.task_logs import HEAD_BYTES, TAIL_BYTES
from site_agent.task_logs import WAKE_ON, LogWatch, TaskLogs
from spillway.core.records import FileEntry

WAIT_S = 30.0
"""How long the waiting-reader test's reads may wait (their long-poll bound)."""


async def new_job(store: Store) -> list[TaskRecord]:
    job = JobRecord(
        id="job-1",
        name="shot",
        owner="ana",
        origin_site="studio",
        priority=0,
        profile=JobProfile(package="povray", max_attempts=5),
        frames="1-3",
        frame_count=3,
        chunk_size=1,
        scene="scene.pov",
        manifest=(FileEntry(path="scene.pov", sha256="a" * 64, size=12),),
        output_name="shot",
        created_at=1.0,
        updated_at=1.0,
    )
    await Lifecycle(store).create(job, [(1,), (2,), (3,)])
    return await store.list_tasks(job.id)


async def claim(store: Store, task: TaskRecord) -> TaskRecord:
    current = await store.get_task(task.id)
    assert current is not None
    claim = TaskClaim(
        task_id=task.id,
        job_id=task.job_id,
        attempt=current.attempt + 1,
        server_id="s1",
        lease_expires_at=1000.0,
    )
    [claimed] = await Lifecycle(store).assign([claim], at=10.0)
    return claimed


def completion(
    task_id: int, attempt: int, server: str, *, at: float, log_tail: str
) -> CompletionReport:
    return CompletionReport(
        task_id=task_id, attempt=attempt, server_id=server, job_id="job-1", at=at, log_tail=log_tail
    )


async def complete(
    store: Store, task_id: int, attempt: int, server: str, *, at: float, log_tail: str
) -> None:
    report = completion(task_id, attempt, server, at=at, log_tail=log_tail)
    await Lifecycle(store).apply_reports([], [], [report], at=at)


def make_server() -> ServerRecord:
    return ServerRecord(
        id="s1",
        name="r1",
        host="r1.farm",
        cores=4,
        memory_mb=8192,
        gpus=(),
        os="linux",
        cpu_model="cpu",
        packages={"povray": "3.7.0.10"},
        tags=frozenset(),
        slots=2,
        status=ServerStatus.IDLE,
        last_heartbeat=5.0,
        registered_at=4.0,
    )


async def _log(lifecycle: Lifecycle, task: TaskRecord, text: str, server: str = "s1") -> None:
    report = LogReport(task_id=task.id, attempt=task.attempt, server_id=server, text=text)
    await lifecycle.apply_reports([], [], [], at=0.0, logs=[report])


async def _setup(store: Store) -> tuple[Lifecycle, TaskLogs, LogWatch]:
    await store.upsert_server(make_server())
    lifecycle = Lifecycle(store)
    watch = LogWatch()
    lifecycle.subscribe(watch.on_event, WAKE_ON)
    return lifecycle, TaskLogs(store, watch), watch


async def test_each_attempt_keeps_its_whole_log_in_order(store: Store) -> None:
    lifecycle, logs, _ = await _setup(store)
    [t0, *_] = await new_job(store)
    with pytest.raises(LogNotFoundError, match="has not run yet"):
        await logs.read(t0, attempt=None, offset=0, wait=0)
    t0 = await claim(store, t0)
    lines = [f"line {i} ✓\n" for i in range(100)]  # 100 lines, not a 60-line tail
    for line in lines:
        await _log(lifecycle, t0, line)
    page = await logs.read(t0, attempt=None, offset=0, wait=0)
    assert page.text == "".join(lines)
    assert page.next_offset == len("".join(lines).encode())  # bytes, not characters
    assert (page.attempt, page.attempts, page.state, page.server) == (1, (1,), "dispatched", "r1")
    assert not page.complete
    later = await logs.read(t0, attempt=None, offset=len(lines[0].encode()), wait=0)
    assert later.text == "".join(lines[1:])
    whole = "".join(lines).encode()
    for offset in (3, len(whole) // 2, len(whole) - 1):  # inside a row: from that byte on
        part = await logs.read(t0, attempt=None, offset=offset, wait=0)
        assert part.text == whole[offset:].decode("utf-8", "replace")
    job = await store.get_job(t0.job_id)
    assert job is not None
    await lifecycle.fail(t0, "s1", 1, "Parse Error: No matching }", "the tail\n")
    first = await logs.read(t0, attempt=1, offset=0, wait=0)
    assert first.text == "".join(lines), "a streamed log is not replaced by the final tail"
    assert (first.state, first.error, first.complete) == (
        "failed",
        "Parse Error: No matching }",
        True,
    )
    t0 = await claim(store, t0)
    await _log(lifecycle, t0, "second try\n")
    await complete(store, t0.id, 2, "s1", at=30.0, log_tail="second try")
    second = await logs.read(t0, attempt=None, offset=0, wait=0)
    assert (second.attempt, second.attempts, second.state) == (2, (1, 2), "done")
    assert second.text == "second try\n"
    assert (await logs.read(t0, attempt=1, offset=0, wait=0)).text == "".join(lines)
    with pytest.raises(AttemptNotFoundError, match="its attempts are 1 to 2"):
        await logs.read(t0, attempt=3, offset=0, wait=0)
    with pytest.raises(BadRequestError, match="offset 999"):
        await logs.read(t0, attempt=2, offset=999, wait=0)


async def test_a_task_that_printed_nothing_keeps_its_final_tail(store: Store) -> None:
    lifecycle, logs, _ = await _setup(store)
    [t0, t1, _] = await new_job(store)
    t0 = await claim(store, t0)
    await complete(store, t0.id, 1, "s1", at=20.0, log_tail="$ render\nframe 1 done")
    assert (await logs.read(t0, attempt=1, offset=0, wait=0)).text == "$ render\nframe 1 done"
    t1 = await claim(store, t1)
    await lifecycle.fail(t1, "s1", 1, "boom", "error: boom")
    page = await logs.read(t1, attempt=1, offset=0, wait=0)
    assert (page.text, page.state, page.error) == ("error: boom", "failed", "boom")


async def test_a_requeued_attempt_keeps_its_log_and_says_so(store: Store) -> None:
    lifecycle, logs, _ = await _setup(store)
    [t0, *_] = await new_job(store)
    t0 = await claim(store, t0)
    await _log(lifecycle, t0, "half way\n")
    await lifecycle.requeue_server("s1", at=30.0)
    t0 = await store.get_task(t0.id) or t0
    page = await logs.read(t0, attempt=1, offset=0, wait=0)
    assert (page.text, page.state, page.complete, page.server) == (
        "half way\n",
        "requeued",
        True,
        None,
    )


async def test_a_late_log_of_an_older_attempt_is_ignored(store: Store) -> None:
    lifecycle, logs, _ = await _setup(store)
    [t0, *_] = await new_job(store)
    first = await claim(store, t0)
    await lifecycle.fail(first, "s1", 1, "boom", None)
    second = await claim(store, t0)
    await _log(lifecycle, first, "late\n")
    await _log(lifecycle, second, "new\n")
    assert (await logs.read(second, attempt=2, offset=0, wait=0)).text == "new\n"
    assert (await logs.read(second, attempt=1, offset=0, wait=0)).text == ""


async def test_a_long_log_keeps_its_head_and_tail_and_counts_the_cut(store: Store) -> None:
    lifecycle, logs, _ = await _setup(store)
    [t0, *_] = await new_job(store)
    t0 = await claim(store, t0)
    block = 100 * 1024
    for i in range(20):  # 2,000 KiB: 976 KiB more than the caps
        await _log(lifecycle, t0, f"{i:04d}" + "x" * (block - 5) + "\n")
    size = 20 * block
    cut = size - HEAD_BYTES - TAIL_BYTES
    stored = await store.database.fetchval(
        "SELECT SUM(end_offset - start_offset) FROM task_log_chunks WHERE task_id = $1", t0.id
    )
    assert stored <= HEAD_BYTES + TAIL_BYTES + 2 * block, "rows in the middle are deleted"
    page = await logs.read(t0, attempt=1, offset=0, wait=0)
    assert (page.truncated_bytes, page.next_offset) == (cut, size)
    assert page.text.startswith("0000x")
    assert f"\n[{cut} bytes cut]\n" in page.text
    assert page.text.endswith("x\n") and "0019x" in page.text
    assert len(page.text.encode()) == HEAD_BYTES + TAIL_BYTES + len(f"\n[{cut} bytes cut]\n")
    # A reader that fell behind into the cut learns how much it missed.
    behind = await logs.read(t0, attempt=1, offset=HEAD_BYTES + 10, wait=0)
    assert behind.text.startswith(f"[{cut - 10} bytes cut]\n")
    assert len(behind.text.encode()) == TAIL_BYTES + len(f"[{cut - 10} bytes cut]\n")


async def test_the_log_goes_with_its_tasks(store: Store) -> None:
    lifecycle, _, _ = await _setup(store)
    [t0, *_] = await new_job(store)
    t0 = await claim(store, t0)
    await _log(lifecycle, t0, "text\n")
    await complete(store, t0.id, 1, "s1", at=20.0, log_tail="text")
    await store.database.execute("DELETE FROM tasks WHERE job_id = $1", t0.job_id)
    for table in ("task_log_chunks", "task_log_ends"):
        assert await store.database.fetchval(f"SELECT COUNT(*) FROM {table}") == 0


async def test_a_waiting_reader_is_woken_by_new_text_and_by_the_end(store: Store) -> None:
    lifecycle, logs, watch = await _setup(store)
    [t0, *_] = await new_job(store)
    t0 = await claim(store, t0)
    # Each read may wait WAIT_S and is given a third of that: only a wake-up ends it in time.
    reader = asyncio.create_task(logs.read(t0, attempt=None, offset=0, wait=WAIT_S))
    while not watch.watched:
        await asyncio.sleep(0.01)
    await _log(lifecycle, t0, "hello\n")
    page = await asyncio.wait_for(reader, WAIT_S / 3)
    assert page.text == "hello\n"
    reader = asyncio.create_task(logs.read(t0, attempt=None, offset=page.next_offset, wait=WAIT_S))
    while not watch.watched:
        await asyncio.sleep(0.01)
    # The agent's path for a completion: the lifecycle's subscribers hear of the end.
    try:
        await lifecycle.complete(completion(t0.id, 1, "s1", at=20.0, log_tail="hello"))
    finally:
        await lifecycle.close()
    page = await asyncio.wait_for(reader, WAIT_S / 3)
    assert (page.text, page.state, page.complete) == ("", "done", True)
    assert watch.watched == 0
