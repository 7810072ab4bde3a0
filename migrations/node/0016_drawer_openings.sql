-- Node schema v16: drawer openings recorded apart from the receipt.

-- The cash drawer of a job (a cash sale's original receipt, or a drawer job)
-- opened once, by one of: the real-time pulse sent while the printer was
-- reachable but could not print ('pulse'), or the cashier with the key while the
-- printer was unreachable ('manual'). A job with a row here never kicks the
-- drawer again when its receipt prints. A kick sent with the receipt itself
-- is not recorded here: the original prints once.
CREATE TABLE drawer_openings (
    job_id    INTEGER PRIMARY KEY REFERENCES print_jobs (job_id),
    sale_id   TEXT    NOT NULL CHECK (length(sale_id) = 36),
    how       TEXT    NOT NULL CHECK (how IN ('pulse', 'manual')),
    opened_ms INTEGER NOT NULL
) STRICT;
