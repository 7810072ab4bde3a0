-- Hub schema: the audit sequencer's tables.
--
-- Never edit after release (see 0001_hub.sql).
--
-- On PostgreSQL, where several hub instances write at once, a write
-- transaction stages its audit entries in `audit_staged` and one sequencer
-- moves them into `audit_log` and the Merkle tree, recording each round in
-- `audit_rounds` (how long the oldest entry waited). The SQLite hub has one
-- writer and appends to `audit_log` directly: these tables stay empty there
-- (kept so both dialects have the same tables).
CREATE TABLE audit_staged (
    staged_id INTEGER PRIMARY KEY,
    kind      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    store_id  TEXT    CHECK (store_id IS NULL OR length(store_id) = 36),
    data      BLOB    NOT NULL
);

CREATE TABLE audit_rounds (
    round_id     INTEGER PRIMARY KEY,
    first_idx    INTEGER NOT NULL CHECK (first_idx >= 0),
    entries      INTEGER NOT NULL CHECK (entries >= 1),
    oldest_at_ms INTEGER NOT NULL,
    sequenced_ms INTEGER NOT NULL
);
