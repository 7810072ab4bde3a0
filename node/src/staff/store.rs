//! The staff tables: `staff` (the hub's members and PIN hashes, read only)
//! and `pin_failures` (this register's wrong-PIN counters and lockouts).
//!
//! Invariant: loads and stores only; the PIN check is decided in `rules`, and
//! the caller commits the counter whatever the answer.

use caja_shared::ids::StaffId;
use caja_shared::kind::{Approval, Role};
use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{self, Credentials, Failures, Member, PinCheck, StaffError};

/// Whether this register has received any staff.
pub fn has_staff(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM staff)")?
        .query_row([], |r| r.get(0))
}

/// Checks a PIN and a role, and records the outcome in `pin_failures` (the
/// caller commits it whatever the answer: a refused PIN moves only that
/// counter). Returns the approval to put in the event.
pub fn check(
    conn: &Connection,
    cred: &Credentials,
    needed: Role,
    action: &str,
    now_ms: i64,
) -> rusqlite::Result<Result<Approval, StaffError>> {
    let row: Option<(String, String, String, i64)> = conn
        .prepare_cached("SELECT name, role, pin, active FROM staff WHERE staff_id = ?1")?
        .query_row([cred.staff_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((name, role, stored, active)) = row.filter(|r| r.3 == 1) else {
        return Ok(Err(StaffError::Unknown(cred.staff_id)));
    };
    let _ = active;
    let member = Member {
        name,
        role,
        pin: stored,
    };
    let failures = conn
        .prepare_cached("SELECT failures, locked_until_ms FROM pin_failures WHERE staff_id = ?1")?
        .query_row([cred.staff_id.to_string()], |r| {
            Ok(Failures {
                failures: r.get(0)?,
                locked_until_ms: r.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default();
    match rules::check_pin(cred, member, failures, needed, action, now_ms) {
        PinCheck::Locked(error) => Ok(Err(error)),
        PinCheck::Wrong {
            failures,
            row,
            error,
        } => {
            conn.execute(
                "INSERT INTO pin_failures (staff_id, failures, locked_until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (staff_id) DO UPDATE SET failures = excluded.failures,
                    locked_until_ms = excluded.locked_until_ms",
                params![cred.staff_id.to_string(), row.failures, row.locked_until_ms],
            )?;
            tracing::warn!(staff = %cred.staff_id, failures, "wrong PIN");
            Ok(Err(error))
        }
        PinCheck::Right(answer) => {
            conn.execute(
                "DELETE FROM pin_failures WHERE staff_id = ?1",
                [cred.staff_id.to_string()],
            )?;
            Ok(answer)
        }
    }
}

/// A member of staff by name or id, for the CLI.
pub fn find(conn: &Connection, who: &str) -> rusqlite::Result<Option<StaffId>> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT staff_id FROM staff WHERE staff_id = ?1 OR lower(name) = lower(?1) ORDER BY staff_id LIMIT 1",
        )?
        .query_row([who], |r| r.get(0))
        .optional()?;
    Ok(id.and_then(|s| s.parse().ok()))
}
