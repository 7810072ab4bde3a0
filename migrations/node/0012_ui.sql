-- The cashier screen's own state (issue #14), kept in the node so that
-- closing the browser tab, or restarting the machine, loses nothing the
-- cashier did. Not events and not projections: `rebuild` leaves these tables
-- alone, and nothing here is synced.

-- The sale being rung up: one row per line scanned, weighed or keyed. The
-- client operation id of the request that added it makes a retried request
-- add it once.
CREATE TABLE ui_cart_lines (
    line_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id     TEXT    NOT NULL UNIQUE CHECK (length(op_id) = 36),
    code      TEXT    NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    qty_milli INTEGER NOT NULL CHECK (qty_milli > 0),
    weighed   INTEGER NOT NULL CHECK (weighed IN (0, 1)),
    added_ms  INTEGER NOT NULL
) STRICT;

-- One row. `pay_op`: the operation id of the sale that pays the cart, chosen
-- at the first attempt and reused by every retry (a sale is made once even
-- when the page is reloaded mid-payment). `last_sale`: what the screen shows
-- of the last finished sale (JSON: total, change, fiado, …).
CREATE TABLE ui_cart (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    pay_op    TEXT CHECK (pay_op IS NULL OR length(pay_op) = 36),
    last_sale TEXT
) STRICT;

INSERT INTO ui_cart (id) VALUES (1);

-- Screen operations that are not register operations (reprints): their
-- client operation ids and first answers.
CREATE TABLE ui_ops (
    op_id  TEXT    PRIMARY KEY CHECK (length(op_id) = 36),
    kind   TEXT    NOT NULL,
    result TEXT    NOT NULL,
    at_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
