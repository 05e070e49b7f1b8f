"""Numbered schema migrations, applied in order when the store opens.

Each backend has its own folder, ``migrations/sqlite`` and ``migrations/postgres``,
holding files named ``NNNN_name.sql``. Adding a migration means dropping a file
with the same number and name into both folders; the contract tests check that
both backends end with the same tables and columns. Applied versions are
recorded in ``schema_migrations``, so re-opening a database applies nothing twice.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .base import StoreUnavailableError
from .database import Database

log = logging.getLogger(__name__)

MIGRATIONS_ROOT = Path(__file__).with_name("migrations")
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

# Portable DDL: SQLite reads DOUBLE PRECISION as REAL.
CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""
SELECT_APPLIED = "SELECT version FROM schema_migrations ORDER BY version"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def load_migrations(dialect: str, root: Path = MIGRATIONS_ROOT) -> list[Migration]:
    """The migrations of one backend, in version order."""
    folder = root / dialect
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise StoreUnavailableError(
                f"bad migration file name {path}: use NNNN_name.sql, e.g. 0002_federation.sql"
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


async def apply_migrations(db: Database, *, root: Path = MIGRATIONS_ROOT) -> list[int]:
    """Apply every migration not yet recorded, all in one transaction; returns their versions.

    A database migrated by a newer agent (versions this agent does not know)
    is refused rather than written with an older idea of the schema.
    """
    migrations = load_migrations(db.dialect, root)
    known = {m.version for m in migrations}
    async with db.migration_transaction() as conn:
        await conn.execute(CREATE_SCHEMA_MIGRATIONS)
        applied = {int(row["version"]) for row in await conn.fetch(SELECT_APPLIED)}
        unknown = sorted(applied - known)
        if unknown:
            raise StoreUnavailableError(
                f"the database has schema versions {unknown} that this agent does not know; "
                "it was migrated by a newer Spillway; upgrade this agent"
            )
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            log.info(
                "applying migration %04d_%s (%s)", migration.version, migration.name, db.dialect
            )
            await conn.run_script(migration.read())
            await conn.execute(INSERT_APPLIED, migration.version, migration.name, time.time())
    return [m.version for m in pending]
