-- Node schema v7: conflict resolutions head office decided (issue #9).
--
-- Never edit after release (see 0001_journal.sql).

-- Projection of the hub chain's ConflictResolved events: the last resolution
-- of each conflict (hub-chain order; a later one replaces an earlier one when
-- a new candidate reopened the conflict). Shown in `caja-node status`.
CREATE TABLE conflicts_resolved (
    conflict_id TEXT PRIMARY KEY CHECK (length(conflict_id) = 36),
    strategy    TEXT NOT NULL,
    winner      TEXT,
    resolved_by TEXT NOT NULL,
    note        TEXT NOT NULL
) STRICT, WITHOUT ROWID;
