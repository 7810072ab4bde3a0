//! The hub's ingest decisions as values: what an applied event makes the
//! storage do. Storage reads what a decision needs, calls these functions,
//! and executes the [`Effects`] and [`ConflictChange`]s they return, nothing
//! else (TigerBeetle's state machine, quinn-proto's returned transmits).
//!
//! An applied event is decided in two steps, because the second reads what
//! the first writes:
//! 1. [`event`]: from the event and the rows its facts replace ([`Shown`],
//!    read before anything is written), the automatic decisions to audit
//!    (`lww`, `server_wins`), the facts to write, the fiscal documents to
//!    queue, the sales ahead of the hub clock to remember, and the subjects
//!    whose conflicts may have changed;
//! 2. [`conflict_changes`]: once the facts are written and the storage has
//!    widened those subjects and read the facts about each, the conflicts to
//!    open or update (an upsert) and those to withdraw.
//!
//! Conflicts found outside ingest (card payments judged against a provider,
//! documents the tax authority rejected) are built with [`Conflict::new`] and
//! go through the same upsert.
//!
//! Architecture invariant: pure; no `crate::store`, no SQL, no IO, no clock
//! (the hub time comes in as `at_ms`).

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::ids::{ConflictId, CustomerId, DeviceId, EventId, Sku, StoreId};
use caja_shared::kind::{EventBody, FiscalDocType};

use super::{conflict_of, possible_conflicts, subjects, Conflict, EventMeta, Fact, Subject};
use crate::conflict::{lww, server_wins, AutoDecision, LwwStamp, STALE_PRICE_GRACE_MS};

/// The row a fact replaces when it is written, by key: what the automatic
/// strategies compare the new value with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShownKey {
    /// A customer (`lww`).
    Customer(CustomerId),
    /// A catalog item of a store (`server_wins`).
    CatalogItem(StoreId, Sku),
    /// A price of a store (`server_wins`).
    Price(StoreId, Sku),
}

impl ShownKey {
    /// The key of the row `fact` replaces, if it replaces one.
    pub fn of(fact: &Fact) -> Option<ShownKey> {
        match fact {
            Fact::Customer { customer_id, .. } => Some(ShownKey::Customer(*customer_id)),
            Fact::CatalogItem { store, product, .. } => {
                Some(ShownKey::CatalogItem(*store, product.clone()))
            }
            Fact::Price { store, product, .. } => Some(ShownKey::Price(*store, product.clone())),
            _ => None,
        }
    }

    /// The subject an automatic decision about it names in the audit log.
    pub fn subject(&self) -> String {
        match self {
            ShownKey::Customer(c) => format!("customer:{c}"),
            ShownKey::CatalogItem(store, product) => format!("catalog_item:{store}:{product}"),
            ShownKey::Price(store, product) => format!("price:{store}:{product}"),
        }
    }
}

/// The rows shown before an event's facts are written, by key (absent: no
/// row yet, or not read because nothing is audited, as in a rebuild).
pub type Shown = BTreeMap<ShownKey, ShownRow>;

/// A shown row as its strategy compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShownRow {
    /// A customer's (HLC, device, event).
    Lww(LwwStamp),
    /// A catalog item's or price's (hub seq, event).
    ServerWins(u64, EventId),
}

/// A fiscal document to queue for the tax authority (phase two of invoicing),
/// with the event that issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its fiscal number (the outbox key).
    pub number: String,
    /// Invoice or credit note.
    pub doc_type: FiscalDocType,
    /// Its series.
    pub series: String,
    /// Store.
    pub store: StoreId,
    /// The issuing register.
    pub device: DeviceId,
    /// The issuing event.
    pub event_id: EventId,
}

/// A sale whose HLC is ahead of the hub's clock by at least the stale-price
/// grace: a price the hub sets later may still be in force for it, so the
/// storage remembers it for widening price changes (`p_sales_ahead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleAhead {
    /// The sale's event.
    pub event_id: EventId,
    /// Its store.
    pub store: StoreId,
    /// Its HLC time.
    pub hlc_ms: i64,
}

/// What one applied event makes the storage do, in this order: audit the
/// decisions (against the rows shown before the write), write the facts,
/// queue the documents, remember the sales ahead; then widen the subjects,
/// read the facts about each and execute its [`conflict_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Automatic decisions (`lww`, `server_wins`) to audit.
    pub decisions: Vec<AutoDecision>,
    /// The facts to write.
    pub facts: Vec<Fact>,
    /// Fiscal documents to queue (electronic series only): none from facts;
    /// the caller adds [`issued_document`] of the event.
    pub documents: Vec<Document>,
    /// Sales ahead of the hub clock.
    pub sales_ahead: Vec<SaleAhead>,
    /// The subjects whose conflicts the facts may change, before the storage
    /// widens them (see [`Subject`]).
    pub subjects: BTreeSet<Subject>,
}

