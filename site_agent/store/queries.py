"""Every SQL statement of the store, written once for both backends.

``$n`` parameters and ``= ANY($n::type[])`` arrays are PostgreSQL syntax; the
SQLite adapter rewrites them (see :mod:`site_agent.store.sqlite`). Column lists
below are code constants, never values.

Lock order, to keep PostgreSQL free of deadlocks: a transaction that changes a
job's tasks and reads "what is left" first locks the job row (``LOCK_JOB``),
then touches tasks. Jobs locked together are locked in id order.
"""

from __future__ import annotations

SERVER_COLUMNS = (
    "id, name, host, cores, memory_mb, gpus, os, cpu_model, packages, tags, slots, status, "
    "last_heartbeat, registered_at, key_hash"
)
JOB_COLUMNS = (
    "id, name, owner, origin_site, priority, profile, frames, frame_count, chunk_size, scene, "
    "manifest, output_name, output_ext, settings, state, placement, placement_reason, "
    "placement_epoch, remote_job_id, forward_allowed, origin_job_id, created_at, updated_at, "
    "finished_at, error, split, part_of"
)
TASK_COLUMNS = (
    "id, job_id, idx, frames, state, attempt, failures, server_id, lease_expires_at, "
    "dispatched_at, started_at, finished_at, log_tail, error"
)
FRAME_COLUMNS = "job_id, frame, task_id, name, sha256, size, server_id, rendered_at"
TASK_INSERT_COLUMNS = ("job_id", "idx", "frames")

ACTIVE = "('dispatched', 'running')"
OPEN = "('waiting', 'dispatched', 'running')"
UNFINISHED_JOB = "('queued', 'running', 'paused')"

# --- servers -------------------------------------------------------------
UPSERT_SERVER = f"""
INSERT INTO servers (id, name, host, cores, memory_mb, gpus, os, cpu_model, packages, tags,
                     slots, status, last_heartbeat, registered_at, key_hash, status_changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $14)
ON CONFLICT (name) DO UPDATE SET
    host = excluded.host, cores = excluded.cores, memory_mb = excluded.memory_mb,
    gpus = excluded.gpus, os = excluded.os, cpu_model = excluded.cpu_model,
    packages = excluded.packages, tags = excluded.tags, slots = excluded.slots,
    status = CASE WHEN servers.status = 'disabled' THEN servers.status ELSE excluded.status END,
    last_heartbeat = COALESCE(excluded.last_heartbeat, servers.last_heartbeat),
    key_hash = excluded.key_hash
RETURNING {SERVER_COLUMNS}
"""
SET_SERVER_STATUS = "UPDATE servers SET status = $2, status_changed_at = $3 WHERE id = $1"
RECORD_HEARTBEAT = """
UPDATE servers SET last_heartbeat = $2
WHERE id = $1 AND (last_heartbeat IS NULL OR last_heartbeat < $2)
"""
RECORD_HEARTBEATS_AT = """
UPDATE servers SET last_heartbeat = $2
WHERE id = ANY($1::text[]) AND (last_heartbeat IS NULL OR last_heartbeat < $2)
"""
LIST_SERVERS = f"SELECT {SERVER_COLUMNS} FROM servers ORDER BY name"
GET_SERVER = f"SELECT {SERVER_COLUMNS} FROM servers WHERE id = $1"
GET_SERVER_BY_NAME = f"SELECT {SERVER_COLUMNS} FROM servers WHERE name = $1"
DELETE_SERVER = "DELETE FROM servers WHERE id = $1"

