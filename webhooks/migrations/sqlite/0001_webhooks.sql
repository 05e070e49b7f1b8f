-- Spillway resource database: webhook deliveries, the webhooks chain (SQLite).
-- Keep in step with ../postgres/0001_webhooks.sql: same tables, same column names, same indexes.

-- One row per (event, endpoint): the durable outbox of webhook deliveries. id is the
-- webhook-id header, stable across retries so receivers can deduplicate; an event written
-- twice (same id) is kept once. state: pending until the endpoint answers 2xx (delivered)
-- or refuses it for good (failed, e.g. 4xx).
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    endpoint     TEXT NOT NULL,                     -- the [[webhooks]] name
    event        TEXT NOT NULL,                     -- job.submitted, job.done, ...
    job_id       TEXT NOT NULL,
    body         TEXT NOT NULL,                     -- JSON payload, sent as is on every attempt
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state = 'pending' OR state = 'delivered' OR state = 'failed'),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER,                           -- HTTP status of the last attempt, if any
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    last_attempt_at REAL,
    finished_at  REAL
) STRICT;

CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (state, created_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint, created_at);
