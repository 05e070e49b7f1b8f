"""Group commit for finished files: many temp files made durable and renamed per sync."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .dir_sync import fsync_folder


def open_temp(tmp: Path) -> BinaryIO:
    try:
        return tmp.open("wb")
    except FileNotFoundError:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")


@dataclass(slots=True)
class PendingFile:
    fh: BinaryIO | None
    """Open temp file holding the first part of a big file; None when all is in ``blocks``."""
    tmp: Path
    blocks: list[bytes]
    dest: Path
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


GROUP_MAX_FILES = 512
"""Files made durable by one worker-thread call; more wait for the next group."""


class GroupSync:
    """Makes finished files durable in groups, like a database's group commit.

    Every frame and blob must be on disk under its name before the database says
    it is stored. One fsync per file made the file system's journal the farm's
    limit (on ext4 about 1,200 small files a second however many threads wait on
    it), and each worker-thread hop cost the event loop a wake-up. Files that
    finish while a group is being written form the next group, which is written
    by one worker-thread call: write every temp file; make the data durable; rename
    each into place; make the renames durable. On Linux "durable" is one
    ``syncfs`` per file system (about 15,000 small files a second here); elsewhere
    an fsync of each file and of each folder. A file whose write fails fails alone.
    """

    def __init__(self, *, max_files: int = GROUP_MAX_FILES) -> None:
        self._max_files = max_files
        self._queue: list[PendingFile] = []
        self._flusher: asyncio.Task[None] | None = None
        self.groups = 0

    async def persist(self, item: PendingFile) -> None:
        """Write, sync and rename one temp file; returns once it is durable under its name."""
        self._queue.append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="file-group-sync")
        try:
            # Shielded: the group is written whatever happens to this caller; a caller that
            # gives up leaves an unrecorded file that the next attempt replaces.
            await asyncio.shield(item.done)
        except asyncio.CancelledError:
            item.done.add_done_callback(_retrieve)
            raise

    async def _flush_all(self) -> None:
        await asyncio.sleep(0)  # let every file finishing in this loop iteration join
        while self._queue:
            group, self._queue = self._queue[: self._max_files], self._queue[self._max_files :]
            self.groups += 1
            errors: list[Exception | None]
            try:
                errors = list(await asyncio.to_thread(persist_group, group))
            except asyncio.CancelledError:
                for item in group + self._queue:
                    item.done.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - every waiter gets it, the next group still runs
                errors = [exc] * len(group)
            for item, error in zip(group, errors, strict=True):
                if item.done.done():
                    continue
                if error is None:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a result nobody awaits any more as seen, so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


def persist_group(group: list[PendingFile]) -> list[OSError | None]:
    """Write, make durable and rename a group of temp files (in a worker thread).

    Returns one error or None per file, in order. A failed file's temp file is removed.
    """
    errors: list[OSError | None] = [None] * len(group)
    for i, item in enumerate(group):
        try:
            fh = item.fh or open_temp(item.tmp)
            with fh:
                fh.writelines(item.blocks)
                fh.flush()
                if _syncfs is None:
                    os.fsync(fh.fileno())
        except OSError as exc:
            errors[i] = exc
            item.tmp.unlink(missing_ok=True)
    written = [i for i, e in enumerate(errors) if e is None]
    folders = {group[i].dest.parent for i in written}
    try:
        _sync_file_systems(folders)  # the data, before any name points at it
    except OSError as exc:
        for i in written:
            errors[i] = exc
            group[i].tmp.unlink(missing_ok=True)
        return errors
    for i in written:
        try:
            os.replace(group[i].tmp, group[i].dest)
        except OSError as exc:
            errors[i] = exc
            group[i].tmp.unlink(missing_ok=True)
    try:
        _sync_file_systems(folders, fsync_folders=_syncfs is None)  # the renames
    except OSError as exc:
        for i in written:
            errors[i] = errors[i] or exc
    return errors


def _sync_file_systems(folders: set[Path], *, fsync_folders: bool = False) -> None:
    if _syncfs is None:
        if fsync_folders and os.name == "posix":  # Windows cannot open a folder to fsync it
            for folder in folders:
                fsync_folder(folder)
        return
    synced: set[int] = set()
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY)
        try:
            device = os.fstat(fd).st_dev
            if device not in synced and _syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of {folder}: {os.strerror(err)}")
            synced.add(device)
        finally:
            os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    if sys.platform != "linux" or os.environ.get("SPILLWAY_FSYNC_EACH_FILE"):
        return None
    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
        return syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()
_group_syncs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupSync] = (
    weakref.WeakKeyDictionary()
)


def group_sync() -> GroupSync:
    """The running loop's GroupSync (tests run many loops in one process)."""
    loop = asyncio.get_running_loop()
    group = _group_syncs.get(loop)
    if group is None:
        group = _group_syncs[loop] = GroupSync()
    return group
