//! The ingest decisions without SQL: conflict rules as tables of facts and the
//! changes they make, the automatic decisions against shown rows, documents
//! and sales ahead of the hub clock.

use std::collections::BTreeSet;

use caja_shared::hlc::Hlc;
use caja_shared::ids::{CustomerId, DebtId, DeviceId, EventId, Sku, StoreId};

use super::*;
use crate::conflict::{ConflictReason, Strategy, STALE_PRICE_GRACE_MS};
use crate::projection::conflict_id;

const T0: i64 = 1_763_880_000_000;

fn id<T: std::str::FromStr>(n: u8) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("019aaf70-d618-7000-8000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

fn store() -> StoreId {
    id(0xa1)
}

fn sku() -> Sku {
    "ARROZ-1LB".parse().unwrap()
}

fn hlc(ms: i64) -> Hlc {
    Hlc::new(ms, 0).unwrap()
}

fn sale(event: u8, fiscal: Option<(&str, &str)>, at: i64) -> Fact {
    Fact::Sale {
        event_id: id(event),
        sale_id: id(event),
        store: store(),
        device: id(0xd1),
        shift_id: None,
        customer: None,
        total: 100,
        tax: 0,
        change: 0,
        fiscal: fiscal.map(|(s, n)| (s.to_owned(), n.to_owned())),
        hlc: Some(hlc(at)),
    }
}

fn line(event: u8, unit_price: i64, overridden: bool) -> Fact {
    Fact::SaleLine {
        event_id: id(event),
        line: 0,
        sale_id: id(event),
        store: store(),
        product: sku(),
        qty_milli: 1000,
        total: unit_price,
        tax: 0,
        unit_price: Some(unit_price),
        overridden,
    }
}

fn price(event: u8, hub_seq: u64, at: i64, unit_price: i64) -> Fact {
    Fact::PriceHistory {
        event_id: id(event),
        store: store(),
        product: sku(),
        hub_seq,
        hlc: hlc(at),
        unit_price,
    }
}

fn credit(event: u8, amount: i64, sale: Option<u8>) -> Fact {
    Fact::StoreCredit {
        event_id: id(event),
        idx: 0,
        store: store(),
        customer: id(0xc1),
        amount,
        sale_id: sale.map(id),
    }
}

fn debt(event: u8, amount: i64, sale: u8) -> Fact {
    Fact::Debt {
        event_id: id(event),
        debt_id: id(0xde),
        store: store(),
        customer: id(0xc1),
        amount,
        sale_id: Some(id(sale)),
    }
}

fn paid(event: u8, amount: i64) -> Fact {
    Fact::DebtPayment {
        event_id: id(event),
        payment_id: id(event),
        debt_id: id(0xde),
        store: store(),
        customer: id(0xc1),
        amount,
    }
}

fn void(event: u8, sale: u8) -> Fact {
    Fact::Void {
        event_id: id(event),
        sale_id: id(sale),
        store: store(),
    }
}

/// A change as `(upsert or withdraw, reason, candidates)`, for tables.
fn summary(changes: &[ConflictChange]) -> Vec<(&'static str, ConflictReason, Vec<u8>)> {
    // The inverse of `id`: the last byte of the event id.
    let byte = |e: &EventId| u8::from_str_radix(&e.to_string()[34..], 16).unwrap();
    changes
        .iter()
        .map(|c| match c {
            ConflictChange::Upsert { conflict, replace } => (
                if *replace { "replace" } else { "add" },
                conflict.reason,
                conflict.events.iter().map(byte).collect(),
            ),
            ConflictChange::Withdraw {
                subject,
                conflict_id,
            } => {
                let reason = ConflictReason::ALL
                    .into_iter()
                    .find(|r| Conflict::id_of(*r, subject) == *conflict_id)
                    .unwrap();
                ("withdraw", reason, vec![])
            }
        })
        .collect()
}

#[test]
fn conflict_rules_decide_changes_from_facts_alone() {
    use ConflictReason::*;
    let sale_price = Subject::SalePrice(id(1));
    let credit_of = Subject::StoreCredit(store(), id(0xc1));
    let debt_of = Subject::Debt(id::<DebtId>(0xde));
    let fiscal = Subject::Fiscal("E31".into(), "E310000000001".into());
    let grace = STALE_PRICE_GRACE_MS;
    #[allow(clippy::type_complexity)]
    let table: Vec<(
        &str,
        &Subject,
        Vec<Fact>,
        Vec<(&str, ConflictReason, Vec<u8>)>,
    )> = vec![
        (
            "a price in force 10 % lower: stale, the sale and that price",
            &sale_price,
            vec![
                sale(1, None, T0 + grace),
                line(1, 110, false),
                price(9, 1, T0, 100),
            ],
            vec![("replace", StalePrice, vec![1, 9])],
        ),
        (
            "within the 1 % tolerance: withdrawn if stored",
            &sale_price,
            vec![
                sale(1, None, T0 + grace),
                line(1, 101, false),
                price(9, 1, T0, 100),
            ],
            vec![("withdraw", StalePrice, vec![])],
        ),
        (
            "an overridden line is never stale",
            &sale_price,
            vec![
                sale(1, None, T0 + grace),
                line(1, 500, true),
                price(9, 1, T0, 100),
            ],
            vec![("withdraw", StalePrice, vec![])],
        ),
        (
            "a price set within the grace is not yet in force",
            &sale_price,
            vec![
                sale(1, None, T0 + grace - 1),
                line(1, 110, false),
                price(9, 1, T0, 100),
            ],
            vec![("withdraw", StalePrice, vec![])],
        ),
        (
            "store credit spent beyond the refunds: overdrawn",
            &credit_of,
            vec![credit(1, 50, None), credit(2, -80, Some(2))],
            vec![("replace", StoreCreditOverdrawn, vec![1, 2])],
        ),
        (
            "the spending sale voided: the credit is back, withdrawn",
            &credit_of,
            vec![credit(1, 50, None), credit(2, -80, Some(2)), void(3, 2)],
            vec![("withdraw", StoreCreditOverdrawn, vec![])],
        ),
        (
            "a debt paid beyond its amount: overpaid, candidates added",
            &debt_of,
            vec![debt(1, 100, 7), paid(2, 60), paid(3, 60)],
            vec![("add", DebtOverpaid, vec![1, 2, 3])],
        ),
        (
            "a payment on a debt whose sale was voided",
            &debt_of,
            vec![debt(1, 100, 7), paid(2, 10), void(3, 7)],
            vec![("add", PaymentOnVoidedDebt, vec![2, 3])],
        ),
        (
            "a debt paid in full: nothing, and nothing withdrawn (monotone)",
            &debt_of,
            vec![debt(1, 100, 7), paid(2, 100)],
            vec![],
        ),
        (
            "two sales with one fiscal number",
            &fiscal,
            vec![
                sale(1, Some(("E31", "E310000000001")), T0),
                sale(2, Some(("E31", "E310000000001")), T0),
            ],
            vec![("add", DuplicateFiscalNumber, vec![1, 2])],
        ),
        (
            "one sale alone is no duplicate",
            &fiscal,
            vec![sale(1, Some(("E31", "E310000000001")), T0)],
            vec![],
        ),
    ];
    for (what, subject, related, want) in table {
        let changes = conflict_changes(subject, &related);
        assert_eq!(summary(&changes), want, "{what}");
        for c in &changes {
            if let ConflictChange::Upsert { conflict, .. } = c {
                assert_eq!(conflict.subject, *subject, "{what}");
                assert_eq!(conflict.strategy(), Strategy::Manual, "{what}");
                assert_eq!(conflict.store, store(), "{what}");
            }
        }
    }
}

#[test]
fn widened_subjects_decide_nothing_themselves() {
    for subject in [
        Subject::VoidedSale(id(1)),
        Subject::PriceChange(store(), sku(), hlc(T0)),
        Subject::ReturnedFiscal(store(), "B0100000001".into()),
        Subject::SaleForReturns(store(), id(1), None),
        Subject::CardPayment(id(1), 0),
        Subject::FiscalDocument("E310000000001".into()),
    ] {
        let related = [sale(1, None, T0), void(2, 1), price(3, 1, T0, 5)];
        assert_eq!(conflict_changes(&subject, &related), vec![], "{subject}");
    }
}

#[test]
fn typed_conflict_ids_are_the_stored_ones() {
    // The id hashes the reason's and the subject's names: the typed
    // constructors give exactly the string vectors' ids.
    let subject = Subject::Fiscal("B02".into(), "B0200000001".into());
    assert_eq!(
        Conflict::id_of(ConflictReason::DuplicateFiscalNumber, &subject),
        conflict_id("duplicate_fiscal_number", "fiscal:B02:B0200000001")
    );
    let card = Subject::CardPayment(id(1), 2);
    assert_eq!(
        card.key(),
        "card_payment:019aaf70-d618-7000-8000-000000000001:2"
    );
    assert_eq!(
        Conflict::new(
            ConflictReason::CardPaymentUnconfirmed,
            card.clone(),
            store(),
            BTreeSet::new()
        )
        .conflict_id,
        conflict_id("card_payment_unconfirmed", &card.key())
    );
    assert_eq!(
        Subject::FiscalDocument("ANECF:E310000000001:E310000000009".into()).key(),
        "fiscal_doc:ANECF:E310000000001:E310000000009"
    );
}

#[test]
fn conflict_subjects_read_back_from_their_keys() {
    let subjects = [
        Subject::Fiscal("B02".into(), "B0200000001".into()),
        Subject::Debt(id(1)),
        Subject::Event(id(2)),
        Subject::Returned(id(3)),
        Subject::SalePrice(id(4)),
        Subject::StoreCredit(store(), id(5)),
        Subject::UnknownOriginal(id(6)),
        Subject::CardPayment(id(7), 3),
        Subject::FiscalDocument("ANECF:E310000000001:E310000000009".into()),
    ];
    for s in subjects {
        assert_eq!(Subject::parse_key(&s.key()), Some(s.clone()), "{s}");
        assert_eq!(serde_json::to_value(&s).unwrap(), s.key());
    }
    // A series with a colon reads back to the same key.
    let odd = Subject::Fiscal("A:B".into(), "1".into()).key();
    assert_eq!(Subject::parse_key(&odd).map(|s| s.key()), Some(odd));
    for bad in [
        "",
        "debt:",
        "debt:x",
        "nope:1",
        "voided_sale:x",
        "card_payment:x",
    ] {
        assert_eq!(Subject::parse_key(bad), None, "{bad}");
    }
}

#[test]
fn an_event_decides_its_automatic_decisions_documents_and_sales_ahead() {
    let d1: DeviceId = id(0xd1);
    let d2: DeviceId = id(0xd2);
    let customer: CustomerId = id(0xc1);
    let customer_fact = |event: u8, device: DeviceId, at: i64| Fact::Customer {
        customer_id: customer,
        event_id: id(event),
        hlc: hlc(at),
        device,
        body: "{}".into(),
    };
    let price_fact = |event: u8, hub_seq: u64| Fact::Price {
        store: store(),
        product: sku(),
        event_id: id(event),
        hub_seq,
        unit_price: 100,
    };
    let mut shown = Shown::new();
    // Nothing shown: nothing decided.
    let e = event(vec![customer_fact(2, d2, T0), price_fact(3, 4)], &shown, T0);
    assert!(e.decisions.is_empty());
    shown.insert(
        ShownKey::Customer(customer),
        ShownRow::Lww(LwwStamp {
            hlc: hlc(T0 + 5),
            device: d1,
            event_id: id(1),
        }),
    );
    shown.insert(
        ShownKey::Price(store(), sku()),
        ShownRow::ServerWins(7, id(8)),
    );
    let e = event(vec![customer_fact(2, d2, T0), price_fact(3, 4)], &shown, T0);
    let decided: Vec<(Strategy, String, EventId)> = e
        .decisions
        .iter()
        .map(|d| (d.strategy, d.subject.clone(), d.winner))
        .collect();
    assert_eq!(
        decided,
        vec![
            (Strategy::Lww, format!("customer:{customer}"), id(1)),
            (
                Strategy::ServerWins,
                format!("price:{}:{}", store(), sku()),
                id(8)
            ),
        ]
    );
    // The same register's writes are ordered by its chain: no decision.
    let same = event(vec![customer_fact(2, d1, T0)], &shown, T0);
    assert!(same.decisions.is_empty());

    // A sale queues no document (its signed documents are queued from the
    // event naming them); a sale ahead by the grace is kept.
    let grace = STALE_PRICE_GRACE_MS;
    let e = event(
        vec![
            sale(1, Some(("E31", "E310000000001")), T0 + grace),
            sale(2, Some(("B02", "B0200000001")), T0 + grace - 1),
        ],
        &Shown::new(),
        T0,
    );
    assert!(e.documents.is_empty());
    assert_eq!(
        e.sales_ahead,
        vec![SaleAhead {
            event_id: id(1),
            store: store(),
            hlc_ms: T0 + grace
        }]
    );
    assert!(e.subjects.contains(&Subject::SalePrice(id(1))));
    assert!(e
        .subjects
        .contains(&Subject::Fiscal("B02".into(), "B0200000001".into())));
    assert_eq!(e.facts.len(), 2);
}

#[test]
fn a_fiscal_document_issued_event_queues_its_electronic_number() {
    use caja_shared::kind::{FiscalDocumentIssued, IssuedDocument};
    let deps = [id(1)];
    let meta = EventMeta {
        event_id: id(2),
        store: store(),
        device: id(0xd1),
        seq: 2,
        hlc: hlc(T0),
        origin: crate::projection::Origin::Register,
        deps: &deps,
    };
    let body = |encf: &str| {
        EventBody::FiscalDocumentIssued(FiscalDocumentIssued {
            encf: encf.into(),
            doc_type: FiscalDocType::CreditNote,
            sale_id: None,
            return_id: None,
            security_code: "Ab+/9z".into(),
            signed_at_ms: T0,
            total: caja_shared::money::Money(100),
            documents: vec![IssuedDocument {
                kind: "ecf".into(),
                sha256: caja_shared::digest::Hash256::of(b"x"),
            }],
        })
    };
    let d = issued_document(&meta, &body("E340000000007")).unwrap();
    assert_eq!(
        (
            d.number.as_str(),
            d.series.as_str(),
            d.doc_type,
            d.event_id,
            d.device
        ),
        (
            "E340000000007",
            "E34",
            FiscalDocType::CreditNote,
            id(1),
            id(0xd1)
        )
    );
    assert_eq!(issued_document(&meta, &body("B0400000007")), None);
}
