-- Hub schema: the signed fiscal documents (e-CF, RFCE, ANECF) as their exact
-- bytes.
--
-- Never edit after release (see 0001_hub.sql).
--
-- A register signs its e-CF (and an E32's RFCE) in the sale's transaction and
-- names each by SHA-256 in a `FiscalDocumentIssued` event; the bytes travel
-- beside the events in the push (`documents`) and are stored here unchanged,
-- keyed by their SHA-256. Documents the hub signs itself (an ANECF) are kept
-- here too, with no event (`seq` and `event_id` NULL). The outbox submits
-- these bytes; `caja-hub fiscal documents` exports them. Rows are never
-- changed or deleted (kept ten years, DESIGN "Electronic fiscal documents").
CREATE TABLE signed_documents (
    sha256        TEXT    PRIMARY KEY CHECK (length(sha256) = 64),
    -- The e-NCF (`E320000000051`), or `first..last` for an ANECF.
    encf          TEXT    NOT NULL,
    -- `ecf`, `rfce` or `anecf`.
    kind          TEXT    NOT NULL CHECK (kind IN ('ecf', 'rfce', 'anecf')),
    doc_type      TEXT    NOT NULL CHECK (doc_type IN ('invoice', 'credit_note', 'cancellation')),
    store_id      TEXT    NOT NULL,
    -- The register that signed it (for an ANECF: the register whose numbers
    -- are cancelled).
    device_id     TEXT    NOT NULL,
    -- The `FiscalDocumentIssued` event and its seq (NULL when the hub signed).
    seq           INTEGER,
    event_id      TEXT,
    security_code TEXT,
    -- When the document was signed (UTC ms, the signer's clock).
    signed_at_ms  INTEGER NOT NULL,
    xml           BLOB    NOT NULL,
    received_ms   INTEGER NOT NULL
) STRICT;

CREATE INDEX signed_documents_by_encf ON signed_documents (encf, device_id);
CREATE INDEX signed_documents_by_time ON signed_documents (signed_at_ms);

CREATE TRIGGER signed_documents_no_update BEFORE UPDATE ON signed_documents
BEGIN
    SELECT RAISE(ABORT, 'signed_documents: a signed document never changes');
END;

CREATE TRIGGER signed_documents_no_delete BEFORE DELETE ON signed_documents
BEGIN
    SELECT RAISE(ABORT, 'signed_documents: signed documents are never deleted');
END;
