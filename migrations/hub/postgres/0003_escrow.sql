-- PostgreSQL twin of ../0003_escrow.sql (same version, tables and column order;
-- see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v3: escrow stock quotas and stock alerts.
--
-- Never edit after release (see 0001_hub.sql).

-- Projection: quotas granted (hub events, `device` = the register they were
-- granted to) and quota released (register events).
CREATE TABLE p_escrow (
    event_id   TEXT COLLATE "C"    PRIMARY KEY,
    what       TEXT COLLATE "C"    NOT NULL CHECK (what IN ('grant', 'release')),
    grant_id   TEXT COLLATE "C"    NOT NULL,
    store_id   TEXT COLLATE "C"    NOT NULL,
    device_id  TEXT COLLATE "C"    NOT NULL,
    product    TEXT COLLATE "C"    NOT NULL,
    qty_milli  BIGINT NOT NULL CHECK (qty_milli >= 0),
    expires_ms BIGINT
);
CREATE INDEX p_escrow_by_product ON p_escrow (store_id, product);

-- Projection: sale lines sold beyond the register's quota (`warn` products):
-- one oversell alert each.
CREATE TABLE p_oversells (
    event_id     TEXT COLLATE "C"    NOT NULL,
    line         BIGINT NOT NULL,
    store_id     TEXT COLLATE "C"    NOT NULL,
    device_id    TEXT COLLATE "C"    NOT NULL,
    sale_id      TEXT COLLATE "C"    NOT NULL,
    product      TEXT COLLATE "C"    NOT NULL,
    beyond_milli BIGINT NOT NULL CHECK (beyond_milli > 0),
    PRIMARY KEY (event_id, line)
);
CREATE INDEX p_oversells_by_product ON p_oversells (store_id, product);

-- Operator decisions on stock alerts (not a projection: a person's act, also
-- in the audit log). `alert_key` is `oversell:<event>:<line>` or
-- `negative:<store>:<product>`.
CREATE TABLE stock_alert_acks (
    alert_key TEXT COLLATE "C"    PRIMARY KEY,
    state     TEXT COLLATE "C"    NOT NULL CHECK (state IN ('acknowledged', 'resolved')),
    by_whom   TEXT COLLATE "C"    NOT NULL,
    note      TEXT COLLATE "C"    NOT NULL,
    at_ms     BIGINT NOT NULL
);
