"""ResumableReceiver: partial blobs on disk, offsets, verification."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from federation.blob_append import PartialBlob, StreamAppender
from federation.blob_receiver import ResumableReceiver
from federation.errors import (
    BlobBusyError,
    BlobTooLargeError,
    OffsetMismatchError,
    TamperedBlobError,
)
from federation.transfer import CHUNK_SIZE

CHECKPOINT = CHUNK_SIZE
"""Blob streams are synced and recorded every chunk here (``chunk_checkpoints``)."""
pytestmark = pytest.mark.usefixtures("chunk_checkpoints")

DATA = bytes(range(256)) * 40
SHA = hashlib.sha256(DATA).hexdigest()


class Store:
    """A stand-in asset store that takes ownership of committed files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()

    async def commit(self, sha256: str, path: Path) -> None:
        os.replace(path, self.root / sha256)

    async def has(self, sha256: str) -> bool:
        return (self.root / sha256).exists()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "blobs")


@pytest.fixture
def receiver(tmp_path: Path, store: Store) -> ResumableReceiver:
    return ResumableReceiver(tmp_path / "partial", store.commit, is_stored=store.has)


async def test_append_in_chunks_then_finish_commits(
    receiver: ResumableReceiver, store: Store
) -> None:
    assert receiver.offset(SHA) == 0
    assert await receiver.append(SHA, 0, DATA[:4000]) == 4000
    assert receiver.offset(SHA) == 4000
    assert await receiver.append(SHA, 4000, DATA[4000:]) == len(DATA)

    await receiver.finish(SHA, len(DATA))

    assert (store.root / SHA).read_bytes() == DATA
    assert not receiver.partial_path(SHA).exists()
    assert await receiver.is_complete(SHA)


async def test_append_at_the_wrong_offset_reports_the_current_one(
    receiver: ResumableReceiver,
) -> None:
    await receiver.append(SHA, 0, DATA[:100])

    with pytest.raises(OffsetMismatchError, match="resume from offset 100") as info:
        await receiver.append(SHA, 0, DATA[:100])

    assert info.value.current == 100
    assert receiver.offset(SHA) == 100


async def test_tampered_content_is_discarded(receiver: ResumableReceiver, store: Store) -> None:
    tampered = b"X" + DATA[1:]
    await receiver.append(SHA, 0, tampered)

    with pytest.raises(TamperedBlobError, match="discarded") as info:
        await receiver.finish(SHA, len(DATA))

    assert info.value.actual == hashlib.sha256(tampered).hexdigest()
    assert receiver.offset(SHA) == 0
    assert not any(store.root.iterdir())


async def test_finish_before_every_byte_arrived(receiver: ResumableReceiver) -> None:
    await receiver.append(SHA, 0, DATA[:10])
    with pytest.raises(OffsetMismatchError):
        await receiver.finish(SHA, len(DATA))
    assert receiver.offset(SHA) == 10


async def test_blob_size_limit(tmp_path: Path, store: Store) -> None:
    receiver = ResumableReceiver(tmp_path / "partial", store.commit, max_blob_size=1000)
    with pytest.raises(BlobTooLargeError, match="1000 bytes"):
        await receiver.append(SHA, 0, DATA[:1001])
    assert receiver.offset(SHA) == 0


async def test_failed_commit_keeps_the_partial_for_a_retry(tmp_path: Path) -> None:
    async def failing_commit(sha256: str, path: Path) -> None:
        raise OSError("disk full")

    receiver = ResumableReceiver(tmp_path / "partial", failing_commit)
    await receiver.append(SHA, 0, DATA)
    with pytest.raises(OSError, match="disk full"):
        await receiver.finish(SHA, len(DATA))
    assert receiver.offset(SHA) == len(DATA)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "abc"])
