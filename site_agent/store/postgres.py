"""PostgreSQL backend of the database adapter (asyncpg pool, every call with a timeout)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from .base import StoreConflictError, StoreError, StoreNotFoundError, StoreUnavailableError
from .database import Connection, Row, TransactionalWrites

log = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
_MIGRATION_LOCK_KEY = 0x5350_494C_4C57  # "SPILLW": one advisory lock for all Spillway agents
_FIX_CONFIG = "check `database` in the site config"


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool.

    asyncpg itself rolls back a transaction left open before calling this. The
    agent keeps no other session state (no SET, LISTEN, cursors or session-level
    advisory locks; the migration lock is transaction-scoped), so the default
    reset (``RESET ALL; UNLISTEN *; ...``) only cost a round trip per query.
    """


def describe_dsn(dsn: str) -> tuple[str, str, str]:
    """``(host:port, database, user)`` of a DSN, for messages (never the password)."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    return (
        f"{host}:{port}",
        parts.path.lstrip("/") or parts.username or "postgres",
        parts.username or "",
    )


def _connect_error(dsn: str, exc: BaseException) -> StoreUnavailableError:
    """An error from opening the pool, as a message saying what to do."""
    where, database, user = describe_dsn(dsn)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return StoreUnavailableError(
            f"PostgreSQL at {where} has no database {database!r}; create it "
            f"(createdb -h {where.split(':')[0]} {database}) or {_FIX_CONFIG}"
        )
    if isinstance(
        exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
    ):
        return StoreUnavailableError(
            f"PostgreSQL at {where} refused user {user!r}: {exc}; check the user and password "
            f"in `database` in the site config, or pg_hba.conf on the server"
        )
    if isinstance(exc, TimeoutError):
        return StoreUnavailableError(
            f"cannot connect to PostgreSQL at {where}: no answer within {CONNECT_TIMEOUT_S:g} s; "
            f"is the host reachable (firewall)? {_FIX_CONFIG}"
        )
    if isinstance(exc, socket.gaierror):
        return StoreUnavailableError(
            f"cannot connect to PostgreSQL at {where}: unknown host ({exc}); {_FIX_CONFIG}"
        )
    if isinstance(exc, ConnectionRefusedError):
        return StoreUnavailableError(
            f"cannot connect to PostgreSQL at {where}: connection refused; "
            f"is the server running? {_FIX_CONFIG}"
        )
    return StoreUnavailableError(
        f"cannot connect to PostgreSQL at {where} (database {database!r}): {exc}; "
        f"is the server running? {_FIX_CONFIG}"
    )


@contextmanager
def translate_errors(where: str) -> Iterator[None]:
    """Map asyncpg and socket errors raised by queries to store errors."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise StoreConflictError(f"already exists ({exc.detail or exc})") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise StoreNotFoundError(
            f"refers to a row that does not exist ({exc.detail or exc})"
        ) from exc
    except TimeoutError as exc:
        raise StoreUnavailableError(
            f"PostgreSQL at {where} did not answer within {QUERY_TIMEOUT_S:g} s; "
            "the server may be overloaded or a lock held by another session; check pg_stat_activity"
        ) from exc
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.ConnectionDoesNotExistError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
    ) as exc:
        raise StoreUnavailableError(
            f"lost the connection to PostgreSQL at {where}: {exc}; the next call reconnects; "
            "if this repeats, check that the server is up"
        ) from exc
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise StoreError(f"PostgreSQL at {where} aborted a transaction ({exc}); retry it") from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreError(f"PostgreSQL error at {where}: {exc}") from exc


def _rowcount(status: str) -> int:
    """Rows changed, from a command status such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class _Session:
    """Statements on one pooled connection."""

    serialized_writes = False

    def __init__(self, conn: asyncpg.Connection, where: str, timeout: float) -> None:
        self._conn = conn
        self._where = where
        self._timeout = timeout

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        with translate_errors(self._where):
            return list(await self._conn.fetch(query, *args, timeout=self._timeout))

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        with translate_errors(self._where):
            row: Row | None = await self._conn.fetchrow(query, *args, timeout=self._timeout)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        with translate_errors(self._where):
            return await self._conn.fetchval(query, *args, timeout=self._timeout)

    async def execute(self, query: str, *args: Any) -> int:
        with translate_errors(self._where):
            return _rowcount(await self._conn.execute(query, *args, timeout=self._timeout))

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        with translate_errors(self._where):
            await self._conn.executemany(query, args, timeout=self._timeout)

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        with translate_errors(self._where):
            await self._conn.copy_records_to_table(
                table, records=rows, columns=list(columns), timeout=self._timeout
            )

    async def run_script(self, script: str) -> None:
        with translate_errors(self._where):
            await self._conn.execute(script, timeout=self._timeout)


class PostgresDatabase(TransactionalWrites):
    """The PostgreSQL adapter: an asyncpg pool."""

    dialect = "postgres"
    serialized_writes = False

    def __init__(self, pool: asyncpg.Pool, where: str, *, timeout: float = QUERY_TIMEOUT_S) -> None:
        self._pool = pool
        self._where = where
        self._timeout = timeout

    @classmethod
    async def open(cls, dsn: str) -> PostgresDatabase:
        """Create the pool; fails at once with an actionable message if the server is unusable."""
        try:
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    dsn,
                    min_size=POOL_MIN_SIZE,
                    max_size=POOL_MAX_SIZE,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=QUERY_TIMEOUT_S,
                    server_settings={"application_name": "spillway-agent"},
                    reset=_reset_connection,
                ),
                timeout=CONNECT_TIMEOUT_S * 2,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _connect_error(dsn, exc) from exc
        return cls(pool, describe_dsn(dsn)[0])

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=self._timeout)
        except TimeoutError:
            log.warning("PostgreSQL pool for %s did not close in time; terminating", self._where)
            self._pool.terminate()

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        with translate_errors(self._where):
            conn = await self._pool.acquire(timeout=self._timeout)
        try:
            yield conn
        finally:
            await self._pool.release(conn, timeout=self._timeout)

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Connection]:
        isolation = "repeatable_read" if readonly else "read_committed"
        async with self._acquire() as conn:
            tx = conn.transaction(isolation=isolation, readonly=readonly)
            with translate_errors(self._where):
                async with tx:
                    yield _Session(conn, self._where, self._timeout)

    @asynccontextmanager
    async def _migration_transaction(self) -> AsyncIterator[Connection]:
        async with self.transaction() as conn:
            # Two agents starting at once must not both apply the same migration.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
            yield conn

    def migration_transaction(self) -> AbstractAsyncContextManager[Connection]:
        return self._migration_transaction()

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        async with self._acquire() as conn:
            return await _Session(conn, self._where, self._timeout).fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        async with self._acquire() as conn:
            return await _Session(conn, self._where, self._timeout).fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._acquire() as conn:
            return await _Session(conn, self._where, self._timeout).fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await _Session(conn, self._where, self._timeout).execute(query, *args)
