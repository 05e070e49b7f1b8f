"""``spillway download ID DIR``: fetch a job's frames, hash-verified, several at once."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from spillway.client.errors import ClientError, FileConflict
from spillway.client.formatting import human_size
from spillway.client.records import Frame
from spillway.client.sync import Client

__all__ = ["cmd_download", "plan_download"]

# Answers about one frame that leave the others worth fetching, and what each means.
_BAD_FRAME = {
    "frame_missing": "missing from storage at the agent",
    "frame_corrupt": "damaged in storage at the agent (it no longer hashes as recorded)",
    "hash_mismatch": "arrived corrupted (its bytes do not hash as recorded)",
    "not_found": "no longer recorded at the agent",
}


def _frame_file(directory: Path, frame: Frame) -> Path:
    file_name = frame.name or f"frame_{frame.frame:04d}.png"
    if Path(file_name).name != file_name or file_name in (".", ".."):
        raise ClientError(
            f"the agent sent an unsafe file name {file_name!r} for frame {frame.frame}; "
            "it must be a plain file name",
            code="bad_reply",
        )
    return directory / file_name


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadPlan:
    fetch: list[tuple[Frame, Path]]
    present: int
    conflicts: list[Path]


def plan_download(directory: Path, frames: list[Frame], *, overwrite: bool) -> DownloadPlan:
    """Which frames to fetch, which are already there, which would replace a different file."""
    from spillway.core.hashing import file_sha256 as sha256_file

    fetch: list[tuple[Frame, Path]] = []
    conflicts: list[Path] = []
    present = 0
    for frame in sorted(frames, key=lambda f: f.frame):
        dest = _frame_file(directory, frame)
        if dest.is_file() and sha256_file(dest) == frame.sha256:
            present += 1
        elif (dest.exists() or dest.is_symlink()) and not (overwrite and dest.is_file()):
            conflicts.append(dest)
        else:
            fetch.append((frame, dest))
    return DownloadPlan(fetch=fetch, present=present, conflicts=conflicts)


def _refuse_conflicts(job_id: str, conflicts: list[Path], *, overwrite: bool) -> ClientError:
    shown = ", ".join(str(p) for p in conflicts[:3]) + (", ..." if len(conflicts) > 3 else "")
    if overwrite:  # only things that are not plain files are left
        return FileConflict(
            f"{len(conflicts)} frame file names of job {job_id} are taken by something that is "
            f"not a file ({shown}); nothing was downloaded; move them away or choose another folder",
            code="exists",
        )
    files = (
        "1 file already exists" if len(conflicts) == 1 else f"{len(conflicts)} files already exist"
    )
    return FileConflict(
        f"{files} with different content ({shown}), for example "
        f"frames of another job with the same name; nothing was downloaded; download into "
        "another folder, or pass --overwrite to replace them",
        code="exists",
    )


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    """Fetch every good frame; a frame the agent cannot serve as recorded is skipped,
    reported at the end, and makes the exit status 1. An existing different file is
    never replaced unless ``--overwrite`` is given."""
    job_id = client.resolve_job_id(args.job_id)
    frames = client.frames(job_id)
    if not frames:
        print(f"job {job_id} has no rendered frames yet; see `spillway job {job_id}`")
        return 0
    directory = Path(args.dir)
    plan = plan_download(directory, frames, overwrite=args.overwrite)
    if plan.conflicts:
        raise _refuse_conflicts(job_id, plan.conflicts, overwrite=args.overwrite)
    bad: list[tuple[int, str]] = []

    def skip(frame: Frame, err: ClientError) -> bool:
        if err.code not in _BAD_FRAME:
            return False  # the agent or the connection failed: the next frame would too
        bad.append((frame.frame, _BAD_FRAME[err.code]))
        return True

    size = client.download_frames(job_id, plan.fetch, replace=args.overwrite, on_error=skip)
    bad.sort()
    count = len(plan.fetch) - len(bad)
    print(
        f"downloaded {count} frames ({human_size(size)}) to {directory}"
        + (f"; {plan.present} already present" if plan.present else "")
        + (f"; {len(bad)} could not be downloaded" if bad else "")
    )
    for number, reason in bad:
        print(f"frame {number}: {reason}", flush=True, file=sys.stderr)
    if bad:
        numbers = ",".join(str(n) for n, _ in bad)
        print(
            f"spillway: error: {len(bad)} of {len(frames)} frames of job {job_id} could not "
            f"be downloaded; render them again (`spillway retry {job_id} --frames "
            f"{numbers}`), then download again",
            file=sys.stderr,
            flush=True,
        )
    return 1 if bad else 0
