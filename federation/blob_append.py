"""A partial blob on disk and the stream appended to it, written and hashed off the event loop.

A blob upload streams the rest of the blob in one request (see
:mod:`federation.transfer`); the loop only hands the received blocks over, in
batches, to a worker thread that writes them, updates the running sha256 while
each block is still in the CPU cache, and every :data:`CHECKPOINT_BYTES` calls
``fdatasync`` and then notes the synced length in the blob's **durable-offset
record** (``<sha256>.durable`` beside ``<sha256>.part``). The loop keeps
receiving the next batch meanwhile: nothing waits for the disk unless the writer
falls more than :data:`AHEAD_BYTES` behind.

Which offset a partial blob resumes from (:meth:`PartialBlob.offset`):

- While this machine stays up, every byte ``write`` accepted is in the page
  cache, which outlives a killed agent; so the record also names the boot it was
  written in, and within the same boot the file's length is the offset.
- After a reboot, only what was synced is known to be there: the recorded
  offset (the record is written only after the data it covers was synced, so any
  version of it that reached the disk is safe). Longer data is cut back to it.
- No readable record: 0 (the partial is started over).

A small blob sent whole in one request (from offset 0, at most
:data:`~federation.transfer.DIRECT_MAX` bytes: ``recorded=False``) gets no
record: it is synced once, at its end, before it is answered, and a cut one is
simply started over (its sender sends small blobs whole again rather than
asking where to resume). That saves opening, writing and removing a second file
per blob. The files are opened by the first write, in the thread that writes
(no hop to a thread just to open them).

A stream that ends early (a cut connection) still writes and syncs every block
that arrived, so the sender resumes from there; the blob itself is recorded
only after the whole of it is synced and hashes to its name
(:meth:`federation.blob_receiver.ResumableReceiver.finish`).

**Past the page cache.** A stream that brings at least :data:`DIRECT_MIN_BYTES`
is written with ``O_DIRECT`` where the filesystem takes it (:class:`DirectWrites`):
its bytes go from one reused, page-aligned buffer straight to the disk, which
they must reach before the blob is answered anyway. That spares the copy into
the page cache, taking and dirtying fresh cache pages, and their write-back at
each sync, which together cost the receiving site more CPU than the decryption
and the hash on the 2-core VM (docs/benchmarks.md, "Ninth pass"). Only whole
:data:`DIRECT_ALIGN` blocks go that way: the bytes before the stream's first
aligned offset (a resumed stream) and its last partial block go through the
page cache. A filesystem that refuses ``O_DIRECT`` (or its alignment) gets
every byte through the page cache, as before. A killed agent loses at most the
partial block held in the buffer: the file's length is still what it holds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import mmap
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from federation.transfer import CHUNK_SIZE

__all__ = [
    "AHEAD_BYTES",
    "BATCH_BYTES",
    "CHECKPOINT_BYTES",
    "DIRECT_ALIGN",
    "DIRECT_MIN_BYTES",
    "DirectWrites",
    "PartialBlob",
    "StreamAppender",
    "write_all",
]

log = logging.getLogger(__name__)

CHECKPOINT_BYTES = 16 * CHUNK_SIZE
"""Synced and recorded at least this often: a crash of the machine (not of the agent, whose
writes the page cache or the disk keep) loses at most 64 MiB of a stream, which its sender
sends again. Each sync of a stream costs a journal commit and a flush of the disk's cache:
syncing every 2 MiB rather than every 32 cost large blobs about 15 % of their rate and
0.35 CPU s/GiB at the receiving site (docs/benchmarks.md, "Ninth pass")."""
BATCH_BYTES = 256 * 1024
"""Received bytes handed to the writer thread at once (one thread hand-off per batch)."""
AHEAD_BYTES = 512 * 1024
"""Received but not yet written bytes before the reader waits for the writer (then TCP
holds the sender back)."""

DIRECT_MIN_BYTES = 16 * 1024 * 1024
"""A stream expected to bring at least this many bytes is written past the page cache.
Below it the direct writes' block allocation costs about what they save (measured: a
wash for 8 MiB blobs; for 32 MiB ones about 0.5 CPU s/GiB less at the receiving site,
for 256 MiB ones about 0.8)."""
DIRECT_ALIGN = 4096
"""What ``O_DIRECT`` writes are aligned to (file offset, length, buffer address): the
largest logical block size of common disks, so 512-byte ones take it too."""
STAGE_BYTES = 1024 * 1024 + DIRECT_ALIGN
"""The aligned buffer a direct stream's blocks are gathered in (a received block and the
partial block left from the one before fit in it whole: one write per block)."""
_POOLED_STAGES = 8
"""Buffers kept for the next streams (fresh memory costs page faults on its first use)."""
_RECORD_WIDTH = 64
_SYNCS = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="blob-sync")
"""Syncs of streams written by their own threads (``write_here``)."""
Buffer = bytes | bytearray | memoryview


def _boot_id() -> str:
    """This boot's id (Linux), or "" where unknown: then only synced bytes are trusted."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()


