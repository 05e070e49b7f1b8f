-- The full output of every task attempt (not only the last attempt's tail in tasks.log_tail).
-- Appended as it arrives, one row per report: an append never rewrites earlier text. Offsets
-- count UTF-8 bytes of the attempt's whole output; the agent keeps the first and the last part
-- of a long log and deletes whole rows from the middle (site_agent/task_logs.py, the caps).
CREATE TABLE task_log_chunks (
    task_id      INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    end_offset   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt, start_offset)
) STRICT;

-- How each attempt ended, written with its completion or failure. An attempt with no row here
-- is still active, or was requeued (its server was lost) without a result.
CREATE TABLE task_log_ends (
    task_id   INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt   INTEGER NOT NULL,
    server_id TEXT,
    state     TEXT NOT NULL,
    error     TEXT NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (task_id, attempt)
) STRICT;
