"""Every file of a frame over the client API: listed, served verified, and its preview
with an ETag (the sha256 on record) that answers 304 without reading the file.

A real aiohttp app on a real SQLite store; a frame is recorded with three files
(a left view as main, a right view, a preview) the way a finished task records them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from site_agent.appkeys import SITE
from site_agent.site import SiteAgent
from site_agent.storage import stored_name
from site_agent.store.records import FrameFile, FrameRecord
from spillway.core.records import FileKind

SCENE = b'{"camera": {}}'
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()
FILES = {
    ("shot_0001_L.exr", FileKind.MAIN): b"v/1\x01 left",
    ("shot_0001_R.exr", FileKind.EXTRA): b"v/1\x01 right",
    ("shot_0001_L.exr.png", FileKind.PREVIEW): b"\x89PNG preview",
}


@pytest.fixture
def client(agent_client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return agent_client


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _rendered_job(client: TestClient[Any, Any]) -> tuple[str, Path]:
    await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    body = {
        "name": "stereo",
        "scene": "scene.json",
        "frames": "1",
        "manifest": [{"path": "scene.json", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "builtin"},
    }
    resp = await client.post("/api/v1/jobs", json=body)
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["job"]["id"]
    site: SiteAgent = client.server.app[SITE]
    job_dir = site.storage.job_dir("stereo", job_id)
    stored: dict[FileKind, FrameFile] = {}
    for (name, kind), data in FILES.items():
        path = stored_name(name, kind)
        digest, size = await site.storage.write_frame(
            job_dir, path, _one(data), expected_sha256=hashlib.sha256(data).hexdigest()
        )
        stored[kind] = FrameFile(name=path, sha256=digest, size=size, kind=kind)
    main = stored[FileKind.MAIN]
    record = FrameRecord(
        job_id=job_id,
        frame=1,
        task_id=None,
        name=main.name,
        sha256=main.sha256,
        size=main.size,
        server_id=None,
        rendered_at=1.0,
        files=(stored[FileKind.PREVIEW], stored[FileKind.EXTRA]),
    )
    async with site.store.transaction() as tx:
        await tx.upsert_frames([record])
    return job_id, job_dir


async def test_every_file_of_a_frame_is_listed_and_served_verified(
    client: TestClient[Any, Any],
) -> None:
    job_id, job_dir = await _rendered_job(client)
    listed = (await (await client.get(f"/api/v1/jobs/{job_id}/frames")).json())["frames"]
    assert len(listed) == 1
    frame = listed[0]
    assert frame["name"] == "shot_0001_L.exr"
    assert [(f["name"], f["kind"]) for f in frame["files"]] == [
        ("shot_0001_L.exr", "main"),
        (".previews/shot_0001_L.exr.png", "preview"),
        ("shot_0001_R.exr", "extra"),
    ]
    assert frame["preview_url"] == f"/api/v1/jobs/{job_id}/frames/1/preview"
    assert (await (await client.get(f"/api/v1/jobs/{job_id}/frames/1/files")).json()) == frame
    wanted = {stored_name(name, kind): data for (name, kind), data in FILES.items()}
    for f in frame["files"]:
        resp = await client.get(f["url"])
        assert resp.status == 200, await resp.text()
        assert await resp.read() == wanted[f["name"]]
        assert resp.headers["X-Sha256"] == f["sha256"]
        assert resp.headers["ETag"] == f'"{f["sha256"]}"'
    # The main file is still the frame's own URL, for clients that know only it.
    resp = await client.get(f"/api/v1/jobs/{job_id}/frames/1")
    assert await resp.read() == wanted["shot_0001_L.exr"]
    assert resp.headers["Content-Type"] == "image/x-exr"
    # A damaged extra file is refused like a damaged frame.
    (job_dir / "shot_0001_R.exr").write_bytes(b"changed")
    resp = await client.get(f"/api/v1/jobs/{job_id}/frames/1/files/shot_0001_R.exr")
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "frame_corrupt"
    for missing in ("nope.exr", "../stereo.db", ".previews/other.png"):
        resp = await client.get(f"/api/v1/jobs/{job_id}/frames/1/files/{missing}")
        assert resp.status == 404, missing


async def test_the_preview_is_cached_by_its_sha256(client: TestClient[Any, Any]) -> None:
    job_id, job_dir = await _rendered_job(client)
    url = f"/api/v1/jobs/{job_id}/frames/1/preview"
    resp = await client.get(url)
    assert resp.status == 200
    assert await resp.read() == FILES[("shot_0001_L.exr.png", FileKind.PREVIEW)]
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Cache-Control"] == "private, no-cache"
    etag = resp.headers["ETag"]
    preview_sha = hashlib.sha256(FILES[("shot_0001_L.exr.png", FileKind.PREVIEW)]).hexdigest()
    assert etag == f'"{preview_sha}"'
    # Revalidation answers 304 from the record alone, without reading the file.
    (job_dir / ".previews" / "shot_0001_L.exr.png").unlink()
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert (await client.get(url)).status == 404  # and without the tag the file is missed
    resp = await client.get(f"/api/v1/jobs/{job_id}/frames/2/preview")
    assert resp.status == 404


@pytest.mark.parametrize(
    "name", ["", ".hidden.exr", "sub/dir.exr", "..", "back\\slash.exr", "tab\t.exr", "x" * 256]
)
def test_output_names_must_be_plain_file_names(name: str) -> None:
    from site_agent.files import UnsafePathError

    with pytest.raises(UnsafePathError, match="not a plain file name"):
        stored_name(name, FileKind.EXTRA)


def test_previews_go_to_their_folder() -> None:
    assert stored_name("shot_0001.exr.png", FileKind.PREVIEW) == ".previews/shot_0001.exr.png"
    assert stored_name("shot 0001 (L).exr", FileKind.MAIN) == "shot 0001 (L).exr"
