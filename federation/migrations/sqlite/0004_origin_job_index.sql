-- Accepted jobs by their origin's job id (SQLite). Keep in step with ../postgres/0004_origin_job_index.sql.

-- Remote side: a client asks for an accepted job (its frames, its logs) by the origin's id
-- (site_agent.store.queries.GET_JOB_BY_ORIGIN_ID: origin_job_id = $1, newest first), which
-- scanned every job of the site. Only jobs accepted from a peer have an origin_job_id, so the
-- index holds only those rows; "origin_job_id = $1" implies the index's condition on both
-- backends, so the planner can use it. The jobs table is the site's; the index is here because
-- only federation fills that column.
CREATE INDEX jobs_origin_job ON jobs (origin_job_id, created_at) WHERE origin_job_id IS NOT NULL;
