"""The monitor's routes on a real aiohttp server over SQLite: the jobs page parameters,
the frame grid, priority, the live event stream and the built page with its assets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from site_agent.app import build_app
from site_agent.config import parse_config

SCENE = b'{"camera": {}}'
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()
Client = TestClient[Any, Any]


async def submit(client: Client, name: str, frames: str = "1-10", **extra: Any) -> str:
    await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    body = {
        "name": name,
        "scene": "scene.json",
        "frames": frames,
        "chunk_size": 2,
        "manifest": [{"path": "scene.json", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "builtin"},
        **extra,
    }
    resp = await client.post("/api/v1/jobs", json=body)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["job"]["id"])


async def error(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    return str((await resp.json())["error"]["message"])


async def test_jobs_page_filters_sorts_and_pages(agent_client: Client) -> None:
    client = agent_client
    a = await submit(client, "forest", priority=10)
    b = await submit(client, "city", priority=90)
    c = await submit(client, "forest night", priority=50)
    body = await (await client.get("/api/v1/jobs?q=FOREST&sort=-priority")).json()
    assert [j["id"] for j in body["jobs"]] == [c, a]
    assert body["page"] == {
        "offset": 0,
        "limit": 100,
        "total": 2,
        "sort": "-priority",
        "next_offset": None,
    }
    page = await (await client.get("/api/v1/jobs?limit=1&offset=1&sort=name")).json()
    assert [j["id"] for j in page["jobs"]] == [a] and page["page"]["next_offset"] == 2
    job = page["jobs"][0]
    assert job["progress"]["tasks"]["waiting"] == 5 and job["eta_s"] is None
    listed = await (await client.get("/api/v1/jobs?placement=local&package=builtin")).json()
    assert {j["id"] for j in listed["jobs"]} == {a, b, c}
    assert "sort" in await error(await client.get("/api/v1/jobs?sort=size"), 400)
    assert "state" in await error(await client.get("/api/v1/jobs?state=sleeping"), 400)
    assert "limit" in await error(await client.get("/api/v1/jobs?limit=0"), 400)
    assert "q" in await error(await client.get("/api/v1/jobs?q=" + "x" * 300), 400)


async def test_the_jobs_page_shows_what_a_job_waits_for(agent_client: Client) -> None:
    client = agent_client
    render = await submit(client, "render")
    comp = await submit(client, "comp", after=[render])
    body = await (await client.get("/api/v1/jobs?q=comp")).json()
    [job] = body["jobs"]
    assert [u["job_id"] for u in job["after"]] == [render] and not job["after"][0]["met"]
    assert f"waiting for job {render}" in job["why_waiting"]
    detail = await (await client.get(f"/api/v1/jobs/{comp}")).json()
    assert detail["job"]["after"] == job["after"]


async def test_grid_has_one_state_per_frame(agent_client: Client) -> None:
    client = agent_client
    job_id = await submit(client, "grid", frames="1-9")
    grid = await (await client.get(f"/api/v1/jobs/{job_id}/grid")).json()
    assert grid["frames"] == list(range(1, 10)) and grid["states"] == "w" * 9
    assert grid["tasks"]["size"] == [2, 2, 2, 2, 1] and grid["tasks"]["index"] == [0, 1, 2, 3, 4]
    assert grid["tasks"]["server"] == [-1] * 5 and grid["servers"] == []
    await error(await client.get("/api/v1/jobs/nope/grid"), 404)


async def test_priority_is_checked_and_only_for_unfinished_jobs(agent_client: Client) -> None:
    client = agent_client
    job_id = await submit(client, "urgent")
    resp = await client.post(f"/api/v1/jobs/{job_id}/priority", json={"priority": 80})
    assert (await resp.json())["job"]["priority"] == 80
    for bad in ({"priority": 101}, {"priority": "high"}, {"prio": 1}, [80]):
        message = await error(await client.post(f"/api/v1/jobs/{job_id}/priority", json=bad), 400)
        assert "priority" in message
    await client.post(f"/api/v1/jobs/{job_id}/cancel")
    resp = await client.post(f"/api/v1/jobs/{job_id}/priority", json={"priority": 1})
    assert "unfinished" in await error(resp, 409)


async def read_event(resp: Any) -> tuple[str, dict[str, Any]]:
    """The next event (name, data) of an SSE response; comments and retry lines skipped."""
    name, data = "", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and name:
            return name, json.loads(data or "{}")


async def test_the_event_stream_says_hello_then_what_changed(agent_client: Client) -> None:
    client = agent_client
    job_id = await submit(client, "live")
    resp = await client.get("/api/v1/events")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    assert await read_event(resp) == ("hello", {"site": "studio"})
    await client.post(f"/api/v1/jobs/{job_id}/pause")
    await client.post(f"/api/v1/jobs/{job_id}/priority", json={"priority": 70})
    name, data = await read_event(resp)
    assert name == "change" and data["jobs"] == [job_id], data
    resp.close()


@pytest.fixture
async def token_client(tmp_path: Path) -> Any:
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "auth": {"client_tokens": ["s3cret"]},
        },
        source="test",
        base_dir=tmp_path,
    )
    async with TestClient(TestServer(build_app(config))) as client:
        yield client


async def test_the_stream_and_the_grid_need_the_token(token_client: Client) -> None:
    client = token_client
    health = await (await client.get("/api/v1/health")).json()
    assert health["client_auth"] is True
    await error(await client.get("/api/v1/events"), 401)
    await error(await client.get("/api/v1/jobs/x/grid"), 401)
    resp = await client.get("/api/v1/events", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200
    assert (await read_event(resp))[0] == "hello"
    resp.close()


async def test_the_page_and_its_versioned_assets(agent_client: Client) -> None:
    client = agent_client
    page = await client.get("/")
    html = await page.text()
    assert page.headers["Cache-Control"] == "no-cache"
    script = re.search(r'src="(/web/monitor\.js\?v=[0-9a-f]+)"', html)
    assert script is not None, html
    asset = await client.get(script.group(1))
    assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"]
    assert asset.headers["Content-Type"].endswith("javascript")
    assert (await client.get("/web/monitor.css")).headers["Cache-Control"] == "no-cache"
    await error(await client.get("/web/..%2Fapi.py"), 404)
    await error(await client.get("/web/nothing.js"), 404)


async def test_open_streams_end_when_the_agent_stops(tmp_path: Path) -> None:
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
        },
        source="test",
        base_dir=tmp_path,
    )
    client: Client = TestClient(TestServer(build_app(config)))
    await client.start_server()
    try:
        resp = await client.get("/api/v1/events")
        assert (await read_event(resp))[0] == "hello"
        stopping = asyncio.create_task(client.server.close())
        # The stream ends (EOF) because the agent closed it, not because a shutdown
        # timeout cut it: that would take longer than this wait.
        assert await asyncio.wait_for(resp.content.read(), 10) == b""
        await asyncio.wait_for(stopping, 10)
        resp.close()
    finally:
        await client.close()
