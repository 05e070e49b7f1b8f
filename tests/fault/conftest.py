"""An in-process agent (real aiohttp app, real SQLite) with small limits, for bad-input tests."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from site_agent.app import build_app
from site_agent.config import parse_config

AgentFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def png_bytes(color: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_outside(root: Path, allowed: list[Path]) -> list[Path]:
    """Every file under ``root`` that is not under one of ``allowed`` (the storage roots and the DB)."""
    stray = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not any(path == a or a in path.parents for a in allowed):
                stray.append(path)
    return stray


def assert_only_previews_of(job_dir: Path, frame_names: list[str]) -> None:
    """The job folder's ``.previews/`` holds previews of those frames only: no temp file, no other."""
    previews = job_dir / ".previews"
    if not previews.exists():
        return
    allowed = {f"{name}.png" for name in frame_names}
    found = sorted(p.name for p in previews.iterdir())
    assert set(found) <= allowed, f"unexpected files among the previews: {found}"


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[AgentFactory]:
    """Start agents in this process: ``await make_agent(max_request_mb=1, server_token="t")``."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(
        *, max_request_mb: int = 1, max_blob_mb: int = 1, server_token: str = "", **raw: Any
    ) -> TestClient[web.Request, web.Application]:
        site_dir = tmp_path / f"site{len(clients)}"
        site_dir.mkdir()
        config = parse_config(
            {
                "name": "fault",
                "listen": "127.0.0.1:1",
                "database": f"sqlite:///{site_dir / 'site.db'}",
                "storage": str(site_dir / "storage"),
                "assets": str(site_dir / "assets"),
                "limits": {"max_request_mb": max_request_mb, "max_blob_mb": max_blob_mb},
                "auth": {"server_token": server_token} if server_token else {},
                "scheduling": {
                    "heartbeat_interval": 0.5,
                    "heartbeat_timeout": 3.0,
                    "lease_check_interval": 0.5,
                },
                **raw,
            },
            source="<test>",
            base_dir=site_dir,
        )
        client = TestClient(TestServer(build_app(config), host="127.0.0.1"))
        await client.start_server()
        client.site_dir = site_dir  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