# --- jobs ----------------------------------------------------------------
INSERT_JOB = f"""
INSERT INTO jobs ({JOB_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26, $27)
"""
GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
JOB_STATE_COUNTS = "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"
# A job accepted from a peer, by the origin's id (the newest placement if re-offered); served by
# the partial index jobs_origin_job (federation chain, 0004_origin_job_index).
GET_JOB_BY_ORIGIN_ID = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE origin_job_id = $1 ORDER BY created_at DESC LIMIT 1
"""
LIST_JOBS = f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1"
LIST_JOBS_IN_STATES = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE state = ANY($1::text[])
ORDER BY created_at DESC, id DESC LIMIT $2
"""
# A no-op write that takes the job's row lock (portable SELECT ... FOR UPDATE).
LOCK_JOB = "UPDATE jobs SET state = state WHERE id = $1 RETURNING state"
LOCK_JOB_NO_RESULT = "UPDATE jobs SET state = state WHERE id = $1"
JOB_STATES = "SELECT id, state FROM jobs WHERE id = ANY($1::text[])"
UPDATE_JOB_STATE_IF = """
UPDATE jobs SET state = $2, updated_at = $3, finished_at = $4, error = $5
WHERE id = $1 AND state = ANY($6::text[])
"""
SET_JOB_PLACEMENT = """
UPDATE jobs SET placement = $2, placement_reason = $3, placement_epoch = $4, remote_job_id = $5,
                updated_at = $6
WHERE id = $1
"""
SET_JOB_PRIORITY = "UPDATE jobs SET priority = $2, updated_at = $3 WHERE id = $1"
START_JOB = "UPDATE jobs SET state = 'running', updated_at = $2 WHERE id = $1 AND state = 'queued'"
FINISH_JOB = f"""
UPDATE jobs SET state = $2, finished_at = $3, updated_at = $3, error = $4
WHERE id = $1 AND state IN {UNFINISHED_JOB}
"""
CANCEL_JOB = f"""
UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2
WHERE id = $1 AND state IN {UNFINISHED_JOB}
"""
REQUEUE_JOB = """
UPDATE jobs SET state = 'queued', finished_at = NULL, updated_at = $2, error = ''
WHERE id = $1 AND state IN ('failed', 'cancelled')
"""
HAS_OPEN_TASKS = f"SELECT EXISTS (SELECT 1 FROM tasks WHERE job_id = $1 AND state IN {OPEN})"
FAILED_TASKS = """
SELECT COUNT(*) AS n, MIN(idx) AS first FROM tasks WHERE job_id = $1 AND state = 'failed'
"""
TASK_ERROR_AT = "SELECT error FROM tasks WHERE job_id = $1 AND idx = $2"

