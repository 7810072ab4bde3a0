-- Node schema v3: what sync needs beside the journal.

-- The store's other registers' events, as pulled from the hub (kept apart from
-- this device's own chain). Append-only; applied to the projections when this
-- version knows their kind.
CREATE TABLE peer_events (
    device   TEXT    NOT NULL CHECK (length(device) = 36),
    seq      INTEGER NOT NULL CHECK (seq >= 1),
    event_id TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    hash     TEXT    NOT NULL CHECK (length(hash) = 64),
    kind     TEXT    NOT NULL,
    applied  INTEGER NOT NULL CHECK (applied IN (0, 1)),
    bytes    BLOB    NOT NULL,
    -- As in hub_events: the journal head when applied, and the import order.
    after_own_seq INTEGER NOT NULL CHECK (after_own_seq >= 0),
    ord           INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (device, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER peer_events_no_update BEFORE UPDATE ON peer_events
BEGIN
    SELECT RAISE(ABORT, 'peer_events is append-only');
END;

CREATE TRIGGER peer_events_no_delete BEFORE DELETE ON peer_events
BEGIN
    SELECT RAISE(ABORT, 'peer_events is append-only');
END;

-- What the sync engine last saw, for `caja-node status` and health. One row,
-- rewritten by the sync engine (state, not history).
CREATE TABLE sync_status (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    pull_cursor      TEXT    NOT NULL DEFAULT '',
    hub_chain        TEXT,
    online           INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    circuit          TEXT    NOT NULL DEFAULT 'closed',
    skew_ms          INTEGER NOT NULL DEFAULT 0,
    last_success_ms  INTEGER,
    last_attempt_ms  INTEGER,
    last_error       TEXT,
    quarantined      INTEGER NOT NULL DEFAULT 0 CHECK (quarantined IN (0, 1)),
    update_needed    INTEGER NOT NULL DEFAULT 0 CHECK (update_needed IN (0, 1))
) STRICT;

INSERT INTO sync_status (id) VALUES (1);
