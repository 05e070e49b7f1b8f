"""Network storage: where rendered frames land and clients pick them up.

Layout: ``<root>/<job-name>-<job-id>/<name>_<frame:04d>.<ext>``, each written through
a temp file and a rename, so a reader never sees a half-written frame.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable
from pathlib import Path

from .files import write_atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(value: str, *, fallback: str = "job") -> str:
    """A file-system-safe version of a user-chosen name."""
    cleaned = _UNSAFE.sub("_", value).strip("._-")[:80]
    return cleaned or fallback


def frame_file_name(output_name: str, frame: int, ext: str) -> str:
    return f"{output_name}_{frame:04d}.{ext}"


class FrameStorage:
    def __init__(self, root: Path, *, max_frame_bytes: int) -> None:
        self.root = root
        self.max_frame_bytes = max_frame_bytes
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_name: str, job_id: str) -> Path:
        return self.root / f"{safe_name(job_name)}-{job_id}"

    async def write_frame(
        self,
        job_dir: Path,
        file_name: str,
        chunks: AsyncIterable[bytes],
        *,
        expected_sha256: str | None,
    ) -> tuple[str, int]:
        """Write one frame atomically; returns (sha256, size). The name must come from frame_file_name."""
        dest = job_dir / file_name
        if dest.parent != job_dir or "/" in file_name:
            raise ValueError(f"frame file name {file_name!r} must be a plain file name")
        return await write_atomic(
            dest, chunks, expected_sha256=expected_sha256, max_bytes=self.max_frame_bytes
        )
