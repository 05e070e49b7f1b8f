"""Serving stored frames: bytes leave the agent only when they hash as recorded.

A real aiohttp server with a real SQLite store; frames are recorded and written
the way a finished task records them, then damaged or deleted on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from site_agent.appkeys import SITE
from site_agent.site import SiteAgent
from site_agent.store.records import FrameRecord

SCENE = b'{"camera": {}}'
SCENE_SHA = hashlib.sha256(SCENE).hexdigest()
# Big enough to span several read blocks, so the streaming path is exercised too.
FRAMES = {1: b"\x89PNG one", 2: b"\x89PNG two", 3: b"\x89PNG" + os.urandom(3 * 1024 * 1024 + 17)}


@pytest.fixture
def client(agent_client: TestClient[Any, Any]) -> TestClient[Any, Any]:
    return agent_client


async def _rendered_job(client: TestClient[Any, Any]) -> tuple[str, Path]:
    """A job whose three frames are recorded and stored; returns its id and folder."""
    await client.put(f"/api/v1/blobs/{SCENE_SHA}", data=SCENE)
    body = {
        "name": "shot",
        "scene": "scene.json",
        "frames": "1-3",
        "manifest": [{"path": "scene.json", "sha256": SCENE_SHA, "size": len(SCENE)}],
        "profile": {"package": "builtin"},
    }
    resp = await client.post("/api/v1/jobs", json=body)
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["job"]["id"]
    site: SiteAgent = client.server.app[SITE]
    job_dir = site.storage.job_dir("shot", job_id)
    records = []
    for number, data in FRAMES.items():
        name = f"shot_{number:04d}.png"

        async def one(data: bytes = data) -> AsyncIterator[bytes]:
            yield data

        digest, size = await site.storage.write_frame(
            job_dir, name, one(), expected_sha256=hashlib.sha256(data).hexdigest()
        )
        records.append(
            FrameRecord(
                job_id=job_id,
                frame=number,
                task_id=None,
                name=name,
                sha256=digest,
                size=size,
                server_id=None,
                rendered_at=1.0,
            )
        )
    async with site.store.transaction() as tx:
        await tx.upsert_frames(records)
    return job_id, job_dir


async def test_intact_frames_are_served_with_hash_and_mode(
    client: TestClient[Any, Any],
) -> None:
    job_id, job_dir = await _rendered_job(client)
    for number, data in FRAMES.items():
        resp = await client.get(f"/api/v1/jobs/{job_id}/frames/{number}")
        assert resp.status == 200, await resp.text()
        assert await resp.read() == data
        assert resp.headers["X-Sha256"] == hashlib.sha256(data).hexdigest()
        assert resp.headers["Content-Type"] == "image/png"
        stored = stat.S_IMODE((job_dir / f"shot_{number:04d}.png").stat().st_mode)
        assert int(resp.headers["X-File-Mode"], 8) == stored


@pytest.mark.parametrize("frame", [1, 3])
async def test_a_corrupted_frame_is_refused_not_served(
    client: TestClient[Any, Any], frame: int, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, job_dir = await _rendered_job(client)
    path = job_dir / f"shot_{frame:04d}.png"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(damaged))

    with caplog.at_level(logging.ERROR, logger="site_agent.api"):
        resp = await client.get(f"/api/v1/jobs/{job_id}/frames/{frame}")

    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "frame_corrupt"
    assert f"frame {frame} of job {job_id} is damaged in storage" in error["message"]
    assert f"frame {frame} of job {job_id} is damaged" in caplog.text
    # The other frames are still served.
    other = 2
    ok = await client.get(f"/api/v1/jobs/{job_id}/frames/{other}")
    assert ok.status == 200 and await ok.read() == FRAMES[other]


async def test_a_deleted_frame_says_it_is_missing_not_unrendered(
    client: TestClient[Any, Any],
) -> None:
    job_id, job_dir = await _rendered_job(client)
    (job_dir / "shot_0002.png").unlink()

    resp = await client.get(f"/api/v1/jobs/{job_id}/frames/2")

    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["code"] == "frame_missing"
    assert error["message"].startswith(f"frame 2 of job {job_id} is missing from storage")
    assert "not rendered yet" not in error["message"]
    unrendered = await client.get(f"/api/v1/jobs/{job_id}/frames/9")
    assert unrendered.status == 404
    assert (await unrendered.json())["error"]["code"] == "not_found"


async def _stored(tmp_path: Path, data: bytes, *, held: int | None = None) -> tuple[Any, Any]:
    """A frame storage under ``tmp_path`` holding ``data`` as job/f.png, opened checked;
    ``held``: the storage's budget for frames kept in memory (None: the default)."""
    from site_agent.storage import FrameStorage, HeldBytes

    storage = FrameStorage(tmp_path, max_frame_bytes=1 << 30)
    if held is not None:
        storage.held = HeldBytes(held)
    (tmp_path / "job").mkdir(exist_ok=True)
    (tmp_path / "job" / "f.png").write_bytes(data)
    frame = await storage.open_frame(
        tmp_path / "job", "f.png", job_id="j", frame=3, sha256=hashlib.sha256(data).hexdigest()
    )
    return storage, frame