/// A change to the stored conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictChange {
    /// Store the conflict: its row once (audited when its candidates change),
    /// its candidates added, or replaced when `replace` (its subject was
    /// re-decided over every fact, see [`Subject::retractable`]).
    Upsert {
        /// The conflict as found now.
        conflict: Conflict,
        /// Whether its candidates replace the stored ones.
        replace: bool,
    },
    /// Drop the conflict if it is stored (audited): a re-decided subject no
    /// longer has it.
    Withdraw {
        /// The subject re-decided.
        subject: Subject,
        /// The conflict it would have.
        conflict_id: ConflictId,
    },
}

/// Step one: the effects of an applied event whose facts are `facts`
/// ([`super::facts`]), given the rows they replace and the hub time.
pub fn event(facts: Vec<Fact>, shown: &Shown, at_ms: i64) -> Effects {
    let decisions = facts
        .iter()
        .filter_map(|f| auto_decision(f, shown))
        .collect();
    let documents = Vec::new();
    let sales_ahead = facts
        .iter()
        .filter_map(|f| match f {
            Fact::Sale {
                event_id,
                store,
                hlc: Some(h),
                ..
            } if h.ms() >= at_ms.saturating_add(STALE_PRICE_GRACE_MS) => Some(SaleAhead {
                event_id: *event_id,
                store: *store,
                hlc_ms: h.ms(),
            }),
            _ => None,
        })
        .collect();
    let subjects = facts.iter().flat_map(subjects).collect();
    Effects {
        decisions,
        facts,
        documents,
        sales_ahead,
        subjects,
    }
}

/// Step two: the conflict changes of one (widened) subject, from every fact
/// about it. A retractable subject is re-decided: the conflicts it may have
/// and no longer has are withdrawn (before the others are stored), the ones
/// found replace their candidates.
pub fn conflict_changes(subject: &Subject, related: &[Fact]) -> Vec<ConflictChange> {
    let found = conflict_of(subject, related);
    let replace = subject.retractable();
    let mut out = Vec::new();
    if replace {
        for id in possible_conflicts(subject) {
            if !found.iter().any(|c| c.conflict_id == id) {
                out.push(ConflictChange::Withdraw {
                    subject: subject.clone(),
                    conflict_id: id,
                });
            }
        }
    }
    out.extend(
        found
            .into_iter()
            .map(|conflict| ConflictChange::Upsert { conflict, replace }),
    );
    out
}

/// The automatic decision `fact` makes against the row it replaces, if any:
/// `lww` for a customer written by another register, `server_wins` for a
/// catalog item or price written again by the hub.
fn auto_decision(fact: &Fact, shown: &Shown) -> Option<AutoDecision> {
    let key = ShownKey::of(fact)?;
    let row = shown.get(&key)?;
    match (fact, row) {
        (
            Fact::Customer {
                event_id,
                hlc,
                device,
                ..
            },
            ShownRow::Lww(shown),
        ) => lww(
            key.subject(),
            *shown,
            LwwStamp {
                hlc: *hlc,
                device: *device,
                event_id: *event_id,
            },
        ),
        (
            Fact::CatalogItem {
                event_id, hub_seq, ..
            }
            | Fact::Price {
                event_id, hub_seq, ..
            },
            ShownRow::ServerWins(seq, shown),
        ) => server_wins(key.subject(), (*seq, *shown), (*hub_seq, *event_id)),
        _ => {
            debug_assert!(false, "a {key:?} row of another strategy");
            None
        }
    }
}

/// The fiscal document a register's `FiscalDocumentIssued` event asks the
/// hub to submit: its e-NCF (the outbox key) when the series is electronic,
/// with the sale or return event it depends on as the issuing event (DESIGN
/// "Electronic fiscal documents": the register signs, the hub submits the
/// signed bytes). A sale or return alone queues nothing: its documents are
/// queued when the event naming their signed bytes is applied.
pub fn issued_document(meta: &EventMeta<'_>, body: &EventBody) -> Option<Document> {
    let EventBody::FiscalDocumentIssued(b) = body else {
        return None;
    };
    let series = b.encf.get(..3)?;
    crate::outbox::is_electronic(series).then(|| Document {
        number: b.encf.clone(),
        doc_type: b.doc_type,
        series: series.to_owned(),
        store: meta.store,
        device: meta.device,
        // deps = [the SaleCreated / SaleReturned event].
        event_id: meta.deps.first().copied().unwrap_or(meta.event_id),
    })
}

#[cfg(test)]
mod tests;
