-- Reclaiming chunks of split jobs' parts (SQLite). Keep in step with ../postgres/0003_reclaims.sql.

-- Origin side: each time this site asked a peer to give back chunks of a part it had not
-- started. Written before the request is sent ('asked'), so a restart resends it with the same
-- key; 'answered' in the transaction that applies the answer; 'abandoned' when the part ended
-- or moved before an answer came. indices/withdrawn: JSON lists of the part's task positions.
CREATE TABLE fed_reclaims (
    key         TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL,                      -- the part (a job of this site)
    epoch       INTEGER NOT NULL,
    peer        TEXT NOT NULL,
    indices     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'asked'
                CHECK (state = 'asked' OR state = 'answered' OR state = 'abandoned'),
    withdrawn   TEXT NOT NULL DEFAULT '[]',
    frames      TEXT NOT NULL DEFAULT '',           -- the frames withdrawn, as a frame spec
    created_at  REAL NOT NULL,
    answered_at REAL
) STRICT;

CREATE INDEX fed_reclaims_job ON fed_reclaims (job_id, state);
CREATE INDEX fed_reclaims_state ON fed_reclaims (state);

-- Remote side: the answer given to each reclaim, written in the transaction that withdrew the
-- chunks, so a repeated request gets the same answer and withdraws nothing more.
CREATE TABLE fed_withdrawals (
    site       TEXT NOT NULL,                       -- the origin that asked (verified cert name)
    key        TEXT NOT NULL,
    job_id     TEXT NOT NULL,                       -- the accepted job here
    withdrawn  TEXT NOT NULL,                       -- JSON list of task positions
    at         REAL NOT NULL,
    PRIMARY KEY (site, key)
) STRICT;
