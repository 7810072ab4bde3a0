-- Hub schema (PostgreSQL twin of ../0013_summary_corrections.sql): head
-- office's correction of a rejected summary (RFCE).
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
ALTER TABLE tax_outbox ADD COLUMN corrections BIGINT NOT NULL DEFAULT 0 CHECK (corrections >= 0);

-- Head office's cancellation of a document refused before sending (the
-- `fiscal_document_invalid` conflict): when its number was cancelled at the
-- tax authority (an ANECF queued as its own row), the refused row is closed
-- here and leaves the backlog; it is never sent.
ALTER TABLE tax_outbox ADD COLUMN cancelled_ms BIGINT;

DROP TRIGGER tax_outbox_body_once ON tax_outbox;

CREATE TRIGGER tax_outbox_body_once BEFORE UPDATE OF body, body_hash, channel, security_code ON tax_outbox
FOR EACH ROW
WHEN (OLD.body IS NOT NULL
      AND (NEW.body IS DISTINCT FROM OLD.body OR NEW.body_hash IS DISTINCT FROM OLD.body_hash
           OR NEW.channel IS DISTINCT FROM OLD.channel
           OR NEW.security_code IS DISTINCT FROM OLD.security_code)
      AND NOT (OLD.state = 'rejected' AND NEW.state = 'pending' AND OLD.channel = 'rfce'
               AND NEW.channel IS NOT DISTINCT FROM OLD.channel
               AND NEW.security_code IS NOT DISTINCT FROM OLD.security_code
               AND NEW.body IS NOT NULL AND NEW.corrections = OLD.corrections + 1))
EXECUTE FUNCTION caja_tax_outbox_body_once();
