-- PostgreSQL twin of ../0009_store_credit_drawer.sql (same version, tables and
-- column order; see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema v9: store credit, returns of sales unknown offline, drawer
-- openings without a sale, and every approval carried by an event (issue #12).
--
-- Never edit after release (see 0001_hub.sql).

-- Projection: one row per store-credit entry (+ a return refunded as store
-- credit, idx 0; − a sale paid with it, idx = the payment's index). A row
-- whose sale was voided does not count (`pn_counter` over the rest).
CREATE TABLE p_store_credit (
    event_id    TEXT COLLATE "C" NOT NULL,
    idx         BIGINT           NOT NULL,
    store_id    TEXT COLLATE "C" NOT NULL,
    customer_id TEXT COLLATE "C" NOT NULL,
    amount      BIGINT           NOT NULL,
    sale_id     TEXT COLLATE "C",
    PRIMARY KEY (event_id, idx)
);
CREATE INDEX p_store_credit_by_customer ON p_store_credit (store_id, customer_id);
CREATE INDEX p_store_credit_by_sale ON p_store_credit (sale_id);

-- Projection: returned lines whose original sale the register did not know,
-- by the sale id or the fiscal number the cashier gave.
CREATE TABLE p_returns_unknown (
    event_id  TEXT COLLATE "C" NOT NULL,
    line      BIGINT           NOT NULL,
    store_id  TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    sale_id   TEXT COLLATE "C",
    reference TEXT COLLATE "C" NOT NULL,
    product   TEXT COLLATE "C" NOT NULL,
    qty_milli BIGINT           NOT NULL,
    damaged   BIGINT           NOT NULL CHECK (damaged IN (0, 1)),
    PRIMARY KEY (event_id, line)
);
CREATE INDEX p_returns_unknown_by_sale ON p_returns_unknown (sale_id);
CREATE INDEX p_returns_unknown_by_reference ON p_returns_unknown (store_id, reference);

-- Returns are read per sale.
CREATE INDEX p_returns_by_sale_id ON p_returns (sale_id);

-- Projection: drawer openings without a sale.
CREATE TABLE p_drawer_opens (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    store_id    TEXT COLLATE "C" NOT NULL,
    device_id   TEXT COLLATE "C" NOT NULL,
    shift_id    TEXT COLLATE "C" NOT NULL,
    reason      TEXT COLLATE "C" NOT NULL,
    approved_by TEXT COLLATE "C"
);

-- Projection: every supervisor approval carried by an accepted event (who,
-- what; when is the event's HLC, in `events`).
CREATE TABLE p_approvals (
    event_id  TEXT COLLATE "C" NOT NULL,
    idx       BIGINT           NOT NULL,
    store_id  TEXT COLLATE "C" NOT NULL,
    device_id TEXT COLLATE "C" NOT NULL,
    action    TEXT COLLATE "C" NOT NULL,
    staff_id  TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    role      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, idx)
);
CREATE INDEX p_approvals_by_store ON p_approvals (store_id, action);

-- Stock: as in v5, plus returned lines of unknown originals not damaged.
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
    UNION ALL
    SELECT store_id, product, qty_milli FROM p_returns_unknown WHERE damaged = 0
) moves GROUP BY store_id, product;

-- Store credit per customer and store.
CREATE VIEW v_store_credit AS
SELECT c.store_id, c.customer_id, CAST(SUM(c.amount) AS BIGINT) AS balance FROM p_store_credit c
WHERE c.sale_id IS NULL
   OR NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = c.store_id AND v.sale_id = c.sale_id)
GROUP BY c.store_id, c.customer_id;
