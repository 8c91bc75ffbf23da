"""The verifier's migrations: its runs and the device leaves it checks.

Shipped text: never edit a migration here, append a new one (archive/schema.py).
"""

from __future__ import annotations

# 7: what was verified when (archive/verify_runs.py). One row per verify run,
# full or incremental, with the signed head it verified (kept whole, signature
# included, so the next incremental run re-checks the head it starts from) and
# the older log range it re-read as its rotating sample.
MIGRATION_7 = """
    CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
        started_at INTEGER NOT NULL,            -- ms since epoch
        finished_at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        from_size INTEGER NOT NULL,             -- the verified head it started from (full: 0)
        tree_size INTEGER NOT NULL,             -- the signed head it verified
        root_hash BLOB,
        head_timestamp_ms INTEGER,
        head_signature BLOB,
        records INTEGER NOT NULL,               -- records whose content was checked
        leaves INTEGER NOT NULL,                -- log leaves recomputed
        sample_from INTEGER NOT NULL,           -- older log indexes re-checked: [from, to)
        sample_to INTEGER NOT NULL,
        sweep_started_at INTEGER,               -- when the sweep this sample belongs to began
        problems INTEGER NOT NULL,
        first_problems TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX verifications_kind ON verifications(kind, ok, id);
    """

# 9: costs that stay flat (issue #20). Verify checks every device event
# (pairings, revocations) against the devices table each night, and found them by
# reading the whole log (1.6 s at 5M leaves). A partial index holds the device
# leaves only: records, audit events and blobs never enter it, so ingest writes
# nothing more. `verifications.purpose` says why a run was made (the nightly
# schedule, someone's "check now", the GDPR register, the check after a restore),
# so the Integrity page and `verify --status` list every check the box made; runs
# kept before say '' (not known).
MIGRATION_9 = """
    CREATE INDEX IF NOT EXISTS log_leaves_device ON log_leaves(idx) WHERE kind = 'device';
    ALTER TABLE verifications ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
    """
