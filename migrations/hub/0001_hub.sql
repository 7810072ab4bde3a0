-- Hub schema v1: stores, devices and their keys, enrollment tokens, nonces and
-- rate-limit buckets, the event store with its causal hold, the audit log,
-- alerts, and the projections.
--
-- Applied by hub/src/store/migrate.rs inside one transaction. Never edit this
-- file after release: the migrator stores its SHA-256 and refuses a database
-- whose recorded migrations differ from the ones compiled in. Change the schema
-- with a new file 0002_….sql instead.
--
-- Every table is STRICT. Ids are lowercase hyphenated UUIDs (36 characters),
-- hashes lowercase hex (64). Money and quantities are INTEGER (centavos,
-- thousandths). Times are UTC ms.

-- The hub itself (one row): which Ed25519 key signs its chains.
CREATE TABLE hub_meta (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    hub_key_id     TEXT    NOT NULL,
    hub_public_key TEXT    NOT NULL CHECK (length(hub_public_key) = 64),
    created_at_ms  INTEGER NOT NULL
) STRICT;

-- A store and the device id of its hub chain.
CREATE TABLE stores (
    store_id      TEXT    PRIMARY KEY CHECK (length(store_id) = 36),
    name          TEXT    NOT NULL,
    time_zone     TEXT    NOT NULL,
    hub_device    TEXT    NOT NULL UNIQUE CHECK (length(hub_device) = 36),
    created_at_ms INTEGER NOT NULL
) STRICT;

-- A register. Quarantine is set by a chain mismatch and cleared by head office;
-- last_push_ms, backlog and clock_skew_ms are what the last push reported;
-- checkpoint is the canonical JSON of the last checkpoint received.
CREATE TABLE devices (
    device_id         TEXT    PRIMARY KEY CHECK (length(device_id) = 36),
    store_id          TEXT    NOT NULL REFERENCES stores (store_id),
    name              TEXT    NOT NULL,
    enrolled_at_ms    INTEGER NOT NULL,
    revoked_at_ms     INTEGER,
    quarantined_at_ms INTEGER,
    quarantine_reason TEXT,
    last_push_ms      INTEGER,
    backlog           INTEGER NOT NULL DEFAULT 0 CHECK (backlog >= 0),
    clock_skew_ms     INTEGER,
    checkpoint        TEXT
) STRICT;
CREATE INDEX devices_by_store ON devices (store_id);

-- A device's keys. valid_until_ms is NULL for the current key; a rotated key
-- keeps working until then (the grace period).
CREATE TABLE device_keys (
    device_id      TEXT    NOT NULL REFERENCES devices (device_id),
    key_id         TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    key_hex        TEXT    NOT NULL CHECK (length(key_hex) = 64),
    created_at_ms  INTEGER NOT NULL,
    valid_until_ms INTEGER,
    PRIMARY KEY (device_id, key_id)
) STRICT, WITHOUT ROWID;

-- One-time enrollment tokens, stored as SHA-256 of the token.
CREATE TABLE enrollment_tokens (
    token_hash    TEXT    PRIMARY KEY CHECK (length(token_hash) = 64),
    store_id      TEXT    NOT NULL REFERENCES stores (store_id),
    device_name   TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER,
    device_id     TEXT
) STRICT;

