"""The federation's SQL: its own tables (the ``federation`` migration chain).

Written once, PostgreSQL style (``$1`` parameters), like the site's queries; the
database adapter runs it on either backend. Three reads join the site's ``jobs``
table (federation sits above the site and shares its database); none writes it.
"""

from __future__ import annotations

UNFINISHED_JOB = "('queued', 'running', 'paused')"
OFFER_COLUMNS = "key, site, origin_job_id, epoch, body, remote_job_id, created_at, committed_at"

OUTBOX_COLUMNS = (
    "id, peer, kind, job_id, body, final, attempts, created_at, delivered_at, last_error"
)

FORWARD_COLUMNS = (
    "job_id, epoch, peer, remote_job_id, state, remote_state, frames_done, bytes_sent, "
    "blobs_sent, blobs_skipped, last_contact_at, created_at, updated_at, progress_seq, "
    "control_seq"
)

FINISHED_JOB = "('done', 'failed', 'cancelled')"

INSERT_OFFER = f"""
INSERT INTO fed_offers ({OFFER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL)
ON CONFLICT (key) DO NOTHING
"""

GET_OFFER = f"SELECT {OFFER_COLUMNS} FROM fed_offers WHERE key = $1"

GET_OFFER_BY_JOB = f"SELECT {OFFER_COLUMNS} FROM fed_offers WHERE remote_job_id = $1"

PENDING_OFFERS_OF_SITE = f"""
SELECT {OFFER_COLUMNS} FROM fed_offers WHERE site = $1 AND remote_job_id IS NULL
ORDER BY created_at
"""

# Jobs a peer has here that are not finished yet, plus its offers not committed yet
# (made within the last hour: an offer the origin abandoned stops counting).
PEER_OPEN_JOBS = f"""
SELECT (SELECT COUNT(*) FROM fed_offers o JOIN jobs j ON j.id = o.remote_job_id
        WHERE o.site = $1 AND j.state IN {UNFINISHED_JOB})
     + (SELECT COUNT(*) FROM fed_offers WHERE site = $1 AND remote_job_id IS NULL
        AND created_at >= $2)
"""

OFFER_BODIES_SINCE = "SELECT body FROM fed_offers WHERE site = $1 AND created_at >= $2"

COMMIT_OFFER = """
UPDATE fed_offers SET remote_job_id = $2, committed_at = $3 WHERE key = $1 AND remote_job_id IS NULL
"""

# Accepted jobs that finished but have no final notification queued: a crash came between
# the job's last task and the outbox insert.
FINISHED_OFFERS_WITHOUT_FINAL = f"""
SELECT {", ".join("o." + c.strip() for c in OFFER_COLUMNS.split(","))} FROM fed_offers o
JOIN jobs j ON j.id = o.remote_job_id
WHERE j.state IN {FINISHED_JOB}
  AND NOT EXISTS (SELECT 1 FROM fed_outbox b WHERE b.job_id = o.remote_job_id AND b.final = 1)
"""

SEEN_MESSAGE = "SELECT EXISTS (SELECT 1 FROM fed_seen WHERE site = $1 AND msg_id = $2)"

MARK_SEEN = """
INSERT INTO fed_seen (site, msg_id, seen_at) VALUES ($1, $2, $3)
ON CONFLICT (site, msg_id) DO NOTHING
"""

PRUNE_SEEN = "DELETE FROM fed_seen WHERE seen_at < $1"

INSERT_OUTBOX = f"""
INSERT INTO fed_outbox ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, NULL, '')
ON CONFLICT (id) DO NOTHING
"""

# A newer snapshot (or the final notification) makes older progress of the job moot; a newer
# pause/resume, the older ones. Delivered ones go too (the receiver keeps the ids it saw), so
# a job keeps one such entry however long it runs. Entries in flight are not stopped: the
# receiver ignores them by their sequence number.
DROP_SUPERSEDED = """
DELETE FROM fed_outbox
WHERE job_id = $1 AND kind = ANY($2::text[]) AND final = 0 AND id <> $3
"""

NEXT_PROGRESS_SEQ = """
UPDATE fed_offers SET progress_seq = progress_seq + 1 WHERE remote_job_id = $1
RETURNING progress_seq
"""

CLAIM_OFFER_CONTROL_SEQ = """
UPDATE fed_offers SET control_seq = $2 WHERE remote_job_id = $1 AND control_seq < $2
"""

CLAIM_FORWARD_CONTROL_SEQ = """
UPDATE fed_forwards SET control_seq = $3 WHERE job_id = $1 AND epoch = $2 AND control_seq < $3
"""

# Fenced on the sequence too: of two snapshots applied concurrently only the newer counts.
FORWARD_PROGRESS = """
UPDATE fed_forwards SET progress_seq = $3, remote_state = $4, last_contact_at = $6,
                        updated_at = $6,
                        frames_done = CASE WHEN frames_done > $5 THEN frames_done ELSE $5 END
WHERE job_id = $1 AND epoch = $2 AND progress_seq < $3
"""

PENDING_OUTBOX = f"""
SELECT {OUTBOX_COLUMNS} FROM fed_outbox WHERE delivered_at IS NULL ORDER BY created_at LIMIT $1
"""

