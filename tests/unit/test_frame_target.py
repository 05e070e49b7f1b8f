"""A frame file written by the thread that receives it (``FrameTarget``): under its name only
once committed with the reported hash; anything else leaves neither it nor a temp file."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from federation.frame_file import FrameTarget
from site_agent.files import HashMismatchError, StorageWriteError, TooLargeError

DATA = b"frame bytes " * 1000


def _target(tmp_path: Path, data: bytes = DATA, max_bytes: int = 1 << 20) -> FrameTarget:
    return FrameTarget(
        tmp_path / "job" / "f_0001.exr",
        expected_sha256=hashlib.sha256(data).hexdigest(),
        max_bytes=max_bytes,
    )


def _left(tmp_path: Path) -> list[str]:
    return (
        sorted(p.name for p in (tmp_path / "job").iterdir()) if (tmp_path / "job").exists() else []
    )


async def test_blocks_written_in_a_thread_are_committed_under_the_name(tmp_path: Path) -> None:
    target = _target(tmp_path)

    def receive() -> None:
        for start in range(0, len(DATA), 4096):
            target.write(memoryview(DATA)[start : start + 4096])

    await asyncio.to_thread(receive)
    assert not target.dest.exists()  # not before the commit
    assert await target.commit() == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert target.dest.read_bytes() == DATA and _left(tmp_path) == ["f_0001.exr"]


async def test_an_empty_file_commits(tmp_path: Path) -> None:
    target = _target(tmp_path, b"")
    await target.commit()
    assert target.dest.read_bytes() == b""


async def test_bytes_that_do_not_hash_as_reported_are_not_stored(tmp_path: Path) -> None:
    target = _target(tmp_path)
    target.write(DATA[:-1] + b"!")
    with pytest.raises(HashMismatchError, match="not the declared"):
        await target.commit()
    assert _left(tmp_path) == []


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    target = _target(tmp_path, max_bytes=100)
    target.write(DATA[:100])
    with pytest.raises(TooLargeError):
        target.write(DATA[100:101])
    target.discard()
    assert _left(tmp_path) == []


def test_a_thread_still_reading_after_the_fetch_gave_up_writes_nothing(tmp_path: Path) -> None:
    target = _target(tmp_path)
    target.write(DATA[:10])
    target.discard()
    with pytest.raises(StorageWriteError, match="abandoned"):
        target.write(DATA[10:20])
    assert _left(tmp_path) == []
