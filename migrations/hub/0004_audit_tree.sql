-- Hub schema v2: the audit log's Merkle tree and its signed tree heads
-- (DESIGN "Audit log v1"; hub/src/audit_tree.rs, hub/src/store/audit_tree.rs).
--
-- Never edit this file after release; change the schema with a new file.

-- Complete-subtree hashes of the RFC 9162 tree over audit_log, keyed by their
-- in-order id (leaf j = 2j; see audit_tree::node_id). Written in the same
-- transaction as the audit_log row that completes them. Derived from
-- audit_log: the hub checks it against the entries at start-up and rebuilds
-- it (with an alert) when they differ, so what it signs and proves is always
-- what audit_log holds.
CREATE TABLE audit_tree (
    node INTEGER PRIMARY KEY CHECK (node >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

-- Signed tree heads, in the order they were made. `signature` is lowercase hex
-- of the Ed25519 signature over the canonical JSON of
-- {"tree_size","root","at_ms","key_id"}. Append-only.
CREATE TABLE audit_sth (
    sth_id    INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    root      TEXT    NOT NULL CHECK (length(root) = 64),
    at_ms     INTEGER NOT NULL,
    key_id    TEXT    NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    signature TEXT    NOT NULL CHECK (length(signature) = 128)
) STRICT;
CREATE TRIGGER audit_sth_no_update BEFORE UPDATE ON audit_sth
BEGIN SELECT RAISE(ABORT, 'audit_sth is append-only'); END;
CREATE TRIGGER audit_sth_no_delete BEFORE DELETE ON audit_sth
BEGIN SELECT RAISE(ABORT, 'audit_sth is append-only'); END;
