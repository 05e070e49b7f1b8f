"""SQL of the monitor's reads: a filtered, sorted page of jobs, their progress in one
read per page, and one job's per-frame grid. Same dialect rules as :mod:`.queries`.

The ORDER BY clauses are a fixed table of constants keyed by the sort names the API
accepts; no part of a statement comes from a request.
"""

from __future__ import annotations

from .queries import JOB_COLUMNS

# $1 states, $2 owner or NULL, $3 name pattern or NULL, $4 profile pattern or NULL,
# $5 placement kind ('local', 'forwarded', 'accepted') or NULL, $6 peer name or NULL.
_JOB_FILTER = """
WHERE state = ANY($1::text[])
  AND (CAST($2 AS TEXT) IS NULL OR owner = $2)
  AND (CAST($3 AS TEXT) IS NULL OR LOWER(name) LIKE $3 ESCAPE '\\' OR LOWER(id) LIKE $3 ESCAPE '\\')
  AND (CAST($4 AS TEXT) IS NULL OR profile LIKE $4 ESCAPE '\\')
  AND (CAST($5 AS TEXT) IS NULL
       OR ($5 = 'local' AND placement = 'local' AND origin_job_id IS NULL)
       OR ($5 = 'forwarded' AND placement <> 'local')
       OR ($5 = 'accepted' AND origin_job_id IS NOT NULL))
  AND (CAST($6 AS TEXT) IS NULL OR placement = $6 OR (origin_job_id IS NOT NULL AND origin_site = $6))
"""
JOB_SORTS: dict[str, str] = {
    "created": "created_at ASC, id ASC",
    "-created": "created_at DESC, id DESC",
    "updated": "updated_at ASC, id ASC",
    "-updated": "updated_at DESC, id DESC",
    "priority": "priority ASC, created_at ASC, id ASC",
    "-priority": "priority DESC, created_at DESC, id DESC",
    "name": "LOWER(name) ASC, id ASC",
    "-name": "LOWER(name) DESC, id DESC",
    "state": "state ASC, created_at DESC, id DESC",
    "-state": "state DESC, created_at DESC, id DESC",
    "frames": "frame_count ASC, created_at DESC, id DESC",
    "-frames": "frame_count DESC, created_at DESC, id DESC",
}
"""Sort name (``-`` for descending) to ORDER BY clause; every order ends on the id so pages
never overlap or skip a job."""
LIST_JOBS_SORTED = {
    key: f"SELECT {JOB_COLUMNS} FROM jobs {_JOB_FILTER} ORDER BY {order} LIMIT $7 OFFSET $8"
    for key, order in JOB_SORTS.items()
}
COUNT_JOBS_FILTERED = f"SELECT COUNT(*) AS n FROM jobs {_JOB_FILTER}"

TASK_COUNTS_OF_JOBS = """
SELECT job_id, state, COUNT(*) AS n FROM tasks WHERE job_id = ANY($1::text[])
GROUP BY job_id, state
"""
FRAMES_DONE_OF_JOBS = """
SELECT job_id, COUNT(*) AS n FROM frames WHERE job_id = ANY($1::text[]) GROUP BY job_id
"""
TASK_TIMES_OF_JOBS = """
SELECT job_id, COUNT(*) AS n, SUM(finished_at - started_at) AS busy FROM tasks
WHERE job_id = ANY($1::text[]) AND state = 'done'
  AND started_at IS NOT NULL AND finished_at IS NOT NULL
GROUP BY job_id
"""

GRID_TASKS = """
SELECT idx, frames, state, attempt, server_id, started_at, finished_at FROM tasks
WHERE job_id = $1 ORDER BY idx
"""
STORED_FRAME_NUMBERS = "SELECT frame FROM frames WHERE job_id = $1"
LATEST_FRAMES = """
SELECT f.frame, f.rendered_at,
       EXISTS (SELECT 1 FROM frame_files p
               WHERE p.job_id = f.job_id AND p.frame = f.frame AND p.kind = 'preview') AS preview
FROM frames f WHERE f.job_id = $1 ORDER BY f.rendered_at DESC, f.frame DESC LIMIT $2
"""

# $1 now, $2 the window's start: busy seconds per server inside the window, counting
# the tasks running now and those that ended in it.
SERVER_BUSY_SINCE = """
SELECT server_id,
       SUM(CASE WHEN finished_at IS NULL OR finished_at > $1 THEN $1 ELSE finished_at END
           - CASE WHEN started_at < $2 THEN $2 ELSE started_at END) AS busy
FROM tasks
WHERE server_id IS NOT NULL AND started_at IS NOT NULL
  AND state IN ('running', 'done', 'failed') AND (finished_at IS NULL OR finished_at > $2)
GROUP BY server_id
"""
RECENT_FAILURES = "SELECT server_id, error, at FROM task_failures ORDER BY at DESC LIMIT 500"
FORWARDED_PER_PEER = """
SELECT placement AS peer, COUNT(*) AS n FROM jobs WHERE placement <> 'local' GROUP BY placement
"""
ACCEPTED_PER_PEER = """
SELECT origin_site AS peer, COUNT(*) AS n FROM jobs WHERE origin_job_id IS NOT NULL
GROUP BY origin_site
"""
