"""Atomic, hash-verified file writes shared by the asset store and network storage."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import itertools
import os
import re
import sys
import uuid
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from spillway.core.hashing import file_sha256 as file_sha256  # re-exported for the agent

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class FileError(Exception):
    """A file could not be stored or read."""


class HashMismatchError(FileError):
    """Received bytes do not match the declared sha256; nothing was stored."""


class TooLargeError(FileError):
    """The upload exceeds the configured size limit; nothing was stored."""


class UnsafePathError(FileError):
    """A relative path tries to leave its root (absolute, '..', backslash or control characters)."""


class StorageWriteError(FileError):
    """This site's storage failed to write (not the sender's fault); nothing was stored."""


class StorageFullError(StorageWriteError):
    """This site's storage is out of space or over its quota; nothing was stored."""


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_error(dest: Path, exc: OSError) -> StorageWriteError:
    """The storage error for an OSError met while writing ``dest``."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return StorageFullError(
            f"storage full: cannot write {dest.name} in {dest.parent}: {reason}"
        )
    return StorageWriteError(f"storage error: cannot write {dest.name} in {dest.parent}: {reason}")


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise FileError(f"{value!r} is not a sha256 (64 lowercase hex characters)")
    return value


def safe_relative_path(value: str) -> PurePosixPath:
    """Validate a user-supplied relative path such as an asset path in a manifest."""
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise UnsafePathError("asset paths must be non-empty strings of at most 1024 characters")
    if "\\" in value or any(ord(c) < 32 for c in value):
        raise UnsafePathError(
            f"asset path {value!r} contains a backslash or control character; use '/'"
        )
    p = PurePosixPath(value)
    if p.is_absolute():
        raise UnsafePathError(
            f"asset path {value!r} is absolute; give it relative to the scene folder"
        )
    if any(part in ("..", "") for part in p.parts) or value.endswith("/"):
        raise UnsafePathError(
            f"asset path {value!r} leaves the scene folder ('..'); keep assets under it"
        )
    if p.parts and p.parts[0] == ".":
        p = PurePosixPath(*p.parts[1:])
    if not p.parts or str(p) == ".":
        raise UnsafePathError(f"asset path {value!r} names the scene folder itself, not a file")
    return p


HASH_ON_LOOP_BYTES = 256 * 1024
"""Blobs up to this size in total are hashed on the event loop; more in a worker thread."""


async def sha256_all(blobs: list[bytes]) -> list[str]:
    """The sha256 of each blob (in a worker thread when they are big)."""

    def digest() -> list[str]:
        return [hashlib.sha256(b).hexdigest() for b in blobs]

    if sum(len(b) for b in blobs) <= HASH_ON_LOOP_BYTES:
        return digest()
    return await asyncio.to_thread(digest)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as the chunk stream :func:`write_atomic` reads."""
    yield data


IN_MEMORY_BYTES = 1024 * 1024
"""Bodies up to this size are buffered and written in one worker-thread call."""


