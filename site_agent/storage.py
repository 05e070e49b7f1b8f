"""Network storage: where rendered frames land and clients pick them up.

Layout: ``<root>/<job-name>-<job-id>/<file>``, every file a renderer wrote for
a frame under the renderer's own name (``shot_0001.exr``, ``clockd05.png``; a
render server older than named outputs uploads ``<name>_<frame:04d>.<ext>``),
and each frame's preview in ``.previews/<main file>.png``. Each is written through
a temp file and a rename, so a reader never sees a half-written file. Files are
read back only through :meth:`FrameStorage.open_frame`, which checks the bytes
against the recorded sha256, so a damaged or deleted file is never served as a frame.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spillway.core.records import PREVIEW_DIR, FileKind

from .files import CHUNK, FileError, UnsafePathError, write_atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(value: str, *, fallback: str = "job") -> str:
    """A file-system-safe version of a user-chosen name."""
    cleaned = _UNSAFE.sub("_", value).strip("._-")[:80]
    return cleaned or fallback


def frame_file_name(output_name: str, frame: int, ext: str) -> str:
    """The name of a frame uploaded without one (render servers older than named outputs)."""
    return f"{output_name}_{frame:04d}.{ext}"


MAX_NAME_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def stored_name(name: str, kind: FileKind) -> str:
    """Where a frame file the renderer called ``name`` goes in its job's folder.

    ``name`` must be a plain file name: no folder, not hidden (names starting with
    ``.`` are the temp files' and the preview folder's), no control characters.
    A preview goes into the preview folder. Raises :class:`UnsafePathError`.
    """
    if (
        not name
        or len(name) > MAX_NAME_CHARS
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or _CONTROL.search(name)
    ):
        raise UnsafePathError(
            f"output file name {name!r} is not a plain file name (at most {MAX_NAME_CHARS} "
            "characters, no folder, not starting with '.', no control characters)"
        )
    return f"{PREVIEW_DIR}/{name}" if kind == FileKind.PREVIEW else name


def _in_job_dir(job_dir: Path, file_name: str) -> Path:
    """``job_dir / file_name`` for a name made by :func:`stored_name` (or a legacy frame name)."""
    path = job_dir / file_name
    if path.parent not in (job_dir, job_dir / PREVIEW_DIR) or ".." in path.parts:
        raise ValueError(f"frame file name {file_name!r} must come from stored_name")
    return path


class StoredFrameError(FileError):
    """A recorded frame cannot be read back as recorded."""

    def __init__(self, message: str, *, job_id: str, frame: int) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.frame = frame


class FrameMissingError(StoredFrameError):
    """The frame is recorded as rendered but its file is gone from storage."""


class FrameCorruptError(StoredFrameError):
    """The frame's file no longer hashes to the recorded sha256."""


HELD_FRAME_BYTES = 16 * 1024 * 1024
"""A frame up to this size is read whole by its check and served from those bytes."""
HELD_TOTAL_BYTES = 64 * 1024 * 1024
"""At most this many bytes of frames larger than one read block are held at once, across
every frame being served; a frame that finds the budget spent is streamed from its file."""


class HeldBytes:
    """The memory budget for checked frames kept whole while they are served (thread-safe:
    frames are checked in worker threads and closed from the loop or a listener thread)."""

    def __init__(self, limit: int = HELD_TOTAL_BYTES) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self._used + size > self.limit:
                return False
            self._used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self._used -= size

    @property
    def used(self) -> int:
        return self._used


@dataclass(slots=True, kw_only=True)
class OpenFrame:
    """A stored frame whose bytes were checked against its record; read it with :meth:`chunks`.

    A frame up to :data:`HELD_FRAME_BYTES` keeps the bytes its check read and is served
    from them: the bytes sent are the bytes that hashed right, with no second read or
    hash (a whole pass of sha256 per served byte before). A larger frame, or one that
    finds :class:`HeldBytes` spent, stays open from the check to the last byte served,
    so a rename over it (a re-rendered frame) cannot mix two versions, and is hashed
    again while read. Close it with :meth:`close`.
    """

    job_id: str
    frame: int
    sha256: str
    size: int
    mode: int
    """Permission bits of the stored file (e.g. 0o644)."""
    _handle: BinaryIO | None
    _checked: bytes | None = None
    """The whole file as its check read it (then there is no handle)."""
    _budget: HeldBytes | None = None
    """Where ``_checked``'s size is given back on close (None: a frame of one read block,
    held outside the budget)."""

    async def chunks(self) -> AsyncIterator[bytes]:
        """:meth:`blocks`, each read in a worker thread."""
        blocks = self.blocks()
        if self._checked is not None:  # in memory: no thread to hop to
            for piece in blocks:
                yield piece
            return
        while (block := await asyncio.to_thread(next, blocks, None)) is not None:
            yield block

    def blocks(self) -> Iterator[bytes]:
        """The frame's bytes in blocks of at most one read block. A frame streamed from its
        file is hashed again while read (blocking: a worker thread's), its last block held
        back until the hash matches, so a file changed in place since the check is never
        served whole (:class:`FrameCorruptError` is raised instead of yielding it)."""
        if self._checked is not None:
            data = self._checked
            if len(data) <= CHUNK:
                yield data
                return
            for start in range(0, len(data), CHUNK):
                yield data[start : start + CHUNK]
            return
        assert self._handle is not None
        self._handle.seek(0)
        hasher = hashlib.sha256()
        held = b""
        while block := self._handle.read(CHUNK):
            hasher.update(block)
            if held:
                yield held
            held = block
        if hasher.hexdigest() != self.sha256:
            raise _corrupt(self.job_id, self.frame, self.sha256)
        if held:
            yield held

    def close(self) -> None:
        """Close the file or give the held bytes back (once; again does nothing)."""
        if self._handle is not None:
            self._handle.close()
        if self._budget is not None and self._checked is not None:
            self._budget.give(len(self._checked))
        self._checked = self._budget = None


