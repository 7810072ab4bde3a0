-- Node schema v9 (renumber after the conflicts branch's 0009 at merge): payment intents as the hub reports them (issue #15).
--
-- A projection of the hub chain's `PaymentIntentUpdated` events (the latest
-- one per intent wins; the hub chain is applied in order), rebuilt with the
-- other projections. Intents of every register of the store are kept; status
-- shows this register's.
CREATE TABLE payment_intents (
    intent_id         TEXT    PRIMARY KEY,
    sale_id           TEXT    NOT NULL,
    device_id         TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    method            TEXT    NOT NULL,
    amount            INTEGER NOT NULL,
    state             TEXT    NOT NULL,
    auth_code         TEXT,
    provider_event_id TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX payment_intents_by_device ON payment_intents (device_id, state);
