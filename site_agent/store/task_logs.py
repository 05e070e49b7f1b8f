"""Every task attempt's full log: the SQL of the ``task_log_chunks`` and ``task_log_ends`` tables.

A render server sends its renderer's output as it comes (at most one report a
second per task) and the last lines again with its final report. Each report is
one new row, so an append never rewrites earlier text (a 1 MiB log updated every
second would rewrite a megabyte a second); offsets count the UTF-8 bytes of the
attempt's whole output, so a reader can tail it. A long log keeps its first
:data:`HEAD_BYTES` and its last :data:`TAIL_BYTES`: rows wholly between the two
are deleted as the tail moves on, so an attempt holds at most the caps plus the
two rows that straddle them (each under the render server's 256 KiB per report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .database import Connection
from .records import CompletionReport, LogReport, TaskRecord

HEAD_BYTES = 256 * 1024
"""Kept of the start of an attempt's log: the command, the renderer's settings, the first error."""
TAIL_BYTES = 768 * 1024
"""Kept of the end of an attempt's log: where a renderer's last words are."""

# The size of an attempt's log so far: the end of its last row, found by an index seek (a
# MAX(end_offset) scanned every row of the attempt: 35,000 rows for a chatty hour-long task).
_SIZE = """(SELECT end_offset FROM task_log_chunks WHERE task_id = $1 AND attempt = $2
         ORDER BY start_offset DESC LIMIT 1)"""
# The new text starts at the attempt's size so far. Fenced on the task's attempt only: a failure
# report commits outside the report batch, and the lines its renderer printed last must still
# land after it; a newer attempt's claim ends the fence (the sender is checked by the caller).
APPEND_CHUNK = f"""
INSERT INTO task_log_chunks (task_id, attempt, start_offset, end_offset, body)
SELECT t.id, t.attempt, s.size, s.size + CAST($3 AS BIGINT), CAST($4 AS TEXT)
FROM tasks t, (SELECT COALESCE({_SIZE}, 0) AS size) s
WHERE t.id = $1 AND t.attempt = $2
"""
# Rows wholly between the head and the tail windows are cut (never the last row: it ends the
# tail). The bound on start_offset keeps the index range to the rows being cut.
TRIM_CHUNKS = f"""
DELETE FROM task_log_chunks
WHERE task_id = $1 AND attempt = $2 AND start_offset >= $3
  AND start_offset < {_SIZE} - $4 AND end_offset <= {_SIZE} - $4
"""
# A renderer that printed nothing before its last report (a short task, an older render
# server): the final tail becomes the log. $5: the task's state after the report.
TAIL_AS_LOG = """
INSERT INTO task_log_chunks (task_id, attempt, start_offset, end_offset, body)
SELECT id, attempt, 0, CAST($3 AS BIGINT), CAST($4 AS TEXT) FROM tasks
WHERE id = $1 AND attempt = $2 AND state = $5
  AND NOT EXISTS (SELECT 1 FROM task_log_chunks WHERE task_id = $1 AND attempt = $2)
"""
END_DONE = """
INSERT INTO task_log_ends (task_id, attempt, server_id, state, error, at)
SELECT id, attempt, server_id, 'done', '', CAST($4 AS DOUBLE PRECISION) FROM tasks
WHERE id = $1 AND attempt = $2 AND server_id = $3 AND state = 'done'
ON CONFLICT (task_id, attempt) DO NOTHING
"""
END_FAILED = """
INSERT INTO task_log_ends (task_id, attempt, server_id, state, error, at)
VALUES ($1, $2, $3, 'failed', $4, $5)
ON CONFLICT (task_id, attempt) DO NOTHING
"""
LOG_SIZE = f"SELECT COALESCE({_SIZE}, 0)"
LOG_ENDS = "SELECT attempt, server_id, state, error, at FROM task_log_ends WHERE task_id = $1"
# From the row holding byte $3 on, an index range: a tailing reader reads only the new rows.
LOG_CHUNKS = """
SELECT start_offset, end_offset, body FROM task_log_chunks
WHERE task_id = $1 AND attempt = $2 AND end_offset > $3
  AND start_offset >= COALESCE((SELECT start_offset FROM task_log_chunks
                                WHERE task_id = $1 AND attempt = $2 AND start_offset <= $3
                                ORDER BY start_offset DESC LIMIT 1), 0)
ORDER BY start_offset
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogChunk:
    """Text of an attempt's log from byte ``start`` to ``end`` of its whole output."""

    start: int
    end: int
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptEnd:
    """How an attempt ended: its server, ``done`` or ``failed``, and the error."""

    attempt: int
    server_id: str | None
    state: str
    error: str
    at: float


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


async def append_chunks(conn: Connection, reports: Sequence[LogReport]) -> None:
    """Append each report's text to its attempt's log, in the given order, and trim."""
    rows = [(r.task_id, r.attempt, _size(r.text), r.text) for r in reports if r.text]
    if not rows:
        return
    await conn.executemany(APPEND_CHUNK, rows)
    attempts = sorted({(r[0], r[1]) for r in rows})
    await conn.executemany(
        TRIM_CHUNKS, [(task, attempt, HEAD_BYTES, TAIL_BYTES) for task, attempt in attempts]
    )


async def end_completed(conn: Connection, reports: Sequence[CompletionReport]) -> None:
    """Record the completions that held their fence as ``done`` (their tail is the log if
    nothing was appended)."""
    if not reports:
        return
    await conn.executemany(END_DONE, [(r.task_id, r.attempt, r.server_id, r.at) for r in reports])
    tails = [
        (r.task_id, r.attempt, _size(r.log_tail), r.log_tail, "done") for r in reports if r.log_tail
    ]
    if tails:
        await conn.executemany(TAIL_AS_LOG, tails)


async def end_failed(
    conn: Connection,
    task: TaskRecord,
    attempt: int,
    server_id: str,
    *,
    error: str,
    log_tail: str | None,
    at: float,
) -> None:
    """Record a failed attempt; ``task`` is the row after the (fenced) failure."""
    await conn.execute(END_FAILED, task.id, attempt, server_id, error, at)
    if log_tail:
        await conn.execute(
            TAIL_AS_LOG, task.id, attempt, _size(log_tail), log_tail, task.state.value
        )


async def log_size(conn: Connection, task_id: int, attempt: int) -> int:
    """Bytes of output received in the attempt (0 if none)."""
    return int(await conn.fetchval(LOG_SIZE, task_id, attempt) or 0)


async def log_ends(conn: Connection, task_id: int) -> dict[int, AttemptEnd]:
    rows = await conn.fetch(LOG_ENDS, task_id)
    return {
        int(r["attempt"]): AttemptEnd(
            attempt=int(r["attempt"]),
            server_id=r["server_id"],
            state=str(r["state"]),
            error=str(r["error"]),
            at=float(r["at"]),
        )
        for r in rows
    }


async def log_chunks(conn: Connection, task_id: int, attempt: int, after: int) -> list[LogChunk]:
    """The attempt's stored rows that end after byte ``after``, in order."""
    rows = await conn.fetch(LOG_CHUNKS, task_id, attempt, after)
    return [
        LogChunk(start=int(r["start_offset"]), end=int(r["end_offset"]), body=str(r["body"]))
        for r in rows
    ]
