-- Hub schema v3: escrow stock quotas and stock alerts.
--
-- Never edit after release (see 0001_hub.sql).

-- Projection: quotas granted (hub events, `device` = the register they were
-- granted to) and quota released (register events).
CREATE TABLE p_escrow (
    event_id   TEXT    PRIMARY KEY,
    what       TEXT    NOT NULL CHECK (what IN ('grant', 'release')),
    grant_id   TEXT    NOT NULL,
    store_id   TEXT    NOT NULL,
    device_id  TEXT    NOT NULL,
    product    TEXT    NOT NULL,
    qty_milli  INTEGER NOT NULL CHECK (qty_milli >= 0),
    expires_ms INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX p_escrow_by_product ON p_escrow (store_id, product);

-- Projection: sale lines sold beyond the register's quota (`warn` products):
-- one oversell alert each.
CREATE TABLE p_oversells (
    event_id     TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    store_id     TEXT    NOT NULL,
    device_id    TEXT    NOT NULL,
    sale_id      TEXT    NOT NULL,
    product      TEXT    NOT NULL,
    beyond_milli INTEGER NOT NULL CHECK (beyond_milli > 0),
    PRIMARY KEY (event_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX p_oversells_by_product ON p_oversells (store_id, product);

-- Operator decisions on stock alerts (not a projection: a person's act, also
-- in the audit log). `alert_key` is `oversell:<event>:<line>` or
-- `negative:<store>:<product>`.
CREATE TABLE stock_alert_acks (
    alert_key TEXT    PRIMARY KEY,
    state     TEXT    NOT NULL CHECK (state IN ('acknowledged', 'resolved')),
    by_whom   TEXT    NOT NULL,
    note      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
