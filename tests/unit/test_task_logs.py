"""What a task log shows: the kept head and tail of its bytes from an offset, and the attempt's state."""

from __future__ import annotations

import asyncio

import pytest

from site_agent.lifecycle.events import TasksLogged
from site_agent.store.records import TaskRecord, TaskState
from site_agent.store.task_logs import HEAD_BYTES, TAIL_BYTES, AttemptEnd, LogChunk
from site_agent.task_logs import LogWatch, attempt_state, log_text, truncated_bytes
from spillway.packages.error_line import renderer_error


def _chunks(text: str, size: int) -> list[LogChunk]:
    """``text`` stored in rows of ``size`` characters, offsets in bytes."""
    chunks, at = [], 0
    for i in range(0, len(text), size):
        body = text[i : i + size]
        end = at + len(body.encode())
        chunks.append(LogChunk(start=at, end=end, body=body))
        at = end
    return chunks


@pytest.mark.parametrize("rows", [1, 3, 7, 100])
@pytest.mark.parametrize("offset", [0, 1, 5, 17, 40])
def test_a_short_log_reads_back_from_any_offset_whatever_its_rows(rows: int, offset: int) -> None:
    text = "line one\nline two ✓\nlast line\n"
    data = text.encode()
    assert log_text(_chunks(text, rows), len(data), offset) == data[offset:].decode(
        "utf-8", "replace"
    )
    assert truncated_bytes(len(data)) == 0


def _long(size: int) -> tuple[str, bytes]:
    text = "".join(f"{i:07d}\n" for i in range(size // 8))
    return text, text.encode()


def test_a_long_log_shows_head_a_cut_line_and_tail() -> None:
    text, data = _long(HEAD_BYTES + TAIL_BYTES + 80_000)
    size = len(data)
    cut = size - HEAD_BYTES - TAIL_BYTES
    assert truncated_bytes(size) == cut
    shown = log_text(_chunks(text, 30_000), size, 0).encode()
    marker = f"[{cut} bytes cut]\n".encode()
    assert shown == data[:HEAD_BYTES] + marker + data[size - TAIL_BYTES :]


def test_a_reader_past_the_head_sees_only_what_was_cut_since_its_offset() -> None:
    text, data = _long(HEAD_BYTES + TAIL_BYTES + 80_000)
    size = len(data)
    chunks = _chunks(text, 30_000)
    inside_cut = HEAD_BYTES + 1000
    shown = log_text(chunks, size, inside_cut).encode()
    assert shown == f"[{size - TAIL_BYTES - inside_cut} bytes cut]\n".encode() + data[-TAIL_BYTES:]
    in_tail = size - 100
    assert log_text(chunks, size, in_tail).encode() == data[in_tail:]
    assert log_text(chunks, size, size) == ""


def test_a_cut_inside_a_line_starts_its_note_on_a_line_of_its_own() -> None:
    text = "x" * (HEAD_BYTES + TAIL_BYTES + 10)
    shown = log_text(_chunks(text, 100_000), len(text), 0)
    assert "x\n[10 bytes cut]\nx" in shown


def test_a_cut_inside_a_character_shows_a_replacement_not_an_error() -> None:
    text = "é" * 10
    assert log_text(_chunks(text, 3), 20, 1) == "\ufffd" + "é" * 9


def _task(state: TaskState, attempt: int) -> TaskRecord:
    return TaskRecord(id=1, job_id="j", index=0, frames=(1,), state=state, attempt=attempt)


@pytest.mark.parametrize(
    ("state", "current", "attempt", "ended", "shown"),
    [
        (TaskState.RUNNING, 2, 2, None, "running"),
        (TaskState.DISPATCHED, 2, 2, None, "dispatched"),
        (TaskState.RUNNING, 2, 1, "failed", "failed"),
        (TaskState.RUNNING, 2, 1, None, "requeued"),  # attempt 1's server was lost
        (TaskState.WAITING, 2, 2, None, "requeued"),
        (TaskState.DONE, 2, 2, "done", "done"),
        (TaskState.DONE, 2, 2, None, "done"),  # finished before full logs were kept
    ],
)
def test_the_state_of_an_attempt(
    state: TaskState, current: int, attempt: int, ended: str | None, shown: str
) -> None:
    end = None
    if ended is not None:
        end = AttemptEnd(attempt=attempt, server_id="s", state=ended, error="", at=1.0)
    assert attempt_state(_task(state, current), attempt, end) == shown


async def test_a_watch_is_woken_once_and_forgotten() -> None:
    watch = LogWatch()
    with watch.watch(1) as first, watch.watch(1) as second, watch.watch(2) as other:
        assert first is second and watch.watched == 2
        await watch.on_event(TasksLogged(task_ids=(1,)))
        assert first.is_set() and not other.is_set()
        with watch.watch(1) as again:
            assert again is not first and not again.is_set(), "a new wait needs new text"
        await asyncio.wait_for(first.wait(), 1)
    assert watch.watched == 0


@pytest.mark.parametrize(
    ("output", "error"),
    [
        (
            "File 'a.pov' line 4: Parse Error: No matching } in 'sphere', End of File found\n"
            " instead\nFatal error in parser: Cannot parse input.\nRender failed",
            "line 4: Parse Error: No matching } in 'sphere', End of File found instead",
        ),
        (
            "File 'a.pov' line 1: Possible Parse Error: Cannot find file 'part1.inc', even\n"
            " after trying to append file type extension.\n"
            "File 'a.pov' line 1: Parse Error: Cannot open include file part1.inc.\n",
            "line 1: Parse Error: Cannot open include file part1.inc.",
        ),
        ("frame 1 done in 0.1s\nerror: scene has no camera", "error: scene has no camera"),
        ("all fine\nRender failed", ""),
    ],
)
def test_the_renderer_s_error_line(output: str, error: str) -> None:
    assert renderer_error(output) == error
