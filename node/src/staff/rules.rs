//! The PIN check's rules, from values: the lockout, the wrong-PIN count that
//! leads to it, and the role an action needs.
//!
//! Invariant: pure — no SQL, no clock, no I/O, and the PIN typed is never
//! stored or logged; the caller loads the member and their failures and
//! stores the counter the decision names.

use caja_shared::ids::StaffId;
use caja_shared::kind::{Approval, Role};
use caja_shared::pin::{self, PinHash};

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

/// An active member of staff, as stored.
pub(super) struct Member {
    /// Their name.
    pub(super) name: String,
    /// `manager`, `supervisor` or `cashier`.
    pub(super) role: String,
    /// Their PIN hash, as JSON.
    pub(super) pin: String,
}

/// A member's wrong-PIN counter, as stored (zero and unlocked when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Failures {
    /// Wrong PINs in a row.
    pub(super) failures: i64,
    /// End of the last lockout, if any.
    pub(super) locked_until_ms: Option<i64>,
}

/// What a PIN check decided, and what the caller stores for it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PinCheck {
    /// Locked out: refused, nothing stored.
    Locked(StaffError),
    /// A wrong PIN: store `row` (a new lockout restarts the count), then
    /// refuse with `error`. `failures` is the count to log.
    Wrong {
        /// Wrong PINs in a row, this one included.
        failures: i64,
        /// The counter to store.
        row: Failures,
        /// The refusal.
        error: StaffError,
    },
    /// The right PIN: clear the counter, then answer (the role may still
    /// refuse).
    Right(Result<Approval, StaffError>),
}

fn role_of(s: &str) -> Role {
    match s {
        "manager" => Role::Manager,
        "supervisor" => Role::Supervisor,
        _ => Role::Cashier,
    }
}

/// Checks `cred`'s PIN against `member` and the role `action` needs, at
/// `now_ms`, given the member's wrong-PIN counter.
pub(super) fn check_pin(
    cred: &Credentials,
    member: Member,
    failures: Failures,
    needed: Role,
    action: &str,
    now_ms: i64,
) -> PinCheck {
    let Failures {
        failures,
        locked_until_ms,
    } = failures;
    if let Some(until) = locked_until_ms.filter(|u| *u > now_ms) {
        return PinCheck::Locked(StaffError::Locked { until_ms: until });
    }
    let hash: Option<PinHash> = serde_json::from_str(&member.pin).ok();
    if !hash.is_some_and(|h| pin::verify(&cred.pin, &h)) {
        let failures = if locked_until_ms.is_some() {
            1
        } else {
            failures + 1
        };
        let lock = (failures >= MAX_FAILURES).then_some(now_ms + LOCKOUT_MS);
        return PinCheck::Wrong {
            failures,
            row: Failures {
                failures: if lock.is_some() { 0 } else { failures },
                locked_until_ms: lock,
            },
            error: match lock {
                Some(until_ms) => StaffError::Locked { until_ms },
                None => StaffError::WrongPin {
                    left: MAX_FAILURES - failures,
                },
            },
        };
    }
    let role = role_of(&member.role);
    if role < needed {
        return PinCheck::Right(Err(StaffError::Role {
            name: member.name,
            role,
            action: action.to_owned(),
            needed,
        }));
    }
    PinCheck::Right(Ok(Approval {
        staff_id: cred.staff_id,
        name: member.name,
        role,
        action: action.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn cred(pin: &str) -> Credentials {
        Credentials {
            staff_id: "019aaf70-dc00-7000-8000-0000000000c1".parse().expect("id"),
            pin: pin.into(),
        }
    }

    fn member(role: &str) -> Member {
        Member {
            name: "Ana".into(),
            role: role.into(),
            pin: serde_json::to_string(&pin::hash_with("1234", [7; 16], 1)).expect("json"),
        }
    }

    fn failures(failures: i64, locked_until_ms: Option<i64>) -> Failures {
        Failures {
            failures,
            locked_until_ms,
        }
    }

    fn check(pin: &str, role: &str, f: Failures) -> PinCheck {
        check_pin(&cred(pin), member(role), f, Role::Supervisor, "void", NOW)
    }

    #[test]
    fn the_right_pin_of_the_right_role_approves() {
        let PinCheck::Right(Ok(a)) = check("1234", "manager", Failures::default()) else {
            panic!("not approved");
        };
        assert_eq!((a.name.as_str(), a.role), ("Ana", Role::Manager));
        assert!(matches!(
            check("1234", "cashier", Failures::default()),
            PinCheck::Right(Err(StaffError::Role { .. }))
        ));
    }

    #[test]
    fn wrong_pins_count_up_to_a_lockout_that_restarts_the_count() {
        assert_eq!(
            check("0000", "manager", failures(1, None)),
            PinCheck::Wrong {
                failures: 2,
                row: failures(2, None),
                error: StaffError::WrongPin { left: 3 },
            }
        );
        assert_eq!(
            check("0000", "manager", failures(MAX_FAILURES - 1, None)),
            PinCheck::Wrong {
                failures: MAX_FAILURES,
                row: failures(0, Some(NOW + LOCKOUT_MS)),
                error: StaffError::Locked {
                    until_ms: NOW + LOCKOUT_MS
                },
            }
        );
        assert_eq!(
            check("1234", "manager", failures(0, Some(NOW + 1))),
            PinCheck::Locked(StaffError::Locked { until_ms: NOW + 1 })
        );
        let PinCheck::Wrong { failures: n, .. } = check("0000", "manager", failures(0, Some(NOW)))
        else {
            panic!("not a wrong PIN");
        };
        assert_eq!(n, 1, "a wrong PIN after a lockout starts a new count");
    }
}
