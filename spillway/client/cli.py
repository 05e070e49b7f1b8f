"""The ``spillway`` client command line: its parser, exit statuses and entry point.

The client commands themselves are in :mod:`spillway.client.commands`.  The
commands that run processes (agent, render-server, certs, demo) are added
by the composition root (:mod:`spillway.main`) through ``build_parser(extra=...)``;
this module imports nothing of the server side.

Exit status: 0 on success, 1 when something failed at run time (agent
unreachable, job failed), 2 for bad input, 130 on Ctrl-C, 141 when the reader
of the output went away (``spillway jobs | head -1``; quietly, as other Unix
tools end on SIGPIPE).  Errors are one line
on stderr, ``spillway: error: <what happened and what to do>``; set
``SPILLWAY_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from spillway.client.args import (
    DEFAULT_AGENT,
    UsageError,
    _Parser,
    agent_url,
    frame_spec,
    job_id_list,
    non_negative_int,
    package_spec,
    plain_name,
    positive_int,
    positive_seconds,
    resolution,
    tag_list,
)
from spillway.client.commands import (
    JOB_STATES,
    cmd_control,
    cmd_job,
    cmd_jobs,
    cmd_peers,
    cmd_priority,
    cmd_server_control,
    cmd_server_remove,
    cmd_servers,
    cmd_submit,
    run_client_command,
)
from spillway.client.errors import ClientError, SubmissionError
from spillway.client.logs import add_logs_command
from spillway.client.usage import add_usage_command
from spillway.client.webhooks import add_webhooks_command

if TYPE_CHECKING:
    from spillway.client.sync import Client

# Agent answers that mean the user asked for something wrong (exit 2, not 1).
_BAD_INPUT_STATUS = frozenset({400, 404, 413, 422})

AddCommands = Callable[[Any], None]
"""Adds subcommands to the ``spillway`` parser's subparsers (the process commands)."""


def _cmd_download(client: Client, args: argparse.Namespace) -> int:
    from spillway.client.download import cmd_download  # its records load with the client

    return cmd_download(client, args)


# --- parser ----------------------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    parent = _Parser(add_help=False)
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
        type=frame_spec,
        metavar="SPEC",
        help="frames, e.g. 1-240, 1-240x10, 1,5,10-20 (default: the scene's own, "
        "e.g. a POV-Ray .ini's animation; required for other scenes)",
    )
    p.add_argument("--chunk", type=positive_int, default=1, help="frames per task (default 1)")
    p.add_argument(
        "--priority", type=non_negative_int, default=50, help="higher runs first (default 50)"
    )
    p.add_argument("--name", type=plain_name, help="job name (default: the scene file's name)")
    p.add_argument("--site", type=plain_name, metavar="PEER", help="render at this peer site")
    p.add_argument("--no-forward", action="store_true", help="never forward to a peer site")
    p.add_argument(
        "--split",
        action="store_true",
        help="render here and send parts of the frames to peers with free capacity",
    )
    p.add_argument(
        "--resolution",
        type=resolution,
        default=None,
        metavar="WxH",
        help="override the scene's own output size (the built-in tracer's default is 320x240)",
    )
    p.add_argument(
        "--engine",
        default="",
        help="override the scene's render engine (blender: cycles, eevee or workbench)",
    )
    p.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        metavar="N",
        help="override the scene's render samples (blender: Cycles or Eevee)",
    )
    p.add_argument(
        "--no-denoise",
        action="store_true",
        help="render without the scene's denoising (blender: on servers without OpenImageDenoise)",
    )
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
    p.add_argument(
        "--queue-anyway",
        action="store_true",
        help="queue even if no known server or peer site can run it (default: refuse)",
    )
    p.add_argument(
        "--after",
        type=job_id_list,
        action="append",
        default=[],
        metavar="JOB[,JOB...]",
        help="start only once these jobs are done; fails (or is cancelled) with them (repeatable)",
    )
    p.add_argument(
        "--after-any",
        action="store_true",
        help="with --after: start once those jobs end, however they end",
    )
    p.add_argument(
        "--after-frames",
        type=job_id_list,
        action="append",
        default=[],
        metavar="JOB[,JOB...]",
        help="frame N starts once frame N of these jobs is stored, e.g. comp after render",
    )
    p.add_argument("--wait", action="store_true", help="show progress until the job ends")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    # How often --wait's progress is refreshed (the job's end is seen at once regardless).
    p.add_argument("--poll-interval", type=positive_seconds, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_submit)


