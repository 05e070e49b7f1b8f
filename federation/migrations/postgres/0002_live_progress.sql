-- Live progress of forwarded jobs (PostgreSQL). Keep in step with ../sqlite/0002_live_progress.sql.

-- Remote side: the last progress snapshot number given to each accepted job, and the last
-- pause/resume sequence applied from its origin (older ones arriving late are ignored).
ALTER TABLE fed_offers ADD COLUMN progress_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fed_offers ADD COLUMN control_seq BIGINT NOT NULL DEFAULT 0;

-- Origin side: the last progress snapshot applied per placement, and the last pause/resume
-- sequence applied from the remote's own users.
ALTER TABLE fed_forwards ADD COLUMN progress_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fed_forwards ADD COLUMN control_seq BIGINT NOT NULL DEFAULT 0;

-- The outbox carries progress snapshots and pauses/resumes too.
ALTER TABLE fed_outbox DROP CONSTRAINT fed_outbox_kind_check;
ALTER TABLE fed_outbox ADD CONSTRAINT fed_outbox_kind_check
    CHECK (kind IN ('notify', 'cancel', 'progress', 'pause', 'resume'));
