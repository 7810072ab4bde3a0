//! Conflict resolution (DESIGN "Conflict resolution"): the one named strategy
//! of every entity and field, the rules of the automatic ones, the tolerance
//! of the stale-price check, and what an operator may decide on a `manual`
//! conflict.
//!
//! | entity / field | strategy | how |
//! |---|---|---|
//! | catalog items (all fields, barcodes included) | `server_wins` | greatest hub-chain seq |
//! | prices | `server_wins` | greatest hub-chain seq |
//! | customer fields | `lww` | greatest (HLC, device, event id) |
//! | stock per product | `pn_counter` | sum of signed deltas (receipts, counts, sales not voided) |
//! | debt balances (fiado) | `pn_counter` | sum of debts minus payments |
//! | sales, voids, payments, shifts, grants | none needed | keyed by their event, written once |
//! | every [`ConflictReason`] (duplicate fiscal number, overpaid debt, stale price, over-return, …) | `manual` | kept with all candidates until an operator resolves it |
//!
//! Barcodes are a set, but only the hub writes catalog items (a register
//! writing one is a `hub_kind_from_register` conflict, never applied), so the
//! hub chain's order already serializes every change: `server_wins` on the
//! whole item is exact and an add-wins set would have no concurrent writes to
//! merge.
//!
//! Every decision here is a function of its candidates, never of the order
//! they arrived in (DESIGN invariant 5); the audit log records when the hub
//! met them, which is arrival order by nature.
//!
//! Architecture invariant: pure; no SQL, no clock.

use std::collections::BTreeSet;

use caja_shared::event::MAX_DEPS;
use caja_shared::hlc::Hlc;
use caja_shared::ids::{DeviceId, EventId};

/// A named strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strategy {
    /// The hub's chain order decides (the greatest hub seq wins).
    ServerWins,
    /// Last writer wins by (HLC, device id, event id).
    Lww,
    /// A set where an add wins over a concurrent remove.
    AwSet,
    /// A counter of signed deltas.
    PnCounter,
    /// A person decides; all candidates are kept until then.
    Manual,
}

impl Strategy {
    /// The name written in audit entries and events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Strategy::ServerWins => "server_wins",
            Strategy::Lww => "lww",
            Strategy::AwSet => "awset",
            Strategy::PnCounter => "pn_counter",
            Strategy::Manual => "manual",
        }
    }
}

/// One row of the strategy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldStrategy {
    /// The entity.
    pub entity: &'static str,
    /// Its fields (`*` = all).
    pub fields: &'static str,
    /// The strategy.
    pub strategy: Strategy,
}

/// The strategy of every entity and field the hub projects (see the module doc).
pub const STRATEGIES: &[FieldStrategy] = &[
    FieldStrategy {
        entity: "catalog_item",
        fields: "*",
        strategy: Strategy::ServerWins,
    },
    FieldStrategy {
        entity: "catalog_item",
        fields: "barcodes",
        strategy: Strategy::ServerWins,
    },
    FieldStrategy {
        entity: "price",
        fields: "unit_price",
        strategy: Strategy::ServerWins,
    },
    FieldStrategy {
        entity: "customer",
        fields: "*",
        strategy: Strategy::Lww,
    },
    FieldStrategy {
        entity: "stock",
        fields: "qty_milli",
        strategy: Strategy::PnCounter,
    },
    FieldStrategy {
        entity: "debt",
        fields: "balance",
        strategy: Strategy::PnCounter,
    },
    FieldStrategy {
        entity: "store_credit",
        fields: "balance",
        strategy: Strategy::PnCounter,
    },
];

/// The strategy of an entity's field (`*` rows match any field not named).
pub fn strategy_of(entity: &str, field: &str) -> Option<Strategy> {
    STRATEGIES
        .iter()
        .find(|s| s.entity == entity && s.fields == field)
        .or_else(|| {
            STRATEGIES
                .iter()
                .find(|s| s.entity == entity && s.fields == "*")
        })
        .map(|s| s.strategy)
}

