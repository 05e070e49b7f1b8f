"""``spillway download ID DIR``: every file of a job's frames, hash-verified, several at once.

A frame may have several files (a multilayer EXR and a depth map, two stereo
views): all are fetched under the names the renderer gave them, each hashed while
streaming and compared with the sha256 the agent recorded. ``--previews`` also
fetches the small PNG previews into ``DIR/.previews/``. A frame the agent cannot
serve as recorded is skipped and reported; an existing different file is never
replaced unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from spillway.client.errors import ClientError, FileConflict
from spillway.client.formatting import human_size

if TYPE_CHECKING:
    from spillway.client.detail_records import Frame
    from spillway.client.sync import Client

__all__ = ["cmd_download", "frame_files", "plan_download"]

PREVIEW_DIR = ".previews"

# Answers about one frame that leave the others worth fetching, and what each means.
_BAD_FRAME = {
    "frame_missing": "missing from storage at the agent",
    "frame_corrupt": "damaged in storage at the agent (it no longer hashes as recorded)",
    "hash_mismatch": "arrived corrupted (its bytes do not hash as recorded)",
    "not_found": "no longer recorded at the agent",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameFile:
    """One file of a rendered frame to fetch."""

    frame: int
    name: str
    """Its name in the job folder: a plain file name, or ``.previews/<name>`` for a preview."""
    sha256: str | None
    main: bool
    """The frame's main file, fetched from the frame's own URL (which every agent has)."""


def frame_files(frame: Frame, *, previews: bool) -> list[FrameFile]:
    """The files of one listed frame (an agent older than named outputs lists only its
    main file); ClientError for a name that could leave the download folder."""
    main = frame.name or f"frame_{frame.frame:04d}.png"
    files = [FrameFile(frame=frame.frame, name=main, sha256=frame.sha256, main=True)]
    files += [
        FrameFile(frame=frame.frame, name=f.name, sha256=f.sha256, main=False)
        for f in frame.files
        if f.kind == "extra" or (f.kind == "preview" and previews)
    ]
    for f in files:
        parts = PurePosixPath(f.name).parts
        plain = len(parts) == 1 or (len(parts) == 2 and parts[0] == PREVIEW_DIR)
        if not plain or "\\" in f.name or parts[-1] in (".", "..") or f.name != "/".join(parts):
            raise ClientError(
                f"the agent sent an unsafe file name {f.name!r} for frame {f.frame}; "
                "it must be a plain file name",
                code="bad_reply",
            )
    return files


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadPlan:
    fetch: list[tuple[FrameFile, Path]]
    present: int
    """Frames all of whose files are already there."""
    conflicts: list[Path]


def plan_download(
    directory: Path, frames: list[Frame], *, overwrite: bool, previews: bool = False
) -> DownloadPlan:
    """Which files to fetch, which frames are already there, which files would replace
    a different file. A frame's main file comes after its other files, as it was stored."""
    from spillway.core.hashing import file_sha256 as sha256_file

    fetch: list[tuple[FrameFile, Path]] = []
    conflicts: list[Path] = []
    present = 0
    for frame in sorted(frames, key=lambda f: f.frame):
        missing = 0
        for f in sorted(frame_files(frame, previews=previews), key=lambda f: f.main):
            dest = directory / f.name
            if dest.is_file() and sha256_file(dest) == f.sha256:
                continue
            missing += 1
            if (dest.exists() or dest.is_symlink()) and not (overwrite and dest.is_file()):
                conflicts.append(dest)
            else:
                fetch.append((f, dest))
        present += missing == 0
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
    """Fetch every file of every good frame; a frame the agent cannot serve as recorded
    is skipped, reported at the end, and makes the exit status 1. An existing different
    file is never replaced unless ``--overwrite`` is given."""
    job_id = client.resolve_job_id(args.job_id)
    frames = client.frames(job_id)
    if not frames:
        print(f"job {job_id} has no rendered frames yet; see `spillway job {job_id}`")
        return 0
    directory = Path(args.dir)
    previews = bool(getattr(args, "previews", False))
    plan = plan_download(directory, frames, overwrite=args.overwrite, previews=previews)
    if plan.conflicts:
        raise _refuse_conflicts(job_id, plan.conflicts, overwrite=args.overwrite)
    bad: dict[int, str] = {}

    def one(item: tuple[FrameFile, Path]) -> int:
        f, dest = item
        if dest.parent != directory:
            dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            return client.download_frame(
                job_id,
                f.frame,
                dest,
                sha256=f.sha256,
                replace=args.overwrite,
                name=None if f.main else f.name,
            )
        except ClientError as err:
            if err.code not in _BAD_FRAME:
                raise  # the agent or the connection failed: the next frame would too
            bad.setdefault(f.frame, _BAD_FRAME[err.code] + ("" if f.main else f" ({f.name})"))
            return 0

    size = sum(client.map_parallel(one, plan.fetch))
    _report(job_id, directory, len(frames), plan, size, bad)
    return 1 if bad else 0


def _report(
    job_id: str,
    directory: Path,
    frame_count: int,
    plan: DownloadPlan,
    size: int,
    bad: dict[int, str],
) -> None:
    fetched = {f.frame for f, _ in plan.fetch} - set(bad)
    files = sum(1 for f, _ in plan.fetch if f.frame in fetched)
    print(
        f"downloaded {len(fetched)} frames"
        + (f", {files} files" if files != len(fetched) else "")
        + f" ({human_size(size)}) to {directory}"
        + (f"; {plan.present} already present" if plan.present else "")
        + (f"; {len(bad)} could not be downloaded" if bad else "")
    )
    for number, reason in sorted(bad.items()):
        print(f"frame {number}: {reason}", flush=True, file=sys.stderr)
    if bad:
        numbers = ",".join(str(n) for n in sorted(bad))
        print(
            f"spillway: error: {len(bad)} of {frame_count} frames of job {job_id} could not "
            f"be downloaded; render them again (`spillway retry {job_id} --frames "
            f"{numbers}`), then download again",
            file=sys.stderr,
            flush=True,
        )
