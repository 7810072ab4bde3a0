-- PostgreSQL twin of ../0002_fiscal.sql (same version, tables and column order;
-- see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v2: fiscal number series, idempotent device requests, register
-- write-offs, and the fiscal projection (grants and releases as facts).
--
-- Never edit after release (see 0001_hub.sql).

-- A series authorized by the tax authority: prefix (B02, E31), width, the
-- numbers first..=last, and the last local date it may be used. Series of the
-- same prefix never overlap (checked by the store before insert).
CREATE TABLE fiscal_series (
    series_id     TEXT COLLATE "C"    PRIMARY KEY CHECK (length(series_id) = 36),
    prefix        TEXT COLLATE "C"    NOT NULL CHECK (length(prefix) = 3),
    digits        BIGINT NOT NULL CHECK (digits BETWEEN 1 AND 13),
    first         BIGINT NOT NULL CHECK (first >= 1),
    last          BIGINT NOT NULL CHECK (last >= first),
    valid_until   TEXT COLLATE "C"    NOT NULL CHECK (length(valid_until) = 10),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX fiscal_series_by_prefix ON fiscal_series (prefix, first);

-- The stores a series serves; a series with no row here serves every store.
CREATE TABLE fiscal_series_stores (
    series_id TEXT COLLATE "C" NOT NULL REFERENCES fiscal_series (series_id),
    store_id  TEXT COLLATE "C" NOT NULL REFERENCES stores (store_id),
    PRIMARY KEY (series_id, store_id)
);

-- Answers to POST /v1/fiscal/ranges and /v1/escrow/grants, by the device's
-- request id: the same id with the same body answers the same again.
CREATE TABLE device_requests (
    device_id TEXT COLLATE "C"    NOT NULL,
    request_id TEXT COLLATE "C"   NOT NULL,
    endpoint  TEXT COLLATE "C"    NOT NULL,
    body_hash TEXT COLLATE "C"    NOT NULL CHECK (length(body_hash) = 64),
    answer    TEXT COLLATE "C"    NOT NULL,
    at_ms     BIGINT NOT NULL,
    PRIMARY KEY (device_id, request_id)
);

-- Registers head office wrote off (lost, stolen, dead): their keys are
-- revoked in the same transaction; their outstanding fiscal numbers are never
-- issued again.
CREATE TABLE write_offs (
    device_id TEXT COLLATE "C"    PRIMARY KEY REFERENCES devices (device_id),
    at_ms     BIGINT NOT NULL,
    reason    TEXT COLLATE "C"    NOT NULL
);

-- Projection: fiscal blocks granted (hub events, `device` = the register they
-- were granted to) and numbers released (register events).
CREATE TABLE p_fiscal_blocks (
    event_id   TEXT COLLATE "C"    PRIMARY KEY,
    what       TEXT COLLATE "C"    NOT NULL CHECK (what IN ('grant', 'release')),
    grant_id   TEXT COLLATE "C"    NOT NULL,
    store_id   TEXT COLLATE "C"    NOT NULL,
    device_id  TEXT COLLATE "C"    NOT NULL,
    series     TEXT COLLATE "C"    NOT NULL,
    first      BIGINT NOT NULL,
    last       BIGINT NOT NULL,
    expires_ms BIGINT
);
CREATE INDEX p_fiscal_blocks_by_series ON p_fiscal_blocks (series, first);
