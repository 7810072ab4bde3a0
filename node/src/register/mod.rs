//! The register's operations: what a cashier and a store manager do, offline.
//!
//! Each operation is one SQLite transaction (`BEGIN IMMEDIATE`) that
//! 1. answers a retried client operation id with its first result (DESIGN
//!    invariant 9) — or refuses the id if it was used for another request;
//! 2. validates the request against the projections (typed errors that name the
//!    field; nothing is written when validation fails);
//! 3. appends the event(s) to the journal with their causal `deps`;
//! 4. applies them to the projections;
//! 5. records the op id with its result;
//!
//! and commits with `synchronous=FULL` before the caller sees "done". A sale's
//! fiscal number, stock quota and receipt are in that same transaction.
//!
//! The areas, each an `impl Register` block of its own: `shift`, `sell`,
//! `returns`, `cash`, `customers`, `stock`, `receipts` and `admin`;
//! `kernel` holds the type and the operation transaction they all run in.

mod admin;
mod cash;
mod customers;
mod electronic;
mod kernel;
mod receipts;
mod returns;
mod sell;
mod shift;
mod stock;

pub use admin::{ReleasedRange, Status};
pub use cash::DrawerResult;
pub use customers::{CustomerEdit, CustomerRequest, CustomerResult, DebtPaymentResult};
pub use kernel::{Register, Written, MAX_TEXT_LEN};
pub use returns::{ProductReturnRequest, ReturnLineRequest, ReturnRequest, ReturnResult};
pub use sell::{Document, SaleResult};
pub use shift::{ShiftClosedResult, ShiftOpenedResult};