async def write_atomic(
    dest: Path,
    chunks: AsyncIterable[bytes],
    *,
    expected_sha256: str | None,
    max_bytes: int,
) -> tuple[str, int]:
    """Stream ``chunks`` into ``dest`` through a temp file and rename; returns (sha256, size).

    On a hash mismatch or an oversized body the temp file is removed and ``dest`` is untouched.
    On return the file is durable under its name (see ``GroupSync``).
    """
    tmp = temp_path(dest)
    # Keyed by string: hashing a new Path object re-parses it, which was ~6 % of the
    # event loop's time with thousands of frames a second.
    folder = os.path.dirname(dest)
    if folder not in _known_dirs:
        with _disk(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
        _known_dirs.add(folder)
    h = hashlib.sha256()
    size = 0
    buffered: list[bytes] = []
    fh: BinaryIO | None = None
    try:
        async for block in chunks:
            size += len(block)
            if size > max_bytes:
                raise TooLargeError(f"upload exceeds the limit of {max_bytes} bytes")
            h.update(block)
            if fh is not None:
                with _disk(dest):
                    fh.write(block)
                continue
            buffered.append(block)
            if size > IN_MEMORY_BYTES:  # a big file: stream the rest to disk
                with _disk(dest):
                    fh = await asyncio.to_thread(_create, tmp, buffered)
                buffered = []
        digest = h.hexdigest()
        check_digest(digest, size, expected_sha256)
    except BaseException:
        discard_temp(fh, tmp)
        raise
    with _disk(dest):
        await _group_sync().persist(_PendingFile(fh, tmp, buffered, dest))
    return digest, size


def check_digest(digest: str, size: int, expected_sha256: str | None) -> None:
    """HashMismatchError unless ``size`` received bytes hashing to ``digest`` are as declared."""
    if expected_sha256 is not None and digest != expected_sha256:
        raise HashMismatchError(
            f"received {size} bytes hashing to {digest}, not the declared {expected_sha256}; "
            "the upload was corrupted or tampered with; send it again"
        )


async def persist_temp(fh: BinaryIO, tmp: Path, dest: Path) -> None:
    """Make a temp file written whole elsewhere (a worker thread) durable and rename it to
    ``dest``, in the next group (see ``GroupSync``); StorageWriteError on failure."""
    with _disk(dest):
        await _group_sync().persist(_PendingFile(fh, tmp, [], dest))


def temp_path(dest: Path) -> Path:
    """A fresh temp file name beside ``dest`` (swept by :func:`sweep_temp_files`)."""
    return dest.parent / f".{dest.name}.{_TEMP_PREFIX}{next(_temp_ids)}.part"


@contextlib.contextmanager
def _disk(dest: Path) -> Iterator[None]:
    """File-system errors writing ``dest`` as StorageWriteError: the sender did nothing
    wrong (errors reading the sender's body stay what they are)."""
    try:
        yield
    except OSError as exc:
        raise storage_error(dest, exc) from exc


def discard_temp(fh: BinaryIO | None, tmp: Path) -> None:
    """Close and remove a temp file being abandoned; closing a file on a full disk fails
    too (its buffer cannot be flushed), which must not keep the temp file behind."""
    if fh is not None:
        with contextlib.suppress(OSError):
            fh.close()
    tmp.unlink(missing_ok=True)


# Folders this process created or found, so the hot path does not mkdir per file;
# a folder removed behind our back is made again by open_temp.
_known_dirs: set[str] = set()
# Temp names unique per process and call, without a uuid per file on the hot path.
_TEMP_PREFIX = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-"
_temp_ids = itertools.count()
_TEMP_NAME = re.compile(r"\..+\.\d+-[0-9a-f]{8}-\d+\.part")
"""The name of a :func:`write_atomic` temp file: ``.<name>.<pid>-<run>-<n>.part``."""


def sweep_temp_files(pattern_root: Path, pattern: str) -> int:
    """Delete :func:`write_atomic` temp files left by a killed process; returns how many.

    ``pattern`` is a glob under ``pattern_root`` naming the folders writes land in
    (e.g. ``"*"`` for job folders). Call it at start-up, before this process writes:
    every temp file then belongs to a write that can no longer finish. Its frame or
    blob is written again by whoever sends it again; nothing recorded is touched.
    """
    removed = 0
    for folder in pattern_root.glob(pattern):
        for path in folder.glob(".*.part"):
            if _TEMP_NAME.fullmatch(path.name):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def open_temp(tmp: Path) -> BinaryIO:
    try:
        return tmp.open("wb")
    except FileNotFoundError:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")


def _create(tmp: Path, blocks: list[bytes]) -> BinaryIO:
    fh = open_temp(tmp)
    try:
        fh.writelines(blocks)
    except BaseException:
        discard_temp(fh, tmp)
        raise
    return fh


@dataclass(slots=True)
class _PendingFile:
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
        self._queue: list[_PendingFile] = []
        self._flusher: asyncio.Task[None] | None = None
        self.groups = 0

    async def persist(self, item: _PendingFile) -> None:
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


def persist_group(group: list[_PendingFile]) -> list[OSError | None]:
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
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
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


def _group_sync() -> GroupSync:
    """The running loop's GroupSync (tests run many loops in one process)."""
    loop = asyncio.get_running_loop()
    group = _group_syncs.get(loop)
    if group is None:
        group = _group_syncs[loop] = GroupSync()
    return group
