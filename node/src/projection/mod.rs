//! Projections: the register's current state (shifts, sales, payments, fiado,
//! stock, customers, catalog and prices) derived from events.
//!
//! Every operation applies its events here inside the same SQLite transaction
//! that appends them to the journal, so state and history never disagree. The
//! same functions rebuild everything from the journal and the hub chain
//! ([`rebuild()`]); [`digest()`] hashes every projection row so a test can prove that
//! a rebuild gives exactly the rows the incremental updates gave.
//!
//! Order: own events apply in journal order, hub events in hub-chain order. No
//! own-event update reads catalog state (a sale line carries its own price and
//! tax), so applying the two chains in any interleaving gives the same rows; that
//! is why a rebuild can apply the hub chain first and the journal second.
//!
//! Architecture invariant: the only SQL that writes projection tables is here.
//!
//! The files: `register_events` applies this register's and its peers' events,
//! `hub_events` the hub chain's; `rebuild` lists the tables, rebuilds them from
//! both chains and digests them; `reads` holds the reads other modules make of
//! these tables; `sql` the cached-statement helper the appliers share.

mod hub_events;
mod reads;
mod rebuild;
mod register_events;
mod sql;

pub use hub_events::apply_hub;
pub use reads::{
    conflicts_resolved, customer_balance, fiscal_confirmation, fiscal_doc_counts, open_shift,
    open_shift_event, payment_intents, store_credit_balance, FiscalDocCounts, IntentLine,
    ResolvedConflict,
};
pub use rebuild::{digest, import_position, rebuild, ProjectionError, TABLES};
pub use register_events::{apply_own, apply_peer};
