-- Node schema v2: hub events the register obeys, and the projections.
--
-- Text-keyed tables are WITHOUT ROWID: one b-tree each instead of a table plus
-- its key index, so a sale's commit writes fewer pages to the WAL (the cost that
-- dominates a durable sale). Indexes are only those a query needs.
--
-- Projections are derived state: every row here can be rebuilt from the journal
-- (this device's events) and hub_events (the store's hub chain) by
-- `caja-node rebuild`, and a rebuild must give exactly the same rows as the
-- incremental updates made in each operation's transaction. Money is INTEGER
-- centavos, quantities INTEGER thousandths; never REAL.

-- The store's hub chain as received (catalog, prices, grants, ...), verified
-- against the hub's Ed25519 checkpoint before it is inserted. Append-only.
CREATE TABLE hub_events (
    seq      INTEGER PRIMARY KEY CHECK (seq >= 1),
    event_id TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    hash     TEXT    NOT NULL CHECK (length(hash) = 64),
    prev     TEXT    NOT NULL CHECK (length(prev) = 64),
    kind     TEXT    NOT NULL,
    -- 1 when this version knows the kind and applied it; 0 = kept, not applied
    -- ("update needed").
    applied  INTEGER NOT NULL CHECK (applied IN (0, 1)),
    bytes    BLOB    NOT NULL,
    -- Where it was applied among this register's own events (the journal head
    -- seq at the time) and in which order among imports (shared with
    -- peer_events), so a rebuild replays the exact interleaving.
    after_own_seq INTEGER NOT NULL CHECK (after_own_seq >= 0),
    ord           INTEGER NOT NULL UNIQUE
) STRICT;

CREATE TRIGGER hub_events_insert_is_next BEFORE INSERT ON hub_events
WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM hub_events)
  OR NEW.prev IS NOT coalesce(
    (SELECT hash FROM hub_events WHERE seq = NEW.seq - 1),
    '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'hub_events is append-only: seq must be last + 1 and prev the last hash');
END;

CREATE TRIGGER hub_events_no_update BEFORE UPDATE ON hub_events
BEGIN
    SELECT RAISE(ABORT, 'hub_events is append-only');
END;

CREATE TRIGGER hub_events_no_delete BEFORE DELETE ON hub_events
BEGIN
    SELECT RAISE(ABORT, 'hub_events is append-only');
END;

-- Catalog and prices (server_wins: the hub chain's order decides).
CREATE TABLE catalog_items (
    sku        TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    tax_bp     INTEGER NOT NULL CHECK (tax_bp BETWEEN 0 AND 10000),
    sold_by    TEXT    NOT NULL CHECK (sold_by IN ('unit', 'weight')),
    policy     TEXT    NOT NULL CHECK (policy IN ('block', 'warn', 'untracked')),
    unit_price INTEGER          CHECK (unit_price IS NULL OR unit_price >= 0)
) STRICT, WITHOUT ROWID;

-- Barcodes that scan to an item (a SKU also scans to itself, without a row here).
CREATE TABLE barcodes (
    code TEXT PRIMARY KEY,
    sku  TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Customer fields are last-writer-wins by (HLC, device) across the registers
-- of the store (DESIGN "Conflict resolution": customer fields `lww`), so the row
-- keeps the stamp of the write it shows.
CREATE TABLE customers (
    customer_id  TEXT    PRIMARY KEY CHECK (length(customer_id) = 36),
    name         TEXT    NOT NULL,
    phone        TEXT,
    tax_id       TEXT,
    credit_limit INTEGER NOT NULL CHECK (credit_limit >= 0),
    hlc_ms       INTEGER NOT NULL,
    hlc_n        INTEGER NOT NULL,
    device       TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE shifts (
    shift_id      TEXT    PRIMARY KEY CHECK (length(shift_id) = 36),
    cashier       TEXT    NOT NULL,
    opening_float INTEGER NOT NULL,
    opened_seq    INTEGER NOT NULL,
    closed_seq    INTEGER,
    expected_cash INTEGER,
    counted_cash  INTEGER
) STRICT, WITHOUT ROWID;

-- At most one open shift per register.
CREATE UNIQUE INDEX shifts_one_open ON shifts ((closed_seq IS NULL)) WHERE closed_seq IS NULL;

-- Sales of this register and, once synced, of the store's other registers
-- (`device`); `seq` is the seq in that device's chain.
CREATE TABLE sales (
    sale_id       TEXT    PRIMARY KEY CHECK (length(sale_id) = 36),
    device        TEXT    NOT NULL CHECK (length(device) = 36),
    seq           INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    shift_id      TEXT,
    cashier       TEXT    NOT NULL,
    customer_id   TEXT,
    fiscal_series TEXT,
    fiscal_number TEXT,
    total         INTEGER NOT NULL,
    tax           INTEGER NOT NULL,
    change        INTEGER NOT NULL,
    voided_seq    INTEGER,
    void_event_id TEXT,
    void_reason   TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE sale_lines (
    sale_id    TEXT    NOT NULL,
    line_no    INTEGER NOT NULL,
    sku        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    qty_milli  INTEGER NOT NULL,
    unit_price INTEGER NOT NULL,
    tax_bp     INTEGER NOT NULL,
    discount   INTEGER NOT NULL,
    total      INTEGER NOT NULL,
    tax        INTEGER NOT NULL,
    PRIMARY KEY (sale_id, line_no)
) STRICT, WITHOUT ROWID;

CREATE TABLE sale_payments (
    sale_id   TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    method    TEXT    NOT NULL CHECK (method IN ('cash', 'card', 'transfer', 'fiado')),
    amount    INTEGER NOT NULL,
    reference TEXT,
    PRIMARY KEY (sale_id, idx)
) STRICT, WITHOUT ROWID;

-- Fiado: one debt per sale on credit; balance = amount - paid (voided debts owe 0).
CREATE TABLE debts (
    debt_id     TEXT    PRIMARY KEY CHECK (length(debt_id) = 36),
    customer_id TEXT    NOT NULL,
    sale_id     TEXT,
    event_id    TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    paid        INTEGER NOT NULL DEFAULT 0,
    voided      INTEGER NOT NULL DEFAULT 0 CHECK (voided IN (0, 1))
) STRICT, WITHOUT ROWID;

CREATE INDEX debts_by_customer ON debts (customer_id);

CREATE TABLE debt_payments (
    payment_id  TEXT    PRIMARY KEY CHECK (length(payment_id) = 36),
    debt_id     TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    seq         INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Stock per product as this register knows it: the sum of signed deltas of its
-- own events (receipts +, sales -, voids +, counts +/-).
CREATE TABLE stock (
    sku       TEXT    PRIMARY KEY,
    qty_milli INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