def test_blob_ids_must_be_sha256(receiver: ResumableReceiver, bad: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        receiver.offset(bad)


# --- the durable-offset record ----------------------------------------------------------

BIG = os.urandom(3 * CHECKPOINT + 1000)
BIG_SHA = hashlib.sha256(BIG).hexdigest()


async def _stream(receiver: ResumableReceiver, sha: str, offset: int, data: bytes) -> int:
    """Append ``data`` as a request's body arrives: in 64 KiB blocks."""
    async with receiver.appending(sha, offset) as appender:
        for start in range(0, len(data), 64 * 1024):
            await appender.write(data[start : start + 64 * 1024])
    return appender.written


def _after_reboot(receiver: ResumableReceiver, sha: str) -> PartialBlob:
    return PartialBlob(receiver.partial_dir, sha, boot_id="another-boot")


async def test_a_stream_is_synced_and_recorded_at_checkpoints(
    receiver: ResumableReceiver, store: Store
) -> None:
    cut = 2 * CHECKPOINT + 12345  # a stream that ended between two checkpoints
    assert await _stream(receiver, BIG_SHA, 0, BIG[:cut]) == cut

    # In this boot every written byte is held (the page cache outlives the agent) ...
    assert receiver.offset(BIG_SHA) == cut
    # ... and the end of the stream was synced and recorded too, so a reboot keeps it.
    assert _after_reboot(receiver, BIG_SHA).offset() == cut

    assert await _stream(receiver, BIG_SHA, cut, BIG[cut:]) == len(BIG)
    await receiver.finish(BIG_SHA, len(BIG))
    assert (store.root / BIG_SHA).read_bytes() == BIG
    assert list(receiver.partial_dir.iterdir()) == []


async def test_after_a_reboot_unsynced_bytes_are_cut_back_to_the_record(
    tmp_path: Path, store: Store
) -> None:
    """Bytes past the recorded offset may not have reached the disk before a crash of the
    machine: a receiver booted since resumes from the record and truncates the rest."""
    first = ResumableReceiver(tmp_path / "partial", store.commit, is_stored=store.has)
    await _stream(first, BIG_SHA, 0, BIG[:CHECKPOINT])
    partial = first.partial(BIG_SHA)
    with partial.data.open("ab") as handle:  # written, never synced nor recorded
        handle.write(BIG[CHECKPOINT : CHECKPOINT + 5000])

    rebooted = ResumableReceiver(tmp_path / "partial", store.commit, is_stored=store.has)
    rebooted_partial = _after_reboot(rebooted, BIG_SHA)
    assert rebooted_partial.offset() == CHECKPOINT
    assert first.offset(BIG_SHA) == CHECKPOINT + 5000  # the same boot trusts the file

    # The sender, told the recorded offset, resumes there; the tail is replaced.
    appender = StreamAppender(rebooted_partial, CHECKPOINT, None)
    async with appender:
        await appender.write(BIG[CHECKPOINT:])
    assert partial.data.read_bytes() == BIG


@pytest.mark.parametrize("record", [None, b"", b"garbage\n", b"\0" * 64])
async def test_no_readable_record_means_start_over(
    receiver: ResumableReceiver, record: bytes | None
) -> None:
    await _stream(receiver, BIG_SHA, 0, BIG[:CHECKPOINT])
    partial = _after_reboot(receiver, BIG_SHA)
    if record is None:
        partial.record.unlink()
    else:
        partial.record.write_bytes(record)
    assert partial.offset() == 0


async def test_a_corrupted_partial_is_caught_by_the_hash_after_a_restart(
    tmp_path: Path, store: Store
) -> None:
    """A restarted receiver has no running hash: it hashes the file, and a partial blob
    damaged on disk is refused and discarded instead of recorded."""
    first = ResumableReceiver(tmp_path / "partial", store.commit, is_stored=store.has)
    half = len(BIG) // 2
    await _stream(first, BIG_SHA, 0, BIG[:half])
    with first.partial_path(BIG_SHA).open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"rot")

    restarted = ResumableReceiver(tmp_path / "partial", store.commit, is_stored=store.has)
    await _stream(restarted, BIG_SHA, half, BIG[half:])
    with pytest.raises(TamperedBlobError, match="discarded"):
        await restarted.finish(BIG_SHA, len(BIG))

    assert not await store.has(BIG_SHA)
    assert restarted.offset(BIG_SHA) == 0
    assert list(restarted.partial_dir.iterdir()) == []


async def test_a_second_stream_of_a_blob_waits_for_the_first(tmp_path: Path, store: Store) -> None:
    receiver = ResumableReceiver(
        tmp_path / "partial", store.commit, is_stored=store.has, busy_wait_s=0.05
    )
    async with receiver.appending(SHA, 0) as appender:
        await appender.write(DATA[:100])
        with pytest.raises(BlobBusyError, match="resume"):
            async with receiver.appending(SHA, 0):
                pass
    # Once the first ended, a stream from the wrong offset is told where to resume.
    with pytest.raises(OffsetMismatchError) as info:
        async with receiver.appending(SHA, 0):
            pass
    assert info.value.current == 100
