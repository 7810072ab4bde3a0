-- PostgreSQL twin of ../0019_audit_gapless_per_statement.sql (same version and
-- name). Never edit after release.
--
-- The audit log's gapless check once per statement instead of once per row.
-- The sequencer writes a round's entries in multi-row statements, and the row
-- trigger of 0001 ran a query for every entry (about half of the entry's
-- insert on the server). After an insert, its rows must be contiguous, start
-- right after the last entry below them and end the log: a gapless log stays
-- gapless and is refused the same appends as before (the order of the rows
-- inside one statement no longer matters; the index is the order).
DROP TRIGGER audit_log_gapless ON audit_log;
DROP FUNCTION caja_audit_log_gapless();
CREATE FUNCTION caja_audit_log_gapless_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lo BIGINT;
    hi BIGINT;
    n BIGINT;
    below BIGINT;
    top BIGINT;
BEGIN
    SELECT MIN(idx), MAX(idx), COUNT(*) INTO lo, hi, n FROM new_rows;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(MAX(idx), -1) INTO below FROM audit_log WHERE idx < lo;
    SELECT MAX(idx) INTO top FROM audit_log;
    IF lo <> below + 1 OR hi - lo + 1 <> n OR top <> hi THEN
        RAISE EXCEPTION 'audit_log index must follow the last entry';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_log_gapless AFTER INSERT ON audit_log
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION caja_audit_log_gapless_rows();
