"""Resolution overrides and the job's frame range, from the client API to the assign message."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from site_agent.dispatch_views import assign_message
from site_agent.jobs import parse_submission

SCENE = b"camera { location <0, 0, -3> look_at 0 }"
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()


@pytest.fixture
async def client(agent_client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    await agent_client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    return agent_client


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "shot",
        "scene": "shot.pov",
        "frames": "1-20",
        "chunk_size": 3,
        "manifest": [{"path": "shot.pov", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "povray"},
        **extra,
    }


async def test_without_settings_the_scene_keeps_its_resolution(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post("/api/v1/jobs", json=_body())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body.get("job", body)["settings"] == {}


async def test_an_older_clients_resolution_is_an_override(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/v1/jobs", json=_body(settings={"width": 320, "height": 240}))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body.get("job", body)["settings"] == {"width": 320, "height": 240}


async def test_half_a_resolution_is_refused(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/v1/jobs", json=_body(settings={"width": 320}))
    assert resp.status == 400
    assert "go together" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("settings", "size"), [(None, (None, None)), ({"width": 48, "height": 36}, (48, 36))]
)
def test_assign_carries_the_job_range_and_the_override(
    settings: dict[str, int] | None, size: tuple[int | None, int | None]
) -> None:
    body = _body(frames="1-20x1", chunk_size=3)
    if settings:
        body["settings"] = settings
    job, frames, _ = parse_submission(body, site_name="studio", known_packages={"povray"}, now=0.0)

    class Task:
        id, attempt = 1, 1

    msg = assign_message(job, Task(), frames[3:6])
    assert (msg.frames, msg.first_frame, msg.last_frame) == ([4, 5, 6], 1, 20)
    assert (msg.width, msg.height) == size
