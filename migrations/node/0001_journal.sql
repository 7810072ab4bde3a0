-- Node schema v1: the register's identity, its append-only journal, checkpoints,
-- the sync cursor and client operation ids.
--
-- Applied by node/src/migrate.rs inside one transaction. Never edit this file
-- after release: the migrator stores its SHA-256 and refuses a database whose
-- recorded migrations differ from the ones compiled in. Change the schema with a
-- new file 0002_….sql instead.
--
-- Every table is STRICT: a value of the wrong type (a float, a text where an
-- integer belongs) is rejected by SQLite itself.

-- The one register this database belongs to (one row, id = 1). Written at `init`
-- (enrollment); key_id changes on key rotation; restored_from_backup is set in a
-- backup copy so that, once restored, it issues no fiscal number and sells no
-- escrowed stock until it has synced (DESIGN.md "Fiscal number ranges").
CREATE TABLE device (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    store_id             TEXT    NOT NULL CHECK (length(store_id) = 36),
    device_id            TEXT    NOT NULL CHECK (length(device_id) = 36),
    key_id               TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    -- Lowercase hex Ed25519 public key of the hub; NULL until enrollment gives it.
    hub_public_key       TEXT             CHECK (hub_public_key IS NULL OR length(hub_public_key) = 64),
    created_at_ms        INTEGER NOT NULL,
    restored_from_backup INTEGER NOT NULL DEFAULT 0 CHECK (restored_from_backup IN (0, 1))
) STRICT;

-- This device's events, in chain order. `bytes` are the canonical bytes that were
-- hashed (what is pushed and exported); every other column is derived from them
-- for indexing and is re-checked against them by `verify`.
CREATE TABLE journal (
    seq      INTEGER PRIMARY KEY CHECK (seq >= 1),
    event_id TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    hash     TEXT    NOT NULL CHECK (length(hash) = 64),
    prev     TEXT    NOT NULL CHECK (length(prev) = 64),
    kind     TEXT    NOT NULL,
    hlc_ms   INTEGER NOT NULL CHECK (hlc_ms >= 0),
    hlc_n    INTEGER NOT NULL CHECK (hlc_n >= 0),
    bytes    BLOB    NOT NULL
) STRICT;

-- The chain is enforced by SQLite as well as by the code: an insert must be the
-- next seq and name the last hash as prev. The existence checks also stop
-- `INSERT OR REPLACE`, whose implicit delete does not fire DELETE triggers.
CREATE TRIGGER journal_insert_is_next BEFORE INSERT ON journal
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM journal)
  OR EXISTS (SELECT 1 FROM journal WHERE event_id = NEW.event_id)
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only: seq must be last + 1 and event_id new');
END;

CREATE TRIGGER journal_insert_links_prev BEFORE INSERT ON journal
WHEN NEW.prev IS NOT coalesce(
    (SELECT hash FROM journal WHERE seq = NEW.seq - 1),
    '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only: prev must be the last hash');
END;

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;

CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal is append-only');
END;

-- Checkpoints (DESIGN.md "Checkpoints"): the device's HMAC over
-- "caja/checkpoint/v1\n{device}\n{seq}\n{hash}" with the key named by key_id.
-- The device is the one of the `device` row.
CREATE TABLE checkpoints (
    id     INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL REFERENCES journal (seq),
    hash   TEXT    NOT NULL CHECK (length(hash) = 64),
    key_id TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    mac    TEXT    NOT NULL CHECK (length(mac) = 64),
    at_ms  INTEGER NOT NULL,
    reason TEXT    NOT NULL CHECK (reason IN ('periodic', 'shift_close', 'push', 'key_rotation')),
    UNIQUE (seq, key_id)
) STRICT;

CREATE TRIGGER checkpoints_insert_is_new BEFORE INSERT ON checkpoints
WHEN EXISTS (SELECT 1 FROM checkpoints WHERE seq = NEW.seq AND key_id = NEW.key_id)
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'checkpoints are append-only');
END;

-- How far the hub has durably acknowledged this device's chain (`acked_seq` of
-- /v1/sync/push). Kept apart from the journal, which is immutable. One row.
CREATE TABLE sync_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    acked_seq     INTEGER NOT NULL CHECK (acked_seq >= 0),
    updated_at_ms INTEGER NOT NULL
) STRICT;

INSERT INTO sync_state (id, acked_seq, updated_at_ms) VALUES (1, 0, 0);

-- Client operation ids (DESIGN.md invariant 9): the first result of an operation,
-- written in the same transaction as its events, so that a retry with the same
-- op_id is answered with it instead of being applied again. request_hash is the
-- SHA-256 of the operation's canonical request, to tell a retry from a different
-- request reusing an id.
CREATE TABLE ops (
    op_id        TEXT    PRIMARY KEY CHECK (length(op_id) = 36),
    kind         TEXT    NOT NULL,
    request_hash TEXT    NOT NULL CHECK (length(request_hash) = 64),
    result       TEXT    NOT NULL CHECK (json_valid(result)),
    seq          INTEGER REFERENCES journal (seq),
    at_ms        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
