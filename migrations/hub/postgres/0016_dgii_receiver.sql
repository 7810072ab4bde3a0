-- PostgreSQL twin of ../0015_dgii_receiver.sql (same version, tables and
-- column order). Never edit after release.
--
-- The DGII receiver services: used seeds, e-CF received from suppliers (with
-- the ARECF that answered them and head office's decision), and buyers'
-- commercial approvals (ACECF) of e-CF we issued.
CREATE TABLE receiver_seeds (
    seed     TEXT COLLATE "C" PRIMARY KEY,
    used_ms  BIGINT NOT NULL
);

CREATE TABLE received_ecf (
    issuer_rnc     TEXT COLLATE "C" NOT NULL,
    encf           TEXT COLLATE "C" NOT NULL,
    buyer_rnc      TEXT COLLATE "C" NOT NULL,
    ecf_type       BIGINT NOT NULL,
    issuer_name    TEXT COLLATE "C" NOT NULL,
    issued_date    TEXT COLLATE "C" NOT NULL,
    total_minor    BIGINT NOT NULL,
    security_code  TEXT COLLATE "C" NOT NULL,
    sha256         TEXT COLLATE "C" NOT NULL CHECK (length(sha256) = 64),
    xml            BYTEA  NOT NULL,
    arecf          BYTEA  NOT NULL,
    received_ms    BIGINT NOT NULL,
    decision       TEXT COLLATE "C" CHECK (decision IN ('approved', 'rejected')),
    decision_note  TEXT COLLATE "C",
    decided_by     TEXT COLLATE "C",
    decided_ms     BIGINT,
    acecf          BYTEA,
    PRIMARY KEY (issuer_rnc, encf)
);

CREATE INDEX received_ecf_by_time ON received_ecf (received_ms);

CREATE FUNCTION caja_received_ecf_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'received_ecf: received documents are never deleted';
    END IF;
    IF NEW.xml IS DISTINCT FROM OLD.xml OR NEW.arecf IS DISTINCT FROM OLD.arecf
       OR OLD.decision IS NOT NULL THEN
        RAISE EXCEPTION 'received_ecf: the received bytes and a decision never change';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER received_ecf_bytes_once BEFORE UPDATE ON received_ecf
FOR EACH ROW EXECUTE FUNCTION caja_received_ecf_guard();
CREATE TRIGGER received_ecf_no_delete BEFORE DELETE ON received_ecf
FOR EACH ROW EXECUTE FUNCTION caja_received_ecf_guard();

CREATE TABLE commercial_approvals (
    encf          TEXT COLLATE "C" NOT NULL,
    buyer_rnc     TEXT COLLATE "C" NOT NULL,
    estado        BIGINT NOT NULL CHECK (estado IN (1, 2)),
    reason        TEXT COLLATE "C",
    decided_at    TEXT COLLATE "C" NOT NULL,
    sha256        TEXT COLLATE "C" NOT NULL CHECK (length(sha256) = 64),
    xml           BYTEA  NOT NULL,
    received_ms   BIGINT NOT NULL,
    PRIMARY KEY (encf, buyer_rnc)
);

CREATE FUNCTION caja_commercial_approvals_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'commercial_approvals: approvals never change and are never deleted';
END
$$;
CREATE TRIGGER commercial_approvals_no_update BEFORE UPDATE ON commercial_approvals
FOR EACH ROW EXECUTE FUNCTION caja_commercial_approvals_frozen();
CREATE TRIGGER commercial_approvals_no_delete BEFORE DELETE ON commercial_approvals
FOR EACH ROW EXECUTE FUNCTION caja_commercial_approvals_frozen();

CREATE TABLE acecf_deliveries (
    issuer_rnc      TEXT COLLATE "C" NOT NULL,
    encf            TEXT COLLATE "C" NOT NULL,
    destination     TEXT COLLATE "C" NOT NULL CHECK (destination IN ('issuer', 'dgii')),
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    in_doubt        BIGINT NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    lease_owner     TEXT COLLATE "C",
    lease_until_ms  BIGINT,
    last_error      TEXT COLLATE "C",
    answer          TEXT COLLATE "C",
    delivered_ms    BIGINT,
    PRIMARY KEY (issuer_rnc, encf, destination)
);

CREATE INDEX acecf_deliveries_due ON acecf_deliveries (state, next_attempt_ms);

CREATE FUNCTION caja_acecf_deliveries_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deliveries are never deleted';
END
$$;
CREATE TRIGGER acecf_deliveries_no_delete BEFORE DELETE ON acecf_deliveries
FOR EACH ROW EXECUTE FUNCTION caja_acecf_deliveries_kept();

CREATE TABLE ecf_deliveries (
    encf            TEXT COLLATE "C" PRIMARY KEY,
    sha256          TEXT COLLATE "C" NOT NULL CHECK (length(sha256) = 64),
    buyer_rnc       TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'delivered', 'not_electronic', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    in_doubt        BIGINT NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    lease_owner     TEXT COLLATE "C",
    lease_until_ms  BIGINT,
    last_error      TEXT COLLATE "C",
    arecf           BYTEA,
    arecf_estado    BIGINT,
    arecf_code      BIGINT,
    delivered_ms    BIGINT
);

CREATE INDEX ecf_deliveries_due ON ecf_deliveries (state, next_attempt_ms);

CREATE TRIGGER ecf_deliveries_no_delete BEFORE DELETE ON ecf_deliveries
FOR EACH ROW EXECUTE FUNCTION caja_acecf_deliveries_kept();
