"""Start-up deletes the temp files of writes a killed agent cut short, and nothing else."""

from __future__ import annotations

from pathlib import Path

from site_agent.files import sweep_temp_files


def test_only_write_temp_files_in_the_named_folders_go(tmp_path: Path) -> None:
    job = tmp_path / "shot-abc123"
    job.mkdir()
    stale = [
        job / ".shot_0013.png.15245-818ec64b-102.part",
        job / ".shot_0014.png.1-00ff00ff-0.part",
    ]
    kept = [
        job / "shot_0013.png",  # a recorded frame
        job / ".notes.part",  # not a name write_atomic makes
        job / "shot_0013.png.15245-818ec64b-102.part",  # not hidden: not ours
        tmp_path / ".top.png.1-00ff00ff-0.part",  # outside the folders named
    ]
    for path in stale + kept:
        path.write_bytes(b"x")

    assert sweep_temp_files(tmp_path, "*") == 2

    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_blob_folders_are_swept_but_resumable_uploads_are_kept(tmp_path: Path) -> None:
    shard = tmp_path / "blobs" / "ab"
    partial = tmp_path / "partial"
    shard.mkdir(parents=True)
    partial.mkdir()
    stale = shard / ".cdef.77-0a0b0c0d-3.part"
    upload = partial / ".cdef.77-0a0b0c0d-4.part"  # a resumable federation upload
    stale.write_bytes(b"x")
    upload.write_bytes(b"x")

    assert sweep_temp_files(tmp_path, "blobs/*") == 1
    assert not stale.exists() and upload.exists()
