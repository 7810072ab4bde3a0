-- Hub schema (PostgreSQL twin of 0014_card_matching.sql): offline card
-- confirmations matched by terminal, authorization code, amount and time
-- window.
--
-- Never edit after release (see 0001_hub.sql).
ALTER TABLE payment_webhooks ADD COLUMN terminal_id TEXT COLLATE "C";

ALTER TABLE payment_card_checks ADD COLUMN terminal_id TEXT COLLATE "C";
ALTER TABLE payment_card_checks ADD COLUMN auth_code TEXT COLLATE "C";
UPDATE payment_card_checks SET auth_code = reference;
ALTER TABLE payment_card_checks ALTER COLUMN auth_code SET NOT NULL;
ALTER TABLE payment_card_checks DROP CONSTRAINT payment_card_checks_verdict_check;
ALTER TABLE payment_card_checks ADD CONSTRAINT payment_card_checks_verdict_check
    CHECK (verdict IN ('waiting', 'confirmed', 'mismatch', 'unconfirmed', 'ambiguous'));
CREATE INDEX payment_card_checks_by_code ON payment_card_checks (auth_code);

-- Partial refunds: how much of a captured intent the provider refunded so
-- far (the intent stays `captured` until the whole amount is refunded).
ALTER TABLE payment_intents ADD COLUMN refunded_amount BIGINT NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0);
