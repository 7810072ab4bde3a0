//! Staff at the register: who may sign in and approve, checked offline
//! against the hashed PINs the hub sent (`staff`, a projection of the hub
//! chain), with a lockout after repeated wrong PINs (`pin_failures`, local).
//!
//! A register that has received no staff works as before (no sign-in, no
//! approvals); once head office has sent staff, shifts need a signed-in
//! member of staff and voids, returns and paid-outs a supervisor's PIN.
//!
//! `rules` decides a PIN check from values (lockout, wrong-PIN count, role);
//! `store` reads `staff` and reads and writes `pin_failures`, and is the only
//! file here with SQL.

mod rules;
mod store;

pub use rules::{Credentials, StaffError, LOCKOUT_MS, MAX_FAILURES};
pub use store::{check, find, has_staff};
