"""Content-addressed asset store: blobs named by sha256, verified on write.

Shared by local submissions, render-server downloads and federation transfers.
Layout: ``<root>/blobs/ab/cdef...``; a blob only appears under its name after its
bytes were hashed and matched.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable
from pathlib import Path

from .dir_sync import sync_folder
from .files import FileError, HashMismatchError, check_sha256, file_sha256, write_atomic


class AssetStore:
    def __init__(self, root: Path, *, max_blob_bytes: int) -> None:
        self.root = root
        self.max_blob_bytes = max_blob_bytes
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "partial").mkdir(parents=True, exist_ok=True)

    @property
    def partial_dir(self) -> Path:
        """Where resumable federation transfers keep incomplete blobs."""
        return self.root / "partial"

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "blobs" / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def missing(self, hashes: Iterable[str]) -> list[str]:
        """The hashes not stored yet, deduplicated, in first-seen order."""
        seen: dict[str, None] = {}
        for sha in hashes:
            if sha not in seen and not self.has(sha):
                seen[sha] = None
        return list(seen)

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    async def put(self, sha256: str, chunks: AsyncIterable[bytes]) -> int:
        """Store a blob from a byte stream, verifying its hash; returns its size."""
        dest = self.path_for(sha256)
        _, size = await write_atomic(
            dest, chunks, expected_sha256=sha256, max_bytes=self.max_blob_bytes
        )
        return size

    def adopt(self, sha256: str, path: Path, *, verified: bool = False) -> None:
        """Move a fully received (and synced) file into the store, verifying its hash unless
        the caller (e.g. the resumable receiver, which hashes as it receives) just did.

        On return the blob is durable under its name: its folder is synced after the
        rename (:func:`~site_agent.dir_sync.sync_folder`, shared with concurrent adopts
        into the same folder), so the caller may acknowledge it. Blocking: async callers
        run it in a worker thread."""
        dest = self.path_for(sha256)
        digest = sha256 if verified else file_sha256(path)
        if digest != sha256:
            path.unlink(missing_ok=True)
            raise HashMismatchError(f"blob hashes to {digest}, not {sha256}; it was discarded")
        try:
            os.replace(path, dest)
        except FileNotFoundError:
            # Its fan-out folder is made once, by the first blob that needs it (trying
            # first costs a failed rename once per folder instead of a mkdir per blob).
            if not path.exists():
                raise
            dest.parent.mkdir(parents=True, exist_ok=True)
            sync_folder(str(dest.parent.parent))  # the new folder's name
            os.replace(path, dest)
        sync_folder(str(dest.parent))

    def open_path(self, sha256: str) -> Path:
        path = self.path_for(sha256)
        if not path.is_file():
            raise FileError(f"blob {sha256} is not in the asset store")
        return path
