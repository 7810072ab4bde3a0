-- Hub schema: restore epochs (DESIGN "Hub restore (disaster recovery)").
--
-- Never edit after release (see 0001_hub.sql).
--
-- One row per restore of this database from a backup (`caja-hub restore`):
-- the current epoch is the highest (0 while there is none). The row keeps
-- the audit tree's size and root the hub restarted from, and a head over
-- them signed with the hub key, which registers verify before they re-base
-- their trust in the audit log; head office acknowledges the discontinuity.
CREATE TABLE restore_epochs (
    epoch          INTEGER PRIMARY KEY CHECK (epoch >= 1),
    restored_at_ms INTEGER NOT NULL,
    tree_size      INTEGER NOT NULL CHECK (tree_size >= 0),
    root           TEXT    NOT NULL CHECK (length(root) = 64),
    sth_at_ms      INTEGER NOT NULL,
    sth_key_id     TEXT    NOT NULL,
    sth_signature  TEXT    NOT NULL CHECK (length(sth_signature) = 128),
    acked_at_ms    INTEGER,
    acked_by       TEXT
) STRICT;

-- The registers that reported in an epoch: their chain and the hub events
-- they held are back at the hub. A store is gated (no new hub event, no
-- grant) until every register of it that is not revoked has a row here.
CREATE TABLE restore_reports (
    epoch          INTEGER NOT NULL REFERENCES restore_epochs (epoch),
    device_id      TEXT    NOT NULL CHECK (length(device_id) = 36),
    store_id       TEXT    NOT NULL CHECK (length(store_id) = 36),
    reported_at_ms INTEGER NOT NULL,
    PRIMARY KEY (epoch, device_id)
) STRICT;

-- Head office lifted a store's gate before all its registers reported
-- (audited).
CREATE TABLE restore_overrides (
    epoch    INTEGER NOT NULL REFERENCES restore_epochs (epoch),
    store_id TEXT    NOT NULL CHECK (length(store_id) = 36),
    at_ms    INTEGER NOT NULL,
    by_whom  TEXT    NOT NULL,
    note     TEXT    NOT NULL,
    PRIMARY KEY (epoch, store_id)
) STRICT;
