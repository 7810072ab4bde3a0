-- PostgreSQL twin of ../0005_returns.sql (same version, tables and column order;
-- see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v5: returned sale lines, and stock that counts them.
--
-- Never edit after release (see 0001_hub.sql).

-- Projection: one row per returned line (register events `SaleReturned`).
CREATE TABLE p_returns (
    event_id  TEXT COLLATE "C"    NOT NULL,
    line      BIGINT NOT NULL,
    store_id  TEXT COLLATE "C"    NOT NULL,
    sale_id   TEXT COLLATE "C"    NOT NULL,
    sale_line BIGINT NOT NULL,
    product   TEXT COLLATE "C"    NOT NULL,
    qty_milli BIGINT NOT NULL,
    damaged   BIGINT NOT NULL CHECK (damaged IN (0, 1)),
    PRIMARY KEY (event_id, line)
);
CREATE INDEX p_returns_by_sale ON p_returns (store_id, sale_id);
CREATE INDEX p_sales_by_sale ON p_sales (sale_id);

-- Stock: receipts and counts, minus lines of sales that were not voided, plus
-- returned lines that were not damaged.
DROP VIEW v_stock;
CREATE VIEW v_stock AS
SELECT store_id, product, CAST(SUM(delta) AS BIGINT) AS qty_milli FROM (
    SELECT store_id, product, delta_milli AS delta FROM p_stock_moves
    UNION ALL
    SELECT s.store_id, (l.value->>0) COLLATE "C", -CAST(l.value->>1 AS BIGINT)
    FROM p_sales s CROSS JOIN LATERAL jsonb_array_elements(s.lines::jsonb) l
    WHERE NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
    UNION ALL
    SELECT store_id, product, qty_milli FROM p_returns WHERE damaged = 0
) moves GROUP BY store_id, product;

-- Projection: fiscal credit notes (B04) issued with returns; accounted with
-- the sales' numbers.
CREATE TABLE p_credit_notes (
    event_id  TEXT COLLATE "C" PRIMARY KEY,
    store_id  TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    sale_id   TEXT COLLATE "C" NOT NULL,
    series    TEXT COLLATE "C" NOT NULL,
    number    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX p_credit_notes_by_number ON p_credit_notes (series, number);
