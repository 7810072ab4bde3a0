-- Hub schema v9: the tax-authority outbox (issue #13, two-phase invoicing).
--
-- Never edit after release (see 0001_hub.sql).
--
-- Every electronic fiscal document the hub accepts (a sale's e-CF, a return's
-- credit note, the cancellation of a written-off register's unused numbers)
-- gets one row here, inserted in the transaction that applies its event (or
-- writes the register off). Workers on any hub instance claim due rows with a
-- lease, submit them to the tax authority and record the verdict; the row is
-- the whole state of the document's phase two.
--
-- Portable on purpose (the PostgreSQL backend keeps the same columns): plain
-- integers, text and bytes; the claim is one conditional UPDATE (see
-- hub/src/store/outbox.rs, which also gives its PostgreSQL form with
-- FOR UPDATE SKIP LOCKED).
CREATE TABLE tax_outbox (
    doc_id          INTEGER PRIMARY KEY,
    -- The document's number (e-NCF), or `ANECF:<first e-NCF>:<last e-NCF>`
    -- for a cancellation. One row per number: a second sale on a number
    -- (a `duplicate_fiscal_number` conflict) never gets a second document.
    doc_key         TEXT    NOT NULL UNIQUE,
    doc_type        TEXT    NOT NULL CHECK (doc_type IN ('invoice', 'credit_note', 'cancellation')),
    series          TEXT    NOT NULL,
    store_id        TEXT    NOT NULL,
    device_id       TEXT    NOT NULL,
    -- The register event that issued it (NULL for a cancellation).
    event_id        TEXT,
    -- A cancellation's numbers (NULL otherwise).
    first_number    INTEGER,
    last_number     INTEGER,
    created_ms      INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'submitted', 'accepted', 'accepted_conditional', 'rejected')),
    -- Set once, before the first submission, and never changed (trigger
    -- below): the exact bytes every (re)submission sends, their SHA-256, the
    -- gateway's channel (`ecf`, `rfce`, `anecf`), the full document kept when
    -- only a summary is submitted, and the security code.
    channel         TEXT,
    body            BLOB,
    body_hash       TEXT    CHECK (body_hash IS NULL OR length(body_hash) = 64),
    archive         BLOB,
    security_code   TEXT,
    verify_url      TEXT,
    -- The authority's tracking id once it gave one.
    track_id        TEXT,
    -- 1 while a submission may have reached the authority without its answer
    -- reaching us (set before sending): the next worker asks the authority
    -- what it holds for this number before sending again.
    in_doubt        INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Due from then (backoff after a failure, polling while in process).
    next_attempt_ms INTEGER NOT NULL,
    -- The lease: who works on it and until when. An expired lease (a crashed
    -- worker) lets any worker claim the row again.
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT,
    -- The verdict: the authority's messages (JSON array), when, and the hub
    -- event that carried it to the registers.
    messages        TEXT,
    decided_ms      INTEGER,
    result_event_id TEXT,
    CHECK ((lease_owner IS NULL) = (lease_until_ms IS NULL))
) STRICT;

-- Due documents, oldest due first; partial so that decided rows cost nothing.
CREATE INDEX tax_outbox_due ON tax_outbox (next_attempt_ms)
    WHERE state IN ('pending', 'submitted');
-- Counts per state and the oldest pending one (health).
CREATE INDEX tax_outbox_by_state ON tax_outbox (state, created_ms);

-- A document's bytes are written once: a resubmission sends the same bytes,
-- so the authority never sees two contents for one number.
CREATE TRIGGER tax_outbox_body_once BEFORE UPDATE OF body, body_hash, channel, security_code ON tax_outbox
WHEN OLD.body IS NOT NULL
 AND (NEW.body IS NOT OLD.body OR NEW.body_hash IS NOT OLD.body_hash
      OR NEW.channel IS NOT OLD.channel OR NEW.security_code IS NOT OLD.security_code)
BEGIN
    SELECT RAISE(ABORT, 'tax_outbox: a document''s submitted bytes never change');
END;

CREATE TRIGGER tax_outbox_no_delete BEFORE DELETE ON tax_outbox
BEGIN
    SELECT RAISE(ABORT, 'tax_outbox: documents are never deleted');
END;