# --- tasks ---------------------------------------------------------------
TASK_COUNTS = "SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = $1 GROUP BY state"
LIST_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = $1 ORDER BY idx"
GET_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
GET_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ANY($1::bigint[])"
TASK_JOB = "SELECT job_id FROM tasks WHERE id = $1"
CLAIMABLE = """
SELECT t.id, t.job_id, t.state, t.attempt, j.state AS job_state, j.placement
FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.id = ANY($1::bigint[])
"""
# Fenced: succeeds only while the task is still waiting at the previous attempt.
CLAIM_TASK = """
UPDATE tasks SET state = 'dispatched', attempt = $2, server_id = $3, lease_expires_at = $4,
                 dispatched_at = $5, started_at = NULL, finished_at = NULL, log_tail = ''
WHERE id = $1 AND state = 'waiting' AND attempt = $2 - 1
"""
_FENCE = f"id = $1 AND attempt = $2 AND server_id = $3 AND state IN {ACTIVE}"
MARK_RUNNING = f"""
UPDATE tasks SET state = 'running', started_at = COALESCE(started_at, $4), lease_expires_at = $5
WHERE {_FENCE}
"""
# Keep the last $5 characters; the CASE avoids substr() with a start below 1, where the
# backends disagree.
APPEND_LOG = f"""
UPDATE tasks SET log_tail = CASE
        WHEN length(log_tail || $4) > $5
        THEN substr(log_tail || $4, length(log_tail || $4) - $5 + 1)
        ELSE log_tail || $4 END
WHERE {_FENCE}
"""
# Batched (see ``site_agent.lifecycle.batch``): the outcome is read back afterwards.
COMPLETE_TASK_NO_RESULT = f"""
UPDATE tasks SET state = 'done', finished_at = $4, lease_expires_at = NULL, error = '',
                 log_tail = COALESCE($5, log_tail)
WHERE {_FENCE}
"""
FAIL_TASK_RETRY = f"""
UPDATE tasks SET state = 'waiting', failures = failures + 1, error = $4,
                 log_tail = COALESCE($5, log_tail), server_id = NULL, lease_expires_at = NULL,
                 dispatched_at = NULL, started_at = NULL, finished_at = NULL
WHERE {_FENCE}
RETURNING {TASK_COLUMNS}
"""
FAIL_TASK_FINAL = f"""
UPDATE tasks SET state = 'failed', failures = failures + 1, error = $4,
                 log_tail = COALESCE($5, log_tail), lease_expires_at = NULL, finished_at = $6
WHERE {_FENCE}
RETURNING {TASK_COLUMNS}
"""
INSERT_FAILURE = """
INSERT INTO task_failures (task_id, job_id, server_id, attempt, error, at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
# A task back to waiting is no longer in a part of its split job either.
_BACK_TO_WAITING = (
    "state = 'waiting', server_id = NULL, lease_expires_at = NULL, dispatched_at = NULL, "
    "started_at = NULL, finished_at = NULL, part_job_id = NULL"
)
BACK_TO_WAITING = _BACK_TO_WAITING
REQUEUE_SERVER_TASKS = f"""
UPDATE tasks SET {_BACK_TO_WAITING}
WHERE server_id = $1 AND state IN {ACTIVE}
RETURNING {TASK_COLUMNS}
"""
UNQUEUE_TASK = f"""
UPDATE tasks SET {_BACK_TO_WAITING}
WHERE id = $1 AND attempt = $2 AND server_id = $3 AND state = 'dispatched'
RETURNING {TASK_COLUMNS}
"""
HAND_BACK_TASK = f"""
UPDATE tasks SET {_BACK_TO_WAITING}, error = $4
WHERE {_FENCE}
RETURNING {TASK_COLUMNS}
"""
LAST_FAILURE = """
SELECT error FROM task_failures WHERE job_id = $1 ORDER BY at DESC, attempt DESC LIMIT 1
"""
FAILED_LOG_TAIL = """
SELECT log_tail FROM tasks WHERE job_id = $1 AND failures > 0 AND log_tail <> ''
ORDER BY idx LIMIT 1
"""
SET_JOB_NOTICE = (
    f"UPDATE jobs SET error = $2, updated_at = $3 WHERE id = $1 AND state IN {UNFINISHED_JOB}"
)
REQUEUE_JOB_TASKS = f"UPDATE tasks SET {_BACK_TO_WAITING} WHERE job_id = $1 AND state IN {ACTIVE}"
RETRY_FAILED_TASKS = f"""
UPDATE tasks SET {_BACK_TO_WAITING}, failures = 0 WHERE job_id = $1 AND state = 'failed'
"""
FORGET_FAILURES_OF_FAILED_TASKS = """
DELETE FROM task_failures
WHERE task_id IN (SELECT id FROM tasks WHERE job_id = $1 AND state = 'failed')
"""
EXPIRED_TASKS = f"""
SELECT {TASK_COLUMNS} FROM tasks
WHERE state IN {ACTIVE} AND lease_expires_at < $1
ORDER BY lease_expires_at, id
"""
# Active tasks always have a server, so COALESCE($n, column) means "any" for a NULL filter.
ACTIVE_TASKS = f"""
SELECT {TASK_COLUMNS} FROM tasks
WHERE state IN {ACTIVE} AND server_id = COALESCE($1, server_id) AND job_id = COALESCE($2, job_id)
  AND part_job_id IS NULL
