-- Node schema: how much of a payment intent the provider refunded so far
-- (partial refunds; `PaymentIntentUpdated.refunded`). Never edit after
-- release.
ALTER TABLE payment_intents ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0;
