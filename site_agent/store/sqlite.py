"""SQLite backend of the database adapter (aiosqlite, one connection, WAL mode).

One connection serves the whole agent; an :class:`asyncio.Lock` keeps the
statements of one transaction from interleaving with another coroutine's.
Other processes on the same file are handled by SQLite's own locking:
``BEGIN IMMEDIATE`` takes the write lock up front and ``busy_timeout`` waits
for it instead of failing at once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import aiosqlite

from .base import StoreConflictError, StoreError, StoreNotFoundError, StoreUnavailableError
from .database import Connection, Row, TransactionalWrites

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
MIN_SQLITE_VERSION = (3, 37, 0)
"""RETURNING needs 3.35 and STRICT tables 3.37."""

_PARAM = re.compile(r"\$(\d+)")
_ANY = re.compile(r"=\s*ANY\(\s*\$(\d+)::\w+\[\]\s*\)")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
T = TypeVar("T")


@functools.lru_cache(maxsize=1024)
def translate_query(query: str) -> tuple[str, frozenset[int]]:
    """PostgreSQL-style SQL to SQLite: ``$n`` to ``?n``, ``= ANY($n::t[])`` to ``IN json_each``.

    Returns the query and the 0-based positions of array parameters, which are
    passed to SQLite as JSON text.
    """
    arrays = frozenset(int(n) - 1 for n in _ANY.findall(query))
    query = _ANY.sub(lambda m: f"IN (SELECT value FROM json_each(${m.group(1)}))", query)
    return _PARAM.sub(r"?\1", query), arrays


def _bind(arrays: frozenset[int], args: Sequence[Any]) -> Sequence[Any]:
    if not arrays:
        return args
    return [json.dumps(list(a)) if i in arrays else a for i, a in enumerate(args)]


def _store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """The store error for an sqlite3 error, with what to do about it."""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return StoreConflictError(f"already exists ({text})")
        if "FOREIGN KEY" in text:
            return StoreNotFoundError(f"refers to a row that does not exist ({text})")
    elif isinstance(exc, sqlite3.OperationalError):
        if "locked" in text or "busy" in text:
            return StoreUnavailableError(
                f"SQLite database {path} stayed locked for {BUSY_TIMEOUT_MS // 1000} s: {text}; "
                "is another agent using the same file? Run one agent per database file, "
                "or use PostgreSQL for several"
            )
        if "unable to open" in text or "readonly" in text or "disk" in text:
            return StoreUnavailableError(
                f"cannot use SQLite database {path}: {text}; check that the file and its folder "
                "exist and are writable by the agent, or fix `database` in the site config"
            )
    elif type(exc) is sqlite3.DatabaseError:  # "file is not a database", "malformed"
        return StoreUnavailableError(
            f"cannot use SQLite database {path}: {text}; is it an SQLite file? "
            "Fix `database` in the site config or move the file away"
        )
    return StoreError(f"SQLite error on {path}: {text}")


@contextmanager
def translate_errors(path: str) -> Iterator[None]:
    """Map sqlite3 errors to store errors that say what to do."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from exc
    except ValueError as exc:
        if "connection" not in str(exc):  # aiosqlite: "no active connection"
            raise
        raise StoreUnavailableError(f"SQLite database {path} is closed: {exc}") from exc


_Op = tuple[str, str, Any]
"""A statement waiting in a transaction: (kind, SQL, parameters); kind "one" or "many"."""


def _run_ops(raw: sqlite3.Connection, ops: Sequence[_Op]) -> sqlite3.Cursor | None:
    """Run statements in order on the connection's thread; the last one's cursor."""
    cursor = None
    for kind, sql, params in ops:
        cursor = raw.executemany(sql, params) if kind == "many" else raw.execute(sql, params)
    return cursor


class HandOffs:
    """How often the agent waited on SQLite's thread, and for how many statements."""

    __slots__ = ("handoffs", "statements")

    def __init__(self) -> None:
        self.handoffs = 0
        self.statements = 0


