-- Spillway resource database: initial schema (SQLite).
-- Keep in step with ../postgres/0001_init.sql: same tables, same column names, same indexes.
-- Times are epoch seconds (REAL); JSON values are TEXT; STRICT tables reject wrongly typed values.
-- CHECKs use OR, not IN (...): SQLite evaluates an IN-list CHECK by building a temporary
-- table per row, which made inserting 100,000 tasks take 0.3 s longer.

CREATE TABLE servers (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    host              TEXT NOT NULL,
    cores             INTEGER NOT NULL,
    memory_mb         INTEGER NOT NULL,
    gpus              TEXT NOT NULL DEFAULT '[]',     -- JSON list of GPU names
    os                TEXT NOT NULL DEFAULT '',
    cpu_model         TEXT NOT NULL DEFAULT '',
    packages          TEXT NOT NULL DEFAULT '{}',     -- JSON {package: version}
    tags              TEXT NOT NULL DEFAULT '[]',     -- JSON sorted list
    slots             INTEGER NOT NULL DEFAULT 1,
    status            TEXT NOT NULL DEFAULT 'offline'
                      CHECK (status = 'idle' OR status = 'busy' OR status = 'offline'
                             OR status = 'disabled'),
    status_changed_at REAL,
    last_heartbeat    REAL,
    registered_at     REAL NOT NULL
) STRICT;

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    owner            TEXT NOT NULL,
    origin_site      TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    profile          TEXT NOT NULL,                   -- JSON, JobProfile.to_dict()
    frames           TEXT NOT NULL,                   -- the frame spec as submitted
    frame_count      INTEGER NOT NULL,
    chunk_size       INTEGER NOT NULL,
    scene            TEXT NOT NULL,
    manifest         TEXT NOT NULL,                   -- JSON [{path, sha256, size}]
    output_name      TEXT NOT NULL,
    output_ext       TEXT NOT NULL,
    settings         TEXT NOT NULL,                   -- JSON object
    state            TEXT NOT NULL
                     CHECK (state = 'queued' OR state = 'running' OR state = 'paused'
                            OR state = 'done' OR state = 'failed' OR state = 'cancelled'),
    placement        TEXT NOT NULL,
    placement_reason TEXT NOT NULL DEFAULT '',
    placement_epoch  INTEGER NOT NULL DEFAULT 0,
    remote_job_id    TEXT,
    forward_allowed  INTEGER NOT NULL DEFAULT 1 CHECK (forward_allowed = 0 OR forward_allowed = 1),
    origin_job_id    TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    finished_at      REAL,
    error            TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX jobs_created ON jobs (created_at);
CREATE INDEX jobs_state ON jobs (state, placement);

-- tasks.job_id has no FOREIGN KEY and (job_id, idx) no UNIQUE constraint on purpose: tasks are
-- only ever inserted by create_job, in the same transaction as their job, and a 100,000-task
-- job must insert well under 2 s. On PostgreSQL the per-row foreign-key check alone took
-- ~0.5 s and the extra unique index ~0.3 s. Deleting a job must delete its tasks explicitly.
-- AUTOINCREMENT: a task id is never reused, so a late report can never match a newer task.
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           TEXT NOT NULL,                   -- no FOREIGN KEY: see above
    idx              INTEGER NOT NULL,
    frames           TEXT NOT NULL,                   -- "1,5,7" or "first:last[:step]"
    state            TEXT NOT NULL DEFAULT 'waiting'
                     CHECK (state = 'waiting' OR state = 'dispatched' OR state = 'running'
                            OR state = 'done' OR state = 'failed'),
    attempt          INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    server_id        TEXT,
    lease_expires_at REAL,
    dispatched_at    REAL,
    started_at       REAL,
    finished_at      REAL,
    log_tail         TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT ''
) STRICT;

-- Waiting tasks of a job in index order (dispatch), counts per state, "anything left?".
CREATE INDEX tasks_job_state ON tasks (job_id, state, idx);
-- Only active tasks are indexed: requeue by server, expiry, running summary stay small.
CREATE INDEX tasks_active ON tasks (server_id, job_id) WHERE state IN ('dispatched', 'running');

CREATE TABLE task_failures (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    job_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    error     TEXT NOT NULL,
    at        REAL NOT NULL
) STRICT;

CREATE INDEX task_failures_job ON task_failures (job_id, server_id);
CREATE INDEX task_failures_task ON task_failures (task_id);

-- task_id is informational (no foreign key): frames fetched back from a peer have none.
CREATE TABLE frames (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    frame       INTEGER NOT NULL,
    task_id     INTEGER,
    name        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    server_id   TEXT,
    rendered_at REAL NOT NULL,
    PRIMARY KEY (job_id, frame)
) STRICT;
