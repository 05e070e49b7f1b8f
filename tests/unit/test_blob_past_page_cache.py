"""A recorded blob stream written past the page cache (``O_DIRECT``): whole aligned blocks
go direct, the unaligned head and tail through the page cache, and a filesystem that
refuses direct writes gets every byte the ordinary way."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from federation.blob_append import DIRECT_ALIGN, DIRECT_MIN_BYTES, PartialBlob, StreamAppender
from federation.blob_receiver import ResumableReceiver

DATA = os.urandom(3 * 1024 * 1024 + 1234)
BLOCK = 100_003  # received blocks never fall on the alignment


def _aligned(count: int) -> int:
    return count - count % DIRECT_ALIGN


async def _append(
    partial: PartialBlob, offset: int, data: bytes, *, threaded: bool, recorded: bool = True
) -> StreamAppender:
    """Stream ``data`` from ``offset`` as the listener's thread (``write_here``) or the
    aiohttp route (``write``) does."""
    digest = hashlib.sha256(DATA[:offset]) if offset == 0 else None
    appender = StreamAppender(partial, offset, digest, recorded=recorded, direct=True)
    async with appender:
        for start in range(0, len(data), BLOCK):
            if threaded:
                appender.write_here(memoryview(data[start : start + BLOCK]))
            else:
                await appender.write(data[start : start + BLOCK])
        if threaded:
            appender.finish_here()
    return appender


@pytest.fixture
def partial(tmp_path: Path) -> PartialBlob:
    return PartialBlob(tmp_path, "ab" * 32)


def _after_reboot(partial: PartialBlob) -> int:
    return PartialBlob(partial.data.parent, "ab" * 32, boot_id="another-boot").offset()


@pytest.mark.parametrize("threaded", [True, False], ids=["listener-thread", "loop"])
async def test_a_recorded_stream_writes_its_whole_blocks_past_the_page_cache(
    partial: PartialBlob, threaded: bool
) -> None:
    appender = await _append(partial, 0, DATA, threaded=threaded)

    assert appender.direct_bytes == _aligned(len(DATA))  # only the last partial block is cached
    assert appender.written == len(DATA)
    assert partial.data.read_bytes() == DATA
    assert appender.digest is not None
    assert appender.digest.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert _after_reboot(partial) == len(DATA)  # every byte synced and recorded


@pytest.mark.parametrize("threaded", [True, False], ids=["listener-thread", "loop"])
async def test_a_stream_resumed_at_an_unaligned_offset_goes_direct_from_the_next_block(
    partial: PartialBlob, threaded: bool
) -> None:
    first = await _append(partial, 0, DATA[:5000], threaded=threaded)
    assert first.direct_bytes == DIRECT_ALIGN and partial.offset() == 5000

    second = await _append(partial, 5000, DATA[5000:], threaded=threaded)

    head = 2 * DIRECT_ALIGN - 5000  # through the page cache up to offset 8192
    assert second.direct_bytes == _aligned(len(DATA) - 5000 - head)
    assert second.written == len(DATA)
    assert partial.data.read_bytes() == DATA
    assert _after_reboot(partial) == len(DATA)


async def test_a_cut_stream_keeps_its_last_partial_block(partial: PartialBlob) -> None:
    """The bytes held for the next aligned block reach the file when the stream breaks."""
    cut = 3 * BLOCK
    appender = StreamAppender(partial, 0, hashlib.sha256(), recorded=True, direct=True)
    with pytest.raises(ConnectionResetError):
        async with appender:
            for start in range(0, cut, BLOCK):
                appender.write_here(memoryview(DATA[start : start + BLOCK]))
            raise ConnectionResetError("the sender went away")

    assert appender.written == cut and appender.intact
    assert partial.data.read_bytes() == DATA[:cut]
    assert _after_reboot(partial) == cut
    assert appender.digest is not None
    assert appender.digest.hexdigest() == hashlib.sha256(DATA[:cut]).hexdigest()


async def test_a_small_blob_sent_whole_stays_in_the_page_cache(partial: PartialBlob) -> None:
    appender = await _append(partial, 0, DATA[:300_000], threaded=True, recorded=False)
    assert appender.direct_bytes == 0
    assert partial.data.read_bytes() == DATA[:300_000]


async def _commit(sha256: str, path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("size", "direct"), [(DIRECT_MIN_BYTES, True), (DIRECT_MIN_BYTES - 1, False)]
)
async def test_the_receiver_writes_only_large_streams_past_the_page_cache(
    tmp_path: Path, size: int, direct: bool
) -> None:
    """Smaller streams cost about as much in block allocation as they would save."""
    receiver = ResumableReceiver(tmp_path, _commit)
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    async with receiver.appending(sha, 0, total=size) as appender:
        await appender.write(data)
    assert (appender.direct_bytes > 0) is direct
    assert receiver.partial_path(sha).read_bytes() == data


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


@pytest.mark.parametrize("threaded", [True, False], ids=["listener-thread", "loop"])
async def test_a_filesystem_that_refuses_direct_writes_gets_them_through_the_cache(
    partial: PartialBlob, monkeypatch: pytest.MonkeyPatch, threaded: bool
) -> None:
    pwrite = os.pwrite
    refused = []

    def refusing(fd: int, data: memoryview, offset: int) -> int:
        if _is_direct(fd):
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refusing)
    appender = await _append(partial, 0, DATA, threaded=threaded)

    assert refused == [0]  # tried once, then never again
    assert appender.direct_bytes == 0
    assert partial.data.read_bytes() == DATA
    assert _after_reboot(partial) == len(DATA)


async def test_a_filesystem_without_o_direct_opens_are_written_as_before(
    partial: PartialBlob, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Path, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    appender = await _append(partial, 0, DATA, threaded=True)

    assert appender.direct_bytes == 0
    assert partial.data.read_bytes() == DATA


async def test_another_write_error_ends_the_stream(
    partial: PartialBlob, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a refusal of O_DIRECT itself falls back; a full disk fails the stream."""
    pwrite = os.pwrite

    def full(fd: int, data: memoryview, offset: int) -> int:
        if _is_direct(fd) and offset >= 2 * BLOCK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError, match="No space"):
        await _append(partial, 0, DATA, threaded=True)
