-- Hub schema: head office's correction of a rejected summary (RFCE) and
-- cancellation of a document refused before sending.
--
-- Never edit after release (see 0001_hub.sql).
--
-- A document's submitted bytes are written once (0010_tax_outbox.sql). The one
-- exception (DESIGN invariant 10): an RFCE the tax authority rejected may be
-- replaced by head office with a summary the hub rebuilds from the e-CF it
-- holds and signs itself; the row goes back to `pending` with the new bytes
-- and `corrections` counts the replacements. The trigger below allows exactly
-- that change and nothing else: from `rejected` to `pending`, the channel
-- `rfce` and the security code unchanged, `corrections` one more.
ALTER TABLE tax_outbox ADD COLUMN corrections INTEGER NOT NULL DEFAULT 0 CHECK (corrections >= 0);

-- Head office's cancellation of a document refused before sending (the
-- `fiscal_document_invalid` conflict): when its number was cancelled at the
-- tax authority (an ANECF queued as its own row), the refused row is closed
-- here and leaves the backlog; it is never sent.
ALTER TABLE tax_outbox ADD COLUMN cancelled_ms INTEGER;

DROP TRIGGER tax_outbox_body_once;

CREATE TRIGGER tax_outbox_body_once BEFORE UPDATE OF body, body_hash, channel, security_code ON tax_outbox
WHEN OLD.body IS NOT NULL
 AND (NEW.body IS NOT OLD.body OR NEW.body_hash IS NOT OLD.body_hash
      OR NEW.channel IS NOT OLD.channel OR NEW.security_code IS NOT OLD.security_code)
 AND NOT (OLD.state = 'rejected' AND NEW.state = 'pending' AND OLD.channel = 'rfce'
          AND NEW.channel IS OLD.channel AND NEW.security_code IS OLD.security_code
          AND NEW.body IS NOT NULL AND NEW.corrections = OLD.corrections + 1)
BEGIN
    SELECT RAISE(ABORT, 'tax_outbox: a document''s submitted bytes never change');
END;
