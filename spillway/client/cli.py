"""The ``spillway`` client commands: submit, watch and manage jobs at a site agent.

The commands that run processes (agent, render-server, certs, demo) are added
by the composition root (:mod:`spillway.main`) through ``build_parser(extra=...)``;
this module imports nothing of the server side.

Exit status: 0 on success, 1 when something failed at run time (agent
unreachable, job failed), 2 for bad input, 130 on Ctrl-C.  Errors are one line
on stderr, ``spillway: error: <what happened and what to do>``; set
``SPILLWAY_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from spillway.client.args import (
    DEFAULT_AGENT,
    UsageError,
    _Parser,
    agent_url,
    frame_spec,
    non_negative_int,
    package_spec,
    plain_name,
    positive_int,
    positive_seconds,
    resolution,
    tag_list,
)
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
from spillway.client.submission import (
    SubmissionError,
    SubmitOptions,
    sha256_file,
    submit_scene,
    wait_for_job,
)

JOB_STATES = ("queued", "running", "paused", "done", "failed", "cancelled")
# Agent answers that mean the user asked for something wrong (exit 2, not 1).
_BAD_INPUT_STATUS = frozenset({400, 404, 413, 422})

Handler = Callable[[AgentClient, argparse.Namespace], Awaitable[int]]
AddCommands = Callable[[Any], None]
"""Adds subcommands to the ``spillway`` parser's subparsers (the process commands)."""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _submit_options(args: argparse.Namespace) -> SubmitOptions:
    width, height = args.resolution
    return SubmitOptions(
        package=args.package,
        frames=args.frames,
        chunk_size=args.chunk,
        priority=args.priority,
        name=args.name or "",
        site=args.site,
        forward=not args.no_forward,
        width=width,
        height=height,
        engine=args.engine,
        min_memory_mb=args.min_memory,
        min_cores=args.min_cores,
        gpu=args.gpu,
        tags=tuple(args.tags),
        max_servers=args.max_servers,
        task_timeout_s=args.timeout,
        max_attempts=args.max_attempts,
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
    detail = await client.job(args.job_id)
    if args.json:
        _print_json(detail)
    else:
        print(format_job(detail, time.time()))
    return 0


async def cmd_control(client: AgentClient, args: argparse.Namespace) -> int:
    job = await client.control(args.job_id, args.command)
    print(f"{args.command}: job {job.get('id', args.job_id)} is now {job.get('state')}")
    return 0


async def cmd_server_control(client: AgentClient, args: argparse.Namespace) -> int:
    server = await client.server_control(args.server, args.command)
    print(
        f"{args.command}: render server {server.get('name', args.server)} is now {server.get('status')}"
    )
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


async def cmd_download(client: AgentClient, args: argparse.Namespace) -> int:
    frames = await client.frames(args.job_id)
    if not frames:
        print(f"job {args.job_id} has no rendered frames yet; see `spillway job {args.job_id}`")
        return 0
    directory = Path(args.dir)
    count = size = skipped = 0
    for frame in sorted(frames, key=lambda f: int(f["frame"])):
        dest = _frame_file(directory, frame)
        if dest.is_file() and sha256_file(dest) == frame.get("sha256"):
            skipped += 1
            continue
        size += await client.download_frame(
            args.job_id, int(frame["frame"]), dest, sha256=str(frame["sha256"])
        )
        count += 1
    print(
        f"downloaded {count} frames ({human_size(size)}) to {directory}"
        + (f"; {skipped} already present" if skipped else "")
    )
    return 0


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


# --- parser ----------------------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--agent",
        type=agent_url,
        default=os.environ.get("SPILLWAY_AGENT") or DEFAULT_AGENT,
        help="site agent URL (default: $SPILLWAY_AGENT or %(default)s)",
    )
    parent.add_argument(
        "--token",
        default=os.environ.get("SPILLWAY_TOKEN") or None,
        help="client bearer token (default: $SPILLWAY_TOKEN)",
    )
    return parent


