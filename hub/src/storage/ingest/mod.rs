//! Ingest on the writer thread: a push ([`push`]), the `events` table
//! ([`events`]), the causal gate over SQL ([`index`], [`causal`]), what an
//! applied event decides ([`decisions`]), hub-chain appends ([`hub_chain`])
//! and the rebuild ([`rebuild`]).
//!
//! Invariant: imports the storage kernel, the fact tables and the outbox's
//! enqueue only; features above (fiscal, escrow, payments, outbox, conflicts)
//! append hub events through [`hub_chain`].

pub(crate) mod causal;
pub(crate) mod decisions;
pub(crate) mod documents;
pub(crate) mod events;
pub(crate) mod hub_chain;
pub(crate) mod index;
pub(crate) mod push;
pub(crate) mod read_ahead;
pub(crate) mod rebuild;

#[cfg(test)]
mod conflict_order;
#[cfg(test)]
mod push_cost;
#[cfg(test)]
mod reprepare_probe;
