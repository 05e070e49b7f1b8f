"""The SQLite adapter's hand-offs to aiosqlite's thread: one per statement that returns
something, and a transaction's writes (and its BEGIN) riding along with the next one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from site_agent.store.base import StoreConflictError
from site_agent.store.sqlite import SqliteDatabase


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    opened = await SqliteDatabase.open(str(tmp_path / "t.db"))
    await opened.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    yield opened
    await opened.close()


async def test_writes_of_a_transaction_go_with_its_next_read(db: SqliteDatabase) -> None:
    before = db.counters.handoffs
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(1, "a"), (2, "b")])
        await tx.insert_many("t", ["id", "v"], [(3, "c")])
        rows = await tx.fetch("SELECT id FROM t ORDER BY id")
        assert [r["id"] for r in rows] == [1, 2, 3]  # the read sees the writes before it
        await tx.executemany("UPDATE t SET v = $2 WHERE id = $1", [(1, "z")])
    # BEGIN + 2 writes + the read; the last write + COMMIT.
    assert db.counters.handoffs - before == 2
    assert await db.fetchval("SELECT v FROM t WHERE id = 1") == "z"


async def test_a_transaction_of_writes_is_one_handoff(db: SqliteDatabase) -> None:
    before = (db.counters.handoffs, db.counters.statements)
    async with db.transaction() as tx:
        for i in range(5):
            await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(i, "x")])
    assert db.counters.handoffs - before[0] == 1
    assert db.counters.statements - before[1] == 7  # BEGIN IMMEDIATE, 5 inserts, COMMIT
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 5


async def test_a_failing_deferred_write_rolls_the_transaction_back(db: SqliteDatabase) -> None:
    await db.execute("INSERT INTO t (id, v) VALUES (1, 'kept')")
    with pytest.raises(StoreConflictError):
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(2, "new")])
            await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(1, "dup")])
    rows = await db.fetch("SELECT id, v FROM t ORDER BY id")
    assert [(r["id"], r["v"]) for r in rows] == [(1, "kept")]
    # The connection is usable and out of any transaction.
    async with db.transaction() as tx:
        await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(2, "later")])
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 2


async def test_an_abandoned_transaction_writes_nothing(db: SqliteDatabase) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(1, "never")])
            raise RuntimeError("the caller gave up")
    assert await db.fetchval("SELECT COUNT(*) FROM t") == 0


async def test_outside_a_transaction_every_call_runs_at_once(db: SqliteDatabase) -> None:
    before = db.counters.handoffs
    await db.executemany("INSERT INTO t (id, v) VALUES ($1, $2)", [(1, "a")])
    assert await db.execute("UPDATE t SET v = 'b' WHERE id = 1") == 1
    assert await db.fetchval("SELECT v FROM t") == "b"
    # executemany opens its own transaction (one hand-off); the update and the read one each.
    assert db.counters.handoffs - before == 3


async def test_the_agent_reports_its_sqlite_work_in_metrics(
    agent_client: TestClient[Any, Any],
) -> None:
    def counts(text: str) -> dict[str, float]:
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("spillway_sqlite_")
        }

    before = counts(await (await agent_client.get("/metrics")).text())
    assert set(before) >= {"spillway_sqlite_statements_total", "spillway_sqlite_handoffs_total"}
    resp = await agent_client.get("/api/v1/jobs")
    assert resp.status == 200
    after = counts(await (await agent_client.get("/metrics")).text())
    assert after["spillway_sqlite_statements_total"] > before["spillway_sqlite_statements_total"]
    assert after["spillway_sqlite_handoffs_total"] > before["spillway_sqlite_handoffs_total"]
