//! The projection tables (`p_*`): facts written as an event is applied
//! ([`write`]) and read back ([`read`]) to decide conflicts, to load the
//! projections and to digest them.
//!
//! Invariant: imports only the storage kernel; decides nothing (the facts
//! come from [`crate::projection`]).

pub(crate) mod read;
pub(crate) mod write;
