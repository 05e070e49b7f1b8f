-- Every file a renderer writes for a frame: the frames row keeps the frame's main file
-- (what existing rows already are); this table holds its other outputs and its preview.
-- Names are paths inside the job's storage folder, unique in the job.
CREATE TABLE frame_files (
    job_id  TEXT NOT NULL,
    frame   INTEGER NOT NULL,
    name    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    size    BIGINT NOT NULL,
    kind    TEXT NOT NULL,                  -- 'extra' or 'preview'
    PRIMARY KEY (job_id, frame, name),
    FOREIGN KEY (job_id, frame) REFERENCES frames (job_id, frame) ON DELETE CASCADE
);

-- Storage names are unique in a job: an upload is checked against both tables by name.
CREATE INDEX frames_name ON frames (job_id, name);
CREATE INDEX frame_files_name ON frame_files (job_id, name);
