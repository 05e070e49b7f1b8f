"""A full disk at this site: the frame upload answers 507, leaves no temp file, and the
attempt goes back to waiting without a failure counted against the render server.

Needs root to mount a small tmpfs as the agent's storage (skipped otherwise).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from render_server import protocol
from site_agent.files import StorageFullError, write_atomic

from .conftest import AgentFactory, sha
from .test_bad_input import _assigned, _frame_url


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (the test mounts it; root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace')}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def _chunks(data: bytes, size: int = 1 << 16):  # type: ignore[no-untyped-def]
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("size", [200_000, 3 * 1024 * 1024])
async def test_write_atomic_on_a_full_disk_raises_storage_full_and_leaves_nothing(
    small_tmpfs: Path, size: int
) -> None:
    """Both the buffered and the streamed path (over IN_MEMORY_BYTES)."""
    data = os.urandom(size)
    with pytest.raises(StorageFullError, match="storage full"):
        await write_atomic(
            small_tmpfs / "job" / "f_0001.png",
            _chunks(data),
            expected_sha256=sha(data),
            max_bytes=1 << 30,
        )
    assert [p for p in small_tmpfs.rglob("*") if p.is_file()] == []


async def test_frame_put_on_a_full_disk_is_507_and_blames_no_server(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    client = await make_agent(max_request_mb=8)
    storage = client.site_dir / "storage"  # type: ignore[attr-defined]
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(storage)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        ws, other_ws, sid, _, assign = await _assigned(client)
        data = os.urandom(200_000)
        url = _frame_url(sid, assign.task_id, assign.attempt, 7)
        resp = await client.put(url, data=data, headers={"X-Sha256": sha(data)})
        assert resp.status == 507, await resp.text()
        body = await resp.json()
        assert body["error"]["code"] == "storage_full"
        assert "storage full" in body["error"]["message"]
        assert [p for p in storage.rglob("*") if p.is_file()] == []
        # The server is told to stop the attempt; it goes back to waiting, no failure counted.
        async with asyncio.timeout(5):
            while True:
                msg = protocol.decode((await ws.receive()).data)
                if isinstance(msg, protocol.Cancel):
                    break
        detail = await (await client.get(f"/api/v1/jobs/{assign.job_id}")).json()
        [task] = detail["tasks"]
        assert task["state"] == "waiting" and task["failures"] == 0, task
        assert "storage full" in detail["job"]["error"]
        assert "tasks will be retried" in detail["job"]["error"]
        # The server's own failure report for that attempt comes too late to count.
        await ws.send_bytes(
            protocol.encode(
                protocol.TaskFailed(
                    task_id=assign.task_id, attempt=assign.attempt, error="upload refused (507)"
                )
            )
        )
        await asyncio.sleep(0.3)
        detail = await (await client.get(f"/api/v1/jobs/{assign.job_id}")).json()
        assert detail["tasks"][0]["failures"] == 0
        await ws.close()
        await other_ws.close()
    finally:
        await client.close()
        subprocess.run(["umount", "-l", str(storage)], check=False)
