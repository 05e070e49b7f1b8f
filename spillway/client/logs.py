"""``spillway logs JOB [--frame N | --task I] [--attempt K] [--follow]``: a task's renderer log.

The log goes to stdout as the renderer printed it; what Spillway adds (which
task and attempt, how it ended) goes to stderr, so ``spillway logs J > log.txt``
keeps only the renderer's words. ``--follow`` long-polls the agent (each request
waits for new text) until the attempt ends.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from spillway.client.args import non_negative_int, positive_int
from spillway.client.errors import ClientError

if TYPE_CHECKING:
    from spillway.client.sync import Client

FOLLOW_WAIT_S = 20.0
"""How long one follow request waits for new text (the agent allows up to 30 s)."""
START_POLL_S = 1.0
"""How often ``--follow`` asks again while the task has not started yet."""


def add_logs_command(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "logs",
        parents=[common],
        help="print a task's renderer log (default: the first failed task, else the first)",
    )
    p.add_argument("job_id", metavar="JOB")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--frame", type=non_negative_int, metavar="N", help="the task rendering frame N"
    )
    which.add_argument("--task", type=non_negative_int, metavar="I", help="task I of the job")
    p.add_argument(
        "--attempt", type=positive_int, metavar="K", help="attempt K (default: the latest)"
    )
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing until the attempt ends; exit 1 if it failed",
    )
    p.set_defaults(handler=cmd_logs)


def cmd_logs(client: Client, args: argparse.Namespace) -> int:
    job_id = client.resolve_job_id(args.job_id)
    frame: int | None = args.frame
    task: int | None = args.task
    if frame is None and task is None:
        task = _default_task(client, job_id)
    page = _first_page(client, job_id, args, frame=frame, task=task)
    out = _Stdout()
    _note(_header(page))
    out.write(page["text"])
    while args.follow and not page["complete"]:
        page = client.task_log(
            job_id,
            task=page["task"],
            attempt=page["attempt"],
            offset=page["next_offset"],
            wait=FOLLOW_WAIT_S,
        )
        out.write(page["text"])
    out.end_line()
    if page["state"] == "failed":
        _note(f"attempt {page['attempt']} failed: {page.get('error') or 'no error recorded'}")
        return 1 if args.follow else 0
    if args.follow or page["complete"]:
        _note(f"attempt {page['attempt']} {_ended(page['state'])}")
    return 0


def _default_task(client: Client, job_id: str) -> int:
    """The first failed task, else the first task."""
    failed = client.job_tasks(job_id, limit=1, state="failed")
    tasks = failed.get("tasks") or []
    return int(tasks[0]["index"]) if tasks else 0


def _first_page(
    client: Client,
    job_id: str,
    args: argparse.Namespace,
    *,
    frame: int | None,
    task: int | None,
) -> dict[str, Any]:
    """The log from its start; with ``--follow``, first waits for the task to start."""
    waiting = False
    while True:
        try:
            return client.task_log(job_id, frame=frame, task=task, attempt=args.attempt)
        except ClientError as err:
            if not (args.follow and err.code == "log_not_found" and "not run yet" in err.message):
                raise
        if not waiting:
            _note("the task has not started yet; waiting for it (Ctrl-C to stop)")
            waiting = True
        time.sleep(START_POLL_S)


def _header(page: dict[str, Any]) -> str:
    attempts = ", ".join(str(a) for a in page["attempts"])
    where = f" on {page['server']}" if page.get("server") else ""
    cut = page.get("truncated_bytes") or 0
    note = f"; {cut} bytes cut from the middle" if cut else ""
    return (
        f"job {page['job']} task {page['task']} (frames {page['frames']}) attempt "
        f"{page['attempt']} of [{attempts}]{where}: {page['state']}{note}"
    )


def _ended(state: str) -> str:
    return {"done": "is done", "requeued": "ended without a result (requeued)"}.get(state, state)


class _Stdout:
    """The log on stdout, ended with a newline if the renderer's last line had none."""

    def __init__(self) -> None:
        self._ends_line = True

    def write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self._ends_line = text.endswith("\n")

    def end_line(self) -> None:
        if not self._ends_line:
            self.write("\n")


def _note(message: str) -> None:
    print(f"spillway: {message}", file=sys.stderr, flush=True)
