-- Node schema v4: the durable print queue.

-- One row per receipt to print: the sale's original (written in the same
-- transaction as the sale) and any reprints ("COPIA") a person asked for. State,
-- not history: rows are updated as caja_hardware::queue::PrintJob moves
-- (pending → printing → printed, or back to pending with a backoff, or failed).
CREATE TABLE print_jobs (
    job_id             INTEGER PRIMARY KEY,
    sale_id            TEXT    NOT NULL CHECK (length(sale_id) = 36),
    kind               TEXT    NOT NULL CHECK (kind IN ('original', 'copy')),
    state              TEXT    NOT NULL
                       CHECK (state IN ('pending', 'printing', 'printed', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    transport_failures INTEGER NOT NULL DEFAULT 0 CHECK (transport_failures >= 0),
    -- An earlier attempt may have put paper out: later attempts print "COPIA".
    may_have_printed   INTEGER NOT NULL DEFAULT 0 CHECK (may_have_printed IN (0, 1)),
    next_attempt_ms    INTEGER NOT NULL,
    -- When the current attempt started (state 'printing'); an attempt older than
    -- its lease was interrupted by a crash and is recovered.
    attempt_started_ms INTEGER,
    last_error         TEXT,
    created_ms         INTEGER NOT NULL,
    printed_ms         INTEGER,
    CHECK ((state = 'printed') = (printed_ms IS NOT NULL))
) STRICT;

-- Never a second original.
CREATE UNIQUE INDEX print_jobs_one_original ON print_jobs (sale_id) WHERE kind = 'original';

-- Due jobs, oldest first.
CREATE INDEX print_jobs_due ON print_jobs (state, next_attempt_ms, job_id);
