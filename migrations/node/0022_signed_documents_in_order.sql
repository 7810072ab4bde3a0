-- Node schema v22: the signed documents (e-CF, RFCE) kept in the order they
-- were issued, keyed by the journal seq of the FiscalDocumentIssued event
-- that names them and their kind, instead of by their SHA-256 with an index
-- on seq. A sale's documents are then appended at the end of one b-tree
-- (its leaf and the documents' overflow pages) instead of landing on a
-- random leaf of a b-tree keyed by hash, which splits every few sales
-- under rows of several KB, plus a leaf of the seq index: about 9.4 pages
-- per e-CF sale commit before, about 3.3 after.
--
-- What is kept is the same: the exact signed bytes, their SHA-256 (the hash
-- the event names, checked again by the hub when pushed), the e-NCF, the
-- kind and the event's seq; an event names at most one document of each
-- kind, so (seq, kind) is unique where the hash was.
--
-- Never edit after release (see 0001_journal.sql).

CREATE TABLE signed_documents_in_order (
    seq    INTEGER NOT NULL,
    kind   TEXT    NOT NULL CHECK (kind IN ('ecf', 'rfce')),
    sha256 TEXT    NOT NULL CHECK (length(sha256) = 64),
    encf   TEXT    NOT NULL,
    xml    BLOB    NOT NULL,
    PRIMARY KEY (seq, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO signed_documents_in_order (seq, kind, sha256, encf, xml)
    SELECT seq, kind, sha256, encf, xml FROM signed_documents;

DROP TABLE signed_documents;

ALTER TABLE signed_documents_in_order RENAME TO signed_documents;
