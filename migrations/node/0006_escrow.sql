-- Node schema v6: this register's stock quotas (escrow).

-- Not a projection (a rebuild keeps it): the quota this register may still
-- sell per product, changed in the same transaction as what changes it — the
-- import of a grant it asked for, a sale (its part within quota), a void of
-- its own sale, a release, and the end of a restore (everything it held
-- before becomes 0: a lost copy may have sold it).
CREATE TABLE escrow_quota (
    product    TEXT    PRIMARY KEY,
    left_milli INTEGER NOT NULL CHECK (left_milli >= 0),
    expires_ms INTEGER NOT NULL,
    last_grant TEXT    NOT NULL CHECK (length(last_grant) = 36),
    asked_ms   INTEGER
) STRICT;

-- The quota requests this database made, recorded before they are sent: an
-- unanswered one is sent again with the same id (the hub answers the same).
CREATE TABLE escrow_requests (
    request_id TEXT    PRIMARY KEY CHECK (length(request_id) = 36),
    body       TEXT    NOT NULL,
    made_ms    INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('active', 'answered', 'stale'))
) STRICT;