def _damage_in_place(path: Path) -> None:
    with path.open("r+b") as fh:  # same inode: no rename
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))


async def test_a_streamed_frame_changed_while_it_is_sent_is_cut_short(tmp_path: Path) -> None:
    """The held-back last block: a file damaged after the check never arrives whole."""
    from site_agent.storage import FrameCorruptError

    data = FRAMES[3]
    _storage, frame = await _stored(tmp_path, data, held=0)  # no memory: streamed
    try:
        _damage_in_place(tmp_path / "job" / "f.png")
        sent = b""
        with pytest.raises(FrameCorruptError):
            async for block in frame.chunks():
                sent += block
    finally:
        frame.close()
    assert len(sent) < len(data)


async def test_a_held_frame_is_served_as_its_check_read_it(tmp_path: Path) -> None:
    """A frame read whole by its check is sent from those bytes: damage after the check
    cannot reach the client, and the memory is given back on close."""
    data = FRAMES[3]
    storage, frame = await _stored(tmp_path, data)
    try:
        assert storage.held.used == len(data)
        _damage_in_place(tmp_path / "job" / "f.png")
        blocks = [block async for block in frame.chunks()]
    finally:
        frame.close()
        frame.close()  # twice: gives back once
    assert b"".join(blocks) == data
    assert max(len(b) for b in blocks) <= 1024 * 1024  # paced as a streamed frame would be
    assert storage.held.used == 0


async def test_frames_beyond_the_memory_budget_are_streamed(tmp_path: Path) -> None:
    from site_agent.storage import HeldBytes

    data = FRAMES[3]
    storage, first = await _stored(tmp_path, data, held=len(data) + 1024)
    second = await storage.open_frame(
        tmp_path / "job", "f.png", job_id="j", frame=3, sha256=hashlib.sha256(data).hexdigest()
    )
    try:
        assert storage.held.used == len(data)  # the second did not fit: streamed
        assert b"".join([b async for b in second.chunks()]) == data
        assert b"".join([b async for b in first.chunks()]) == data
    finally:
        first.close()
        second.close()
    assert storage.held.used == 0
    assert isinstance(storage.held, HeldBytes)


async def test_a_damaged_frame_gives_its_memory_back(tmp_path: Path) -> None:
    from site_agent.storage import FrameCorruptError, FrameStorage

    storage = FrameStorage(tmp_path, max_frame_bytes=1 << 30)
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "f.png").write_bytes(FRAMES[3])
    with pytest.raises(FrameCorruptError):
        await storage.open_frame(tmp_path / "job", "f.png", job_id="j", frame=3, sha256="0" * 64)
    assert storage.held.used == 0


async def test_a_frame_larger_than_the_held_size_is_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from site_agent import storage as storage_module

    monkeypatch.setattr(storage_module, "HELD_FRAME_BYTES", 2 * 1024 * 1024)
    storage, frame = await _stored(tmp_path, FRAMES[3])
    try:
        assert storage.held.used == 0
        assert b"".join([b async for b in frame.chunks()]) == FRAMES[3]
    finally:
        frame.close()


async def test_the_route_cuts_the_connection_when_the_recheck_fails(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from site_agent.storage import HeldBytes

    job_id, job_dir = await _rendered_job(client)
    site: SiteAgent = client.server.app[SITE]
    site.storage.held = HeldBytes(0)  # frame 3 is streamed from its file, hashed again
    real_open = site.storage.open_frame

    async def open_then_damage(*args: Any, **kwargs: Any) -> Any:
        frame = await real_open(*args, **kwargs)
        with (job_dir / "shot_0003.png").open("r+b") as fh:  # after the check, in place
            fh.write(b"\x00")
        return frame

    monkeypatch.setattr(site.storage, "open_frame", open_then_damage)
    resp = await client.get(f"/api/v1/jobs/{job_id}/frames/3")
    assert resp.status == 200  # the check passed before the damage
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
