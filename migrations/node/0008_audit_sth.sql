-- Node schema v5: the hub's audit log as this register last verified it
-- (DESIGN "Audit log v1"; node/src/sync/engine/audit.rs).
--
-- One row, rewritten by the sync engine (state, not history). The last signed
-- tree head whose Ed25519 signature verified with the hub key from enrollment
-- and which extends the one before it (RFC 9162 consistency proof). `trust`
-- is 'critical' once the hub showed a head that does not extend it (a rewritten
-- log) or a bad signature; the engine then applies no more hub data until a
-- person clears it (`caja-node hub trust-log`).
CREATE TABLE hub_audit (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size   INTEGER CHECK (tree_size >= 0),
    root        TEXT    CHECK (length(root) = 64),
    at_ms       INTEGER,
    key_id      TEXT,
    signature   TEXT    CHECK (length(signature) = 128),
    verified_ms INTEGER,
    trust       TEXT    NOT NULL DEFAULT 'unverified'
                CHECK (trust IN ('unverified', 'ok', 'critical')),
    problem     TEXT,
    problem_ms  INTEGER
) STRICT;

INSERT INTO hub_audit (id) VALUES (1);