def _add_submit(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("submit", parents=[common], help="submit a scene as a job")
    p.add_argument("scene", help="scene file; its folder is the root of the job's assets")
    p.add_argument(
        "--asset",
        action="append",
        default=[],
        metavar="FILE",
        help="extra file the scene needs, inside the scene's folder (repeatable)",
    )
    p.add_argument(
        "--package",
        required=True,
        type=package_spec,
        metavar="NAME[SPEC]",
        help="render package and version, e.g. builtin or 'povray>=3.7'",
    )
    p.add_argument(
        "--frames",
        required=True,
        type=frame_spec,
        metavar="SPEC",
        help="frames, e.g. 1-240, 1-240x10, 1,5,10-20",
    )
    p.add_argument("--chunk", type=positive_int, default=1, help="frames per task (default 1)")
    p.add_argument(
        "--priority", type=non_negative_int, default=50, help="higher runs first (default 50)"
    )
    p.add_argument("--name", type=plain_name, help="job name (default: the scene file's name)")
    p.add_argument("--site", type=plain_name, metavar="PEER", help="render at this peer site")
    p.add_argument("--no-forward", action="store_true", help="never forward to a peer site")
    p.add_argument(
        "--resolution",
        type=resolution,
        default=(320, 240),
        metavar="WxH",
        help="output size (default 320x240)",
    )
    p.add_argument("--engine", default="", help="package-specific render engine")
    p.add_argument("--min-memory", type=non_negative_int, default=0, metavar="MiB")
    p.add_argument("--min-cores", type=positive_int, default=1, metavar="N")
    p.add_argument("--gpu", action="store_true", help="require a GPU")
    p.add_argument("--tags", type=tag_list, default=[], help="required server tags, e.g. a,b")
    p.add_argument(
        "--max-servers",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="most servers at once (default 0 = no limit)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="per-task time limit (default 3600)",
    )
    p.add_argument(
        "--max-attempts",
        type=positive_int,
        default=3,
        metavar="N",
        help="tries per task (default 3)",
    )
    p.add_argument("--wait", action="store_true", help="show progress until the job ends")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    # Tests and scripts poll faster than people need to.
    p.add_argument("--poll-interval", type=positive_seconds, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_submit)


def _add_client_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    _add_submit(sub, common)
    p = sub.add_parser("jobs", parents=[common], help="list jobs, newest first")
    p.add_argument("--state", choices=JOB_STATES)
    p.add_argument("--limit", type=positive_int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)
    p = sub.add_parser("job", parents=[common], help="show one job with its tasks and frames")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_job)
    for action in ("cancel", "pause", "resume", "retry"):
        p = sub.add_parser(action, parents=[common], help=f"{action} a job")
        p.add_argument("job_id", metavar="ID")
        p.set_defaults(handler=cmd_control)
    p = sub.add_parser("download", parents=[common], help="download a job's rendered frames")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(handler=cmd_download)
    p = sub.add_parser("servers", parents=[common], help="list render servers")
    p.add_argument("--job", metavar="ID", help="explain which servers can render this job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_servers)
    for action, verb in (("disable", "stop dispatching to"), ("enable", "dispatch again to")):
        p = sub.add_parser(
            action, parents=[common], help=f"{verb} a render server (running tasks finish)"
        )
        p.add_argument("server", metavar="SERVER", help="render server name or id")
        p.set_defaults(handler=cmd_server_control)
    p = sub.add_parser("peers", parents=[common], help="list federation peers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_peers)


def build_parser(extra: AddCommands | None = None) -> argparse.ArgumentParser:
    """The ``spillway`` argument parser (reads SPILLWAY_* defaults from the environment).

    ``extra`` adds more subcommands; each must set ``run`` (a function of the
    parsed arguments returning an exit status) where client commands set ``handler``.
    """
    parser = _Parser(prog="spillway", description="Spillway federated render farm")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_client_commands(sub, _client_options())
    if extra is not None:
        extra(sub)
    return parser


# --- entry point -----------------------------------------------------------------------


def _fail(message: str, status: int) -> int:
    print(f"spillway: error: {message}", file=sys.stderr, flush=True)
    return status


def _exit_status(err: BaseException) -> int:
    if isinstance(err, SubmissionError | UsageError):
        return 2
    if isinstance(err, ClientError):
        return 2 if err.status in _BAD_INPUT_STATUS else 1
    # Our packages raise ValueError subclasses (FrameSpecError, ProfileError,
    # InvalidSiteNameError, ConfigError) for input the user can fix.
    ours = type(err).__module__.split(".")[0] in (
        "scheduler",
        "site_agent",
        "federation",
        "spillway",
    )
    return 2 if ours and isinstance(err, ValueError) else 1


def run(args: argparse.Namespace) -> int:
    """Run parsed arguments; exceptions propagate (``main`` turns them into messages)."""
    if hasattr(args, "handler"):
        return asyncio.run(run_client_command(args))
    result: int = args.run(args)
    return result


def main(argv: Sequence[str] | None = None, *, extra: AddCommands | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status (see the module docstring).

    ``extra`` adds subcommands as in :func:`build_parser`; without it only the
    client commands exist (the ``spillway`` console script is :func:`spillway.main.main`).
    """
    try:
        args = build_parser(extra).parse_args(argv)
    except UsageError as err:
        return _fail(f"{err} ({err.hint})", 2)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except ImportError as err:
        return _fail(f"this installation lacks a part `spillway {args.command}` needs: {err}", 1)
    except Exception as err:  # never show a traceback unless asked to
        if os.environ.get("SPILLWAY_DEBUG"):
            traceback.print_exc()
        return _fail(str(err) or type(err).__name__, _exit_status(err))
