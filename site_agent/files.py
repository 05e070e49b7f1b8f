"""Atomic, hash-verified file writes shared by the asset store and network storage."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from site_agent.group_sync import PendingFile, group_sync, open_temp
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
    On return the file is durable under its name (see ``site_agent.group_sync``).
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
        await group_sync().persist(PendingFile(fh, tmp, buffered, dest))
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
    ``dest``, in the next group (see ``site_agent.group_sync``); StorageWriteError on failure."""
    with _disk(dest):
        await group_sync().persist(PendingFile(fh, tmp, [], dest))


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


def _create(tmp: Path, blocks: list[bytes]) -> BinaryIO:
    fh = open_temp(tmp)
    try:
        fh.writelines(blocks)
    except BaseException:
        discard_temp(fh, tmp)
        raise
    return fh
