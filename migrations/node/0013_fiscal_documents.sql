-- Node schema v11: the tax authority's verdicts on fiscal documents (issue
-- #13, two-phase invoicing).
--
-- Never edit after release (see 0001_journal.sql).

-- Projection of the hub chain's FiscalDocumentAccepted / FiscalDocumentRejected
-- events: the latest verdict per document (hub-chain order), for every
-- register of the store; status and `fiscal status` count this register's,
-- and a receipt reprinted after the verdict carries the security code and
-- the authority's verification address (its QR code).
CREATE TABLE fiscal_documents (
    document      TEXT    PRIMARY KEY,
    doc_type      TEXT    NOT NULL CHECK (doc_type IN ('invoice', 'credit_note', 'cancellation')),
    series        TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    event_id      TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('accepted', 'accepted_conditional', 'rejected')),
    authority     TEXT    NOT NULL,
    track_id      TEXT,
    security_code TEXT,
    verify_url    TEXT,
    messages      TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX fiscal_documents_by_device ON fiscal_documents (device_id, status);
