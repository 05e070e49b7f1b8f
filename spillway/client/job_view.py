"""``spillway job ID``: one job, with a summary instead of the whole task list when it is big.

A job of up to ``SUMMARY_OVER`` tasks is shown whole (header, task table, frame
summary). A bigger one is summarised: task counts per state, then only its failed
and active tasks; ``--offset``/``--limit``/``--state`` page through the task table
and ``--frames SPEC`` shows the tasks that render those frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from spillway.client.formatting import format_job
from spillway.core.frames import parse_frames

if TYPE_CHECKING:
    from spillway.client.sync import Client

__all__ = ["SUMMARY_OVER", "frame_task_indexes", "show_job"]

SUMMARY_OVER = 50
"""Jobs with more tasks than this are summarised unless a page is asked for."""
_SHOWN_PER_STATE = 10
_STATE_ORDER = ("done", "running", "dispatched", "waiting", "failed")


def frame_task_indexes(job_frames: str, chunk_size: int, wanted: str) -> list[int]:
    """The indexes of the tasks that render ``wanted`` frames (tasks chunk the job's frames
    in order, ``chunk_size`` each)."""
    position = {f: i for i, f in enumerate(parse_frames(job_frames))}
    return sorted(
        {position[f] // max(1, chunk_size) for f in parse_frames(wanted) if f in position}
    )


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _task_counts(job: dict[str, Any]) -> str:
    tasks = (job.get("progress") or {}).get("tasks") or {}
    states = [s for s in _STATE_ORDER if tasks.get(s)] + sorted(
        s for s in tasks if s not in _STATE_ORDER and tasks[s]
    )
    return ", ".join(f"{tasks[s]} {s}" for s in states) or "none"


def _frames_page(client: Client, job_id: str, detail: dict[str, Any], spec: str) -> dict[str, Any]:
    job = detail["job"]
    indexes = frame_task_indexes(str(job.get("frames", "")), int(job.get("chunk_size", 1)), spec)
    if not indexes:
        return {"tasks": [], "frames": [], "tasks_page": {"offset": 0, "limit": 0, "total": 0}}
    tasks: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    offset, last = indexes[0], indexes[-1]
    keep = set(indexes)
    while offset <= last:  # pages of at most 1000 tasks, as the agent allows
        page = client.job_tasks(job_id, offset=offset, limit=min(1000, last - offset + 1))
        got = [t for t in page.get("tasks", []) if int(t.get("index", -1)) in keep]
        ids = {t.get("id") for t in got}
        tasks += got
        frames += [f for f in page.get("frames", []) if f.get("task") in ids]
        nxt = (page.get("tasks_page") or {}).get("next_offset")
        if nxt is None:
            break
        offset = int(nxt)
    wanted = set(parse_frames(spec))
    frames = [f for f in frames if int(f["frame"]) in wanted]
    return {
        "tasks": tasks,
        "frames": frames,
        "tasks_page": {"offset": indexes[0], "limit": len(indexes), "total": len(tasks)},
    }


def _summary(client: Client, job_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The failed and active tasks of a big job (at most ``_SHOWN_PER_STATE`` of each)."""
    tasks: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    for states in ("failed", "dispatched,running"):
        page = client.job_tasks(job_id, limit=_SHOWN_PER_STATE, state=states)
        tasks += page.get("tasks", [])
        frames += page.get("frames", [])
    return {"job": detail["job"], "tasks": tasks, "frames": frames}


def show_job(client: Client, args: argparse.Namespace, job_id: str) -> int:
    paged = bool(args.offset or args.state or args.frames or args.limit)
    limit = args.limit or 100
    if args.frames:
        detail = dict(client.job(job_id, tasks=0).raw)
        detail |= _frames_page(client, job_id, detail, args.frames)
    elif paged and (args.offset or args.state):
        detail = dict(client.job(job_id, tasks=0).raw)
        detail |= client.job_tasks(job_id, offset=args.offset, limit=limit, state=args.state)
    else:
        detail = dict(client.job(job_id, tasks=limit).raw)
    total_tasks = sum(((detail["job"].get("progress") or {}).get("tasks") or {}).values())
    if args.json:
        print(json.dumps(detail, indent=2, sort_keys=True))
        return 0
    if not paged and total_tasks > SUMMARY_OVER:
        return _print_summary(client, job_id, detail, total_tasks)
    print(format_job(detail, time.time()))
    page = detail.get("tasks_page") or {}
    if page.get("next_offset") is not None:
        _note(
            f"tasks {page['offset'] + 1}-{page['next_offset']} of {page['total']}; "
            f"`spillway job {job_id} --offset {page['next_offset']}` shows more"
        )
    return 0


def _print_summary(client: Client, job_id: str, detail: dict[str, Any], total: int) -> int:
    shown = _summary(client, job_id, detail)
    text = format_job(shown, time.time())
    head, _, rest = text.partition("\n\n")
    print(head)
    print(f"{'tasks':<10} {total}: {_task_counts(detail['job'])}")
    if shown["tasks"]:
        print(f"\nfailed and active tasks (at most {_SHOWN_PER_STATE} of each):")
        print(rest.rsplit("\n\n", 1)[0])
    _note(
        f"{total} tasks; `spillway job {job_id} --state failed`, `--offset N`, "
        f"`--frames SPEC` or `--limit N` show them"
    )
    return 0
