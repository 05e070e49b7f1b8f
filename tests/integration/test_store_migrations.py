"""Schema migrations, opening stores by URL, and the errors users see when that fails."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from federation.store import FEDERATION_CHAIN, FederationStore
from site_agent.store import SqlStore, StoreUnavailableError, open_store, sqlite_path
from site_agent.store.database import Database
from site_agent.store.migrate import SITE_CHAIN, apply_migrations, load_migrations
from site_agent.store.postgres import PostgresDatabase
from site_agent.store.sqlite import SqliteDatabase
from webhooks.store import WEBHOOKS_CHAIN, WebhookStore

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
    """Tables with their column names, and explicitly created indexes (every chain applied)."""
    store = await open_store(url)
    assert isinstance(store, SqlStore)
    try:
        db = store.database
        await FederationStore.open(db)
        await WebhookStore.open(db)
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
    fed_sqlite = [(m.version, m.name) for m in load_migrations("sqlite", FEDERATION_CHAIN)]
    fed_postgres = [(m.version, m.name) for m in load_migrations("postgres", FEDERATION_CHAIN)]
    assert fed_sqlite == fed_postgres
    assert fed_sqlite[0] == (1, "federation")
    hook_sqlite = [(m.version, m.name) for m in load_migrations("sqlite", WEBHOOKS_CHAIN)]
    hook_postgres = [(m.version, m.name) for m in load_migrations("postgres", WEBHOOKS_CHAIN)]
    assert hook_sqlite == hook_postgres == [(1, "webhooks")]


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
    assert {"fed_offers", "fed_seen", "fed_outbox", "fed_forwards", "fed_peers"} <= set(pg_tables)
    assert {"job_dependencies", "webhook_deliveries"} <= set(pg_tables)


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


# --- databases made before the federation had its own migration chain -------------
# They recorded 0001_init and 0002_federation as versions 1 and 2 of one sequence,
# without a chain. legacy/<dialect>/ holds those two files exactly as they were shipped.

LEGACY = Path(__file__).with_name("legacy")
OLD_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""
OLD_INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"
APPLIED = "SELECT chain, version, name, applied_at FROM schema_migrations ORDER BY chain, version"


async def build_legacy(db: Database) -> None:
    """What the agent before migration chains did to a blank database, plus some federation rows."""
    async with db.migration_transaction() as conn:
        await conn.execute(OLD_SCHEMA_MIGRATIONS)
        for version, name in ((1, "init"), (2, "federation")):
            script = (LEGACY / db.dialect / f"{version:04d}_{name}.sql").read_text()
            await conn.run_script(script)
            await conn.execute(OLD_INSERT_APPLIED, version, name, 1000.0 + version)
    await db.execute(
        "INSERT INTO fed_offers (key, site, origin_job_id, epoch, body, remote_job_id,"
        " created_at, committed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        "studio:j1:1",
        "studio",
        "j1",
        1,
        '{"key":"studio:j1:1"}',
        "r1",
        10.0,
        11.0,
    )
    await db.execute(
        "INSERT INTO fed_outbox (id, peer, kind, job_id, body, final, attempts, created_at,"
        " delivered_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, '')",
        "notify:r1:1:final",
        "studio",
        "notify",
        "r1",
        "{}",
        1,
        2,
        12.0,
    )
    await db.execute(
        "INSERT INTO fed_peers (name, advert, last_seen) VALUES ($1, $2, $3)",
        "studio",
        '{"servers":[],"queue_depth":4}',
        13.0,
    )


async def legacy_database(url: str) -> None:
    """Turn the blank database at ``url`` into one the old agent made."""
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        assert path is not None
        db: Database = await SqliteDatabase.open(str(path))
    else:
        db = await PostgresDatabase.open(url)
    try:
        await build_legacy(db)
    finally:
        await db.close()


async def test_a_legacy_database_upgrades_in_place_and_keeps_its_rows(
    blank_store_url: str,
) -> None:
    await legacy_database(blank_store_url)

    store = await open_store(blank_store_url)
    assert isinstance(store, SqlStore)
    try:
        db = store.database
        fed = await FederationStore.open(db)
        rows = [
            (r["chain"], r["version"], r["name"], r["applied_at"]) for r in await db.fetch(APPLIED)
        ]
        # Re-recorded under their chains, with their original times: nothing ran again
        # (later migrations, made after chains existed, run as usual).
        legacy = [row for row in rows if row[1] == 1]
        assert legacy == [("federation", 1, "federation", 1002.0), ("site", 1, "init", 1001.0)]
        assert await apply_migrations(db, SITE_CHAIN) == []
        offer = await fed.offer_by_job("r1")
        assert (
            offer is not None
            and offer.key == "studio:j1:1"
            and offer.body == {"key": "studio:j1:1"}
        )
        entry = await fed.get_outbox("notify:r1:1:final")
        assert entry is not None and entry.final and entry.attempts == 2
        assert [(a.name, a.advert["queue_depth"]) for a in await fed.list_adverts()] == [
            ("studio", 4)
        ]
    finally:
        await store.close()

    # Opening again changes nothing more.
    again = await open_store(blank_store_url)
    assert isinstance(again, SqlStore)
    try:
        await FederationStore.open(again.database)
        legacy_times = [
            r["applied_at"] for r in await again.database.fetch(APPLIED) if r["version"] == 1
        ]
        assert legacy_times == [1002.0, 1001.0]
    finally:
        await again.close()


async def test_a_legacy_site_without_federation_keeps_the_federation_record(
    blank_store_url: str,
) -> None:
    """A site that never turns federation on still records where 0002 went."""
    await legacy_database(blank_store_url)
    store = await open_store(blank_store_url)
    assert isinstance(store, SqlStore)
    try:
        rows = [(r["chain"], r["version"]) for r in await store.database.fetch(APPLIED)]
        assert [row for row in rows if row[1] == 1] == [("federation", 1), ("site", 1)]
    finally:
        await store.close()


@pytest.fixture
def fresh_url(
    blank_store_url: str,
    tmp_path: Path,
    empty_pg_database: Callable[[str], contextlib.AbstractContextManager[str]],
) -> Iterator[str]:
    """Another blank database on the backend of ``blank_store_url``."""
    if blank_store_url.startswith("sqlite:"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with empty_pg_database("fresh") as url:
            yield url


async def test_an_upgraded_database_has_the_schema_of_a_fresh_one(
    blank_store_url: str, fresh_url: str
) -> None:
    await legacy_database(blank_store_url)
    upgraded = await logical_schema(blank_store_url)
    fresh = await logical_schema(fresh_url)
    assert upgraded == fresh
    assert "chain" in upgraded[0]["schema_migrations"]
    assert "fed_outbox" in upgraded[0]


async def test_frames_recorded_before_frame_files_upgrade_and_take_files(
    blank_store_url: str, tmp_path: Path
) -> None:
    """0006 (frame_files) on a database holding frames: each frame stays its main file,
    with no other files, and can then be recorded again with some."""
    from site_agent.store.migrate import MigrationChain
    from site_agent.store.records import FrameFile, FrameRecord
    from spillway.core.records import FileKind

    before = tmp_path / "before"
    for dialect in ("sqlite", "postgres"):
        (before / dialect).mkdir(parents=True)
        for migration in load_migrations(dialect):
            if migration.version < 6:
                (before / dialect / migration.path.name).write_text(migration.read())
    url = urlsplit(blank_store_url)
    db: Database = (
        await SqliteDatabase.open(str(sqlite_path(blank_store_url)))
        if url.scheme == "sqlite"
        else await PostgresDatabase.open(blank_store_url)
    )
    try:
        applied = await apply_migrations(db, MigrationChain(name="site", folder=before))
        assert applied == [1, 2, 3, 4, 5]
        await db.execute(
            "INSERT INTO jobs (id, name, owner, origin_site, priority, profile, frames, frame_count,"
            " chunk_size, scene, manifest, output_name, output_ext, settings, state, placement,"
            " placement_reason, created_at, updated_at) VALUES ($1, 'shot', '', 'studio', 0, '{}',"
            " '1', 1, 1, 'scene.json', '[]', 'shot', 'png', '{}', 'done', 'local', '', 1.0, 1.0)",
            "j1",
        )
        await db.execute(
            "INSERT INTO frames (job_id, frame, task_id, name, sha256, size, server_id,"
            " rendered_at) VALUES ('j1', 1, NULL, 'shot_0001.png', $1, 3, NULL, 2.0)",
            "a" * 64,
        )
    finally:
        await db.close()
    store = await open_store(blank_store_url)
    try:
        old = FrameRecord(
            job_id="j1",
            frame=1,
            task_id=None,
            name="shot_0001.png",
            sha256="a" * 64,
            size=3,
            server_id=None,
            rendered_at=2.0,
        )
        assert await store.list_frames("j1") == [old]
        preview = FrameFile(
            name=".previews/shot_0001.png.png", sha256="b" * 64, size=1, kind=FileKind.PREVIEW
        )
        async with store.transaction() as tx:
            await tx.upsert_frames([dataclasses.replace(old, files=(preview,))])
        assert (await store.get_frame("j1", 1)) == dataclasses.replace(old, files=(preview,))
    finally:
        await store.close()
