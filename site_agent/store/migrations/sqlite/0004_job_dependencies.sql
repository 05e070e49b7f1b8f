-- Job dependencies: job_id waits for upstream_id. kind 'done' waits for the upstream to be
-- done (its failure or cancel ends the job the same way); 'end' waits for it to end in any
-- state (--after-any); 'frames': frame N waits for frame N of the upstream (--after-frames;
-- forwarding the job waits for the upstream to be done). Edges never form a cycle (checked
-- by the lifecycle when they are added).
CREATE TABLE job_dependencies (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    upstream_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind = 'done' OR kind = 'end' OR kind = 'frames'),
    PRIMARY KEY (job_id, upstream_id)
) STRICT;

CREATE INDEX job_dependencies_upstream ON job_dependencies (upstream_id);
