-- Hub schema (PostgreSQL twin of 0015_restore_epoch.sql): restore epochs,
-- the registers that reported in each, and head office's overrides.
--
-- Never edit after release (see 0001_hub.sql).
CREATE TABLE restore_epochs (
    epoch          BIGINT           PRIMARY KEY CHECK (epoch >= 1),
    restored_at_ms BIGINT           NOT NULL,
    tree_size      BIGINT           NOT NULL CHECK (tree_size >= 0),
    root           TEXT COLLATE "C" NOT NULL CHECK (length(root) = 64),
    sth_at_ms      BIGINT           NOT NULL,
    sth_key_id     TEXT COLLATE "C" NOT NULL,
    sth_signature  TEXT COLLATE "C" NOT NULL CHECK (length(sth_signature) = 128),
    acked_at_ms    BIGINT,
    acked_by       TEXT COLLATE "C"
);

CREATE TABLE restore_reports (
    epoch          BIGINT           NOT NULL REFERENCES restore_epochs (epoch),
    device_id      TEXT COLLATE "C" NOT NULL CHECK (length(device_id) = 36),
    store_id       TEXT COLLATE "C" NOT NULL CHECK (length(store_id) = 36),
    reported_at_ms BIGINT           NOT NULL,
    PRIMARY KEY (epoch, device_id)
);

CREATE TABLE restore_overrides (
    epoch    BIGINT           NOT NULL REFERENCES restore_epochs (epoch),
    store_id TEXT COLLATE "C" NOT NULL CHECK (length(store_id) = 36),
    at_ms    BIGINT           NOT NULL,
    by_whom  TEXT COLLATE "C" NOT NULL,
    note     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (epoch, store_id)
);