def _add_job(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "job",
        parents=[common],
        help="show one job; a big job as a summary (its failed and active tasks)",
    )
    p.add_argument("job_id", metavar="ID", help="job id, or a unique start of it")
    p.add_argument("--offset", type=non_negative_int, default=0, help="first task to show")
    p.add_argument(
        "--limit", type=positive_int, default=None, help="tasks to show (default 100, at most 1000)"
    )
    p.add_argument("--state", help="only tasks in these states, e.g. failed or waiting,running")
    p.add_argument(
        "--frames", type=frame_spec, metavar="SPEC", help="only the tasks rendering these frames"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_job)


def _job_states(value: str) -> str:
    """``S[,S...]`` of known job states, as given (the agent takes the same form)."""
    for state in value.split(","):
        if state.strip() not in JOB_STATES:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {state.strip()!r} (choose from {', '.join(JOB_STATES)})"
            )
    return value


def _add_jobs(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("jobs", parents=[common], help="list jobs, newest first")
    # The agent validates every filter and names the bad one; a state is checked here too,
    # so a typo is answered before any request (exit 2, like any bad argument).
    p.add_argument(
        "--state",
        type=_job_states,
        metavar="S[,S...]",
        help=f"only these states: {', '.join(JOB_STATES)}",
    )
    p.add_argument("--package", metavar="NAME", help="only jobs for this render package")
    p.add_argument(
        "--placement", metavar="WHERE", help="local, forwarded, accepted or a peer's name"
    )
    p.add_argument("--owner", metavar="NAME", help="only this owner's jobs")
    p.add_argument("--search", metavar="TEXT", help="part of the job's name or id")
    p.add_argument(
        "--sort",
        metavar="FIELD",
        help="created, updated, priority, name, state or frames; "
        "a leading - sorts descending, written --sort=-priority (default -created)",
    )
    p.add_argument("--limit", type=positive_int, default=100, help="jobs per page (default 100)")
    p.add_argument("--page", type=positive_int, default=1, help="page number, from 1")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)


def _add_control(sub: Any, common: argparse.ArgumentParser, action: str) -> None:
    p = sub.add_parser(action, parents=[common], help=f"{action} a job")
    p.add_argument("job_id", metavar="ID")
    if action == "retry":
        p.add_argument(
            "--frames",
            type=frame_spec,
            metavar="SPEC",
            help="render these frames again, done or failed (default: all failed tasks)",
        )
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(handler=cmd_control)


