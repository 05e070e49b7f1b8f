from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Agent, Process


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'site.db'}"
        return
    with request.getfixturevalue("empty_pg_database")("e2e") as url:
        yield url


@pytest.fixture
def agent(tmp_path: Path, database: str, processes: list[Process]) -> Agent:
    a = Agent(tmp_path / "studio", name="studio", database=database)
    a.start()
    processes.append(a)
    return a
