"""Atomic, hash-verified file writes shared by the asset store and network storage."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import uuid
from collections.abc import AsyncIterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

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


def check_sha256(value: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise FileError(f"{value!r} is not a sha256 (64 lowercase hex characters)")
    return value


def safe_relative_path(value: str) -> PurePosixPath:
    """Validate a user-supplied relative path such as an asset path in a manifest."""
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise UnsafePathError("asset paths must be non-empty strings of at most 1024 characters")
    if "\\" in value or any(ord(c) < 32 for c in value):
        raise UnsafePathError(f"asset path {value!r} contains a backslash or control character; use '/'")
    p = PurePosixPath(value)
    if p.is_absolute():
        raise UnsafePathError(f"asset path {value!r} is absolute; give it relative to the scene folder")
    if any(part in ("..", "") for part in p.parts) or value.endswith("/"):
        raise UnsafePathError(f"asset path {value!r} leaves the scene folder ('..'); keep assets under it")
    if p.parts and p.parts[0] == ".":
        p = PurePosixPath(*p.parts[1:])
    if not p.parts or str(p) == ".":
        raise UnsafePathError(f"asset path {value!r} names the scene folder itself, not a file")
    return p


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


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
    Creating, fsyncing and renaming run in a worker thread: they wait on the file
    system's journal, and on the event loop they stalled every other request (over
    half the agent's time with hundreds of servers uploading). Concurrent fsyncs
    also share journal commits, which one after another on the loop could not.
    """
    if dest.parent not in _known_dirs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _known_dirs.add(dest.parent)
    tmp = dest.parent / f".{dest.name}.{_TEMP_PREFIX}{next(_temp_ids)}.part"
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
                fh.write(block)
                continue
            buffered.append(block)
            if size > IN_MEMORY_BYTES:  # a big frame: stream the rest to disk
                fh = await asyncio.to_thread(_create, tmp, buffered)
                buffered = []
        digest = h.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256:
            raise HashMismatchError(
                f"received {size} bytes hashing to {digest}, not the declared {expected_sha256}; "
                "the upload was corrupted or tampered with; send it again"
            )
        await asyncio.to_thread(_persist, fh, tmp, buffered, dest)
        fh = None
    except BaseException:
        if fh is not None:
            fh.close()
        tmp.unlink(missing_ok=True)
        raise
    return digest, size


# Folders this process created or found, so the hot path does not mkdir per frame;
# a folder removed behind our back is made again by _open_new.
_known_dirs: set[Path] = set()
# Temp names unique per process and call, without a uuid per frame on the hot path.
_TEMP_PREFIX = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-"
_temp_ids = itertools.count()


def _open_new(tmp: Path) -> BinaryIO:
    try:
        return tmp.open("wb")
    except FileNotFoundError:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")


def _create(tmp: Path, blocks: list[bytes]) -> BinaryIO:
    fh = _open_new(tmp)
    try:
        fh.writelines(blocks)
    except BaseException:
        fh.close()
        raise
    return fh


def _persist(fh: BinaryIO | None, tmp: Path, blocks: list[bytes], dest: Path) -> None:
    """Write what is left, make it durable, rename into place (in a worker thread)."""
    fh = fh or _open_new(tmp)
    try:
        with fh:
            fh.writelines(blocks)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
