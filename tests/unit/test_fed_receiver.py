"""ResumableReceiver: partial blobs on disk, offsets, verification."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from federation.blob_receiver import ResumableReceiver
from federation.errors import BlobTooLargeError, OffsetMismatchError, TamperedBlobError

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