/// Why the hub keeps a conflict: one variant per rule that finds one. Its
/// name ([`ConflictReason::as_str`]) is what the `conflicts` table, audit
/// entries, the API and the conflict id hold, so a name never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConflictReason {
    /// Two fiscal documents (sales, credit notes) with one fiscal number.
    DuplicateFiscalNumber,
    /// Positive payments beyond the smallest amount a debt was opened with.
    DebtOverpaid,
    /// A positive payment on a debt whose sale was voided.
    PaymentOnVoidedDebt,
    /// A sale line charged beyond the tolerance of the price in force.
    StalePrice,
    /// A register wrote a kind only the hub writes.
    HubKindFromRegister,
    /// More returned of a sale than was sold.
    OverReturn,
    /// A customer's store credit in a store spent below zero.
    StoreCreditOverdrawn,
    /// A return whose original sale the register did not know (a review item).
    ReturnOriginalUnknown,
    /// A card payment the provider reported with another amount.
    CardPaymentAmountMismatch,
    /// A card payment the provider did not confirm in time.
    CardPaymentUnconfirmed,
    /// A provider's capture two recorded card payments could claim (one
    /// authorization code at two terminals, no terminal to tell them apart).
    CardPaymentAmbiguous,
    /// The tax authority rejected a fiscal document.
    FiscalDocumentRejected,
    /// A register's signed document failed the hub's checks before its
    /// first submission (signature, certificate, issuer): never sent.
    FiscalDocumentInvalid,
}

impl ConflictReason {
    /// Every reason.
    pub const ALL: [ConflictReason; 13] = [
        ConflictReason::DuplicateFiscalNumber,
        ConflictReason::DebtOverpaid,
        ConflictReason::PaymentOnVoidedDebt,
        ConflictReason::StalePrice,
        ConflictReason::HubKindFromRegister,
        ConflictReason::OverReturn,
        ConflictReason::StoreCreditOverdrawn,
        ConflictReason::ReturnOriginalUnknown,
        ConflictReason::CardPaymentAmountMismatch,
        ConflictReason::CardPaymentUnconfirmed,
        ConflictReason::FiscalDocumentRejected,
        ConflictReason::FiscalDocumentInvalid,
        ConflictReason::CardPaymentAmbiguous,
    ];

    /// The name stored, audited and sent (also hashed into the conflict id).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConflictReason::DuplicateFiscalNumber => "duplicate_fiscal_number",
            ConflictReason::DebtOverpaid => "debt_overpaid",
            ConflictReason::PaymentOnVoidedDebt => "payment_on_voided_debt",
            ConflictReason::StalePrice => "stale_price",
            ConflictReason::HubKindFromRegister => "hub_kind_from_register",
            ConflictReason::OverReturn => "over_return",
            ConflictReason::StoreCreditOverdrawn => "store_credit_overdrawn",
            ConflictReason::ReturnOriginalUnknown => "return_original_unknown",
            ConflictReason::CardPaymentAmountMismatch => "card_payment_amount_mismatch",
            ConflictReason::CardPaymentUnconfirmed => "card_payment_unconfirmed",
            ConflictReason::FiscalDocumentRejected => "fiscal_document_rejected",
            ConflictReason::FiscalDocumentInvalid => "fiscal_document_invalid",
            ConflictReason::CardPaymentAmbiguous => "card_payment_ambiguous",
        }
    }

    /// The reason of a stored name, if it is one.
    pub fn parse(name: &str) -> Option<ConflictReason> {
        ConflictReason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The strategy that settles a conflict of this reason: every conflict the
    /// hub keeps waits for a person (the automatic strategies decide without
    /// keeping one, see [`AutoDecision`]).
    pub const fn strategy(self) -> Strategy {
        match self {
            ConflictReason::DuplicateFiscalNumber
            | ConflictReason::DebtOverpaid
            | ConflictReason::PaymentOnVoidedDebt
            | ConflictReason::StalePrice
            | ConflictReason::HubKindFromRegister
            | ConflictReason::OverReturn
            | ConflictReason::StoreCreditOverdrawn
            | ConflictReason::ReturnOriginalUnknown
            | ConflictReason::CardPaymentAmountMismatch
            | ConflictReason::CardPaymentUnconfirmed
            | ConflictReason::FiscalDocumentRejected
            | ConflictReason::FiscalDocumentInvalid
            | ConflictReason::CardPaymentAmbiguous => Strategy::Manual,
        }
    }

    /// Whether an operator settles it ([`Strategy::Manual`]).
    pub const fn is_manual(self) -> bool {
        matches!(self.strategy(), Strategy::Manual)
    }
}

