-- Node schema: the hub's restore epoch as this register last followed it
-- (DESIGN "Hub restore (disaster recovery)"; node/src/sync/engine/restore.rs),
-- and the last hub checkpoint it verified, which lets it return the hub
-- events it holds to a hub restored from an older backup.
--
-- Never edit after release.
--
-- One row each, rewritten by the sync engine (state, not history).
-- `acknowledged` is 1 once head office acknowledged the restore; until then
-- status shows the discontinuity as a warning.
CREATE TABLE hub_restore (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    epoch        INTEGER NOT NULL CHECK (epoch >= 0),
    followed_ms  INTEGER NOT NULL,
    tree_size    INTEGER CHECK (tree_size >= 0),
    root         TEXT    CHECK (length(root) = 64),
    acknowledged INTEGER NOT NULL DEFAULT 0 CHECK (acknowledged IN (0, 1))
) STRICT;

CREATE TABLE hub_checkpoint_held (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    checkpoint TEXT    NOT NULL
) STRICT;
