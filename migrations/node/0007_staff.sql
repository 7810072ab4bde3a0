-- Node schema v7: staff, returns, cash movements.

-- Projection of the hub chain: the store's staff (PINs hashed only).
CREATE TABLE staff (
    staff_id TEXT    PRIMARY KEY CHECK (length(staff_id) = 36),
    name     TEXT    NOT NULL,
    role     TEXT    NOT NULL CHECK (role IN ('cashier', 'supervisor', 'manager')),
    pin      TEXT    NOT NULL,
    active   INTEGER NOT NULL CHECK (active IN (0, 1))
) STRICT, WITHOUT ROWID;

-- Projection: returned lines of sales (this register's and the others').
CREATE TABLE returns (
    return_id TEXT    NOT NULL,
    line      INTEGER NOT NULL,
    sale_id   TEXT    NOT NULL,
    sale_line INTEGER NOT NULL,
    product   TEXT    NOT NULL,
    qty_milli INTEGER NOT NULL CHECK (qty_milli > 0),
    total     INTEGER NOT NULL,
    tax       INTEGER NOT NULL,
    damaged   INTEGER NOT NULL CHECK (damaged IN (0, 1)),
    device    TEXT    NOT NULL,
    PRIMARY KEY (return_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX returns_by_sale ON returns (sale_id, sale_line);

-- Projection: this register's cash movements.
CREATE TABLE cash_moves (
    movement_id TEXT    PRIMARY KEY CHECK (length(movement_id) = 36),
    shift_id    TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('paid_in', 'paid_out', 'drop')),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    reason      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    approved_by TEXT
) STRICT, WITHOUT ROWID;

-- Not a projection: wrong PINs per member of staff on this register. Five in
-- a row lock them out here for a while; a right PIN clears the count.
CREATE TABLE pin_failures (
    staff_id        TEXT    PRIMARY KEY,
    failures        INTEGER NOT NULL,
    locked_until_ms INTEGER
) STRICT, WITHOUT ROWID;
