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
    if done_timed <= 0 or waiting + active <= 0:
        return None if done_timed <= 0 else 0.0
    per_task = max(busy_s, 0.0) / done_timed
    lanes = max(parallel, 1)
    return (waiting + 0.5 * active) * per_task / lanes
