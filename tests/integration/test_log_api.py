"""The task log routes on a real aiohttp server over SQLite: answers, long-poll, errors, auth."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from site_agent.app import build_app
from site_agent.appkeys import SITE
from site_agent.config import parse_config
from site_agent.site import SiteAgent
from site_agent.store import LogReport, ServerRecord, ServerStatus, TaskClaim

SCENE = b'{"camera": {}}'
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()
AUTH = {"Authorization": "Bearer sekrit"}


def _app(tmp_path: Path) -> Any:
    config = parse_config(
        {
            "name": "studio",
            "storage": str(tmp_path / "storage"),
            "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "auth": {"client_tokens": ["sekrit"], "server_token": "enroll"},
        },
        source="test",
        base_dir=tmp_path,
    )
    return build_app(config)


async def _job(client: TestClient[Any, Any]) -> str:
    assert (await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE, headers=AUTH)).status == 201
    body = {
        "scene": "scene.json",
        "frames": "1-10",
        "chunk_size": 2,
        "manifest": [{"path": "scene.json", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "builtin"},
    }
    resp = await client.post("/api/v1/jobs", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["job"]["id"])


async def _run_task(site: SiteAgent, job_id: str, index: int) -> int:
    """Task ``index`` dispatched to a server named r1; returns the task's id."""
    await site.store.upsert_server(
        ServerRecord(
            id="s1",
            name="r1",
            host="r1",
            cores=2,
            memory_mb=1024,
            gpus=(),
            os="linux",
            cpu_model="cpu",
            packages={"builtin": "1.0"},
            tags=frozenset(),
            slots=1,
            status=ServerStatus.IDLE,
            last_heartbeat=1.0,
            registered_at=1.0,
        )
    )
    task = (await site.store.list_tasks(job_id))[index]
    claim = TaskClaim(
        task_id=task.id, job_id=job_id, attempt=1, server_id="s1", lease_expires_at=1e12
    )
    await site.lifecycle.assign([claim], at=2.0)
    return task.id


async def _log(site: SiteAgent, task_id: int, text: str) -> None:
    report = LogReport(task_id=task_id, attempt=1, server_id="s1", text=text)
    await site.lifecycle.apply_reports([], [], [], at=3.0, logs=[report])


async def _get(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    resp = await client.get(f"/api/v1/jobs/{path}", headers=AUTH)
    body = await resp.json()
    assert resp.status == status, body
    return body if status == 200 else body["error"]


async def test_a_task_log_by_frame_or_index_tailed_with_offsets(tmp_path: Path) -> None:
    async with TestClient(TestServer(_app(tmp_path))) as client:
        site: SiteAgent = client.server.app[SITE]
        job_id = await _job(client)
        task_id = await _run_task(site, job_id, 1)
        await _log(site, task_id, "$ render\nframe 3 done\n")
        page = await _get(client, f"{job_id}/log?frame=3")
        assert page == {
            "job": job_id,
            "task": 1,
            "frames": "3-4",
            "attempt": 1,
            "attempts": [1],
            "server": "r1",
            "state": "dispatched",
            "error": "",
            "offset": 0,
            "next_offset": 22,
            "complete": False,
            "truncated_bytes": 0,
            "text": "$ render\nframe 3 done\n",
        }
        same = await _get(client, f"{job_id}/tasks/1/log?attempt=1&offset=9")
        assert same["text"] == "frame 3 done\n"

        async def later() -> None:
            await asyncio.sleep(0.2)
            await _log(site, task_id, "frame 4 done\n")

        writer = asyncio.create_task(later())
        waited = await _get(client, f"{job_id}/tasks/1/log?offset=22&wait=30")
        await writer
        assert (waited["text"], waited["next_offset"]) == ("frame 4 done\n", 35)
        assert site.log_watch.watched == 0
        none_yet = await _get(client, f"{job_id}/tasks/1/log?offset=35&wait=0")
        assert (none_yet["text"], none_yet["complete"]) == ("", False)


async def test_log_requests_that_cannot_be_answered_say_why(tmp_path: Path) -> None:
    async with TestClient(TestServer(_app(tmp_path))) as client:
        site: SiteAgent = client.server.app[SITE]
        job_id = await _job(client)
        task_id = await _run_task(site, job_id, 1)
        await _log(site, task_id, "text\n")
        unauthorized = await client.get(f"/api/v1/jobs/{job_id}/log?frame=3")
        assert unauthorized.status == 401
        not_found = {
            "nope/log?frame=1": "job_not_found",
            "nope/tasks/0/log": "job_not_found",
            f"{job_id}/log?frame=11": "frame_not_found",
            f"{job_id}/tasks/5/log": "task_not_found",
            f"{job_id}/tasks/1/log?attempt=2": "attempt_not_found",
            f"{job_id}/tasks/0/log": "log_not_found",
        }
        for path, code in not_found.items():
            err = await _get(client, path, 404)
            assert err["code"] == code, (path, err)
        bad = {
            f"{job_id}/log": "frame=N",
            f"{job_id}/log?frame=x": "frame must be a whole number",
            f"{job_id}/log?frame=3&attempt=0": "attempt must be at least 1",
            f"{job_id}/log?frame=3&offset=-1": "offset must be at least 0",
            f"{job_id}/log?frame=3&offset=6": "outside the log",
            f"{job_id}/log?frame=3&wait=31": "wait must be between 0 and 30",
            f"{job_id}/log?frame=3&wait=nan": "wait must be between 0 and 30",
            f"{job_id}/tasks/x/log": "task index must be a whole number",
        }
        for path, message in bad.items():
            err = await _get(client, path, 400)
            assert err["code"] == "bad_request" and message in err["message"], (path, err)
        doc = await (await client.get("/api/v1/openapi.json")).json()
        assert {
            "/api/v1/jobs/{job_id}/log",
            "/api/v1/jobs/{job_id}/tasks/{index}/log",
        } <= set(doc["paths"])
        assert "TaskLog" in doc["components"]["schemas"]