-- Request nonces, kept while their timestamp is inside the ±5 min window, so a
-- replay is refused across restarts.
CREATE TABLE nonces (
    device_id    TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX nonces_by_time ON nonces (timestamp_ms);

-- Per-device token buckets, persisted so a restart grants no burst.
CREATE TABLE rate_limits (
    device_id    TEXT    PRIMARY KEY,
    tokens_milli INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Every event the hub holds (registers' chains and the hub chains), exactly as
-- received: `bytes` are the canonical bytes whose SHA-256 is `hash`. `id` is the
-- arrival order. Append-only.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    hash        TEXT    NOT NULL CHECK (length(hash) = 64),
    prev        TEXT    NOT NULL CHECK (length(prev) = 64),
    kind        TEXT    NOT NULL,
    hlc_ms      INTEGER NOT NULL,
    hlc_n       INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (device_id, seq)
) STRICT;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

-- Applied events, in apply order (`applied_seq`): an order consistent with
-- causality, which pull pages follow. Every stored event is either applied or
-- held (both in the transaction that stores it), so "is applied" is "is stored
-- and not held" and needs no index on event_row here.
CREATE TABLE applied (
    applied_seq INTEGER PRIMARY KEY,
    event_row   INTEGER NOT NULL REFERENCES events (id),
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    applied_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX applied_by_store ON applied (store_id, applied_seq);

-- Events stored but not applied yet, and what each still misses.
CREATE TABLE held (
    event_row     INTEGER PRIMARY KEY REFERENCES events (id),
    held_since_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE held_missing (
    missing_id TEXT    NOT NULL,
    event_row  INTEGER NOT NULL REFERENCES held (event_row),
    PRIMARY KEY (missing_id, event_row)
) STRICT, WITHOUT ROWID;
CREATE INDEX held_missing_by_event ON held_missing (event_row);

-- The audit log (DESIGN "Audit log v1"): `entry` is the canonical JSON
-- {"index","kind","at_ms","store","data"}, `leaf_hash` its RFC 9162 leaf hash.
-- Append-only and gapless from 0.
CREATE TABLE audit_log (
    idx       INTEGER PRIMARY KEY CHECK (idx >= 0),
    kind      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    store_id  TEXT,
    entry     BLOB    NOT NULL,
    leaf_hash TEXT    NOT NULL CHECK (length(leaf_hash) = 64)
) STRICT;
CREATE TRIGGER audit_log_gapless BEFORE INSERT ON audit_log
WHEN NEW.idx != (SELECT COALESCE(MAX(idx), -1) + 1 FROM audit_log)
BEGIN SELECT RAISE(ABORT, 'audit_log index must follow the last entry'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Operator alerts that are not projections: chain mismatches, reused tokens.
CREATE TABLE alerts (
    alert_id   INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    store_id   TEXT,
    device_id  TEXT,
    at_ms      INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    closed_ms  INTEGER
) STRICT;

-- Projections: one row per fact (hub/src/projection.rs), rebuilt by
-- `caja-hub rebuild` from the applied events. Keyed by event (WITHOUT ROWID:
-- one B-tree per table), with only the indexes a query uses: every index is
-- paid for by every ingested event.
CREATE TABLE p_shifts (
    event_id      TEXT    PRIMARY KEY,
    shift_id      TEXT    NOT NULL,
    store_id      TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    cashier       TEXT    NOT NULL,
    opening_float INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE p_shift_closes (
    event_id      TEXT    PRIMARY KEY,
    shift_id      TEXT    NOT NULL,
    store_id      TEXT    NOT NULL,
    expected_cash INTEGER NOT NULL,
    counted_cash  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- A sale with its lines and payments as canonical-JSON arrays
-- (`lines`: [[product, qty_milli, total, tax], …] in line order;
-- `payments`: [[method, amount], …]): one row per sale instead of one per line
-- and payment, because every row costs every ingested sale.
CREATE TABLE p_sales (
    event_id      TEXT    PRIMARY KEY,
    sale_id       TEXT    NOT NULL,
    store_id      TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    shift_id      TEXT,
    customer_id   TEXT,
    total         INTEGER NOT NULL,
    tax           INTEGER NOT NULL,
    change        INTEGER NOT NULL,
    fiscal_series TEXT,
    fiscal_number TEXT,
    lines         TEXT    NOT NULL,
    payments      TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
-- A full index, not a partial one: a partial index would make SQLite
-- re-prepare the lookup statement at every new binding.
CREATE INDEX p_sales_by_fiscal ON p_sales (fiscal_series, fiscal_number);
-- Payments taken after their sale (PaymentTaken); idx is always 0.
CREATE TABLE p_payments (
    event_id   TEXT    NOT NULL,
    idx        INTEGER NOT NULL,
    payment_id TEXT,
    sale_id    TEXT    NOT NULL,
    store_id   TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    amount     INTEGER NOT NULL,
    PRIMARY KEY (event_id, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE p_voids (
    event_id TEXT PRIMARY KEY,
    sale_id  TEXT NOT NULL,
    store_id TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX p_voids_by_sale ON p_voids (store_id, sale_id);
CREATE TABLE p_debts (
    event_id    TEXT    PRIMARY KEY,
    debt_id     TEXT    NOT NULL,
    store_id    TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    amount      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX p_debts_by_debt ON p_debts (debt_id);
CREATE TABLE p_debt_payments (
    event_id    TEXT    PRIMARY KEY,
    payment_id  TEXT    NOT NULL,
    debt_id     TEXT    NOT NULL,
    store_id    TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    amount      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX p_debt_payments_by_debt ON p_debt_payments (debt_id);
CREATE TABLE p_stock_moves (
    event_id    TEXT    PRIMARY KEY,
    store_id    TEXT    NOT NULL,
    product     TEXT    NOT NULL,
    delta_milli INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- lww: the greatest (hlc_ms, hlc_n, device_id, event_id) wins.
CREATE TABLE p_customers (
    customer_id TEXT    PRIMARY KEY,
    event_id    TEXT    NOT NULL,
    hlc_ms      INTEGER NOT NULL,
    hlc_n       INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    body        TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
-- server_wins: the greatest seq of the store's hub chain wins.
CREATE TABLE p_catalog (
    store_id TEXT    NOT NULL,
    product  TEXT    NOT NULL,
    event_id TEXT    NOT NULL,
    hub_seq  INTEGER NOT NULL,
    body     TEXT    NOT NULL,
    PRIMARY KEY (store_id, product)
) STRICT, WITHOUT ROWID;
CREATE TABLE p_prices (
    store_id   TEXT    NOT NULL,
    product    TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    hub_seq    INTEGER NOT NULL,
    unit_price INTEGER NOT NULL,
    PRIMARY KEY (store_id, product)
) STRICT, WITHOUT ROWID;
CREATE TABLE p_foreign_kinds (
    event_id  TEXT PRIMARY KEY,
    store_id  TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind      TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Conflicts found between applied events (a projection: rebuilt with them).
CREATE TABLE conflicts (
    conflict_id TEXT    PRIMARY KEY,
    reason      TEXT    NOT NULL,
    strategy    TEXT    NOT NULL,
    store_id    TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detected_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE conflict_events (
    conflict_id TEXT NOT NULL REFERENCES conflicts (conflict_id),
    event_id    TEXT NOT NULL,
    PRIMARY KEY (conflict_id, event_id)
) STRICT, WITHOUT ROWID;

-- Stock per product and store: receipts and counts minus lines of sales that
-- were not voided.
CREATE VIEW v_stock AS
SELECT store_id, product, SUM(delta) AS qty_milli FROM (
    SELECT store_id, product, delta_milli AS delta FROM p_stock_moves
    UNION ALL
    SELECT s.store_id, json_extract(l.value, '$[0]'), -json_extract(l.value, '$[1]')
    FROM p_sales s, json_each(s.lines) l
    WHERE NOT EXISTS (SELECT 1 FROM p_voids v WHERE v.store_id = s.store_id AND v.sale_id = s.sale_id)
) GROUP BY store_id, product;

-- Fiado owed per customer and store.
CREATE VIEW v_debt_balances AS
SELECT store_id, customer_id, SUM(amount) AS balance FROM (
    SELECT store_id, customer_id, amount FROM p_debts
    UNION ALL
    SELECT store_id, customer_id, -amount FROM p_debt_payments
) GROUP BY store_id, customer_id;
