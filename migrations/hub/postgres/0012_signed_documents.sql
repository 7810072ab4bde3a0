-- PostgreSQL twin of ../0012_signed_documents.sql (same version, tables and
-- column order). Never edit after release.
--
-- The signed fiscal documents (e-CF, RFCE, ANECF) as their exact bytes, keyed
-- by SHA-256: received beside their `FiscalDocumentIssued` events in the push,
-- or signed by the hub itself (an ANECF: `seq` and `event_id` NULL). Never
-- changed or deleted.
CREATE TABLE signed_documents (
    sha256        TEXT COLLATE "C" PRIMARY KEY CHECK (length(sha256) = 64),
    -- The e-NCF, or `first..last` for an ANECF.
    encf          TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL CHECK (kind IN ('ecf', 'rfce', 'anecf')),
    doc_type      TEXT COLLATE "C" NOT NULL CHECK (doc_type IN ('invoice', 'credit_note', 'cancellation')),
    store_id      TEXT COLLATE "C" NOT NULL,
    device_id     TEXT COLLATE "C" NOT NULL,
    seq           BIGINT,
    event_id      TEXT COLLATE "C",
    security_code TEXT COLLATE "C",
    signed_at_ms  BIGINT NOT NULL,
    xml           BYTEA  NOT NULL,
    received_ms   BIGINT NOT NULL
);

CREATE INDEX signed_documents_by_encf ON signed_documents (encf, device_id);
CREATE INDEX signed_documents_by_time ON signed_documents (signed_at_ms);

CREATE FUNCTION caja_signed_documents_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signed_documents: signed documents never change and are never deleted';
END
$$;
CREATE TRIGGER signed_documents_no_update BEFORE UPDATE ON signed_documents
FOR EACH ROW EXECUTE FUNCTION caja_signed_documents_frozen();
CREATE TRIGGER signed_documents_no_delete BEFORE DELETE ON signed_documents
FOR EACH ROW EXECUTE FUNCTION caja_signed_documents_frozen();
CREATE TRIGGER signed_documents_no_truncate BEFORE TRUNCATE ON signed_documents
FOR EACH STATEMENT EXECUTE FUNCTION caja_signed_documents_frozen();
