"""The client API on a real aiohttp server with a real SQLite store."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from site_agent.app import build_app
from site_agent.config import parse_config

SCENE = b'{"camera": {}}'
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()


def _config(tmp_path: Path, **extra: Any) -> Any:
    raw = {
        "name": "studio",
        "storage": str(tmp_path / "storage"),
        "database": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "limits": {"max_request_mb": 1, "max_blob_mb": 1},
        **extra,
    }
    return parse_config(raw, source="test", base_dir=tmp_path)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(build_app(_config(tmp_path)))) as c:
        yield c


def _job(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "shot",
        "scene": "scene.json",
        "frames": "1-10",
        "chunk_size": 2,
        "manifest": [{"path": "scene.json", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "builtin"},
        "settings": {"width": 64, "height": 48},
    }
    body.update(overrides)
    return body


async def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]  # type: ignore[no-any-return]


async def test_submit_requires_uploaded_assets_then_creates_tasks(
    client: TestClient[Any, Any],
) -> None:
    err = await _error(await client.post("/api/v1/jobs", json=_job()), 422)
    assert err["code"] == "missing_assets" and err["missing"] == [SCENE_SHA]

    resp = await client.post("/api/v1/blobs/check", json={"sha256": [SCENE_SHA]})
    assert (await resp.json())["missing"] == [SCENE_SHA]
    assert (await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)).status == 201
    assert (await (await client.post("/api/v1/blobs/check", json={"sha256": [SCENE_SHA]})).json())[
        "missing"
    ] == []

    resp = await client.post("/api/v1/jobs", json=_job())
    assert resp.status == 201, await resp.text()
    job = (await resp.json())["job"]
    assert job["state"] == "queued" and job["frame_count"] == 10
    assert job["why_waiting"] == "no render servers are registered" or "no" in job["why_waiting"]

    detail = await (await client.get(f"/api/v1/jobs/{job['id']}")).json()
    assert [t["frames"] for t in detail["tasks"]] == ["1-2", "3-4", "5-6", "7-8", "9-10"]
    assert [f["frame"] for f in detail["frames"]] == list(range(1, 11))
    assert {f["state"] for f in detail["frames"]} == {"waiting"}

    listed = await (await client.get("/api/v1/jobs?state=queued")).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]


async def test_job_control_transitions_and_conflicts(client: TestClient[Any, Any]) -> None:
    await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    job_id = (await (await client.post("/api/v1/jobs", json=_job())).json())["job"]["id"]
    paused = await (await client.post(f"/api/v1/jobs/{job_id}/pause")).json()
    assert paused["job"]["state"] == "paused"
    await _error(await client.post(f"/api/v1/jobs/{job_id}/pause"), 409)
    assert (await (await client.post(f"/api/v1/jobs/{job_id}/resume")).json())["job"][
        "state"
    ] == "queued"
    assert (await (await client.post(f"/api/v1/jobs/{job_id}/cancel")).json())["job"][
        "state"
    ] == "cancelled"
    await _error(await client.post(f"/api/v1/jobs/{job_id}/cancel"), 409)
    await _error(await client.post(f"/api/v1/jobs/{job_id}/explode"), 404)
    await _error(await client.get("/api/v1/jobs/nope"), 404)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"frames": "1-x"}, "bad frame spec"),
        ({"frames": "10-1"}, "frame"),
        ({"profile": {"package": "maya"}}, "unknown render package 'maya'"),
        ({"profile": {"package": "povray", "version": ">>3"}}, "version"),
        (
            {"manifest": [{"path": "../etc/passwd", "sha256": SCENE_SHA, "size": 1}], "scene": "x"},
            "leaves the scene folder",
        ),
        (
            {"manifest": [{"path": "/etc/passwd", "sha256": SCENE_SHA, "size": 1}], "scene": "x"},
            "absolute",
        ),
        (
            {"manifest": [{"path": "a.json", "sha256": "xyz", "size": 1}], "scene": "a.json"},
            "sha256",
        ),
        ({"scene": "other.json"}, "must also be listed in the manifest"),
        ({"chunk_size": 0}, "'chunk_size' must be between"),
        ({"priority": "high"}, "'priority' must be a int"),
        ({"settings": {"width": 0}}, "'width' must be between"),
        ({"settings": {"dpi": 300}}, "unknown setting 'dpi'"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)
async def test_bad_submissions_get_400_naming_the_problem(
    client: TestClient[Any, Any], overrides: dict[str, Any], fragment: str
) -> None:
    await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    err = await _error(await client.post("/api/v1/jobs", json=_job(**overrides)), 400)
    assert fragment in err["message"], err


async def test_bad_bodies_and_blobs(client: TestClient[Any, Any], tmp_path: Path) -> None:
    err = await _error(
        await client.post(
            "/api/v1/jobs", data=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert "not valid JSON" in err["message"]
    await _error(
        await client.post("/api/v1/jobs", data=b"x", headers={"Content-Type": "text/plain"}), 400
    )
    await _error(await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=b"tampered"), 422)
    await _error(await client.put("/api/v1/blobs/not-a-hash", data=SCENE), 400)
    big = b"x" * (1024 * 1024 + 10)
    await _error(
        await client.put(f"/api/v1/blobs/{hashlib.sha256(big).hexdigest()}", data=io.BytesIO(big)),
        413,
    )
    await _error(
        await client.post(
            "/api/v1/jobs",
            data=io.BytesIO(b"[" + b"1," * 600_000 + b"1]"),
            headers={"Content-Type": "application/json"},
        ),
        413,
    )
    blobs = tmp_path / "storage" / ".assets" / "blobs"
    assert not [p for p in blobs.rglob("*") if p.is_file()], (
        "nothing may be stored for refused uploads"
    )


async def test_openapi_document_lists_the_routes(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/servers",
        "/api/v1/blobs/{sha256}",
    } <= set(doc["paths"])


async def test_tokens_are_required_when_configured(tmp_path: Path) -> None:
    app = build_app(_config(tmp_path, auth={"client_tokens": ["sekrit"], "server_token": "enroll"}))
    async with TestClient(TestServer(app)) as c:
        err = await _error(await c.get("/api/v1/jobs"), 401)
        assert "token" in err["message"]
        await _error(await c.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"}), 401)
        ok = await c.get("/api/v1/jobs", headers={"Authorization": "Bearer sekrit"})
        assert ok.status == 200
        # A client token is not an enrollment token: frame uploads need the server token.
        await _error(
            await c.put(
                "/api/v1/servers/s/tasks/1/attempts/1/frames/1",
                data=b"x",
                headers={"Authorization": "Bearer sekrit", "X-Sha256": SCENE_SHA},
            ),
            401,
        )
