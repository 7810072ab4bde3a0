//! What a conflict is about: [`Subject`] (its stored key and parsing) and
//! [`subjects`], the subjects a fact bears on.
//!
//! Architecture invariant: pure; no `crate::storage`, no SQL, no IO. Imports
//! only [`super::fact`].

use caja_shared::hlc::Hlc;
use caja_shared::ids::{CustomerId, DebtId, EventId, SaleId, Sku, StoreId};

use super::fact::Fact;

/// What a conflict is about: the facts to look at to decide it. A conflict
/// names its subject by [`Subject::key`] (stored, audited, hashed into its id);
/// [`Subject::parse_key`] reads the subjects of conflicts back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A fiscal number (series, number).
    Fiscal(String, String),
    /// A debt (`debt_overpaid`, `payment_on_voided_debt`).
    Debt(DebtId),
    /// One event (a hub kind written by a register).
    Event(EventId),
    /// What was returned of a sale.
    Returned(SaleId),
    /// The prices charged by a sale (`stale_price`), by its event.
    SalePrice(EventId),
    /// A voided sale: the store widens it to the debts opened for the sale.
    VoidedSale(SaleId),
    /// A price the hub set for a product of a store at an HLC: the store
    /// widens it to the sales made after it, whose price in force it may change.
    PriceChange(StoreId, Sku, Hlc),
    /// A customer's store credit in a store (`store_credit_overdrawn`).
    StoreCredit(StoreId, CustomerId),
    /// A return whose original the register did not know, by its event (the
    /// review item `return_original_unknown`).
    UnknownOriginal(EventId),
    /// Returns made without the original naming a fiscal number: the store
    /// widens it to the sales of that store with that number.
    ReturnedFiscal(StoreId, String),
    /// A sale applied: the store widens it to `Returned` when returns made
    /// without the original name it (by id or fiscal number), else nothing.
    SaleForReturns(StoreId, SaleId, Option<String>),
    /// A card payment (the sale's event, the payment's index in it), judged
    /// against the provider's reports (`card_payment_*`), not by facts.
    CardPayment(EventId, u32),
    /// A fiscal document by its outbox key, rejected by the tax authority
    /// (`fiscal_document_rejected`), not decided by facts.
    FiscalDocument(String),
}

impl Subject {
    /// The key a conflict names its subject by.
    pub fn key(&self) -> String {
        match self {
            Subject::Fiscal(series, number) => format!("fiscal:{series}:{number}"),
            Subject::Debt(d) => format!("debt:{d}"),
            Subject::Event(e) => format!("event:{e}"),
            Subject::Returned(sale) => format!("return:{sale}"),
            Subject::SalePrice(e) => format!("sale:{e}"),
            Subject::VoidedSale(s) => format!("voided_sale:{s}"),
            Subject::PriceChange(store, p, h) => format!("price:{store}:{p}:{h}"),
            Subject::StoreCredit(store, c) => format!("store_credit:{store}:{c}"),
            Subject::UnknownOriginal(e) => format!("unknown_original:{e}"),
            Subject::ReturnedFiscal(store, n) => format!("returned_fiscal:{store}:{n}"),
            Subject::SaleForReturns(store, sale, _) => format!("sale_returns:{store}:{sale}"),
            Subject::CardPayment(e, idx) => format!("card_payment:{e}:{idx}"),
            Subject::FiscalDocument(key) => format!("fiscal_doc:{key}"),
        }
    }

    /// The subject of a conflict named by `key` (the inverse of
    /// [`Subject::key`] on the subjects conflicts have: `key(parse_key(k)) ==
    /// k`). Subjects that only widen to others have no conflicts: `None`.
    pub fn parse_key(key: &str) -> Option<Subject> {
        let (kind, rest) = key.split_once(':')?;
        Some(match kind {
            "fiscal" => {
                let (series, number) = rest.split_once(':')?;
                Subject::Fiscal(series.to_owned(), number.to_owned())
            }
            "debt" => Subject::Debt(rest.parse().ok()?),
            "event" => Subject::Event(rest.parse().ok()?),
            "return" => Subject::Returned(rest.parse().ok()?),
            "sale" => Subject::SalePrice(rest.parse().ok()?),
            "store_credit" => {
                let (store, customer) = rest.split_once(':')?;
                Subject::StoreCredit(store.parse().ok()?, customer.parse().ok()?)
            }
            "unknown_original" => Subject::UnknownOriginal(rest.parse().ok()?),
            "card_payment" => {
                let (event, idx) = rest.rsplit_once(':')?;
                Subject::CardPayment(event.parse().ok()?, idx.parse().ok()?)
            }
            "fiscal_doc" => Subject::FiscalDocument(rest.to_owned()),
            _ => return None,
        })
        .filter(|s| s.key() == key)
    }

    /// Whether the conflicts of this subject can disappear as facts arrive
    /// (so a store re-decides them instead of only adding): a stale price (a
    /// price with an earlier HLC may arrive later) and an overdrawn store
    /// credit (a refund may arrive later, a spending sale may be voided).
    pub fn retractable(&self) -> bool {
        matches!(self, Subject::SalePrice(_) | Subject::StoreCredit(..))
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl serde::Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

/// The subjects whose conflicts a fact may change (`VoidedSale` and
/// `PriceChange` are widened by the store, see [`Subject`]).
pub fn subjects(fact: &Fact) -> Vec<Subject> {
    match fact {
        Fact::Sale {
            event_id,
            fiscal,
            store,
            sale_id,
            ..
        } => {
            let mut out = vec![Subject::SalePrice(*event_id)];
            if let Some((series, number)) = fiscal {
                out.push(Subject::Fiscal(series.clone(), number.clone()));
            }
            out.push(Subject::SaleForReturns(
                *store,
                *sale_id,
                fiscal.as_ref().map(|f| f.1.clone()),
            ));
            out
        }
        Fact::StoreCredit {
            store, customer, ..
        } => vec![Subject::StoreCredit(*store, *customer)],
        Fact::UnlinkedReturn {
            event_id,
            store,
            sale_id,
            reference,
            ..
        } => vec![
            Subject::UnknownOriginal(*event_id),
            match sale_id {
                Some(s) => Subject::Returned(*s),
                None => Subject::ReturnedFiscal(*store, reference.clone()),
            },
        ],
        Fact::Debt { debt_id, .. } | Fact::DebtPayment { debt_id, .. } => {
            vec![Subject::Debt(*debt_id)]
        }
        Fact::Void { sale_id, .. } => vec![Subject::VoidedSale(*sale_id)],
        Fact::PriceHistory {
            store,
            product,
            hlc,
            ..
        } => vec![Subject::PriceChange(*store, product.clone(), *hlc)],
        Fact::ForeignKind { event_id, .. } => vec![Subject::Event(*event_id)],
        Fact::ReturnLine { sale_id, .. } => vec![Subject::Returned(*sale_id)],
        Fact::CreditNote { series, number, .. } => {
            vec![Subject::Fiscal(series.clone(), number.clone())]
        }
        _ => vec![],
    }
}
