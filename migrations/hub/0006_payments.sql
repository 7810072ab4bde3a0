-- Hub schema v7: payment intents, provider webhooks and the reconciliation of
-- card payments taken offline (issue #15).
--
-- Never edit after release (see 0001_hub.sql).

-- Payment intents a register asked for (POST /v1/payments/intents): the state
-- now; every change is also a `PaymentIntentUpdated` hub event and an audit
-- entry. `auth_code` is what the provider reported once authorized.
CREATE TABLE payment_intents (
    intent_id   TEXT    PRIMARY KEY CHECK (length(intent_id) = 36),
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    sale_id     TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    method      TEXT    NOT NULL CHECK (method IN ('card', 'transfer')),
    amount      INTEGER NOT NULL CHECK (amount > 0),
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'authorized', 'captured', 'refunded', 'voided', 'failed')),
    auth_code   TEXT,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX payment_intents_by_auth ON payment_intents (provider, auth_code);

-- Every provider event the hub received, once: UNIQUE (provider,
-- provider_event_id) is the idempotency key (a second delivery finds the row
-- and changes nothing). `outcome`: `applied` (it moved its intent), `held`
-- (ahead of the intent's state; applied when the state catches up),
-- `rejected` (never applied; `reason` says why: the rejection record), or
-- `recorded` (no intent: a confirmation of a payment a terminal took
-- offline, used by reconciliation).
CREATE TABLE payment_webhooks (
    webhook_id        INTEGER PRIMARY KEY,
    provider          TEXT    NOT NULL,
    provider_event_id TEXT    NOT NULL,
    intent_id         TEXT,
    state             TEXT    NOT NULL CHECK (state IN ('authorized', 'captured', 'refunded', 'voided', 'failed')),
    amount            INTEGER NOT NULL CHECK (amount > 0),
    auth_code         TEXT,
    body_hash         TEXT    NOT NULL CHECK (length(body_hash) = 64),
    received_ms       INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('applied', 'held', 'rejected', 'recorded')),
    reason            TEXT,
    from_state        TEXT,
    decided_ms        INTEGER NOT NULL,
    UNIQUE (provider, provider_event_id)
) STRICT;
CREATE INDEX payment_webhooks_by_intent ON payment_webhooks (intent_id, outcome);
CREATE INDEX payment_webhooks_by_auth ON payment_webhooks (auth_code);

-- Card payments with a terminal reference found in applied register events
-- (SaleCreated payments, PaymentTaken), with their latest verdict.
CREATE TABLE payment_card_checks (
    event_id    TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    store_id    TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    sale_id     TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    reference   TEXT    NOT NULL,
    sale_ms     INTEGER NOT NULL,
    verdict     TEXT    NOT NULL CHECK (verdict IN ('waiting', 'confirmed', 'mismatch', 'unconfirmed')),
    decided_ms  INTEGER NOT NULL,
    PRIMARY KEY (event_id, idx)
) STRICT, WITHOUT ROWID;
CREATE INDEX payment_card_checks_by_reference ON payment_card_checks (reference);
CREATE INDEX payment_card_checks_waiting ON payment_card_checks (verdict, sale_ms);

-- How far reconciliation has read the `applied` table.
CREATE TABLE payment_scan (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    applied_seq INTEGER NOT NULL
) STRICT;
INSERT INTO payment_scan (id, applied_seq) VALUES (1, 0);
