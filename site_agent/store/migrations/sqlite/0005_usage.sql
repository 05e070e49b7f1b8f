-- Accounting: one row per rendered attempt, per forwarded job's remote figures and per
-- transfer, summed by job or by peer (`spillway usage`). Rows are only ever inserted, in the
-- transaction of the state change they account for (a ledger: nothing is updated).
-- peer: '' for this site's own jobs rendered here; for a job accepted from a peer, that peer;
-- for a job forwarded to a peer, that peer.
-- source: 'attempt' (a render attempt here), 'remote' (the figures a peer reported for a job it
-- rendered), 'transfer' (asset or frame bytes exchanged with the peer).
-- Keep in step with ../postgres/0005_usage.sql.
CREATE TABLE usage_records (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT NOT NULL,
    peer            TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL
                    CHECK (source = 'attempt' OR source = 'remote' OR source = 'transfer'),
    task_id         INTEGER,
    attempt         INTEGER,
    server_id       TEXT,
    at              REAL NOT NULL,
    wall_s          REAL NOT NULL DEFAULT 0,
    core_seconds    REAL NOT NULL DEFAULT 0,
    frames          INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    bytes_in        INTEGER NOT NULL DEFAULT 0,
    bytes_out       INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_job ON usage_records (job_id);
CREATE INDEX usage_records_peer ON usage_records (peer, at);
