-- Split jobs (SQLite). Keep in step with ../postgres/0007_split_jobs.sql.

-- A job submitted with --split (or split by the site's policy) renders here and sends
-- parts of its waiting chunks to peers with free capacity.
ALTER TABLE jobs ADD COLUMN split INTEGER NOT NULL DEFAULT 0 CHECK (split = 0 OR split = 1);
-- A part: a job made of some chunks of a split job (part_of), forwarded to a peer.
ALTER TABLE jobs ADD COLUMN part_of TEXT REFERENCES jobs (id) ON DELETE CASCADE;
-- A split job's task whose chunk renders in that part (never dispatched here meanwhile).
ALTER TABLE tasks ADD COLUMN part_job_id TEXT;

CREATE INDEX jobs_part_of ON jobs (part_of);
CREATE INDEX tasks_part_job ON tasks (part_job_id);
