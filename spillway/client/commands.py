"""The client commands of ``spillway``: each runs against an open :class:`AgentClient`.

A handler gets the client and the parsed arguments and returns the exit status;
errors propagate to :func:`spillway.client.cli.main`, which reports them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spillway.client.formatting import (
    ProgressReporter,
    format_job,
    format_jobs,
    format_peers,
    format_servers,
    human_size,
    job_summary,
)
from spillway.client.http import AgentClient, ClientError
from spillway.client.submission import SubmitOptions, sha256_file, submit_scene, wait_for_job

JOB_STATES = ("queued", "running", "paused", "done", "failed", "cancelled")

Handler = Callable[[AgentClient, argparse.Namespace], Awaitable[int]]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _submit_options(args: argparse.Namespace) -> SubmitOptions:
    width, height = args.resolution or (None, None)
    return SubmitOptions(
        package=args.package,
        frames=args.frames or "",
        chunk_size=args.chunk,
        priority=args.priority,
        name=args.name or "",
        site=args.site,
        forward=not args.no_forward,
        width=width,
        height=height,
        engine=args.engine,
        samples=args.samples,
        denoise=not args.no_denoise,
        min_memory_mb=args.min_memory,
        min_cores=args.min_cores,
        gpu=args.gpu,
        tags=tuple(args.tags),
        max_servers=args.max_servers,
        task_timeout_s=args.timeout,
        max_attempts=args.max_attempts,
        queue_anyway=args.queue_anyway,
        after=tuple(job_id for ids in args.after for job_id in ids),
        after_any=args.after_any,
        after_frames=tuple(job_id for ids in args.after_frames for job_id in ids),
    )


async def _wait(client: AgentClient, job_id: str, *, poll_s: float = 1.0) -> dict[str, Any]:
    reporter = ProgressReporter(sys.stderr)
    try:
        return await wait_for_job(client, job_id, poll_s=poll_s, on_update=reporter.update)
    except asyncio.CancelledError:  # Ctrl-C: the job keeps running at the agent
        reporter.close()
        _note(f"stopped waiting; job {job_id} carries on (`spillway cancel {job_id}` stops it)")
        raise
    finally:
        reporter.close()


def _upload_summary(files: int, size: int, entries: int) -> str:
    if files == entries:
        return f"uploaded {files} files ({human_size(size)})"
    return (
        f"uploaded {files} of {entries} files ({human_size(size)}); "
        f"{entries - files} already at the agent"
    )


async def cmd_submit(client: AgentClient, args: argparse.Namespace) -> int:
    result = await submit_scene(
        client,
        Path(args.scene),
        _submit_options(args),
        assets=[Path(a) for a in args.asset],
        on_upload=lambda e: (
            None if args.json else _note(f"uploading {e.path} ({human_size(e.size)})")
        ),
    )
    for note in result.notes:
        _note(f"note: {note}")
    if not args.json:
        _note(
            _upload_summary(
                result.uploaded_files, result.uploaded_bytes, len(result.manifest.entries)
            )
        )
    job = result.job
    if args.wait:
        job = await _wait(client, str(job["id"]), poll_s=args.poll_interval)
    if args.json:
        uploaded = {"files": result.uploaded_files, "bytes": result.uploaded_bytes}
        _print_json({"job": job, "uploaded": uploaded})
    else:
        print(job["id"])
    if args.wait:
        if not args.json:
            _note(job_summary(job))
        return 0 if job.get("state") == "done" else 1
    return 0


async def cmd_jobs(client: AgentClient, args: argparse.Namespace) -> int:
    jobs = await client.jobs(state=args.state, limit=args.limit)
    if args.json:
        _print_json({"jobs": jobs})
    else:
        print(format_jobs(jobs, time.time()))
    return 0


async def cmd_job(client: AgentClient, args: argparse.Namespace) -> int:
    detail = await client.job(args.job_id, tasks=0 if args.offset or args.state else args.limit)
    if args.offset or args.state:
        detail |= await client.job_tasks(
            args.job_id, offset=args.offset, limit=args.limit, state=args.state
        )
    if args.json:
        _print_json(detail)
        return 0
    print(format_job(detail, time.time()))
    page = detail.get("tasks_page") or {}
    if page.get("next_offset") is not None:
        _note(
            f"tasks {page['offset'] + 1}-{page['next_offset']} of {page['total']}; "
            f"`spillway job {args.job_id} --offset {page['next_offset']}` shows more"
        )
    return 0


async def cmd_control(client: AgentClient, args: argparse.Namespace) -> int:
    frames = getattr(args, "frames", None)
    job = await client.control(args.job_id, args.command, frames=frames)
    print(f"{args.command}: job {job.get('id', args.job_id)} is now {job.get('state')}")
    return 0


async def cmd_server_control(client: AgentClient, args: argparse.Namespace) -> int:
    server = await client.server_control(args.server, args.command)
    print(
        f"{args.command}: render server {server.get('name', args.server)} is now {server.get('status')}"
    )
    return 0


async def cmd_server_remove(client: AgentClient, args: argparse.Namespace) -> int:
    server = await client.remove_server(args.server)
    print(f"render server {server.get('name', args.server)} removed")
    return 0


def _frame_file(directory: Path, frame: dict[str, Any]) -> Path:
    number = int(frame["frame"])
    file_name = str(frame.get("name") or f"frame_{number:04d}.png")
    if Path(file_name).name != file_name or file_name in (".", ".."):
        raise ClientError(
            f"the agent sent an unsafe file name {file_name!r} for frame {number}; "
            "it must be a plain file name",
            code="bad_reply",
        )
    return directory / file_name


# Answers about one frame that leave the others worth fetching, and what each means.
_BAD_FRAME = {
    "frame_missing": "missing from storage at the agent",
    "frame_corrupt": "damaged in storage at the agent (it no longer hashes as recorded)",
    "hash_mismatch": "arrived corrupted (its bytes do not hash as recorded)",
    "not_found": "no longer recorded at the agent",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _DownloadPlan:
    fetch: list[tuple[dict[str, Any], Path]]
    present: int
    conflicts: list[Path]


def _plan_download(
    directory: Path, frames: list[dict[str, Any]], *, overwrite: bool
) -> _DownloadPlan:
    """Which frames to fetch, which are already there, which would replace a different file."""
    fetch: list[tuple[dict[str, Any], Path]] = []
    conflicts: list[Path] = []
    present = 0
    for frame in sorted(frames, key=lambda f: int(f["frame"])):
        dest = _frame_file(directory, frame)
        if dest.is_file() and sha256_file(dest) == frame.get("sha256"):
            present += 1
        elif (dest.exists() or dest.is_symlink()) and not (overwrite and dest.is_file()):
            conflicts.append(dest)
        else:
            fetch.append((frame, dest))
    return _DownloadPlan(fetch=fetch, present=present, conflicts=conflicts)


def _refuse_conflicts(job_id: str, conflicts: list[Path], *, overwrite: bool) -> ClientError:
    shown = ", ".join(str(p) for p in conflicts[:3]) + (", ..." if len(conflicts) > 3 else "")
    if overwrite:  # only things that are not plain files are left
        return ClientError(
            f"{len(conflicts)} frame file names of job {job_id} are taken by something that is "
            f"not a file ({shown}); nothing was downloaded; move them away or choose another folder",
            code="exists",
        )
    files = (
        "1 file already exists" if len(conflicts) == 1 else f"{len(conflicts)} files already exist"
    )
    return ClientError(
        f"{files} with different content ({shown}), for example "
        f"frames of another job with the same name; nothing was downloaded; download into "
        "another folder, or pass --overwrite to replace them",
        code="exists",
    )


async def cmd_download(client: AgentClient, args: argparse.Namespace) -> int:
    """Fetch every good frame; a frame the agent cannot serve as recorded is skipped,
    reported at the end, and makes the exit status 1. An existing different file is
    never replaced unless ``--overwrite`` is given."""
    frames = await client.frames(args.job_id)
    if not frames:
        print(f"job {args.job_id} has no rendered frames yet; see `spillway job {args.job_id}`")
        return 0
    directory = Path(args.dir)
    plan = _plan_download(directory, frames, overwrite=args.overwrite)
    if plan.conflicts:
        raise _refuse_conflicts(args.job_id, plan.conflicts, overwrite=args.overwrite)
    size = 0
    bad: list[tuple[int, str]] = []
    for frame, dest in plan.fetch:
        number = int(frame["frame"])
        try:
            size += await client.download_frame(
                args.job_id, number, dest, sha256=str(frame["sha256"]), replace=args.overwrite
            )
        except ClientError as err:
            if err.code not in _BAD_FRAME:
                raise  # the agent or the connection failed: the next frame would too
            bad.append((number, _BAD_FRAME[err.code]))
    count = len(plan.fetch) - len(bad)
    print(
        f"downloaded {count} frames ({human_size(size)}) to {directory}"
        + (f"; {plan.present} already present" if plan.present else "")
        + (f"; {len(bad)} could not be downloaded" if bad else "")
    )
    for number, reason in bad:
        _note(f"frame {number}: {reason}")
    if bad:
        numbers = ",".join(str(n) for n, _ in bad)
        _note(
            f"spillway: error: {len(bad)} of {len(frames)} frames of job {args.job_id} could not "
            f"be downloaded; render them again (`spillway retry {args.job_id} --frames "
            f"{numbers}`), then download again"
        )
    return 1 if bad else 0


async def cmd_servers(client: AgentClient, args: argparse.Namespace) -> int:
    servers = await client.servers(job=args.job)
    if args.json:
        _print_json({"servers": servers})
    else:
        print(format_servers(servers, time.time()))
    return 0


async def cmd_peers(client: AgentClient, args: argparse.Namespace) -> int:
    peers = await client.peers()
    if args.json:
        _print_json({"peers": peers})
    else:
        print(format_peers(peers, time.time()))
    return 0


async def run_client_command(args: argparse.Namespace) -> int:
    """Open a client to ``args.agent`` and run the command's handler."""
    async with AgentClient(args.agent, token=args.token) as client:
        handler: Handler = args.handler
        return await handler(client, args)
