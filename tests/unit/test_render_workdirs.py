"""Task folders deleted off the event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from render_server.workdirs import TRASH_PREFIX, WorkdirJanitor


def _folder(path: Path, files: int = 50) -> Path:
    (path / "sub").mkdir(parents=True)
    for i in range(files):
        (path / "sub" / f"{i}.png").write_bytes(b"x" * 100)
    return path


async def test_a_discarded_folder_frees_its_name_at_once_and_is_deleted(tmp_path: Path) -> None:
    janitor = WorkdirJanitor(tmp_path)
    task = _folder(tmp_path / "task-1-1")
    janitor.discard(task)
    assert not task.exists(), "the next task of that name must not find the old folder"
    task.mkdir()  # the name is reusable while the old one is being deleted
    await janitor.close()
    assert janitor.pending == 0
    assert [p.name for p in tmp_path.iterdir()] == ["task-1-1"]


async def test_discarding_a_missing_folder_is_a_no_op(tmp_path: Path) -> None:
    janitor = WorkdirJanitor(tmp_path)
    janitor.discard(tmp_path / "never-made")
    assert janitor.pending == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may delete anything")
async def test_a_deletion_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    janitor = WorkdirJanitor(tmp_path)
    locked = _folder(tmp_path / "task-2-1")
    (locked / "sub").chmod(0o500)  # its files cannot be unlinked (unless run as root)
    try:
        janitor.discard(locked)
        await janitor.close()
    finally:
        for p in tmp_path.glob(f"{TRASH_PREFIX}*/sub"):
            p.chmod(0o700)
    assert not locked.exists()
    assert "could not delete" in caplog.text


async def test_sweep_removes_what_a_killed_run_left_behind(tmp_path: Path) -> None:
    _folder(tmp_path / f"{TRASH_PREFIX}old")
    _folder(tmp_path / "task-3-1-abcdef12")
    (tmp_path / "notes.txt").write_text("not ours")
    janitor = WorkdirJanitor(tmp_path)
    janitor.sweep()
    await asyncio.wait_for(janitor.close(), 10)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
