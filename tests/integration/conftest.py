"""Fixtures of the integration tests: real aiohttp servers over real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from site_agent.app import build_app
from site_agent.config import parse_config


@pytest.fixture
async def agent_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """The agent's web app on an SQLite file in ``tmp_path``, no federation, behind a test client."""
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
        },
        source="test",
        base_dir=tmp_path,
    )
    async with TestClient(TestServer(build_app(config))) as client:
        yield client
