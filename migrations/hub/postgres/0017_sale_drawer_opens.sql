-- Hub schema v17: a cash sale's or cash refund's drawer opened apart from its
-- receipt (the real-time pulse while the printer could not print, or the key
-- while it could not be reached), from the registers' `SaleDrawerOpened`.

CREATE TABLE p_sale_drawer_opens (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    store_id    TEXT COLLATE "C" NOT NULL,
    device_id   TEXT COLLATE "C" NOT NULL,
    document_id TEXT COLLATE "C" NOT NULL,
    refund      BIGINT           NOT NULL CHECK (refund IN (0, 1)),
    how         TEXT COLLATE "C" NOT NULL CHECK (how IN ('pulse', 'manual')),
    opened_ms   BIGINT           NOT NULL
);
CREATE INDEX p_sale_drawer_opens_by_store ON p_sale_drawer_opens (store_id);
