-- Node schema: printed return slips.
--
-- Never edit after release.
--
-- Print jobs may be a return's slip (kind 'return': the `sale_id` column then
-- holds the return's id; one slip original per return). SQLite cannot widen a
-- CHECK, so `print_jobs` is rebuilt with rows and ids copied as they are;
-- `drawer_openings` refers to it, so its rows are set aside and put back
-- around the rebuild (foreign keys stay on during migrations).
CREATE TEMP TABLE drawer_openings_keep AS SELECT * FROM drawer_openings;
DROP TABLE drawer_openings;

CREATE TABLE print_jobs_v20 (
    job_id             INTEGER PRIMARY KEY,
    sale_id            TEXT    NOT NULL CHECK (length(sale_id) = 36),
    kind               TEXT    NOT NULL
                       CHECK (kind IN ('original', 'copy', 'drawer', 'return')),
    state              TEXT    NOT NULL
                       CHECK (state IN ('pending', 'printing', 'printed', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    transport_failures INTEGER NOT NULL DEFAULT 0 CHECK (transport_failures >= 0),
    may_have_printed   INTEGER NOT NULL DEFAULT 0 CHECK (may_have_printed IN (0, 1)),
    next_attempt_ms    INTEGER NOT NULL,
    attempt_started_ms INTEGER,
    last_error         TEXT,
    created_ms         INTEGER NOT NULL,
    printed_ms         INTEGER,
    CHECK ((state = 'printed') = (printed_ms IS NOT NULL))
) STRICT;
INSERT INTO print_jobs_v20 (job_id, sale_id, kind, state, attempts, transport_failures,
        may_have_printed, next_attempt_ms, attempt_started_ms, last_error, created_ms, printed_ms)
    SELECT job_id, sale_id, kind, state, attempts, transport_failures, may_have_printed,
        next_attempt_ms, attempt_started_ms, last_error, created_ms, printed_ms
    FROM print_jobs;
DROP TABLE print_jobs;
ALTER TABLE print_jobs_v20 RENAME TO print_jobs;
CREATE UNIQUE INDEX print_jobs_one_original ON print_jobs (sale_id)
    WHERE kind IN ('original', 'drawer', 'return');
CREATE INDEX print_jobs_due ON print_jobs (state, next_attempt_ms, job_id);

CREATE TABLE drawer_openings (
    job_id    INTEGER PRIMARY KEY REFERENCES print_jobs (job_id),
    sale_id   TEXT    NOT NULL CHECK (length(sale_id) = 36),
    how       TEXT    NOT NULL CHECK (how IN ('pulse', 'manual')),
    opened_ms INTEGER NOT NULL
) STRICT;
INSERT INTO drawer_openings (job_id, sale_id, how, opened_ms)
    SELECT job_id, sale_id, how, opened_ms FROM drawer_openings_keep;
DROP TABLE drawer_openings_keep;

-- Where each return's `SaleReturned` is in the journal, for its slip
-- (written with the return's print job, in the return's transaction).
CREATE TABLE return_slips (
    return_id TEXT    PRIMARY KEY CHECK (length(return_id) = 36),
    seq       INTEGER NOT NULL CHECK (seq >= 1)
) STRICT, WITHOUT ROWID;
