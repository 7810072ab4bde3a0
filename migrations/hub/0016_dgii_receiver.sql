-- Hub schema: the DGII receiver services (URL Recepción, URL Aprobación
-- Comercial, URL Autenticación) and head office's commercial decisions on
-- supplier invoices.
--
-- Never edit after release (see 0001_hub.sql).
--
-- `receiver_seeds`: the seeds of the token exchange that were used (a seed is
-- stateless and signed by the hub until used; a second use finds its row).
CREATE TABLE receiver_seeds (
    seed     TEXT    PRIMARY KEY,
    used_ms  INTEGER NOT NULL
) STRICT;

-- `received_ecf`: e-CF other taxpayers issued to us (supplier invoices),
-- stored once per issuer RNC and e-NCF with the exact bytes received and the
-- signed ARECF that answered them. Head office's commercial decision
-- (approval or rejection, ACECF signed by the hub) is set once.
CREATE TABLE received_ecf (
    issuer_rnc     TEXT    NOT NULL,
    encf           TEXT    NOT NULL,
    buyer_rnc      TEXT    NOT NULL,
    ecf_type       INTEGER NOT NULL,
    issuer_name    TEXT    NOT NULL,
    issued_date    TEXT    NOT NULL,
    total_minor    INTEGER NOT NULL,
    security_code  TEXT    NOT NULL,
    sha256         TEXT    NOT NULL CHECK (length(sha256) = 64),
    xml            BLOB    NOT NULL,
    arecf          BLOB    NOT NULL,
    received_ms    INTEGER NOT NULL,
    decision       TEXT    CHECK (decision IN ('approved', 'rejected')),
    decision_note  TEXT,
    decided_by     TEXT,
    decided_ms     INTEGER,
    acecf          BLOB,
    PRIMARY KEY (issuer_rnc, encf)
) STRICT;

CREATE INDEX received_ecf_by_time ON received_ecf (received_ms);

CREATE TRIGGER received_ecf_bytes_once BEFORE UPDATE ON received_ecf
WHEN NEW.xml IS NOT OLD.xml OR NEW.arecf IS NOT OLD.arecf OR OLD.decision IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'received_ecf: the received bytes and a decision never change');
END;

CREATE TRIGGER received_ecf_no_delete BEFORE DELETE ON received_ecf
BEGIN
    SELECT RAISE(ABORT, 'received_ecf: received documents are never deleted');
END;

-- `commercial_approvals`: buyers' commercial approvals or rejections (ACECF)
-- of e-CF we issued, once per e-NCF and buyer, as the exact bytes received.
CREATE TABLE commercial_approvals (
    encf          TEXT    NOT NULL,
    buyer_rnc     TEXT    NOT NULL,
    estado        INTEGER NOT NULL CHECK (estado IN (1, 2)),
    reason        TEXT,
    decided_at    TEXT    NOT NULL,
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    xml           BLOB    NOT NULL,
    received_ms   INTEGER NOT NULL,
    PRIMARY KEY (encf, buyer_rnc)
) STRICT;

CREATE TRIGGER commercial_approvals_no_update BEFORE UPDATE ON commercial_approvals
BEGIN
    SELECT RAISE(ABORT, 'commercial_approvals: an approval never changes');
END;

CREATE TRIGGER commercial_approvals_no_delete BEFORE DELETE ON commercial_approvals
BEGIN
    SELECT RAISE(ABORT, 'commercial_approvals: approvals are never deleted');
END;

-- `acecf_deliveries`: head office's ACECF of a supplier's e-CF, delivered to
-- the supplier's URL Aprobación Comercial (found in DGII's directory) and to
-- DGII, one row per destination, queued in the decision's transaction. The
-- bytes are `received_ecf.acecf` (set once): every attempt sends them, so a
-- receiver sees one content; `in_doubt` is set before a send and cleared by
-- an answer; a lease (owner, expiry) lets one worker of one instance hold a
-- row at a time.
CREATE TABLE acecf_deliveries (
    issuer_rnc      TEXT    NOT NULL,
    encf            TEXT    NOT NULL,
    destination     TEXT    NOT NULL CHECK (destination IN ('issuer', 'dgii')),
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    in_doubt        INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT,
    answer          TEXT,
    delivered_ms    INTEGER,
    PRIMARY KEY (issuer_rnc, encf, destination)
) STRICT;

CREATE INDEX acecf_deliveries_due ON acecf_deliveries (state, next_attempt_ms);

CREATE TRIGGER acecf_deliveries_no_delete BEFORE DELETE ON acecf_deliveries
BEGIN
    SELECT RAISE(ABORT, 'acecf_deliveries: deliveries are never deleted');
END;

-- `ecf_deliveries`: an E31 a register issued, delivered to its buyer's URL
-- Recepción when DGII's directory lists the buyer as an electronic receiver
-- (else `not_electronic`: the buyer gets the printed representation), with
-- the buyer's signed ARECF kept. Same lease and in-doubt rules as
-- `acecf_deliveries`; the bytes are the register's, from `signed_documents`.
CREATE TABLE ecf_deliveries (
    encf            TEXT    PRIMARY KEY,
    sha256          TEXT    NOT NULL CHECK (length(sha256) = 64),
    buyer_rnc       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'not_electronic', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    in_doubt        INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT,
    arecf           BLOB,
    arecf_estado    INTEGER,
    arecf_code      INTEGER,
    delivered_ms    INTEGER
) STRICT;

CREATE INDEX ecf_deliveries_due ON ecf_deliveries (state, next_attempt_ms);

CREATE TRIGGER ecf_deliveries_no_delete BEFORE DELETE ON ecf_deliveries
BEGIN
    SELECT RAISE(ABORT, 'ecf_deliveries: deliveries are never deleted');
END;
