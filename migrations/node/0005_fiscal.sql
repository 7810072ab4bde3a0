-- Node schema v5: fiscal number blocks and the requests that asked for them.

-- Projection (rebuilt from the hub chain and the journal): every block the hub
-- granted to a register of this store, how far this register used it (`next`
-- = the next number to issue) and from where it released it.
CREATE TABLE fiscal_blocks (
    grant_id      TEXT    PRIMARY KEY CHECK (length(grant_id) = 36),
    device_id     TEXT    NOT NULL CHECK (length(device_id) = 36),
    request_id    TEXT    NOT NULL,
    series        TEXT    NOT NULL,
    digits        INTEGER NOT NULL,
    first         INTEGER NOT NULL,
    last          INTEGER NOT NULL CHECK (last >= first),
    next          INTEGER NOT NULL,
    released_from INTEGER,
    expires_ms    INTEGER NOT NULL,
    valid_until   TEXT    NOT NULL
) STRICT;

-- Not a projection (a rebuild keeps it): the range requests this database
-- made. A block is used only if its request is here and `active`: after a
-- restore from a backup every request becomes `stale`, so blocks the register
-- held before (whose numbers a lost copy may have printed) are never used
-- again. `refused` records the hub's refusal (series exhausted or missing).
CREATE TABLE fiscal_requests (
    request_id TEXT    PRIMARY KEY CHECK (length(request_id) = 36),
    series     TEXT    NOT NULL,
    count      INTEGER NOT NULL CHECK (count >= 1),
    made_ms    INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('active', 'stale', 'refused')),
    error      TEXT
) STRICT;
