"""A frame file fetched from a peer, written and hashed by the thread that receives it.

The origin's loop used to hash and write every block of a frame it fetched
(``write_atomic``), which was most of its CPU while frames came back. A
:class:`FrameTarget` is written by whichever thread reads the body (the
connection's worker thread for an uncapped peer, the loop for a capped one):
each block is hashed and written to a temp file beside the frame there, in C
with the GIL released. :meth:`FrameTarget.commit`, on the loop, checks the hash
against the one the remote reported and hands the temp file to the storage's
group sync, which makes it durable and renames it into place: a frame is under
its name only once durable, and a file that does not hash as reported is never
under its name at all.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import BinaryIO

from site_agent.files import (
    StorageWriteError,
    TooLargeError,
    check_digest,
    discard_temp,
    persist_temp,
    storage_error,
    temp_path,
)
from site_agent.group_sync import open_temp

__all__ = ["FrameTarget"]


class FrameTarget:
    """``dest`` written atomically from blocks handed to :meth:`write` (one thread at a time),
    made durable by :meth:`commit` only when the bytes hash to ``expected_sha256``."""

    def __init__(self, dest: Path, *, expected_sha256: str, max_bytes: int) -> None:
        self.dest = dest
        self.expected_sha256 = expected_sha256
        self.max_bytes = max_bytes
        self.size = 0
        self._tmp = temp_path(dest)
        self._hash = hashlib.sha256()
        self._fh: BinaryIO | None = None
        self._dropped = False
        self._lock = threading.Lock()  # discard() may come from the loop while a thread writes

    def write(self, block: bytes | memoryview) -> None:
        """Hash and append ``block`` (in the thread that read it); TooLargeError past
        ``max_bytes``, StorageWriteError when this site's disk fails."""
        with self._lock:
            if self._dropped:  # a thread still reading after the fetch gave up
                raise StorageWriteError(f"the fetch of {self.dest.name} was abandoned")
            self.size += len(block)
            if self.size > self.max_bytes:
                raise TooLargeError(f"the frame exceeds the limit of {self.max_bytes} bytes")
            self._hash.update(block)
            try:
                if self._fh is None:
                    self._fh = open_temp(self._tmp)
                self._fh.write(block)
            except OSError as exc:
                raise storage_error(self.dest, exc) from exc

    def discard(self) -> None:
        """Drop what was written (a failed or abandoned fetch); ``dest`` is untouched."""
        with self._lock:
            fh, self._fh, self._dropped = self._fh, None, True
            discard_temp(fh, self._tmp)

    async def commit(self) -> tuple[str, int]:
        """Verify the hash and make the file durable under ``dest``; (sha256, size).

        HashMismatchError (nothing stored) or StorageWriteError.
        """
        digest = self._hash.hexdigest()
        try:
            check_digest(digest, self.size, self.expected_sha256)
            with self._lock:
                fh, self._fh = self._fh, None
            if fh is None:  # an empty file
                try:
                    fh = open_temp(self._tmp)
                except OSError as exc:
                    raise storage_error(self.dest, exc) from exc
            await persist_temp(fh, self._tmp, self.dest)
        except BaseException:
            self.discard()
            raise
        return digest, self.size