class PartialBlob:
    """The files of one partial blob: ``<sha256>.part`` (data) and ``<sha256>.durable``."""

    def __init__(self, directory: Path, sha256: str, *, boot_id: str = BOOT_ID) -> None:
        self.data = directory / f"{sha256}.part"
        self.record = directory / f"{sha256}.durable"
        self.boot_id = boot_id
        self.bare = False
        """Known to have no record file (a record is made after its data file and removed
        before it, so no data file means no record either)."""

    def offset(self) -> int:
        """Bytes held that a resumed stream may build on (module docstring); 0 when none."""
        try:
            size = os.stat(self.data).st_size
        except FileNotFoundError:
            self.bare = True
            return 0
        booted, synced = self._read_record()
        if booted and booted == self.boot_id:
            return size
        return min(size, synced)

    def discard(self) -> None:
        if not self.bare:
            self.drop_record()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.data)

    def drop_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record)
        self.bare = True

    def _read_record(self) -> tuple[str, int]:
        try:
            text = self.record.read_bytes()[:_RECORD_WIDTH].decode("ascii")
            booted, synced = text.split()
            return booted.strip("-"), int(synced)
        except (OSError, ValueError, UnicodeDecodeError):
            return "", 0


def record_line(boot_id: str, synced: int) -> bytes:
    """The record's fixed-width content: rewritten in place, one sector, never torn in half."""
    line = f"{boot_id or '-'} {synced}".encode("ascii")
    return line.ljust(_RECORD_WIDTH - 1) + b"\n"


