"""Content hashes of files, as recorded in manifests, the asset store and frame records."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    """The lowercase hex sha256 of a file's bytes, read in 1 MiB blocks (any size fits in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()
