//! Staff at the register: who may sign in and approve, checked offline
//! against the hashed PINs the hub sent (`staff`, a projection of the hub
//! chain), with a lockout after repeated wrong PINs (`pin_failures`, local).
//!
//! A register that has received no staff works as before (no sign-in, no
//! approvals); once head office has sent staff, shifts need a signed-in
//! member of staff and voids, returns and paid-outs a supervisor's PIN.

use caja_shared::ids::StaffId;
use caja_shared::kind::{Approval, Role};
use caja_shared::pin::{self, PinHash};
use rusqlite::{params, Connection, OptionalExtension};

/// Wrong PINs in a row before a lockout.
pub const MAX_FAILURES: i64 = 5;
/// How long a lockout lasts on this register.
pub const LOCKOUT_MS: i64 = 5 * 60_000;

/// A member of staff and the PIN they typed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who.
    pub staff_id: StaffId,
    /// The PIN typed (never stored, never logged).
    pub pin: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("staff_id", &self.staff_id)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// Why a PIN is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffError {
    /// Not a member of staff this register knows (or inactive).
    #[error("staff_id: unknown or inactive member of staff {0}")]
    Unknown(StaffId),
    /// The PIN is wrong; `left` tries before a lockout.
    #[error("pin: wrong PIN ({left} tries left)")]
    WrongPin {
        /// Tries left.
        left: i64,
    },
    /// Too many wrong PINs: locked out until then.
    #[error("pin: locked out after {MAX_FAILURES} wrong PINs until {until_ms} (UTC ms)")]
    Locked {
        /// End of the lockout.
        until_ms: i64,
    },
    /// Their role may not do this.
    #[error("staff_id: {name} is a {role:?}; {action} needs a {needed:?}")]
    Role {
        /// Who.
        name: String,
        /// Their role.
        role: Role,
        /// What was asked.
        action: String,
        /// The role needed.
        needed: Role,
    },
}

/// Whether this register has received any staff.
pub fn has_staff(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM staff)")?
        .query_row([], |r| r.get(0))
}

fn role_of(s: &str) -> Role {
    match s {
        "manager" => Role::Manager,
        "supervisor" => Role::Supervisor,
        _ => Role::Cashier,
    }
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
    let (failures, locked_until): (i64, Option<i64>) = conn
        .prepare_cached("SELECT failures, locked_until_ms FROM pin_failures WHERE staff_id = ?1")?
        .query_row([cred.staff_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, None));
    if let Some(until) = locked_until.filter(|u| *u > now_ms) {
        return Ok(Err(StaffError::Locked { until_ms: until }));
    }
    let hash: Option<PinHash> = serde_json::from_str(&stored).ok();
    if !hash.is_some_and(|h| pin::verify(&cred.pin, &h)) {
        let failures = if locked_until.is_some() {
            1
        } else {
            failures + 1
        };
        let lock = (failures >= MAX_FAILURES).then_some(now_ms + LOCKOUT_MS);
        conn.execute(
            "INSERT INTO pin_failures (staff_id, failures, locked_until_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (staff_id) DO UPDATE SET failures = excluded.failures,
                locked_until_ms = excluded.locked_until_ms",
            params![
                cred.staff_id.to_string(),
                if lock.is_some() { 0 } else { failures },
                lock
            ],
        )?;
        tracing::warn!(staff = %cred.staff_id, failures, "wrong PIN");
        return Ok(Err(match lock {
            Some(until_ms) => StaffError::Locked { until_ms },
            None => StaffError::WrongPin {
                left: MAX_FAILURES - failures,
            },
        }));
    }
    conn.execute(
        "DELETE FROM pin_failures WHERE staff_id = ?1",
        [cred.staff_id.to_string()],
    )?;
    let role = role_of(&role);
    if role < needed {
        return Ok(Err(StaffError::Role {
            name,
            role,
            action: action.to_owned(),
            needed,
        }));
    }
    Ok(Ok(Approval {
        staff_id: cred.staff_id,
        name,
        role,
        action: action.to_owned(),
    }))
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