impl std::fmt::Display for ConflictReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ConflictReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A sale line is at a stale price when its unit price differs from the
/// price in force by more than this, in basis points of the price in force
/// (100 = 1 %; a one-centavo rounding on a cheap item is not a conflict).
pub const STALE_PRICE_TOLERANCE_BP: i64 = 100;

/// The price in force for a sale at HLC `h` is the last one the hub set at
/// least this long before `h`: a register online a moment before a change
/// cannot be expected to have pulled it yet (10 minutes).
/// (Also written, as 600000, in the backfill of `migrations/hub/0008_conflicts_ahead.sql`.)
pub const STALE_PRICE_GRACE_MS: i64 = 600_000;

/// One price the hub set: its HLC, hub seq, price and event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PricePoint {
    /// HLC of the hub event.
    pub hlc: Hlc,
    /// Its seq in the store's hub chain.
    pub hub_seq: u64,
    /// The shelf price.
    pub unit_price: i64,
    /// The event.
    pub event_id: EventId,
}

/// The price in force for a sale at `sale_hlc`: of the prices set at least
/// [`STALE_PRICE_GRACE_MS`] before it, the one with the greatest hub seq.
/// A function of the set of price events (any order gives the same).
pub fn price_in_force(history: &[PricePoint], sale_hlc: Hlc) -> Option<PricePoint> {
    let cutoff = sale_hlc.ms().saturating_sub(STALE_PRICE_GRACE_MS);
    history
        .iter()
        .filter(|p| p.hlc.ms() <= cutoff)
        .max_by_key(|p| (p.hub_seq, p.event_id))
        .copied()
}

/// Whether `charged` differs from `in_force` by more than the tolerance.
pub fn beyond_tolerance(charged: i64, in_force: i64) -> bool {
    let diff = i128::from(charged) - i128::from(in_force);
    diff.abs() * 10_000 > i128::from(in_force).abs() * i128::from(STALE_PRICE_TOLERANCE_BP)
}

/// An automatic decision between candidates (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoDecision {
    /// The strategy that decided.
    pub strategy: Strategy,
    /// What about, e.g. `customer:<id>`.
    pub subject: String,
    /// Every candidate (sorted).
    pub candidates: BTreeSet<EventId>,
    /// The one whose value the projection shows.
    pub winner: EventId,
}

/// A customer write as `lww` compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LwwStamp {
    /// HLC of the write.
    pub hlc: Hlc,
    /// Writing device (the tie-break).
    pub device: DeviceId,
    /// The event (the last tie-break: two writes of one device never share an HLC).
    pub event_id: EventId,
}

/// `lww` between the value shown and a new write of another device: a
/// decision worth auditing (writes of one device are ordered by its chain).
pub fn lww(subject: String, shown: LwwStamp, new: LwwStamp) -> Option<AutoDecision> {
    if shown.device == new.device || shown.event_id == new.event_id {
        return None;
    }
    Some(AutoDecision {
        strategy: Strategy::Lww,
        subject,
        candidates: [shown.event_id, new.event_id].into(),
        winner: shown.max(new).event_id,
    })
}

/// `server_wins` between the value shown and a new hub write of the same key
/// (the greatest hub seq wins).
pub fn server_wins(
    subject: String,
    shown: (u64, EventId),
    new: (u64, EventId),
) -> Option<AutoDecision> {
    if shown.1 == new.1 {
        return None;
    }
    Some(AutoDecision {
        strategy: Strategy::ServerWins,
        subject,
        candidates: [shown.1, new.1].into(),
        winner: shown.max(new).1,
    })
}

/// Whether a resolution that decided on `covers` still settles a conflict
/// whose candidates are now `candidates` (a new candidate reopens it).
pub fn covers(covers: &BTreeSet<EventId>, candidates: &BTreeSet<EventId>) -> bool {
    candidates.is_subset(covers)
}

