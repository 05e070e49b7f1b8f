-- Spillway resource database: federation state, the federation chain (PostgreSQL).
-- Keep in step with ../sqlite/0001_federation.sql: same tables, same column names, same indexes.

-- Remote side: offers accepted from peers, keyed by the origin's idempotency key
-- ("<origin site>:<origin job id>:<epoch>"); remote_job_id is set by the commit.
CREATE TABLE fed_offers (
    key           TEXT PRIMARY KEY,
    site          TEXT NOT NULL,                    -- the peer that offered (verified cert name)
    origin_job_id TEXT NOT NULL,
    epoch         INTEGER NOT NULL,
    body          TEXT NOT NULL,                    -- JSON: the Offer message body
    remote_job_id TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    committed_at  DOUBLE PRECISION
);

CREATE INDEX fed_offers_site ON fed_offers (site, remote_job_id);
CREATE INDEX fed_offers_job ON fed_offers (remote_job_id);

-- Both sides: ids of messages already processed, per sending site (replay guard).
CREATE TABLE fed_seen (
    site    TEXT NOT NULL,
    msg_id  TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site, msg_id)
);

-- Both sides: messages to peers (notify R -> O, cancel O -> R), delivered until acknowledged.
-- id is the envelope's message id, stable across retries so the receiver can deduplicate.
CREATE TABLE fed_outbox (
    id           TEXT PRIMARY KEY,
    peer         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('notify', 'cancel')),
    job_id       TEXT NOT NULL,                     -- the job at this site the message is about
    body         TEXT NOT NULL,                     -- JSON: the message body
    final        INTEGER NOT NULL DEFAULT 0 CHECK (final IN (0, 1)),
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    last_error   TEXT NOT NULL DEFAULT ''
);

CREATE INDEX fed_outbox_pending ON fed_outbox (delivered_at, created_at);
CREATE INDEX fed_outbox_job ON fed_outbox (job_id, kind);

-- Origin side: one row per placement of a job at a peer (job, epoch).
CREATE TABLE fed_forwards (
    job_id          TEXT NOT NULL,
    epoch           INTEGER NOT NULL,
    peer            TEXT NOT NULL,
    remote_job_id   TEXT,
    state           TEXT NOT NULL,                  -- offering, committed, finished, rejected, abandoned
    remote_state    TEXT NOT NULL DEFAULT '',
    frames_done     INTEGER NOT NULL DEFAULT 0,
    bytes_sent      BIGINT NOT NULL DEFAULT 0,
    blobs_sent      INTEGER NOT NULL DEFAULT 0,
    blobs_skipped   INTEGER NOT NULL DEFAULT 0,
    last_contact_at DOUBLE PRECISION,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, epoch)
);

CREATE INDEX fed_forwards_state ON fed_forwards (state);

-- Both sides: each peer's last capacity advertisement.
CREATE TABLE fed_peers (
    name      TEXT PRIMARY KEY,
    advert    TEXT NOT NULL,                        -- JSON: the CapacityAdvert body
    last_seen DOUBLE PRECISION NOT NULL
);