OUTBOX_DEPTH = "SELECT COUNT(*) AS n FROM fed_outbox WHERE delivered_at IS NULL"

GET_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM fed_outbox WHERE id = $1"

OUTBOX_DELIVERED = "UPDATE fed_outbox SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL"

OUTBOX_ATTEMPT = "UPDATE fed_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1"

INSERT_FORWARD = f"""
INSERT INTO fed_forwards ({FORWARD_COLUMNS})
VALUES ($1, $2, $3, NULL, 'offering', '', 0, 0, 0, 0, NULL, $4, $4, 0, 0)
ON CONFLICT (job_id, epoch) DO NOTHING
"""

GET_FORWARD = f"SELECT {FORWARD_COLUMNS} FROM fed_forwards WHERE job_id = $1 AND epoch = $2"

LATEST_FORWARD = f"""
SELECT {FORWARD_COLUMNS} FROM fed_forwards WHERE job_id = $1 ORDER BY epoch DESC LIMIT 1
"""

FORWARD_PEERS = "SELECT DISTINCT peer FROM fed_forwards WHERE job_id = $1 ORDER BY peer"

FORWARD_TRANSFER = """
UPDATE fed_forwards SET bytes_sent = bytes_sent + $3, blobs_sent = blobs_sent + $4,
                        blobs_skipped = blobs_skipped + $5, updated_at = $6
WHERE job_id = $1 AND epoch = $2
"""

FORWARD_STATE = """
UPDATE fed_forwards SET state = $3, remote_job_id = COALESCE($4, remote_job_id), updated_at = $5,
                        last_contact_at = $5
WHERE job_id = $1 AND epoch = $2
"""

FORWARD_CONTACT = """
UPDATE fed_forwards SET remote_state = $3, last_contact_at = $5, updated_at = $5,
                        frames_done = CASE WHEN frames_done > $4 THEN frames_done ELSE $4 END
WHERE job_id = $1 AND epoch = $2
"""

# Placements at peers still in flight: the job still points at this forward.
# Queued jobs placed at a peer with no forward at their placement epoch: the forward of a
# job that became ready (created, or released by its upstreams) just before a crash.
UNFORWARDED_JOBS = """
SELECT j.id FROM jobs j
WHERE j.placement <> 'local' AND j.state = 'queued'
  AND NOT EXISTS (
    SELECT 1 FROM fed_forwards f WHERE f.job_id = j.id AND f.epoch = j.placement_epoch
  )
ORDER BY j.created_at, j.id
"""

OPEN_FORWARDS = f"""
SELECT {", ".join("f." + c.strip() for c in FORWARD_COLUMNS.split(","))} FROM fed_forwards f
JOIN jobs j ON j.id = f.job_id
WHERE f.state IN ('offering', 'committed') AND j.placement = f.peer
  AND j.placement_epoch = f.epoch AND j.state IN {UNFINISHED_JOB}
ORDER BY f.created_at
"""

UPSERT_PEER_ADVERT = """
INSERT INTO fed_peers (name, advert, last_seen) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET advert = excluded.advert, last_seen = excluded.last_seen
"""

LIST_PEER_ADVERTS = "SELECT name, advert, last_seen FROM fed_peers ORDER BY name"

# --- jobs a peer refused for a reason of the job (origin) ---------------------------------
INSERT_JOB_REFUSAL = """
INSERT INTO fed_job_refusals (peer, job_id, reasons, at) VALUES ($1, $2, $3, $4)
ON CONFLICT (peer, job_id) DO UPDATE SET reasons = excluded.reasons, at = excluded.at
"""

PRUNE_JOB_REFUSALS = "DELETE FROM fed_job_refusals WHERE at < $1"

RECENT_JOB_REFUSALS = "SELECT peer, job_id FROM fed_job_refusals ORDER BY at DESC LIMIT $1"

# --- reclaims of split jobs' parts (origin) and the answers given (remote) ----------------
RECLAIM_COLUMNS = (
    "key, job_id, epoch, peer, indices, state, withdrawn, frames, created_at, answered_at"
)

INSERT_RECLAIM = f"""
INSERT INTO fed_reclaims ({RECLAIM_COLUMNS})
VALUES ($1, $2, $3, $4, $5, 'asked', '[]', '', $6, NULL)
ON CONFLICT (key) DO NOTHING
"""

# Reclaims sent but not answered yet (resent after a restart, with the same key).
ASKED_RECLAIMS = (
    f"SELECT {RECLAIM_COLUMNS} FROM fed_reclaims WHERE state = 'asked' ORDER BY created_at"
)

JOB_RECLAIMS = (
    f"SELECT {RECLAIM_COLUMNS} FROM fed_reclaims WHERE job_id = ANY($1::text[]) ORDER BY created_at"
)

# Fenced on 'asked': an answer is applied once.
ANSWER_RECLAIM = """
UPDATE fed_reclaims SET state = $2, withdrawn = $3, frames = $4, answered_at = $5
WHERE key = $1 AND state = 'asked'
"""

GET_WITHDRAWAL = "SELECT withdrawn FROM fed_withdrawals WHERE site = $1 AND key = $2"

INSERT_WITHDRAWAL = """
INSERT INTO fed_withdrawals (site, key, job_id, withdrawn, at) VALUES ($1, $2, $3, $4, $5)
"""
