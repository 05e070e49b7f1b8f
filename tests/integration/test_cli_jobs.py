"""``spillway jobs`` filters, sorts and pages through the real agent's ``GET /api/v1/jobs``,
and shows the agent's own message for a bad value."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from spillway.client import Client, SubmitOptions
from spillway.main import main

ROOT = Path(__file__).resolve().parents[2]
QUEUED = SubmitOptions(package="builtin", frames="1-2", queue_anyway=True)


def listed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["jobs", *argv, "--json"]) == 0
    return [j["name"] for j in json.loads(capsys.readouterr().out)["jobs"]]


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["jobs", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    return captured.err


async def test_jobs_filters_sorts_and_pages_like_the_api(
    agent_client: TestClient[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "examples" / "textured", tmp_path / "shot")
    scene = tmp_path / "shot" / "scene.json"
    url = str(agent_client.make_url("")).rstrip("/")
    with Client(url) as farm:
        for name, owner, priority in (
            ("alpha", "ana", 10),
            ("beta", "bo", 90),
            ("gamma", "ana", 50),
        ):
            options = replace(QUEUED, name=name, owner=owner, priority=priority)
            submitted = await asyncio.to_thread(farm.submit_scene, scene, options)
        await asyncio.to_thread(farm.pause, submitted.job.id)  # gamma

    def jobs(*argv: str) -> list[str]:
        return listed([*argv, "--agent", url], capsys)

    def error(*argv: str) -> str:
        return refused([*argv, "--agent", url], capsys)

    def run(fn: Any, *argv: str) -> Any:
        return asyncio.to_thread(fn, *argv)

    assert await run(jobs) == ["gamma", "beta", "alpha"]  # newest first
    assert await run(jobs, "--owner", "ana") == ["gamma", "alpha"]
    assert await run(jobs, "--search", "ET") == ["beta"]
    assert await run(jobs, "--state", "paused") == ["gamma"]
    assert await run(jobs, "--state", "queued,paused", "--owner", "bo") == ["beta"]
    assert await run(jobs, "--package", "builtin", "--placement", "local") == [
        "gamma",
        "beta",
        "alpha",
    ]
    assert await run(jobs, "--package", "povray") == []
    assert await run(jobs, "--placement", "forwarded") == []
    assert await run(jobs, "--sort", "priority") == ["alpha", "gamma", "beta"]
    assert await run(jobs, "--sort=-priority", "--limit", "2") == ["beta", "gamma"]
    assert await run(jobs, "--sort=-priority", "--limit", "2", "--page", "2") == ["alpha"]
    assert await run(jobs, "--limit", "2", "--page", "3") == []

    assert await run(lambda: main(["jobs", "--owner", "bo", "--agent", url])) == 0
    table = capsys.readouterr().out
    assert "beta" in table and "alpha" not in table

    assert "unknown sort 'size'; use one of created, -created" in await run(error, "--sort", "size")
    assert "invalid choice: 'nope' (choose from queued," in await run(
        error, "--state", "queued,nope"
    )
    assert "limit must be between 1 and 10000" in await run(error, "--limit", "20000")
    assert "--page" in await run(error, "--page", "0")
