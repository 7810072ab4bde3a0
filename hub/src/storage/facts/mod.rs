//! The projection tables (`p_*`), one module per fact family (its tables,
//! its named-column statements, its row decoding), one [`registry`] of the
//! families that rebuild and digest go through, the writes of an applied
//! event's facts ([`write`](mod@write)), the facts a conflict subject is
//! decided on ([`read`]) and every fact loaded back with its digest
//! ([`load`]).
//!
//! Invariant: imports only the storage kernel; decides nothing (the facts
//! come from [`crate::projection`]). Adding a fact touches its family's
//! module, the match in [`write`](mod@write) and a migration pair; adding a
//! table adds it to its family's `FAMILY`.

pub(crate) mod load;
pub(crate) mod read;
pub(crate) mod registry;
pub(crate) mod write;

mod table;

mod catalog;
mod customers;
mod debts;
mod fiscal;
mod foreign;
mod payments;
mod resolutions;
mod returns;
mod sales;
mod shifts;
mod staff;
mod stock;
mod voids;