def _corrupt(job_id: str, frame: int, sha256: str) -> FrameCorruptError:
    return FrameCorruptError(
        f"frame {frame} of job {job_id} is damaged in storage (its file no longer hashes to "
        f"the recorded sha256 {sha256[:12]}...); it was not served; render it again",
        job_id=job_id,
        frame=frame,
    )


def _open_checked(
    path: Path, *, job_id: str, frame: int, sha256: str, held: HeldBytes
) -> OpenFrame:
    """Open ``path`` and hash it whole (in a worker thread); raises StoredFrameError."""
    handle = _open_file(path, job_id=job_id, frame=frame)
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # reading a FIFO or device could block or never end
            raise _corrupt(job_id, frame, sha256)
        size, mode = info.st_size, stat.S_IMODE(info.st_mode)
        budget = held if size > CHUNK else None
        if budget is not None and not (size <= HELD_FRAME_BYTES and budget.take(size)):
            hasher = hashlib.sha256()
            while block := handle.read(CHUNK):
                hasher.update(block)
            if hasher.hexdigest() != sha256:
                raise _corrupt(job_id, frame, sha256)
            return OpenFrame(
                job_id=job_id, frame=frame, sha256=sha256, size=size, mode=mode, _handle=handle
            )
    except BaseException:
        handle.close()
        raise
    try:
        with handle:
            checked = handle.read(size + 1)  # one more: a file grown since fstat fails the hash
        if hashlib.sha256(checked).hexdigest() != sha256:
            raise _corrupt(job_id, frame, sha256)
    except BaseException:
        if budget is not None:
            budget.give(size)
        raise
    if budget is not None and len(checked) != size:
        budget.give(size - len(checked))  # shrank since fstat, and hashes right all the same
    return OpenFrame(
        job_id=job_id,
        frame=frame,
        sha256=sha256,
        size=len(checked),
        mode=mode,
        _handle=None,
        _checked=checked,
        _budget=budget,
    )


def _open_file(path: Path, *, job_id: str, frame: int) -> BinaryIO:
    try:
        return path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise FrameMissingError(
            f"frame {frame} of job {job_id} is missing from storage (expected {path}); "
            "render it again",
            job_id=job_id,
            frame=frame,
        ) from None


class FrameStorage:
    def __init__(self, root: Path, *, max_frame_bytes: int) -> None:
        self.root = root
        self.max_frame_bytes = max_frame_bytes
        self.held = HeldBytes()
        """Memory for checked frames served from the bytes their check read."""
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_name: str, job_id: str) -> Path:
        return self.root / f"{safe_name(job_name)}-{job_id}"

    def frame_path(self, job_dir: Path, file_name: str) -> Path:
        """Where a frame's file goes; the name must come from :func:`stored_name`."""
        return _in_job_dir(job_dir, file_name)

    async def write_frame(
        self,
        job_dir: Path,
        file_name: str,
        chunks: AsyncIterable[bytes],
        *,
        expected_sha256: str | None,
    ) -> tuple[str, int]:
        """Write one file of a frame atomically; returns (sha256, size).

        The name must come from :func:`stored_name` (or :func:`frame_file_name`).
        """
        dest = _in_job_dir(job_dir, file_name)
        return await write_atomic(
            dest, chunks, expected_sha256=expected_sha256, max_bytes=self.max_frame_bytes
        )

    async def open_frame(
        self, job_dir: Path, file_name: str, *, job_id: str, frame: int, sha256: str
    ) -> OpenFrame:
        """Open a recorded frame after checking its bytes against ``sha256``.

        Raises :class:`FrameMissingError` when the file is gone and
        :class:`FrameCorruptError` when it no longer hashes to ``sha256``.
        """
        path = _in_job_dir(job_dir, file_name)
        return await asyncio.to_thread(
            _open_checked, path, job_id=job_id, frame=frame, sha256=sha256, held=self.held
        )