class _Session:
    """Statements on the shared connection; the caller holds the lock.

    Every call is one hand-off to aiosqlite's thread (the statement, its rows
    or row count, and closing its cursor together). Inside a transaction
    (``pipelined``) a statement whose result nobody reads (``executemany``,
    ``insert_many``, ``BEGIN``) waits and goes with the next statement that
    returns something, or with ``COMMIT``: a transaction of writes is one hand-off,
    not one per statement. An error of a waiting statement is raised by the
    statement it went with; either way the transaction rolls back.
    """

    serialized_writes = True

    def __init__(
        self, conn: aiosqlite.Connection, path: str, counters: HandOffs, *, pipelined: bool
    ) -> None:
        self._conn = conn
        self._path = path
        self._counters = counters
        self._pending: list[_Op] | None = [] if pipelined else None

    async def _run(self, op: _Op, fetch: bool) -> Any:
        ops = [op]
        if self._pending:
            ops, self._pending = [*self._pending, op], []
        self._counters.handoffs += 1
        self._counters.statements += len(ops)

        def run() -> Any:
            cursor = _run_ops(self._conn._conn, ops)  # see _in_thread
            if cursor is None:
                return None
            try:
                return cursor.fetchall() if fetch else max(cursor.rowcount, 0)
            finally:
                cursor.close()

        with translate_errors(self._path):
            return await _in_thread(self._conn, run)

    def _defer(self, op: _Op) -> bool:
        """Keep ``op`` for the next hand-off (inside a transaction); False: run it now."""
        if self._pending is None:
            return False
        self._pending.append(op)
        return True

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        sql, arrays = translate_query(query)
        rows: list[Row] = await self._run(("one", sql, _bind(arrays, args)), True)
        return rows

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        rows = await self.fetch(query, *args)
        return rows[0] if rows else None

    async def fetchval(self, query: str, *args: Any) -> Any:
        rows = await self.fetch(query, *args)
        return rows[0][0] if rows else None

    async def execute(self, query: str, *args: Any) -> int:
        sql, arrays = translate_query(query)
        changed: int = await self._run(("one", sql, _bind(arrays, args)), False)
        return changed

    async def control(self, statement: str, *, defer: bool = False) -> None:
        """BEGIN (``defer``: with the transaction's first statement), COMMIT, ROLLBACK."""
        op: _Op = ("one", statement, ())
        if not (defer and self._defer(op)):
            await self._run(op, False)

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        sql, arrays = translate_query(query)
        rows = [_bind(arrays, a) for a in args] if arrays else list(args)
        if not self._defer(("many", sql, rows)):
            await self._run(("many", sql, rows), False)

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        for name in (table, *columns):
            if not _IDENTIFIER.fullmatch(name):
                raise StoreError(f"bad table or column name {name!r}")
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        await self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    async def run_script(self, script: str) -> None:
        # executescript() would COMMIT first; run statement by statement to stay in the transaction.
        for statement in split_statements(script):
            await self.execute(statement)


async def _in_thread(conn: aiosqlite.Connection, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the connection's thread: one hand-off.

    aiosqlite's public calls take one hand-off per cursor operation (a statement,
    then closing its cursor); its ``_execute`` queues any function, and ``fn`` uses
    the raw connection (``_conn``) there, the only thread that may touch it.
    """
    result: T = await conn._execute(fn)  # type: ignore[no-untyped-call]
    return result


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (triggers and quoted ';' included)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {pending.strip()!r}")
    return statements


class SqliteDatabase(TransactionalWrites):
    """The SQLite adapter: one aiosqlite connection shared under a lock."""

    dialect = "sqlite"
    serialized_writes = True

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._path = path
        self._lock = asyncio.Lock()
        self.counters = HandOffs()
        self._session = _Session(conn, path, self.counters, pipelined=False)

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        """Open (creating if needed) the database file, or ``:memory:``."""
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            need = ".".join(map(str, MIN_SQLITE_VERSION))
            raise StoreUnavailableError(
                f"SQLite {sqlite3.sqlite_version} is too old; Spillway needs {need} or newer "
                "(use a newer Python build or PostgreSQL)"
            )
        with translate_errors(path):
            conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            with translate_errors(path):
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA foreign_keys = ON")
                if path != ":memory:":
                    await conn.execute("PRAGMA journal_mode = WAL")
                    # Safe with WAL: a power cut may lose the last commits, never corrupt.
                    await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        async with self._lock:
            with translate_errors(self._path):
                await self._conn.close()

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Connection]:
        async with self._lock:
            session = _Session(self._conn, self._path, self.counters, pipelined=True)
            await session.control("BEGIN" if readonly else "BEGIN IMMEDIATE", defer=True)
            try:
                yield session
                await session.control("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        def rollback() -> None:
            raw = self._conn._conn  # see _in_thread
            if raw.in_transaction:  # BEGIN waits for the first statement, or failed itself
                raw.execute("ROLLBACK")

        try:
            await _in_thread(self._conn, rollback)
        except (sqlite3.Error, ValueError):
            # The original error is the one worth reporting; SQLite may already have rolled back.
            log.warning("rollback failed on SQLite database %s", self._path, exc_info=True)

    def migration_transaction(self) -> AbstractAsyncContextManager[Connection]:
        # BEGIN IMMEDIATE already excludes every other writer of the file.
        return self.transaction()

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        async with self._lock:
            return await self._session.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        async with self._lock:
            return await self._session.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._lock:
            return await self._session.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> int:
        async with self._lock:
            return await self._session.execute(query, *args)
