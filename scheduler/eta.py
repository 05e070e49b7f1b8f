"""A job's estimated time to finish, from the render times measured on its own tasks."""

from __future__ import annotations


def estimate_eta(
    *, waiting: int, active: int, done_timed: int, busy_s: float, parallel: int
) -> float | None:
    """Seconds until the job's last task ends, or None before any task was timed.

    ``done_timed`` tasks took ``busy_s`` seconds together, so each task takes their
    mean. ``parallel`` is how many tasks render at once now (at least one is assumed,
    so a job waiting for a server still gets a figure); a task already running counts
    as half done.
    """
    per_task = mean_task_s(done_timed=done_timed, busy_s=busy_s)
    if per_task is None or waiting + active <= 0:
        return None if per_task is None else 0.0
    lanes = max(parallel, 1)
    return (waiting + 0.5 * active) * per_task / lanes


def mean_task_s(*, done_timed: int, busy_s: float) -> float | None:
    """The mean time of a job's timed tasks (``done_timed`` of them took ``busy_s`` seconds
    together); None before any task was timed."""
    if done_timed <= 0:
        return None
    return max(busy_s, 0.0) / done_timed


def short_tasks(*, done_timed: int, busy_s: float, below_s: float) -> bool:
    """Whether a job's tasks are short enough to queue ahead on a render server (look-ahead):
    their mean time so far is under ``below_s``. Unknown (nothing timed yet) is not short."""
    mean = mean_task_s(done_timed=done_timed, busy_s=busy_s)
    return mean is not None and mean < below_s