ORDER BY job_id, idx
"""
# Only this site's jobs: the active tasks of a forwarded job mirror its peer's servers, and a
# split job's chunks sent to a peer (part_job_id) are not held by a server of this site.
ACTIVE_TASK_SERVERS = f"""
SELECT DISTINCT t.server_id FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state IN {ACTIVE} AND j.placement = 'local' AND t.part_job_id IS NULL
"""
SERVER_FAILURES = """
SELECT server_id, COUNT(*) AS n FROM task_failures WHERE job_id = $1 GROUP BY server_id
"""

# --- dispatch snapshot -----------------------------------------------------
# A part of a split job (part_of) never renders here: re-placed here, it is cancelled and its
# chunks go back to the split job (federation.split).
DISPATCHABLE_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs j
WHERE j.placement = $1 AND j.state IN ('queued', 'running') AND j.part_of IS NULL
  AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.state = 'waiting')
ORDER BY j.priority DESC, j.created_at, j.id
"""
WAITING_TASKS = f"""
SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = $1 AND state = 'waiting' ORDER BY idx LIMIT $2
"""
# Counted per (server, job) first, on the partial index of active tasks, then summed:
# grouped by job alone, SQLite walks the (job_id, state, idx) index over every task
# of every job, done ones included.
RUNNING_COUNTS = f"""
SELECT job_id, SUM(n) AS n FROM (
  SELECT job_id, server_id, COUNT(*) AS n FROM tasks WHERE state IN {ACTIVE} AND part_job_id IS NULL
  GROUP BY server_id, job_id
) per_server GROUP BY job_id
"""
# Only for the jobs that limit their servers: with 2,000 servers busy, reading every
# (job, server) pair each dispatch round made a round cost O(servers).
RUNNING_SERVERS = f"""
SELECT DISTINCT job_id, server_id FROM tasks
WHERE job_id = ANY($1::text[]) AND state IN {ACTIVE} AND part_job_id IS NULL
"""
# Active tasks of jobs accepted from peers, per peer (their max_slots in the dispatcher); a job
# relayed on to another peer only mirrors that peer's tasks.
GUEST_RUNNING = f"""
SELECT j.origin_site AS site, COUNT(*) AS n FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state IN {ACTIVE} AND j.origin_job_id IS NOT NULL AND j.placement = 'local'
GROUP BY j.origin_site
"""
FAILURES_BY_JOB = """
SELECT job_id, server_id, COUNT(*) AS n FROM task_failures WHERE job_id = ANY($1::text[])
GROUP BY job_id, server_id
"""
FAILED_ON = """
SELECT DISTINCT task_id, server_id FROM task_failures WHERE task_id = ANY($1::bigint[])
"""

# --- frames ----------------------------------------------------------------
UPSERT_FRAME = f"""
INSERT INTO frames ({FRAME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (job_id, frame) DO UPDATE SET
    task_id = excluded.task_id, name = excluded.name, sha256 = excluded.sha256,
    size = excluded.size, server_id = excluded.server_id, rendered_at = excluded.rendered_at
"""
LIST_FRAMES = f"SELECT {FRAME_COLUMNS} FROM frames WHERE job_id = $1 ORDER BY frame"
# A frame's other files (frame_files): replaced whole each time the frame is recorded.
FRAME_FILE_COLUMNS = "job_id, frame, name, sha256, size, kind"
DELETE_FRAME_FILES = "DELETE FROM frame_files WHERE job_id = $1 AND frame = $2"
INSERT_FRAME_FILE = (
    f"INSERT INTO frame_files ({FRAME_FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
)
LIST_FRAME_FILES = (
    f"SELECT {FRAME_FILE_COLUMNS} FROM frame_files WHERE job_id = $1 ORDER BY frame, name"
)
FRAME_FILES_OF = f"""
SELECT {FRAME_FILE_COLUMNS} FROM frame_files WHERE job_id = $1 AND frame = ANY($2::int[])
ORDER BY frame, name
"""
# Which frames hold files of these names (both tables, through their (job_id, name) indexes).
FRAME_NAME_OWNERS = """
SELECT name, frame FROM frames WHERE job_id = $1 AND name = ANY($2::text[])
UNION ALL
SELECT name, frame FROM frame_files WHERE job_id = $1 AND name = ANY($2::text[])
"""
GET_FRAME = f"SELECT {FRAME_COLUMNS} FROM frames WHERE job_id = $1 AND frame = $2"
# Reads only the task's own frames through the (job_id, frame) key, however large the job.
STORED_TASK_FRAMES = """
SELECT frame FROM frames WHERE job_id = $1 AND frame = ANY($3::int[]) AND task_id = $2
"""

