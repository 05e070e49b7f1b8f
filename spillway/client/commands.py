"""The client commands of ``spillway``: each runs against an open :class:`Client`.

A handler gets the client and the parsed arguments and returns the exit status;
errors propagate to :func:`spillway.client.cli.main`, which reports them. A new
command is a function ``cmd_x(client: Client, args) -> int`` registered with
``parser.set_defaults(handler=cmd_x)``; it calls a client method, or
``client.call(api.something(...))`` for an endpoint without one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spillway.client.formatting import (
    ProgressReporter,
    format_jobs,
    format_peers,
    format_servers,
    human_size,
    job_summary,
)
from spillway.client.job_view import show_job

if TYPE_CHECKING:
    from spillway.client.submission import SubmitOptions
    from spillway.client.sync import Client

JOB_STATES = ("queued", "running", "paused", "done", "failed", "cancelled")

Handler = Callable[["Client", argparse.Namespace], int]


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _submit_options(args: argparse.Namespace, resolve: Callable[[str], str]) -> SubmitOptions:
    """The submission ``args`` ask for; ``resolve`` turns each job id prefix of the
    ``--after`` options into its full id (as every command that takes a job id does)."""
    from spillway.client.submission import SubmitOptions

    width, height = args.resolution or (None, None)
    return SubmitOptions(
        package=args.package,
        frames=args.frames or "",
        chunk_size=args.chunk,
        priority=args.priority,
        name=args.name or "",
        site=args.site,
        forward=not args.no_forward,
        split=args.split,
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
        after=tuple(resolve(job_id) for ids in args.after for job_id in ids),
        after_any=args.after_any,
        after_frames=tuple(resolve(job_id) for ids in args.after_frames for job_id in ids),
    )


def _wait(client: Client, job_id: str, *, poll_s: float = 1.0) -> dict[str, Any]:
    from spillway.client.sync_submit import wait

    reporter = ProgressReporter(sys.stderr)
    try:
        job = wait(client, job_id, poll_s=poll_s, on_update=lambda d: reporter.update(d.raw))
    except KeyboardInterrupt:  # Ctrl-C: the job keeps running at the agent
        reporter.close()
        note(f"stopped waiting; job {job_id} carries on (`spillway cancel {job_id}` stops it)")
        raise
    finally:
        reporter.close()
    return dict(job.raw)


def _upload_summary(files: int, size: int, entries: int) -> str:
    if files == entries:
        return f"uploaded {files} files ({human_size(size)})"
    return (
        f"uploaded {files} of {entries} files ({human_size(size)}); "
        f"{entries - files} already at the agent"
    )


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    from spillway.client.sync_submit import submit_scene

    result = submit_scene(
        client,
        Path(args.scene),
        _submit_options(args, client.resolve_job_id),
        assets=[Path(a) for a in args.asset],
        on_upload=lambda e: (
            None if args.json else note(f"uploading {e.path} ({human_size(e.size)})")
        ),
    )
    for text in result.notes:
        note(f"note: {text}")
    if not args.json:
        note(
            _upload_summary(
                result.uploaded_files, result.uploaded_bytes, len(result.manifest.entries)
            )
        )
    job = dict(result.job.raw)
    if args.wait:
        job = _wait(client, result.job.id, poll_s=args.poll_interval)
    if args.json:
        uploaded = {"files": result.uploaded_files, "bytes": result.uploaded_bytes}
        print_json({"job": job, "uploaded": uploaded})
    else:
        print(job["id"])
    if args.wait:
        if not args.json:
            note(job_summary(job))
        return 0 if job.get("state") == "done" else 1
    return 0


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    page = client.jobs(
        args.state,
        args.limit,
        offset=(args.page - 1) * args.limit,
        owner=args.owner,
        package=args.package,
        placement=args.placement,
        search=args.search,
        sort=args.sort,
    )
    jobs = [dict(j.raw) for j in page]
    if args.json:
        print_json({"jobs": jobs})
    else:
        print(format_jobs(jobs, time.time()))
    return 0


def cmd_job(client: Client, args: argparse.Namespace) -> int:
    return show_job(client, args, client.resolve_job_id(args.job_id))


def cmd_control(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job_id(args.job_id)
    job = client.control(job_id, args.command, frames=getattr(args, "frames", None))
    if args.json:
        print_json({"job": dict(job.raw)})
    else:
        print(f"{args.command}: job {job.id} is now {job.state}")
    return 0


def cmd_priority(client: Client, args: argparse.Namespace) -> int:
    job = client.set_priority(client.resolve_job_id(args.job_id), args.priority)
    if args.json:
        print_json({"job": dict(job.raw)})
    else:
        print(f"job {job.id} now has priority {job.priority}")
    return 0


def cmd_server_control(client: Client, args: argparse.Namespace) -> int:
    server = client.server_control(args.server, args.command)
    print(
        f"{args.command}: render server {server.get('name', args.server)} is now {server.get('status')}"
    )
    return 0


def cmd_server_remove(client: Client, args: argparse.Namespace) -> int:
    server = client.remove_server(args.server)
    print(f"render server {server.get('name', args.server)} removed")
    return 0


def cmd_servers(client: Client, args: argparse.Namespace) -> int:
    job = client.resolve_job_id(args.job) if args.job else None
    servers = [dict(s.raw) for s in client.servers(job=job)]
    if args.json:
        print_json({"servers": servers})
    else:
        print(format_servers(servers, time.time()))
    return 0


def cmd_peers(client: Client, args: argparse.Namespace) -> int:
    peers = [dict(p.raw) for p in client.peers()]
    if args.json:
        print_json({"peers": peers})
    else:
        print(format_peers(peers, time.time()))
    return 0


def run_client_command(args: argparse.Namespace) -> int:
    """Open a client to ``args.agent`` and run the command's handler."""
    from spillway.client.sync import Client  # here, so that `--help` never loads it

    with Client(args.agent, token=args.token) as client:
        handler: Handler = args.handler
        return handler(client, args)
