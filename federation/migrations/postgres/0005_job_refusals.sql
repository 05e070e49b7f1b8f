-- Peers that refused a job for a reason of the job itself (PostgreSQL). Keep in step with
-- ../sqlite/0005_job_refusals.sql.

-- Origin side: a peer that refused an offer of a job for a reason of the job (priority above
-- its cap, package not accepted, ...; any refusal code but queued_jobs, bytes_per_day, hours)
-- would refuse it again, so that job (for a part of a split job: the split job) is never
-- offered to that peer again, across restarts too. Refusals for the peer's load stay in
-- memory (federation/capacity.py): the peer's next advert says whether it has room again.
-- Rows older than 30 days are pruned when a new one is written.
CREATE TABLE fed_job_refusals (
    peer    TEXT NOT NULL,
    job_id  TEXT NOT NULL,                          -- a job of this site (a split job, not a part)
    reasons TEXT NOT NULL,                          -- JSON list of the peer's sentences
    at      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (peer, job_id)
);

CREATE INDEX fed_job_refusals_at ON fed_job_refusals (at);
