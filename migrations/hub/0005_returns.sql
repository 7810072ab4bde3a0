-- Hub schema v5: returned sale lines, and stock that counts them.
--
-- Never edit after release (see 0001_hub.sql).

-- Projection: one row per returned line (register events `SaleReturned`).
CREATE TABLE p_returns (
    event_id  TEXT    NOT NULL,
    line      INTEGER NOT NULL,
    store_id  TEXT    NOT NULL,
    sale_id   TEXT    NOT NULL,
    sale_line INTEGER NOT NULL,
    product   TEXT    NOT NULL,
    qty_milli INTEGER NOT NULL,
    damaged   INTEGER NOT NULL CHECK (damaged IN (0, 1)),
    PRIMARY KEY (event_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX p_returns_by_sale ON p_returns (store_id, sale_id);
CREATE INDEX p_sales_by_sale ON p_sales (sale_id);

-- Stock: receipts and counts, minus lines of sales that were not voided, plus
-- returned lines that were not damaged.
DROP VIEW v_stock;
CREATE VIEW v_stock AS
SELECT store_id, product, SUM(delta) AS qty_milli FROM (
    SELECT store_id, product, delta_milli AS delta FROM p_stock_moves
    UNION ALL
    SELECT s.store_id, json_extract(l.value, '$[0]'), -json_extract(l.value, '$[1]')
    FROM p_sales s, json_each(s.lines) l
    WHERE NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
    UNION ALL
    SELECT store_id, product, qty_milli FROM p_returns WHERE damaged = 0
) GROUP BY store_id, product;

-- Projection: fiscal credit notes (B04) issued with returns; accounted with
-- the sales' numbers.
CREATE TABLE p_credit_notes (
    event_id  TEXT PRIMARY KEY,
    store_id  TEXT NOT NULL,
    device_id TEXT NOT NULL,
    sale_id   TEXT NOT NULL,
    series    TEXT NOT NULL,
    number    TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX p_credit_notes_by_number ON p_credit_notes (series, number);
