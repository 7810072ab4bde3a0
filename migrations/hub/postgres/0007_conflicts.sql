-- PostgreSQL twin of ../0007_conflicts.sql (same version, tables and column order;
-- see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v4: conflict resolution (issue #9).
--
-- Never edit after release (see 0001_hub.sql).
--
-- Rows projected before this version lack the new columns (NULL): `caja-hub
-- rebuild` fills them from the events. Until then a sale without `hlc_ms` is
-- not checked for a stale price and a debt without `sale_id` for a void.

-- The sale's HLC (the time its stale-price check compares with), and each
-- line of `lines` gains a fifth element: its unit price.
ALTER TABLE p_sales ADD COLUMN hlc_ms BIGINT;
ALTER TABLE p_sales ADD COLUMN hlc_n BIGINT;
-- A price change finds the sales made after it (stale_price is re-decided).
CREATE INDEX p_sales_by_hlc ON p_sales (store_id, hlc_ms);

-- The sale a debt was opened for (a void of that sale makes a payment on the
-- debt a `payment_on_voided_debt` conflict).
ALTER TABLE p_debts ADD COLUMN sale_id TEXT COLLATE "C";
CREATE INDEX p_debts_by_sale ON p_debts (sale_id);

-- Every price a store's hub chain ever set (p_prices keeps only the latest,
-- server_wins): the price in force at a time.
CREATE TABLE p_price_history (
    event_id   TEXT COLLATE "C"    PRIMARY KEY,
    store_id   TEXT COLLATE "C"    NOT NULL,
    product    TEXT COLLATE "C"    NOT NULL,
    hub_seq    BIGINT NOT NULL,
    hlc_ms     BIGINT NOT NULL,
    hlc_n      BIGINT NOT NULL,
    unit_price BIGINT NOT NULL
);
CREATE INDEX p_price_history_by_product ON p_price_history (store_id, product, hlc_ms);

-- ConflictResolved hub events: `covers` is the canonical JSON array of the
-- event's deps (the candidates the operator saw). A conflict is resolved
-- while some resolution of it covers every one of its current candidates.
CREATE TABLE p_resolutions (
    event_id    TEXT COLLATE "C"    PRIMARY KEY,
    store_id    TEXT COLLATE "C"    NOT NULL,
    conflict_id TEXT COLLATE "C"    NOT NULL,
    hub_seq     BIGINT NOT NULL,
    strategy    TEXT COLLATE "C"    NOT NULL,
    winner      TEXT COLLATE "C",
    resolved_by TEXT COLLATE "C"    NOT NULL,
    note        TEXT COLLATE "C"    NOT NULL,
    covers      TEXT COLLATE "C"    NOT NULL
);
CREATE INDEX p_resolutions_by_conflict ON p_resolutions (conflict_id);
