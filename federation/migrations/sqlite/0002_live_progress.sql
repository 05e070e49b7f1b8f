-- Live progress of forwarded jobs (SQLite). Keep in step with ../postgres/0002_live_progress.sql.

-- Remote side: the last progress snapshot number given to each accepted job, and the last
-- pause/resume sequence applied from its origin (older ones arriving late are ignored).
ALTER TABLE fed_offers ADD COLUMN progress_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fed_offers ADD COLUMN control_seq INTEGER NOT NULL DEFAULT 0;

-- Origin side: the last progress snapshot applied per placement, and the last pause/resume
-- sequence applied from the remote's own users.
ALTER TABLE fed_forwards ADD COLUMN progress_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE fed_forwards ADD COLUMN control_seq INTEGER NOT NULL DEFAULT 0;

-- The outbox carries progress snapshots and pauses/resumes too. SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt with its rows.
CREATE TABLE fed_outbox_new (
    id           TEXT PRIMARY KEY,
    peer         TEXT NOT NULL,
    kind         TEXT NOT NULL
                 CHECK (kind = 'notify' OR kind = 'cancel' OR kind = 'progress'
                        OR kind = 'pause' OR kind = 'resume'),
    job_id       TEXT NOT NULL,
    body         TEXT NOT NULL,
    final        INTEGER NOT NULL DEFAULT 0 CHECK (final = 0 OR final = 1),
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    delivered_at REAL,
    last_error   TEXT NOT NULL DEFAULT ''
) STRICT;

INSERT INTO fed_outbox_new (id, peer, kind, job_id, body, final, attempts, created_at,
                            delivered_at, last_error)
SELECT id, peer, kind, job_id, body, final, attempts, created_at, delivered_at, last_error
FROM fed_outbox;

DROP TABLE fed_outbox;
ALTER TABLE fed_outbox_new RENAME TO fed_outbox;
CREATE INDEX fed_outbox_pending ON fed_outbox (delivered_at, created_at);
CREATE INDEX fed_outbox_job ON fed_outbox (job_id, kind);
