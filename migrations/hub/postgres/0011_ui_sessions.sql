-- PostgreSQL twin of ../0011_ui_sessions.sql (same version, tables and column
-- order; see hub/src/store/migrate.rs). Never edit after release.
--
-- Hub schema: sessions of the head-office dashboard (issue #14).
--
-- Never edit after release (see 0001_hub.sql).

-- One row per signed-in operator. The browser holds the session id in an
-- HttpOnly cookie; only its SHA-256 is stored, so a copy of the database does
-- not let anyone sign in. `csrf` is the session's anti-forgery token, which
-- every form of the dashboard carries. A session ends at `expires_ms` or at
-- logout (the row is deleted); expired rows are pruned at every login.
CREATE TABLE ui_sessions (
    session_hash TEXT COLLATE "C" PRIMARY KEY CHECK (length(session_hash) = 64),
    operator     TEXT COLLATE "C" NOT NULL CHECK (length(operator) BETWEEN 1 AND 200),
    csrf         TEXT COLLATE "C" NOT NULL CHECK (length(csrf) = 64),
    created_ms   BIGINT           NOT NULL,
    expires_ms   BIGINT           NOT NULL
);
