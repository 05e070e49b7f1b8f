"""Jobs that cannot be placed: no online server matches them, or every capable one is avoided."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dispatch import JobView
from scheduler.profile import ServerView, explain_unmatched, matches

__all__ = ["stranded_jobs", "unplaceable_jobs"]


def stranded_jobs(jobs: Sequence[JobView], servers: Sequence[ServerView]) -> dict[str, str]:
    """Jobs whose waiting tasks can run on none of ``servers``, with the reason why.

    A job is stranded when at least one online server matches its profile,
    every matching online server is in its ``avoid_servers`` (each failed it
    repeatedly), and none of its tasks is running: waiting longer cannot help. A
    job with tasks still running is judged once they end (their outcome is part
    of its story); a job with no capable server online at all is not stranded
    here (a server may yet connect). Pass every connected server, not only those
    with free slots.
    """
    stranded: dict[str, str] = {}
    online = [server for server in servers if server.online]
    for job in jobs:
        if not job.avoid_servers or job.running_tasks:
            continue  # the common case first, without a pass over the servers
        capable = [server for server in online if matches(job.profile, server)]
        if capable and all(server.id in job.avoid_servers for server in capable):
            names = ", ".join(sorted(server.name for server in capable))
            noun = "the only capable server" if len(capable) == 1 else "every capable server"
            stranded[job.id] = f"{noun} ({names}) failed this job repeatedly and is avoided for it"
    return stranded


def unplaceable_jobs(jobs: Sequence[JobView], servers: Sequence[ServerView]) -> dict[str, str]:
    """Jobs no online server matches at all, with why (in the words ``spillway job`` uses).

    Such a job can only wait for a capable server to connect; the agent fails it once
    that has lasted its ``stall_after``. A job with tasks running, or one waiting for
    another job (not ``ready``), is not unplaceable.
    """
    online = [server for server in servers if server.online]
    return {
        job.id: explain_unmatched(job.profile, servers)
        for job in jobs
        if job.ready
        and not job.running_tasks
        and not any(matches(job.profile, server) for server in online)
    }
