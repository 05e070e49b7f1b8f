"""The site's resource database: one :class:`Store` interface, SQLite or PostgreSQL behind it.

Open it with :func:`open_store` and the ``database`` URL from the site config::

    store = await open_store("sqlite:///var/lib/spillway/studio.db")
    store = await open_store("sqlite:studio.db", base_dir=config_dir)
    store = await open_store("postgresql://spillway@db.example:5432/spillway")

Opening applies any pending schema migrations.
"""

from __future__ import annotations

from pathlib import Path

from .base import Store, StoreConflictError, StoreError, StoreNotFoundError, StoreUnavailableError
from .postgres import PostgresDatabase
from .records import (
    LOCAL,
    CompletionReport,
    DispatchSnapshot,
    FrameFile,
    FrameRecord,
    JobRecord,
    JobState,
    LogReport,
    RunningSummary,
    ServerRecord,
    ServerStatus,
    StartedReport,
    TaskClaim,
    TaskOutcome,
    TaskRecord,
    TaskState,
)
from .sql_store import SqlStore
from .sqlite import SqliteDatabase

__all__ = [
    "LOCAL",
    "SUPPORTED_URLS",
    "CompletionReport",
    "StoreConflictError",
    "DispatchSnapshot",
    "FrameFile",
    "FrameRecord",
    "JobRecord",
    "JobState",
    "StoreNotFoundError",
    "RunningSummary",
    "ServerRecord",
    "ServerStatus",
    "SqlStore",
    "LogReport",
    "StartedReport",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "TaskClaim",
    "TaskOutcome",
    "TaskRecord",
    "TaskState",
    "open_store",
    "sqlite_path",
]

SUPPORTED_URLS = (
    "sqlite:///absolute/path.db, sqlite:relative/path.db (relative to the config file), "
    "sqlite::memory: (tests only) or postgresql://user@host:port/dbname"
)


def sqlite_path(url: str, *, base_dir: Path | None = None) -> Path | None:
    """The database file named by a ``sqlite:`` URL, or None for ``sqlite::memory:``."""
    rest = url[len("sqlite:") :]
    if rest == ":memory:":
        return None
    if rest.startswith("///"):
        return Path(rest[2:])
    if rest.startswith("//") or not rest or rest.endswith("/"):
        raise StoreUnavailableError(
            f"bad SQLite URL {url!r}: use sqlite:///absolute/path.db or sqlite:relative/path.db"
        )
    return (base_dir or Path.cwd()) / rest


async def open_store(url: str, *, base_dir: Path | None = None) -> Store:
    """Open the store at ``url``, creating and migrating the database as needed.

    Relative SQLite paths are resolved against ``base_dir`` (the config file's
    folder) or the working directory, and missing parent folders are created.
    """
    scheme, colon, _ = url.partition(":")
    scheme = scheme.lower()
    if not colon:
        raise StoreUnavailableError(f"database {url!r} is not a URL; use {SUPPORTED_URLS}")
    if scheme == "sqlite":
        path = sqlite_path(url, base_dir=base_dir)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"cannot create the folder for SQLite database {path}: {exc.strerror}; "
                    "choose a writable location in `database` in the site config"
                ) from exc
        return await SqlStore.open(await SqliteDatabase.open(str(path or ":memory:")))
    if scheme in ("postgresql", "postgres"):
        return await SqlStore.open(await PostgresDatabase.open(url))
    raise StoreUnavailableError(
        f"unsupported database URL scheme {scheme + ':'!r}; use {SUPPORTED_URLS}"
    )
