-- PostgreSQL twin of ../0008_conflicts_ahead.sql (same version, tables and column order;
-- see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v5: a cheaper way for a price change to find the sales it may
-- make stale (issue #9). Renumber at merge so it follows the conflicts
-- migration it amends.
--
-- Never edit after release (see 0001_hub.sql).

-- Indexing every sale by HLC cost every ingested sale an index write.
DROP INDEX p_sales_by_hlc;

-- Sales whose HLC was at least the stale-price grace (10 min) ahead of the
-- hub's clock when they were applied (a register clock running ahead). Only
-- these can have been applied before a hub price change they come after (a
-- hub event's HLC is at least the hub's clock when it is applied, at once),
-- so a price change re-decides the stale price of these alone. Rebuilt with
-- the projections.
CREATE TABLE p_sales_ahead (
    event_id TEXT COLLATE "C"    PRIMARY KEY,
    store_id TEXT COLLATE "C"    NOT NULL,
    hlc_ms   BIGINT NOT NULL
);
CREATE INDEX p_sales_ahead_by_time ON p_sales_ahead (store_id, hlc_ms);

INSERT INTO p_sales_ahead (event_id, store_id, hlc_ms)
SELECT s.event_id, s.store_id, s.hlc_ms
FROM p_sales s
JOIN events e ON e.event_id = s.event_id
JOIN applied a ON a.event_row = e.id
WHERE s.hlc_ms IS NOT NULL AND s.hlc_ms >= a.applied_ms + 600000;
