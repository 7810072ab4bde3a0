-- Node schema v11: price overrides, drawer openings without a sale,
-- store-credit refunds and spending, returns of sales unknown offline
-- (issue #12).
--
-- Never edit after release (see 0001_journal.sql).

-- Sale payments may be store credit: the table is rebuilt with the wider
-- CHECK (SQLite cannot alter a CHECK), rows copied as they are.
CREATE TABLE sale_payments_v11 (
    sale_id   TEXT    NOT NULL,
    idx       INTEGER NOT NULL,
    method    TEXT    NOT NULL
              CHECK (method IN ('cash', 'card', 'transfer', 'fiado', 'store_credit')),
    amount    INTEGER NOT NULL,
    reference TEXT,
    PRIMARY KEY (sale_id, idx)
) STRICT, WITHOUT ROWID;
INSERT INTO sale_payments_v11 SELECT sale_id, idx, method, amount, reference FROM sale_payments;
DROP TABLE sale_payments;
ALTER TABLE sale_payments_v11 RENAME TO sale_payments;

-- Projection: every customer's store credit, one signed row per entry:
-- + a return refunded as store credit (entry = the return, idx 0),
-- − a sale paid with it (entry = the sale, idx = the payment's index; a void
-- of that sale gives it back: rows whose sale is voided do not count). Own
-- and other registers' events of the store: the balance is a sum, so it does
-- not depend on the order they arrived in.
CREATE TABLE store_credit (
    entry_id    TEXT    NOT NULL CHECK (length(entry_id) = 36),
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    customer_id TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount <> 0),
    sale_id     TEXT,
    event_id    TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    PRIMARY KEY (entry_id, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX store_credit_by_customer ON store_credit (customer_id);

-- Projection: this register's drawer openings without a sale.
CREATE TABLE drawer_opens (
    movement_id TEXT    PRIMARY KEY CHECK (length(movement_id) = 36),
    shift_id    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    approved_by TEXT
) STRICT, WITHOUT ROWID;

-- Projection: returned lines whose original sale the returning register did
-- not know (this register's and the others'), by the reference the cashier
-- gave (a sale id or a fiscal number). Counted against the sale, by product,
-- when it is known.
CREATE TABLE returns_unknown (
    return_id TEXT    NOT NULL,
    line      INTEGER NOT NULL,
    reference TEXT    NOT NULL,
    sale_id   TEXT,
    product   TEXT    NOT NULL,
    qty_milli INTEGER NOT NULL CHECK (qty_milli > 0),
    total     INTEGER NOT NULL,
    tax       INTEGER NOT NULL,
    damaged   INTEGER NOT NULL CHECK (damaged IN (0, 1)),
    device    TEXT    NOT NULL,
    PRIMARY KEY (return_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX returns_unknown_by_reference ON returns_unknown (reference);

-- Print jobs may be drawer openings (kind 'drawer': the kick and a slip; the
-- `sale_id` column then holds the opening's movement id). Rebuilt with the
-- wider CHECK, rows and ids copied as they are.
CREATE TABLE print_jobs_v11 (
    job_id             INTEGER PRIMARY KEY,
    sale_id            TEXT    NOT NULL CHECK (length(sale_id) = 36),
    kind               TEXT    NOT NULL CHECK (kind IN ('original', 'copy', 'drawer')),
    state              TEXT    NOT NULL
                       CHECK (state IN ('pending', 'printing', 'printed', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    transport_failures INTEGER NOT NULL DEFAULT 0 CHECK (transport_failures >= 0),
    may_have_printed   INTEGER NOT NULL DEFAULT 0 CHECK (may_have_printed IN (0, 1)),
    next_attempt_ms    INTEGER NOT NULL,
    attempt_started_ms INTEGER,
    last_error         TEXT,
    created_ms         INTEGER NOT NULL,
    printed_ms         INTEGER,
    CHECK ((state = 'printed') = (printed_ms IS NOT NULL))
) STRICT;
INSERT INTO print_jobs_v11 (job_id, sale_id, kind, state, attempts, transport_failures,
        may_have_printed, next_attempt_ms, attempt_started_ms, last_error, created_ms, printed_ms)
    SELECT job_id, sale_id, kind, state, attempts, transport_failures, may_have_printed,
        next_attempt_ms, attempt_started_ms, last_error, created_ms, printed_ms
    FROM print_jobs;
DROP TABLE print_jobs;
ALTER TABLE print_jobs_v11 RENAME TO print_jobs;
CREATE UNIQUE INDEX print_jobs_one_original ON print_jobs (sale_id) WHERE kind IN ('original', 'drawer');
CREATE INDEX print_jobs_due ON print_jobs (state, next_attempt_ms, job_id);