def _add_priority(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("priority", parents=[common], help="change an unfinished job's priority")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("priority", type=non_negative_int, metavar="N", help="0-100, higher runs first")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(handler=cmd_priority)


def _add_download(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("download", parents=[common], help="download a job's rendered frames")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in DIR that differ from the job's frames (default: refuse)",
    )
    p.add_argument(
        "--previews",
        action="store_true",
        help="also download each frame's small PNG preview into DIR/.previews/",
    )
    p.set_defaults(handler=_cmd_download)


def _add_servers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("servers", parents=[common], help="list render servers")
    p.add_argument("--job", metavar="ID", help="explain which servers can render this job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_servers)
    servers_sub = p.add_subparsers(dest="servers_command", metavar="COMMAND")
    rm = servers_sub.add_parser(
        "rm", parents=[common], help="forget an offline render server (e.g. a re-imaged host)"
    )
    rm.add_argument("server", metavar="NAME", help="render server name or id")
    rm.set_defaults(handler=cmd_server_remove)


def _add_server_control(sub: Any, common: argparse.ArgumentParser, action: str) -> None:
    verb = {"disable": "stop dispatching to", "enable": "dispatch again to"}[action]
    p = sub.add_parser(
        action, parents=[common], help=f"{verb} a render server (running tasks finish)"
    )
    p.add_argument("server", metavar="SERVER", help="render server name or id")
    p.set_defaults(handler=cmd_server_control)


def _add_peers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("peers", parents=[common], help="list federation peers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_peers)
    add_usage_command(sub, common)


AddCommand = Callable[[Any, argparse.ArgumentParser], None]
"""Adds one client command's parser: ``(subparsers, common options parent)``."""

CLIENT_COMMANDS: dict[str, AddCommand] = {
    "submit": _add_submit,
    "jobs": _add_jobs,
    "job": _add_job,
    "logs": add_logs_command,
    **{
        a: functools.partial(_add_control, action=a) for a in ("cancel", "pause", "resume", "retry")
    },
    "priority": _add_priority,
    "download": _add_download,
    "servers": _add_servers,
    **{a: functools.partial(_add_server_control, action=a) for a in ("disable", "enable")},
    "peers": _add_peers,
    "webhooks": add_webhooks_command,
}
"""The client commands by name, in ``--help`` order. A command line that names one
gets a parser with only that one: building all of them (argparse looks up a
translation for every help text) was a third of the command's start-up."""


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("spillway")
    except PackageNotFoundError:
        return "0+unknown"


class _VersionAction(argparse.Action):
    """``--version``: read from the package metadata only when asked (it costs an import)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"spillway {version()}")
        parser.exit()


def build_parser(
    extra: AddCommands | None = None, *, command: str | None = None
) -> argparse.ArgumentParser:
    """The ``spillway`` argument parser (reads SPILLWAY_* defaults from the environment).

    ``extra`` adds more subcommands; each must set ``run`` (a function of the
    parsed arguments returning an exit status) where client commands set ``handler``.
    With ``command`` naming a client command, only that command's parser is built.
    """
    parser = _Parser(prog="spillway", description="Spillway federated render farm")
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _client_options()
    if command in CLIENT_COMMANDS:
        CLIENT_COMMANDS[command](sub, common)
        return parser
    for add in CLIENT_COMMANDS.values():
        add(sub, common)
    if extra is not None:
        extra(sub)
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand a command line starts with; None when it starts with an option
    (``--help``, ``--version``), which needs the whole parser."""
    return argv[0] if argv and not argv[0].startswith("-") else None


# --- entry point -----------------------------------------------------------------------


def _fail(message: str, status: int) -> int:
    print(f"spillway: error: {message}", file=sys.stderr, flush=True)
    return status


_SIGPIPE_STATUS = 141
"""What a shell reports for a tool ended by SIGPIPE (128 + 13)."""


def _reader_gone() -> int:
    """End quietly after stdout's reader closed the pipe (e.g. ``| head -1``).

    Python ignores SIGPIPE and raises BrokenPipeError instead; stdout is pointed at
    /dev/null so that flushing what is still buffered at exit cannot complain again.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return _SIGPIPE_STATUS


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
        return run_client_command(args)
    result: int = args.run(args)
    return result


def main(argv: Sequence[str] | None = None, *, extra: AddCommands | None = None) -> int:
    """Parse ``argv`` and run the command; returns the exit status (see the module docstring).

    ``extra`` adds subcommands as in :func:`build_parser`; without it only the
    client commands exist (the ``spillway`` console script is :func:`spillway.main.main`).
    """
    try:
        words = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(extra, command=named_command(words)).parse_args(words)
    except UsageError as err:
        return _fail(f"{err} ({err.hint})", 2)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        status = run(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        return 130
    except ImportError as err:
        return _fail(f"this installation lacks a part `spillway {args.command}` needs: {err}", 1)
    except Exception as err:  # never show a traceback unless asked to
        if os.environ.get("SPILLWAY_DEBUG"):
            import traceback

            traceback.print_exc()
        return _fail(str(err) or type(err).__name__, _exit_status(err))
