"""Atomic, hash-verified writes made durable in groups (site_agent/files.py), on the real file system."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from site_agent import files, group_sync
from site_agent.files import HashMismatchError, StorageWriteError, TooLargeError, write_atomic


async def _chunks(*blocks: bytes) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


@pytest.fixture(params=["syncfs", "fsync-each"])
def sync_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both durability paths: one syncfs per group (Linux) and an fsync per file and folder."""
    if request.param == "syncfs" and group_sync._syncfs is None:
        pytest.skip("syncfs is not available here")
    if request.param == "fsync-each":
        monkeypatch.setattr(group_sync, "_syncfs", None)
    return str(request.param)


async def test_concurrent_writes_share_groups_and_land_whole(
    tmp_path: Path, sync_mode: str
) -> None:
    blobs = {f"frame_{i:04d}.png": os.urandom(100 + i) for i in range(300)}
    results = await asyncio.gather(
        *(
            write_atomic(
                tmp_path / "job" / name,
                _chunks(data),
                expected_sha256=hashlib.sha256(data).hexdigest(),
                max_bytes=1 << 20,
            )
            for name, data in blobs.items()
        )
    )
    for (name, data), (digest, size) in zip(blobs.items(), results, strict=True):
        assert (tmp_path / "job" / name).read_bytes() == data
        assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert _leftovers(tmp_path) == []
    # 300 files finishing in the same loop iteration need far fewer than 300 sync rounds.
    assert group_sync.group_sync().groups <= 3


async def test_big_streamed_file_and_small_files_in_one_group(
    tmp_path: Path, sync_mode: str
) -> None:
    big = os.urandom(3 * files.IN_MEMORY_BYTES + 17)
    small = b"tiny"
    blocks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    (big_result, small_result) = await asyncio.gather(
        write_atomic(
            tmp_path / "big.exr", _chunks(*blocks), expected_sha256=None, max_bytes=1 << 30
        ),
        write_atomic(
            tmp_path / "small.png", _chunks(small), expected_sha256=None, max_bytes=1 << 30
        ),
    )
    assert (tmp_path / "big.exr").read_bytes() == big
    assert (tmp_path / "small.png").read_bytes() == small
    assert big_result[1] == len(big) and small_result[1] == len(small)
    assert _leftovers(tmp_path) == []


async def test_a_failing_file_fails_alone(tmp_path: Path, sync_mode: str) -> None:
    (tmp_path / "blocked").mkdir()
    good = write_atomic(tmp_path / "ok.png", _chunks(b"good"), expected_sha256=None, max_bytes=100)
    # A folder in the way: the rename into place fails for this file only.
    bad = write_atomic(tmp_path / "blocked", _chunks(b"bad"), expected_sha256=None, max_bytes=100)
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] == (hashlib.sha256(b"good").hexdigest(), 4)
    # This site's file-system error, told apart from the sender's faults; the cause is kept.
    assert isinstance(results[1], StorageWriteError)
    assert isinstance(results[1].__cause__, OSError)
    assert (tmp_path / "ok.png").read_bytes() == b"good"
    assert (tmp_path / "blocked").is_dir()
    assert _leftovers(tmp_path) == []


async def test_refused_bodies_leave_the_destination_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "frame_0001.png"
    dest.write_bytes(b"previous good frame")
    with pytest.raises(HashMismatchError):
        await write_atomic(dest, _chunks(b"tampered"), expected_sha256="0" * 64, max_bytes=100)
    with pytest.raises(TooLargeError):
        await write_atomic(dest, _chunks(b"x" * 101), expected_sha256=None, max_bytes=100)
    assert dest.read_bytes() == b"previous good frame"
    assert _leftovers(tmp_path) == []


async def test_a_cancelled_writer_does_not_stop_the_group(tmp_path: Path) -> None:
    others = [
        asyncio.create_task(
            write_atomic(
                tmp_path / f"f{i}.png", _chunks(b"%d" % i), expected_sha256=None, max_bytes=100
            )
        )
        for i in range(5)
    ]
    await asyncio.sleep(0)
    others[0].cancel()
    done = await asyncio.gather(*others, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    for i in range(1, 5):
        assert (tmp_path / f"f{i}.png").read_bytes() == b"%d" % i
    # Once its group is written, later writes go through a fresh flush.
    assert await write_atomic(
        tmp_path / "later.png", _chunks(b"later"), expected_sha256=None, max_bytes=100
    )
    assert (tmp_path / "later.png").read_bytes() == b"later"
