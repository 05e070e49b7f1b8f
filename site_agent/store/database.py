"""The small database adapter the SQL store runs on, one implementation per backend.

Queries are written once, PostgreSQL style: ``$1``-style parameters, and an
array parameter only in the form ``column = ANY($n::bigint[])`` (or ``text[]``).
The SQLite adapter rewrites both; nothing else about the SQL differs. Every
adapter translates driver errors into :class:`~site_agent.store.base.StoreError`
subclasses whose messages say what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol


class Row(Protocol):
    """A result row, read by column name (or position)."""

    def __getitem__(self, key: str | int, /) -> Any: ...


class Connection(Protocol):
    """Statements on one connection; inside a transaction when obtained from one."""

    serialized_writes: bool
    """A write transaction excludes every other writer of the database (SQLite's
    ``BEGIN IMMEDIATE``): rows locked only to order writers need no statement."""

    async def fetch(self, query: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    async def execute(self, query: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Bulk insert, the fastest way the backend offers (COPY on PostgreSQL)."""

    async def run_script(self, script: str) -> None:
        """Run a file of several statements (a migration)."""


class Database(Connection, Protocol):
    """A connection pool (or the one SQLite connection); plain calls run in autocommit."""

    dialect: str
    """``sqlite`` or ``postgres``; selects the migrations folder."""

    def transaction(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Connection]:
        """Commit on normal exit, roll back on any exception.

        Writers are serialized per row on PostgreSQL (read committed) and per
        database on SQLite (``BEGIN IMMEDIATE``). ``readonly`` gives one
        consistent snapshot for several reads.
        """

    def migration_transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction that also excludes other processes migrating the same database."""

    async def close(self) -> None: ...


class TransactionalWrites:
    """The multi-statement writes of a :class:`Database`, each in its own transaction.

    Both adapters inherit these; they only differ in how a transaction is opened.
    """

    def transaction(self, *, readonly: bool = False) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as conn:
            await conn.executemany(query, args)

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        async with self.transaction() as conn:
            await conn.insert_many(table, columns, rows)

    async def run_script(self, script: str) -> None:
        async with self.transaction() as conn:
            await conn.run_script(script)
