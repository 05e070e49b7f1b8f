"""Numbered schema migrations in per-package chains, applied in order and recorded.

A chain is one package's own sequence of migrations: a name and a folder that
holds ``sqlite/`` and ``postgres/`` subfolders of files named ``NNNN_name.sql``.
The site's chain (:data:`SITE_CHAIN`) is applied when the store opens; another
package (federation) applies its own chain on the same database when it starts.
Adding a migration means dropping a file with the same number and name into
both folders of its chain; the migration tests check that both backends end
with the same tables and columns. Applied versions are recorded per chain in
``schema_migrations``, so re-opening a database applies nothing twice.

Databases made before chains existed recorded every migration in one sequence
(``0001_init`` of the site, ``0002_federation``). The first migration run on
such a database re-records those rows under their chains (:data:`LEGACY_VERSIONS`)
without running anything again.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .base import StoreUnavailableError
from .database import Connection, Database

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

# Portable DDL: SQLite reads DOUBLE PRECISION as REAL. ``chain`` defaults to the site's,
# which is what a row written without one meant before chains existed.
CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    chain      TEXT NOT NULL DEFAULT 'site',
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (chain, version)
)
"""
HAS_CHAIN_COLUMN = {
    "sqlite": "SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'chain'",
    "postgres": """
SELECT COUNT(*) FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
  AND column_name = 'chain'
""",
}
HAS_MIGRATIONS_TABLE = {
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    "postgres": """
SELECT COUNT(*) FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name = 'schema_migrations'
""",
}
SELECT_LEGACY = "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
DROP_LEGACY = "DROP TABLE schema_migrations"
SELECT_APPLIED = "SELECT version FROM schema_migrations WHERE chain = $1 ORDER BY version"
INSERT_APPLIED = (
    "INSERT INTO schema_migrations (chain, version, name, applied_at) VALUES ($1, $2, $3, $4)"
)

LEGACY_VERSIONS: dict[tuple[int, str], tuple[str, int]] = {
    (1, "init"): ("site", 1),
    (2, "federation"): ("federation", 1),
}
"""Where each row of a pre-chain ``schema_migrations`` table belongs: (chain, version)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationChain:
    """One package's migrations: ``folder/<dialect>/NNNN_name.sql``, recorded as ``name``."""

    name: str
    folder: Path


SITE_CHAIN = MigrationChain(name="site", folder=Path(__file__).with_name("migrations"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def load_migrations(dialect: str, chain: MigrationChain = SITE_CHAIN) -> list[Migration]:
    """The migrations of one chain for one backend, in version order."""
    folder = chain.folder / dialect
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise StoreUnavailableError(
                f"bad migration file name {path}: use NNNN_name.sql, e.g. 0002_more_columns.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise StoreUnavailableError(
                f"two migrations numbered {version:04d} in {folder}: "
                f"{found[version].path.name} and {path.name}; renumber one"
            )
        found[version] = Migration(version=version, name=match.group(2), path=path)
    if not found:
        raise StoreUnavailableError(
            f"no migrations found in {folder}; is the package installed whole?"
        )
    return [found[v] for v in sorted(found)]


async def apply_migrations(db: Database, chain: MigrationChain = SITE_CHAIN) -> list[int]:
    """Apply every migration of ``chain`` not yet recorded, in one transaction; returns their versions.

    A database migrated by a newer agent (versions of this chain that this agent
    does not know) is refused rather than written with an older idea of the schema.
    Other chains' rows are left alone.
    """
    migrations = load_migrations(db.dialect, chain)
    known = {m.version for m in migrations}
    async with db.migration_transaction() as conn:
        await _prepare_table(conn, db.dialect)
        applied = {int(row["version"]) for row in await conn.fetch(SELECT_APPLIED, chain.name)}
        unknown = sorted(applied - known)
        if unknown:
            raise StoreUnavailableError(
                f"the database has {chain.name} schema versions {unknown} that this agent "
                "does not know; it was migrated by a newer Spillway; upgrade this agent"
            )
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            log.info(
                "applying %s migration %04d_%s (%s)",
                chain.name,
                migration.version,
                migration.name,
                db.dialect,
            )
            await conn.run_script(migration.read())
            await conn.execute(
                INSERT_APPLIED, chain.name, migration.version, migration.name, time.time()
            )
    return [m.version for m in pending]


async def _prepare_table(conn: Connection, dialect: str) -> None:
    """Create ``schema_migrations``, or convert a pre-chain one in place (same transaction)."""
    exists = int(await conn.fetchval(HAS_MIGRATIONS_TABLE[dialect]))
    if exists and not int(await conn.fetchval(HAS_CHAIN_COLUMN[dialect])):
        legacy = await conn.fetch(SELECT_LEGACY)
        await conn.execute(DROP_LEGACY)
        await conn.execute(CREATE_SCHEMA_MIGRATIONS)
        for row in legacy:
            version, name = int(row["version"]), str(row["name"])
            # An unknown legacy row stays in the site chain, where it is refused as newer.
            chain, new_version = LEGACY_VERSIONS.get((version, name), ("site", version))
            await conn.execute(INSERT_APPLIED, chain, new_version, name, row["applied_at"])
        log.info("schema_migrations re-recorded per package chain (%d rows)", len(legacy))
        return
    await conn.execute(CREATE_SCHEMA_MIGRATIONS)
