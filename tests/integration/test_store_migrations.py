"""Schema migrations, opening stores by URL, and the errors users see when that fails."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from site_agent.store import SqlStore, StoreUnavailableError, open_store
from site_agent.store.migrate import load_migrations

SQLITE_SCHEMA = """
SELECT m.name AS table_name, p.name AS column_name
FROM sqlite_master m JOIN pragma_table_info(m.name) p
WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
"""
SQLITE_INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
POSTGRES_SCHEMA = """
SELECT table_name::text, column_name::text FROM information_schema.columns
WHERE table_schema = current_schema()
"""
POSTGRES_INDEXES = """
SELECT indexname::text AS name FROM pg_indexes
WHERE schemaname = current_schema() AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""


async def logical_schema(url: str) -> tuple[dict[str, set[str]], set[str]]:
    """Tables with their column names, and explicitly created indexes."""
    store = await open_store(url)
    assert isinstance(store, SqlStore)
    try:
        db = store.database
        postgres = db.dialect == "postgres"
        tables: dict[str, set[str]] = {}
        for row in await db.fetch(POSTGRES_SCHEMA if postgres else SQLITE_SCHEMA):
            tables.setdefault(row["table_name"], set()).add(row["column_name"])
        indexes = {
            row["name"] for row in await db.fetch(POSTGRES_INDEXES if postgres else SQLITE_INDEXES)
        }
        return tables, indexes
    finally:
        await store.close()


def test_migration_folders_pair_up() -> None:
    sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
    postgres = [(m.version, m.name) for m in load_migrations("postgres")]
    assert sqlite == postgres
    assert sqlite[0] == (1, "init")


@pytest.mark.postgres
async def test_both_backends_end_in_the_same_logical_schema(
    blank_pg_url: str, tmp_path: Path
) -> None:
    sqlite_tables, sqlite_indexes = await logical_schema(f"sqlite:///{tmp_path / 'a.db'}")
    pg_tables, pg_indexes = await logical_schema(blank_pg_url)
    assert sqlite_tables == pg_tables
    assert sqlite_indexes == pg_indexes
    assert {"servers", "jobs", "tasks", "task_failures", "frames", "schema_migrations"} <= set(
        pg_tables
    )


async def test_reopening_applies_nothing_twice(blank_store_url: str) -> None:
    async def applied() -> list[tuple[int, str, float]]:
        store = await open_store(blank_store_url)
        assert isinstance(store, SqlStore)
        try:
            rows = await store.database.fetch(
                "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
            )
            return [(row["version"], row["name"], row["applied_at"]) for row in rows]
        finally:
            await store.close()

    first = await applied()
    assert [(v, n) for v, n, _ in first] == [(m.version, m.name) for m in load_migrations("sqlite")]
    assert await applied() == first


async def test_a_database_from_a_newer_agent_is_refused(store_url: str) -> None:
    store = await open_store(store_url)
    assert isinstance(store, SqlStore)
    await store.database.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        9999,
        "future",
        1.0,
    )
    await store.close()
    with pytest.raises(
        StoreUnavailableError, match=r"schema versions \[9999\].*upgrade this agent"
    ):
        await open_store(store_url)


async def test_sqlite_urls(tmp_path: Path) -> None:
    relative = await open_store("sqlite:data/deep/site.db", base_dir=tmp_path)
    await relative.close()
    assert (tmp_path / "data" / "deep" / "site.db").is_file()

    absolute = await open_store(f"sqlite:///{tmp_path / 'abs' / 'site.db'}")
    await absolute.close()
    assert (tmp_path / "abs" / "site.db").is_file()

    memory = await open_store("sqlite::memory:")
    assert await memory.list_jobs() == []
    await memory.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://root@db/farm",
            r"unsupported database URL scheme 'mysql:'.*sqlite:///.*postgresql://",
        ),
        ("farm.db", r"not a URL; use sqlite:///"),
        ("sqlite://host/farm.db", r"bad SQLite URL.*sqlite:///absolute/path.db"),
        ("sqlite:", r"bad SQLite URL"),
    ],
)
async def test_bad_urls_say_what_is_supported(url: str, message: str) -> None:
    with pytest.raises(StoreUnavailableError, match=message):
        await open_store(url)


async def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just some text that fills a page" * 40)
    with pytest.raises(StoreUnavailableError, match="is it an SQLite file"):
        await open_store(f"sqlite:///{path}")


async def test_unreachable_postgres_says_what_to_check() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        await open_store("postgresql://spillway@127.0.0.1:1/farm")
    assert str(info.value) == (
        "cannot connect to PostgreSQL at 127.0.0.1:1: connection refused; "
        "is the server running? check `database` in the site config"
    )


@pytest.mark.postgres
async def test_missing_postgres_database_says_how_to_create_it(blank_pg_url: str) -> None:
    missing = urlsplit(blank_pg_url)._replace(path="/spillway_no_such_db").geturl()
    with pytest.raises(
        StoreUnavailableError, match="has no database 'spillway_no_such_db'; create it"
    ):
        await open_store(missing)
