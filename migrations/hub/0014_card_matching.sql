-- Hub schema: offline card confirmations matched by terminal, authorization
-- code, amount and time window (see docs/payments.md, "Offline card
-- payments").
--
-- Never edit after release (see 0001_hub.sql).
--
-- A provider's webhook may name the terminal that took the card.
ALTER TABLE payment_webhooks ADD COLUMN terminal_id TEXT;

-- Card checks keep the reference split into terminal and code, and a new
-- verdict `ambiguous` (a confirmation two recorded payments could claim: a
-- manual conflict, never a match). SQLite cannot change a CHECK in place,
-- so the table is rebuilt; older rows had bare codes as references.
CREATE TABLE payment_card_checks_v2 (
    event_id    TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    sale_id     TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    reference   TEXT    NOT NULL,
    sale_ms     INTEGER NOT NULL,
    verdict     TEXT    NOT NULL CHECK (verdict IN ('waiting', 'confirmed', 'mismatch', 'unconfirmed', 'ambiguous')),
    decided_ms  INTEGER NOT NULL,
    terminal_id TEXT,
    auth_code   TEXT    NOT NULL,
    PRIMARY KEY (event_id, idx)
) STRICT, WITHOUT ROWID;
INSERT INTO payment_card_checks_v2
    (event_id, idx, store_id, device_id, sale_id, amount, reference, sale_ms, verdict, decided_ms, terminal_id, auth_code)
    SELECT event_id, idx, store_id, device_id, sale_id, amount, reference, sale_ms, verdict, decided_ms, NULL, reference
    FROM payment_card_checks;
DROP TABLE payment_card_checks;
ALTER TABLE payment_card_checks_v2 RENAME TO payment_card_checks;
CREATE INDEX payment_card_checks_by_reference ON payment_card_checks (reference);
CREATE INDEX payment_card_checks_by_code ON payment_card_checks (auth_code);
CREATE INDEX payment_card_checks_waiting ON payment_card_checks (verdict, sale_ms);

-- Partial refunds: how much of a captured intent the provider refunded so
-- far (the intent stays `captured` until the whole amount is refunded).
ALTER TABLE payment_intents ADD COLUMN refunded_amount INTEGER NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0);
