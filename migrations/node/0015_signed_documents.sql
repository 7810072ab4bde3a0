-- Node schema v15: the electronic fiscal documents (e-CF, RFCE) this register
-- signed, written in the same transaction as the sale or return and its
-- FiscalDocumentIssued event (DESIGN "Electronic fiscal documents").
--
-- Never edit after release (see 0001_journal.sql).

-- The exact signed bytes, by their SHA-256 (the hash the event names). Kept:
-- the push sends them beside the event that names them, and a reprint or an
-- auditor may need them. Never sent to other registers.
CREATE TABLE signed_documents (
    sha256 TEXT    PRIMARY KEY CHECK (length(sha256) = 64),
    encf   TEXT    NOT NULL,
    kind   TEXT    NOT NULL CHECK (kind IN ('ecf', 'rfce')),
    xml    BLOB    NOT NULL,
    -- Journal seq of the FiscalDocumentIssued event that names the document.
    seq    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX signed_documents_by_seq ON signed_documents (seq);

-- One row per e-CF this register issued: what the original receipt prints
-- (security code, signing time, QR) and what a credit note needs of the
-- document it modifies (date, buyer).
CREATE TABLE issued_ecf (
    encf          TEXT    PRIMARY KEY,
    doc_type      TEXT    NOT NULL CHECK (doc_type IN ('invoice', 'credit_note')),
    sale_id       TEXT,
    return_id     TEXT,
    security_code TEXT    NOT NULL,
    signed_at_ms  INTEGER NOT NULL,
    -- FechaEmision, yyyy-mm-dd (store time).
    issued_date   TEXT    NOT NULL,
    qr_url        TEXT    NOT NULL,
    buyer_tax_id  TEXT,
    buyer_name    TEXT,
    total         INTEGER NOT NULL,
    seq           INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX issued_ecf_by_sale ON issued_ecf (sale_id) WHERE sale_id IS NOT NULL;
CREATE INDEX issued_ecf_by_return ON issued_ecf (return_id) WHERE return_id IS NOT NULL;
