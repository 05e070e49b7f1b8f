"""AssetStore.adopt leaves a blob durable under its name: its folder is synced after the rename."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from site_agent import dir_sync
from site_agent.assets import AssetStore


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch, dest: Path) -> list[tuple[str, bool]]:
    """Each fsync'd descriptor's path, and whether ``dest`` had its name by then."""
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), dest.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _blob(folder: Path, data: bytes) -> tuple[str, Path]:
    sha = hashlib.sha256(data).hexdigest()
    path = folder / f"{sha}.part"
    path.write_bytes(data)
    return sha, path


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_adopt_syncs_the_blobs_folder_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AssetStore(tmp_path / "assets", max_blob_bytes=1 << 20)
    sha, part = _blob(store.partial_dir, b"first blob")
    dest = store.path_for(sha)
    synced = _record_fsyncs(monkeypatch, dest)
    store.adopt(sha, part, verified=True)
    assert dest.read_bytes() == b"first blob"
    # A new fan-out folder: its name in blobs/ synced, then the blob's name in it.
    assert [path for path, _ in synced] == [str(dest.parent.parent), str(dest.parent)]
    assert synced[-1][1]

    # A second blob in the same, existing fan-out folder.
    data = next(
        d
        for i in range(100_000)
        if hashlib.sha256(d := f"x{i}".encode()).hexdigest()[:2] == sha[:2]
    )
    sha2, part2 = _blob(store.partial_dir, data)
    synced = _record_fsyncs(monkeypatch, store.path_for(sha2))
    store.adopt(sha2, part2, verified=True)
    assert synced == [(str(dest.parent), True)]


def test_adopts_into_one_folder_at_once_share_its_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers that arrive while a folder sync runs wait for one more sync, shared by all."""
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_fsync(folder: str) -> None:
        calls.append(folder)
        if len(calls) == 1:
            started.set()
            release.wait(5)

    monkeypatch.setattr(dir_sync, "fsync_folder", slow_fsync)
    first = threading.Thread(target=dir_sync.sync_folder, args=(str(tmp_path),))
    first.start()
    assert started.wait(5)
    later = [threading.Thread(target=dir_sync.sync_folder, args=(str(tmp_path),)) for _ in range(5)]
    for thread in later:
        thread.start()
    for _ in range(500):  # every later caller has its ticket (and waits) before the first ends
        with dir_sync._lock:
            if dir_sync._folders[str(tmp_path)].asked == 6:
                break
        time.sleep(0.01)
    release.set()
    for thread in [first, *later]:
        thread.join(5)
        assert not thread.is_alive()
    assert calls == [str(tmp_path)] * 2  # not one per caller
    assert not dir_sync._folders
