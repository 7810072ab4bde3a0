//! Hub projections: what head office reads (sales, payments, voids, debts per
//! customer, stock per product and store, shifts and Z totals, customers,
//! catalog, prices) and the conflicts found between accepted events.
//!
//! An applied event becomes a list of [`Fact`]s ([`facts`]); the store writes
//! each fact as one row keyed by its event, and [`Projections`] is the same
//! state in memory. Everything derived (stock, balances, Z totals) is a sum over
//! facts, and the few "latest value" facts use a total order that does not
//! depend on arrival: customers `lww` (HLC, then device, then event id),
//! catalog items and prices `server_wins` (the hub chain's seq). So the state is
//! a function of the *set* of applied events (DESIGN invariant 5), which the
//! property test checks over many causal orders, and `caja-hub rebuild`
//! recomputes it from the event store.
//!
//! Conflicts are monotone predicates over the facts of one [`Subject`] (once
//! true, more facts keep them true), so detecting them incrementally as events
//! are applied finds the same set as computing them over all facts:
//! - `duplicate_fiscal_number` (`manual`): two sales with one fiscal number;
//! - `debt_overpaid` (`manual`): positive payments beyond the smallest amount
//!   a debt was opened with;
//! - `hub_kind_from_register` (`manual`): a register wrote a kind only the hub
//!   writes (stored as a fact of the register's chain, never applied as a price
//!   or a catalog change).
//!
//! [`decide`] turns an applied event's facts into what storage does with them
//! (facts to write, automatic decisions to audit, conflicts to store or
//! withdraw, documents to queue); storage only executes it.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. The
//! store reads facts back into [`Projections`] to compute the same digest.
//!
//! Files, lowest first (each imports only those above it):
//! - `fact`: [`Fact`], [`EventMeta`], [`facts`] and wire names;
//! - `subject`: [`Subject`] and [`subjects`];
//! - `conflict`: [`Conflict`], [`conflict_of`], [`settling`];
//! - `value`: canonical JSON of a fact;
//! - `summary`: [`Summary`], [`StoreTotals`], [`ZTotals`];
//! - `projections`: the in-memory [`Projections`];
//! - `decide`: what storage does with an applied event's facts.
//!
//! This file only declares and re-exports.

mod conflict;
pub mod decide;
mod fact;
mod projections;
mod subject;
mod summary;
mod value;

pub use self::conflict::{
    conflict_id, conflict_of, possible_conflicts, settling, Conflict, ConflictState,
};
pub use self::fact::{facts, method_name, parse_method, role_name, EventMeta, Fact, Origin};
pub use self::projections::{wins, Projections};
pub use self::subject::{subjects, Subject};
pub use self::summary::{StoreTotals, Summary, ZTotals};

#[cfg(test)]
pub(crate) mod tests;