# --- placement: re-placing and finishing forwarded jobs (statements.py), estimates (sql_store.py)
# Fenced on the placement epoch: a late result of an older placement changes nothing.
REPLACE_JOB = """
UPDATE jobs SET placement = $2, placement_reason = $3, placement_epoch = $4, remote_job_id = NULL,
                updated_at = $5
WHERE id = $1 AND placement_epoch = $6 AND state IN ('queued', 'running', 'paused')
"""

# Every task not done here ends with the job (tasks mirroring the peer's may be running).
COMPLETE_FORWARDED_TASKS = """
UPDATE tasks SET state = $2, finished_at = COALESCE(finished_at, $3), error = $4
WHERE job_id = $1 AND state <> 'done'
"""

# A forwarded job's task as its peer reports it; a task done here (its frames fetched) stays.
RELAY_TASK = """
UPDATE tasks SET state = $3, attempt = $4, server_id = $5, started_at = $6, finished_at = $7,
                 error = $8, dispatched_at = COALESCE(dispatched_at, $6)
WHERE job_id = $1 AND idx = $2 AND state <> 'done'
"""

# A re-placed job renders again what its old placement did not bring back.
RESET_RELAYED_TASKS = f"""
UPDATE tasks SET {_BACK_TO_WAITING}, attempt = 0, error = ''
WHERE job_id = $1 AND state <> 'done' AND state <> 'waiting'
"""

LOCAL_FRAMES_WAITING = """
SELECT COALESCE(SUM(j.chunk_size), 0) AS n FROM tasks t JOIN jobs j ON j.id = t.job_id
WHERE t.state = 'waiting' AND j.placement = 'local' AND j.state IN ('queued', 'running')
"""

RECENT_SECONDS_PER_FRAME = """
SELECT AVG(d) AS s FROM (
    SELECT (t.finished_at - t.started_at) / j.chunk_size AS d FROM tasks t
    JOIN jobs j ON j.id = t.job_id
    WHERE t.state = 'done' AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL
      AND j.placement = 'local'  -- a forwarded job's tasks carry its peer's timings
    ORDER BY t.finished_at DESC LIMIT 50
) recent
"""

# --- paged job detail and re-rendering chosen frames (sql_store.py, statements.py)
LIST_TASKS_PAGE = f"""
SELECT {TASK_COLUMNS} FROM tasks WHERE job_id = $1 AND state = ANY($2::text[])
ORDER BY idx LIMIT $3 OFFSET $4
"""
COUNT_FRAMES = "SELECT COUNT(*) AS n FROM frames WHERE job_id = $1"
FRAMES_OF = f"""
SELECT {FRAME_COLUMNS} FROM frames WHERE job_id = $1 AND frame = ANY($2::int[]) ORDER BY frame
"""
FORGET_FAILURES_OF_TASKS = "DELETE FROM task_failures WHERE task_id = ANY($1::bigint[])"
RERENDER_TASKS = f"""
UPDATE tasks SET {_BACK_TO_WAITING}, failures = 0, error = ''
WHERE id = ANY($2::bigint[]) AND job_id = $1 AND state IN ('done', 'failed')
"""
DELETE_FRAMES = "DELETE FROM frames WHERE job_id = $1 AND frame = ANY($2::int[])"