class StreamAppender:
    """Appends a stream of blocks to a partial blob at ``offset``; see the module docstring.

    ``digest`` is the running sha256 of the first ``offset`` bytes, or None when it is not
    known (the blob is then hashed from disk at the end). ``recorded``: whether synced
    offsets are recorded (False: a small blob sent whole, see the module docstring).
    ``direct``: a recorded stream's whole blocks are written past the page cache
    (:class:`DirectWrites`; the receiver asks for it from :data:`DIRECT_MIN_BYTES`). Use
    as ``async with``; on exit, normal or not, every block given to :meth:`write` is
    written and synced first.

    Two worker threads at a time at most: one writes and hashes a batch while the other
    syncs what was written before it (``fdatasync`` waits for the disk; the page cache
    takes the next writes meanwhile). Writing waits for a sync only when the synced
    offset would otherwise fall a whole :data:`CHECKPOINT_BYTES` behind.
    """

    def __init__(
        self,
        partial: PartialBlob,
        offset: int,
        digest: Any | None,
        *,
        recorded: bool = True,
        direct: bool = False,
    ) -> None:
        self.partial = partial
        self.recorded = recorded
        self.direct = direct and recorded
        self.start = offset
        self.written = offset  # set by the writing thread
        self.synced = offset  # set by the syncing thread
        self.digest = digest
        self._batch: list[bytes] = []
        self._batched = 0
        self._writing: asyncio.Future[None] | None = None
        self._syncing: asyncio.Future[None] | None = None
        self._fd = -1
        self._record_fd = -1
        self._opened = False  # the files are opened once, by the first write
        self._thread_sync: concurrent.futures.Future[None] | None = None
        self._direct: DirectWrites | None = None
        self.direct_bytes = 0
        """Bytes of this stream written past the page cache (``O_DIRECT``), once closed."""
        self.intact = True
        """False once a write failed part way: ``digest`` no longer matches the file."""

    async def __aenter__(self) -> StreamAppender:
        return self  # the files are opened by the first write, in its thread

    async def __aexit__(self, *exc_info: object) -> None:
        if self._finished():
            return  # finish_here did it all in the writing thread: no task, no hop
        # Shielded: a cancelled request must still leave its bytes synced and recorded, and
        # its file descriptors closed, before the next request for the blob starts.
        await asyncio.shield(self._close())

    def _finished(self) -> bool:
        """Whether every byte is written and synced and the files are closed."""
        idle = self._writing is None and self._syncing is None and self._thread_sync is None
        closed = self._fd < 0 and self._record_fd < 0 and (self._opened or self.start > 0)
        closed = closed and self._direct is None
        return idle and closed and not self._batch and self.written == self.synced

    @property
    def appended(self) -> int:
        """Bytes of this stream written to the partial blob (all synced once closed)."""
        return self.written - self.start

    async def write(self, block: bytes) -> None:
        """Queue ``block``; hands a batch to the writer when it is free or far behind."""
        self._batch.append(block)
        self._batched += len(block)
        if self._batched < BATCH_BYTES:
            return
        if self._writing is not None and not self._writing.done():
            if self._batched < AHEAD_BYTES:
                return  # keep receiving into the batch while the writer is busy
            await asyncio.shield(self._writing)
        await self._hand_over()

    def write_here(self, block: Buffer) -> None:
        """Write and hash ``block`` in the calling thread, one that owns the stream instead of
        the loop (:mod:`federation.blob_listener`); syncs in another thread as ``write``
        does. Not mixed with ``write``; the ``async with`` exit waits for it."""
        self._write([block])
        syncing = self._thread_sync
        if syncing is not None:
            if not syncing.done() and self.written - self.synced < CHECKPOINT_BYTES:
                return
            self._thread_sync = None
            syncing.result()  # a failed sync raises here: the stream ends
        if self.written - self.synced >= CHECKPOINT_BYTES // 2:
            self._thread_sync = _SYNCS.submit(self._sync, self.written)

    def finish_here(self) -> None:
        """After the last :meth:`write_here`, in the same thread: sync what is written and
        close the files, so that the ``async with`` exit has nothing left to hand to a
        thread. After a failure the exit still syncs and closes."""
        syncing, self._thread_sync = self._thread_sync, None
        if syncing is not None:
            syncing.result()
        self._sync_all()
        self._close_files()

    async def _hand_over(self) -> None:
        if self._writing is not None:
            # Shielded, and forgotten only once done: a cancelled request must not leave a
            # write running that _close would not wait for.
            await _settled(self._writing)  # a failed write raises here: the stream ends
            self._writing = None
        await self._checkpoint()
        batch, self._batch, self._batched = self._batch, [], 0
        if batch:
            self._writing = _in_thread(self._write, batch)

    async def _checkpoint(self) -> None:
        """Start a sync of what is written every half checkpoint; wait for the running one
        only when the synced offset is a whole checkpoint behind."""
        if self._syncing is not None:
            if not self._syncing.done() and self.written - self.synced < CHECKPOINT_BYTES:
                return
            await _settled(self._syncing)  # a failed sync raises here: the stream ends
            self._syncing = None
        if self.written - self.synced >= CHECKPOINT_BYTES // 2:
            self._syncing = _in_thread(self._sync, self.written)

    async def _close(self) -> None:
        if self._thread_sync is not None:
            self._syncing = asyncio.wrap_future(self._thread_sync)
            self._thread_sync = None
        try:
            await self._hand_over()
            for running in (self._writing, self._syncing):
                if running is not None:
                    await running
            self._writing = self._syncing = None
            held = self._direct is not None and self._direct.staged
            if self.written > self.synced or held or (not self._opened and self.start == 0):
                await asyncio.to_thread(self._sync_all)
        finally:
            for running in (self._writing, self._syncing):  # after a failure: let them end
                if running is not None:
                    with contextlib.suppress(Exception):
                        await running
            if self._fd >= 0 or self._record_fd >= 0:
                await asyncio.to_thread(self._close_files)

    # --- in worker threads -----------------------------------------------------------

    def _open(self) -> None:
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._opened = True
        if not self.recorded:
            # From offset 0 without a record: whatever an earlier stream left is dropped.
            self._fd = os.open(self.partial.data, flags | os.O_TRUNC, 0o644)
            if not self.partial.bare:
                self.partial.drop_record()  # would vouch for bytes this stream replaces
            return
        self._fd = os.open(self.partial.data, flags, 0o644)
        self.partial.bare = False
        try:
            # Bytes beyond the offset are not known to be good (a reboot since): cut back.
            if os.fstat(self._fd).st_size != self.start:
                os.ftruncate(self._fd, self.start)
            os.lseek(self._fd, self.start, os.SEEK_SET)
            self._record_fd = os.open(self.partial.record, flags, 0o644)
            os.pwrite(self._record_fd, record_line(self.partial.boot_id, self.start), 0)
            if self.direct:
                self._direct = DirectWrites.open(self.partial.data, self.start)
        except BaseException:
            self._close_files()
            raise

    def _sync_all(self) -> None:
        """Sync every written byte; an empty stream from offset 0 still leaves its (empty)
        file: an empty blob."""
        if not self._opened and self.start == 0:
            self._open()
        if self._direct is not None and self._direct.staged:
            try:
                self.written += self._direct.flush(self._fd)
            except BaseException:
                self.intact = False
                raise
        self._sync(self.written)

    def _write(self, batch: list[Buffer]) -> None:
        digest = self.digest
        try:
            if not self._opened:
                self._open()
            for block in batch:
                view = memoryview(block)
                if self._direct is None:
                    write_all(self._fd, view)
                    self.written += len(view)
                else:
                    self.written += self._direct.write(view, self._fd)
                if digest is not None:
                    digest.update(view)  # right after the write: the block is still in cache
        except BaseException:
            self.intact = False
            raise

    def _sync(self, upto: int) -> None:
        """Sync the first ``upto`` bytes (written before this call), then record them."""
        if upto <= self.synced:
            return
        os.fdatasync(self._fd)
        if self.recorded:
            # Only after the data is synced: any version of the record on disk is then safe.
            os.pwrite(self._record_fd, record_line(self.partial.boot_id, upto), 0)
        self.synced = upto

    def _close_files(self) -> None:
        direct, self._direct = self._direct, None
        if direct is not None:
            self.direct_bytes = direct.direct
            direct.close()
        for fd in (self._fd, self._record_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._record_fd = -1


class DirectWrites:
    """The bytes of a recorded stream written past the page cache (module docstring).

    :meth:`write` gathers the stream's blocks in a page-aligned buffer and writes every
    whole :data:`DIRECT_ALIGN` block of it through the ``O_DIRECT`` descriptor; the
    bytes before the first aligned offset, and the partial block left at the end
    (:meth:`flush`), go through the page cache (``cached_fd``). Every write names its
    offset. When the filesystem refuses the first direct write (``EINVAL``), that block
    and every later one go through the page cache instead.
    """

    def __init__(self, fd: int, offset: int, stage: mmap.mmap) -> None:
        self.fd = fd
        self.head = (-offset) % DIRECT_ALIGN
        """Bytes still to write through the page cache before the first aligned offset."""
        self.offset = offset + self.head
        """The file offset of the buffer's first byte (aligned)."""
        self.staged = 0
        """Bytes held in the buffer, not yet in the file (less than one aligned block)."""
        self.direct = 0
        """Bytes written past the page cache."""
        self.refused = False
        self._stage = stage
        self._view = memoryview(stage)

    @classmethod
    def open(cls, path: Path, offset: int) -> DirectWrites | None:
        """Direct writes to ``path`` from ``offset``, or None where this system or the
        filesystem has no ``O_DIRECT``."""
        direct = getattr(os, "O_DIRECT", 0)
        if not direct:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | direct | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            return None
        return cls(fd, offset, _STAGES.take())

    def write(self, view: memoryview, cached_fd: int) -> int:
        """Write ``view``, the stream's next bytes; how many of the stream's bytes reached
        the file (a partial block stays held until more arrive or :meth:`flush`)."""
        done = 0
        if self.head:
            count = min(self.head, len(view))
            write_all(cached_fd, view[:count], self.offset - self.head)
            self.head -= count
            done, view = count, view[count:]
        while view:
            take = min(len(view), len(self._view) - self.staged)
            self._view[self.staged : self.staged + take] = view[:take]
            self.staged += take
            view = view[take:]
            done += self._write_aligned(cached_fd)
        return done

    def flush(self, cached_fd: int) -> int:
        """Write the partial block held through the page cache; the bytes written."""
        count, self.staged = self.staged, 0
        if count:
            write_all(cached_fd, self._view[:count], self.offset)
            self.head = (-count) % DIRECT_ALIGN  # should the stream go on after all
            self.offset += count + self.head
        return count

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self._view.release()
        _STAGES.give(self._stage)

    def _write_aligned(self, cached_fd: int) -> int:
        aligned = self.staged - self.staged % DIRECT_ALIGN
        if not aligned:
            return 0
        block = self._view[:aligned]
        if self.refused:
            write_all(cached_fd, block, self.offset)
        else:
            try:
                write_all(self.fd, block, self.offset)
            except OSError as exc:
                # A refused direct write writes nothing: the same bytes go the other way.
                if exc.errno != errno.EINVAL or self.direct:
                    raise
                log.info("O_DIRECT writes refused here (%s); writing through the page cache", exc)
                self.refused = True
                write_all(cached_fd, block, self.offset)
            else:
                self.direct += aligned
        rest = self.staged - aligned
        self._view[:rest] = self._view[aligned : self.staged]
        self.staged = rest
        self.offset += aligned
        return aligned


class _Stages:
    """Page-aligned buffers of :data:`STAGE_BYTES` for direct writes, kept for reuse."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, STAGE_BYTES)

    def give(self, stage: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < _POOLED_STAGES:
                self._free.append(stage)
                return
        stage.close()


_STAGES = _Stages()


def write_all(fd: int, view: memoryview, offset: int | None = None) -> None:
    """Write all of ``view`` at the descriptor's position, or at ``offset``."""
    done = 0
    while done < len(view):
        if offset is None:
            done += os.write(fd, view[done:])
        else:
            done += os.pwrite(fd, view[done:], offset + done)


def _in_thread(func: Callable[..., None], *args: Any) -> asyncio.Future[None]:
    """``func(*args)`` in the loop's default executor: a bare future, no task around it
    (one hand-off per batch; ``asyncio.to_thread`` adds a task and a loop turn)."""
    return asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _settled(running: asyncio.Future[None]) -> None:
    """Wait for a thread's work. Shielded: a cancelled request must not mark it cancelled
    while the thread still runs, or ``_close`` would not wait for it."""
    if running.done():
        running.result()
    else:
        await asyncio.shield(running)
