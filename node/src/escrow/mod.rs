//! Stock quotas (escrow) at the register: what it may sell of each product
//! without asking anyone, kept in `escrow_quota` and changed in the same
//! transaction as the sale, void, grant import or release that changes it.
//!
//! A line of a tracked product is split against the quota left
//! (`caja_shared::escrow::split`): under `block` a line beyond it is refused
//! with the product and what is left; under `warn` it is sold and the part
//! beyond is recorded in the line (`beyond_quota_milli`), which the hub turns
//! into an oversell alert. `untracked` products need no quota. A quota is
//! usable until its latest grant expires (by the register's clock).
//!
//! `rules` decides from values (a sale's split against the quotas, what to
//! ask for, a request's body); `store` reads and writes `escrow_quota` and
//! `escrow_requests` and is the only file here with SQL.

mod rules;
mod store;

pub use rules::{QuotaLeft, QuotaShort, MAX_ITEMS};
pub use store::{
    answered, forget_after_restore, give_back, left, on_grant, released, request_for,
    request_pending, status, take, to_release, wanted,
};
