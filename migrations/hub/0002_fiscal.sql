-- Hub schema v2: fiscal number series, idempotent device requests, register
-- write-offs, and the fiscal projection (grants and releases as facts).
--
-- Never edit after release (see 0001_hub.sql).

-- A series authorized by the tax authority: prefix (B02, E31), width, the
-- numbers first..=last, and the last local date it may be used. Series of the
-- same prefix never overlap (checked by the store before insert).
CREATE TABLE fiscal_series (
    series_id     TEXT    PRIMARY KEY CHECK (length(series_id) = 36),
    prefix        TEXT    NOT NULL CHECK (length(prefix) = 3),
    digits        INTEGER NOT NULL CHECK (digits BETWEEN 1 AND 13),
    first         INTEGER NOT NULL CHECK (first >= 1),
    last          INTEGER NOT NULL CHECK (last >= first),
    valid_until   TEXT    NOT NULL CHECK (length(valid_until) = 10),
    created_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX fiscal_series_by_prefix ON fiscal_series (prefix, first);

-- The stores a series serves; a series with no row here serves every store.
CREATE TABLE fiscal_series_stores (
    series_id TEXT NOT NULL REFERENCES fiscal_series (series_id),
    store_id  TEXT NOT NULL REFERENCES stores (store_id),
    PRIMARY KEY (series_id, store_id)
) STRICT, WITHOUT ROWID;

-- Answers to POST /v1/fiscal/ranges and /v1/escrow/grants, by the device's
-- request id: the same id with the same body answers the same again.
CREATE TABLE device_requests (
    device_id TEXT    NOT NULL,
    request_id TEXT   NOT NULL,
    endpoint  TEXT    NOT NULL,
    body_hash TEXT    NOT NULL CHECK (length(body_hash) = 64),
    answer    TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (device_id, request_id)
) STRICT, WITHOUT ROWID;

-- Registers head office wrote off (lost, stolen, dead): their keys are
-- revoked in the same transaction; their outstanding fiscal numbers are never
-- issued again.
CREATE TABLE write_offs (
    device_id TEXT    PRIMARY KEY REFERENCES devices (device_id),
    at_ms     INTEGER NOT NULL,
    reason    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- Projection: fiscal blocks granted (hub events, `device` = the register they
-- were granted to) and numbers released (register events).
CREATE TABLE p_fiscal_blocks (
    event_id   TEXT    PRIMARY KEY,
    what       TEXT    NOT NULL CHECK (what IN ('grant', 'release')),
    grant_id   TEXT    NOT NULL,
    store_id   TEXT    NOT NULL,
    device_id  TEXT    NOT NULL,
    series     TEXT    NOT NULL,
    first      INTEGER NOT NULL,
    last       INTEGER NOT NULL,
    expires_ms INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX p_fiscal_blocks_by_series ON p_fiscal_blocks (series, first);
