-- Hub schema v17: a cash sale's or cash refund's drawer opened apart from its
-- receipt (the real-time pulse while the printer could not print, or the key
-- while it could not be reached), from the registers' `SaleDrawerOpened`.

CREATE TABLE p_sale_drawer_opens (
    event_id    TEXT    PRIMARY KEY,
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    document_id TEXT    NOT NULL,
    refund      INTEGER NOT NULL CHECK (refund IN (0, 1)),
    how         TEXT    NOT NULL CHECK (how IN ('pulse', 'manual')),
    opened_ms   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX p_sale_drawer_opens_by_store ON p_sale_drawer_opens (store_id);
