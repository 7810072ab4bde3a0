-- Hub schema v19 (SQLite): nothing changes. On PostgreSQL (the twin in
-- postgres/) the audit log's gapless check runs once per statement instead
-- of once per row; SQLite has row triggers only, and its one writer appends
-- entries directly, so its trigger `audit_log_gapless` (0001) stays.
--
-- Never edit this file after release; change the schema with a new file.
SELECT 1;