/// An operator's resolution of a `manual` conflict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The winning candidate, when one wins (else the note says what was done).
    #[serde(default)]
    pub winner: Option<EventId>,
    /// Why, for the auditor (required; a missing one is refused as empty).
    #[serde(default)]
    pub note: String,
    /// Who decided (required).
    #[serde(default)]
    pub by: String,
}

/// Longest note or name accepted (bytes).
pub const MAX_RESOLUTION_TEXT: usize = 1000;

/// Why a resolution is refused (nothing is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No such conflict.
    #[error("no conflict {0}")]
    Unknown(String),
    /// Some resolution already covers every candidate.
    #[error("conflict {0} is already resolved")]
    AlreadyResolved(String),
    /// The winner is not one of the conflict's candidates.
    #[error("winner {0} is not a candidate of this conflict")]
    NotACandidate(EventId),
    /// A field is empty or too long.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// More candidates than an event may depend on.
    #[error("the conflict has {0} candidates; a resolution covers at most {MAX_DEPS}")]
    TooManyCandidates(usize),
}

/// Checks an operator's resolution against the conflict's candidates and
/// whether it is resolved already.
pub fn check_resolution(
    candidates: &BTreeSet<EventId>,
    resolved: bool,
    req: &ResolveRequest,
    conflict: &str,
) -> Result<(), ResolveError> {
    let text = |field: &'static str, v: &str| {
        if v.trim().is_empty() {
            Err(ResolveError::Invalid {
                field,
                reason: "must not be empty",
            })
        } else if v.len() > MAX_RESOLUTION_TEXT {
            Err(ResolveError::Invalid {
                field,
                reason: "longer than 1000 bytes",
            })
        } else {
            Ok(())
        }
    };
    text("by", &req.by)?;
    text("note", &req.note)?;
    if resolved {
        return Err(ResolveError::AlreadyResolved(conflict.to_owned()));
    }
    if let Some(w) = req.winner {
        if !candidates.contains(&w) {
            return Err(ResolveError::NotACandidate(w));
        }
    }
    if candidates.len() > MAX_DEPS {
        return Err(ResolveError::TooManyCandidates(candidates.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EventId {
        format!("019aaf70-d618-7000-8000-0000000000{n:02x}")
            .parse()
            .unwrap()
    }

    #[test]
    fn every_entity_has_one_named_strategy() {
        let table = [
            ("catalog_item", "name", "server_wins"),
            ("catalog_item", "barcodes", "server_wins"),
            ("price", "unit_price", "server_wins"),
            ("customer", "phone", "lww"),
            ("stock", "qty_milli", "pn_counter"),
            ("debt", "balance", "pn_counter"),
        ];
        for (entity, field, want) in table {
            assert_eq!(
                strategy_of(entity, field).map(Strategy::as_str),
                Some(want),
                "{entity}.{field}"
            );
        }
        assert_eq!(strategy_of("unknown", "x"), None);
    }

    #[test]
    fn reasons_keep_their_stored_names_and_wait_for_a_person() {
        let names = [
            "duplicate_fiscal_number",
            "debt_overpaid",
            "payment_on_voided_debt",
            "stale_price",
            "hub_kind_from_register",
            "over_return",
            "store_credit_overdrawn",
            "return_original_unknown",
            "card_payment_amount_mismatch",
            "card_payment_unconfirmed",
            "fiscal_document_rejected",
            "fiscal_document_invalid",
            "card_payment_ambiguous",
        ];
        assert_eq!(ConflictReason::ALL.len(), names.len());
        for (r, name) in ConflictReason::ALL.into_iter().zip(names) {
            assert_eq!(r.as_str(), name);
            assert_eq!(ConflictReason::parse(name), Some(r));
            assert_eq!(r.strategy(), Strategy::Manual, "{name}");
            assert!(r.is_manual());
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(ConflictReason::parse("lww"), None);
    }

    #[test]
    fn price_in_force_is_the_last_set_before_the_grace() {
        let p = |ms: i64, seq: u64, price: i64| PricePoint {
            hlc: Hlc::new(ms, 0).unwrap(),
            hub_seq: seq,
            unit_price: price,
            event_id: id(u8::try_from(seq).unwrap()),
        };
        let history = [p(1_000, 1, 100), p(2_000_000, 2, 150), p(3_000_000, 3, 90)];
        let at = |ms| price_in_force(&history, Hlc::new(ms, 0).unwrap()).map(|x| x.unit_price);
        assert_eq!(at(500_000), None);
        assert_eq!(at(1_000 + STALE_PRICE_GRACE_MS), Some(100));
        assert_eq!(at(2_000_000 + STALE_PRICE_GRACE_MS - 1), Some(100));
        assert_eq!(at(2_000_000 + STALE_PRICE_GRACE_MS), Some(150));
        assert_eq!(at(9_000_000), Some(90));
        // The history's order does not matter.
        let mut rev = history;
        rev.reverse();
        assert_eq!(
            price_in_force(&rev, Hlc::new(9_000_000, 0).unwrap()),
            price_in_force(&history, Hlc::new(9_000_000, 0).unwrap())
        );
    }

    #[test]
    fn tolerance_is_one_percent_of_the_price_in_force() {
        for (charged, in_force, stale) in [
            (10_000, 10_000, false),
            (10_100, 10_000, false),
            (10_101, 10_000, true),
            (9_899, 10_000, true),
            (1, 0, true),
            (0, 0, false),
        ] {
            assert_eq!(
                beyond_tolerance(charged, in_force),
                stale,
                "{charged} vs {in_force}"
            );
        }
    }

    #[test]
    fn lww_and_server_wins_name_the_same_winner_whichever_came_first() {
        let d1: DeviceId = "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap();
        let d2: DeviceId = "01935f4e-8a00-7000-8000-0000000000d2".parse().unwrap();
        let a = LwwStamp {
            hlc: Hlc::new(5, 0).unwrap(),
            device: d2,
            event_id: id(1),
        };
        let b = LwwStamp {
            hlc: Hlc::new(5, 0).unwrap(),
            device: d1,
            event_id: id(2),
        };
        let x = lww("customer:c".into(), a, b).unwrap();
        let y = lww("customer:c".into(), b, a).unwrap();
        assert_eq!(x, y);
        // Same HLC: the device id breaks the tie.
        assert_eq!(x.winner, id(1));
        assert_eq!(
            lww(
                "c".into(),
                a,
                LwwStamp {
                    event_id: id(3),
                    ..a
                }
            ),
            None
        );
        let s = server_wins("price:p".into(), (3, id(3)), (7, id(7))).unwrap();
        assert_eq!(
            s,
            server_wins("price:p".into(), (7, id(7)), (3, id(3))).unwrap()
        );
        assert_eq!(s.winner, id(7));
    }

    #[test]
    fn resolutions_are_checked_field_by_field() {
        let candidates: BTreeSet<EventId> = [id(1), id(2)].into();
        let ok = ResolveRequest {
            winner: Some(id(1)),
            note: "refund the payment".into(),
            by: "ana".into(),
        };
        assert_eq!(check_resolution(&candidates, false, &ok, "c"), Ok(()));
        let cases = [
            (
                ResolveRequest {
                    winner: Some(id(9)),
                    ..ok.clone()
                },
                false,
                ResolveError::NotACandidate(id(9)),
            ),
            (
                ResolveRequest {
                    by: " ".into(),
                    ..ok.clone()
                },
                false,
                ResolveError::Invalid {
                    field: "by",
                    reason: "must not be empty",
                },
            ),
            (
                ResolveRequest {
                    note: String::new(),
                    ..ok.clone()
                },
                false,
                ResolveError::Invalid {
                    field: "note",
                    reason: "must not be empty",
                },
            ),
            (ok.clone(), true, ResolveError::AlreadyResolved("c".into())),
        ];
        for (req, resolved, want) in cases {
            assert_eq!(
                check_resolution(&candidates, resolved, &req, "c"),
                Err(want)
            );
        }
        assert!(covers(&[id(1), id(2), id(3)].into(), &candidates));
        assert!(!covers(&[id(1)].into(), &candidates));
    }
}
