//! Fiscal numbers at the register: the blocks the hub granted it (projected
//! into `fiscal_blocks` from the hub chain), the requests it made for them
//! (`fiscal_requests`, kept across rebuilds), the choice of the next number
//! for a sale, and what to release.
//!
//! The number is consumed in the sale's own transaction: the sale reads the
//! lowest usable block's `next` here, and applying the `SaleCreated` event to
//! the projections moves `next` past it. So a crash leaves either the sale with
//! its number or neither, and the same number is never read twice.
//!
//! A block is usable only while (1) it was granted to this device, (2) its
//! request was made by this database since its last restore (`active`), (3) it
//! has numbers below both its end and its released part, and (4) it has not
//! expired by this register's clock. Condition 2 is the restore rule of
//! DESIGN: a database restored from a backup never issues from blocks it held
//! before, because a lost copy may have printed some of their numbers.
//!
//! `rules` decides from values (the number a block gives, what a block
//! releases, a series' status); `store` reads and writes the two tables and
//! is the only file here with SQL. `certificate` keeps the e-CF signing
//! credentials on disk (no SQL).

#[cfg(unix)]
pub mod certificate;
mod rules;
mod store;

pub use rules::SeriesLeft;
pub use store::{
    forget_requests_after_restore, last_refusal, next_number, numbers_left, record_request,
    refused, request_for, status, to_release,
};
