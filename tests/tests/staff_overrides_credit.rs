//! Price overrides, opening the drawer without a sale, store-credit refunds
//! and returns of sales unknown offline, end to end with a real hub and real
//! registers: a wrong PIN changes nothing (journal and projection
//! digest unchanged); an approved override and an approved drawer opening
//! are in the Z report, in the hub's audit log and in its staff activity; the
//! drawer is kicked through the print queue; store credit refunded at one
//! register is spent at another and never below zero at a register, while
//! two registers offline overspending it become a `manual` conflict at the
//! hub; a return of a sale the register did not know is flagged for review
//! and, once the sale arrives, checked against what was sold.

use caja_node::error::{OpError, Refusal};
use caja_node::register::{
    CustomerRequest, Document, ProductReturnRequest, ReturnLineRequest, ReturnRequest,
};
use caja_node::sale::{LineRequest, PaymentRequest, SaleError, SaleRequest};
use caja_node::staff::{Credentials, StaffError};
use caja_node::testkit;
use caja_shared::ids::{CustomerId, StaffId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};
use caja_tests::proxy::Mode;
use serde_json::json;

fn line(code: &str, qty_milli: i64, unit_price: Option<i64>) -> LineRequest {
    LineRequest {
        code: code.into(),
        qty_milli,
        discount: None,
        unit_price,
    }
}

fn pay(method: PaymentMethod, amount: i64) -> PaymentRequest {
    PaymentRequest {
        method,
        amount,
        reference: None,
    }
}

fn sale(lines: Vec<LineRequest>, payments: Vec<PaymentRequest>) -> SaleRequest {
    SaleRequest {
        lines,
        payments,
        discount: None,
        customer: None,
    }
}

struct Store {
    hub: Hub,
    tills: Vec<Till>,
    ana: StaffId,
    marta: StaffId,
}

fn staff(hub: &Hub, name: &str, role: &str, pin: &str) -> StaffId {
    let v = hub
        .post(
            "/v1/admin/staff",
            &json!({"name": name, "role": role, "pin": pin}),
        )
        .expect("staff");
    v["staff_id"].as_str().expect("id").parse().expect("id")
}

fn setup(tmp: &std::path::Path) -> Store {
    let hub = Hub::start(&tmp.join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    for prefix in ["B02", "B04"] {
        hub.post(
            "/v1/admin/fiscal/series",
            &json!({"prefix": prefix, "digits": 8, "first": 1, "last": 1000, "valid_until": "2099-12-31"}),
        )
        .expect("series");
    }
    let ana = staff(&hub, "Ana", "cashier", "1111");
    let marta = staff(&hub, "Marta", "supervisor", "2222");
    let tills = (1..=2)
        .map(|i| {
            let mut t = Till::enroll(&hub, store, &format!("caja-{i}"), tmp, fast_sync_settings())
                .expect("enroll");
            let printer = tmp.join(format!("recibos-{i}"));
            t.configure(
                &format!(
                    "fiscal_documents = [\"B02\", \"B04\"]\nfiscal_block_size = 20\nfiscal_low_water = 5\nprinter = \"folder://{}\"",
                    printer.display()
                ),
                fast_sync_settings(),
            )
            .expect("configure");
            t.sync.round().expect("staff, catalog, blocks");
            t.register
                .open_shift_signed(op_id(), &cred(ana, "1111"), Money(100_000))
                .expect("shift");
            t
        })
        .collect();
    Store {
        hub,
        tills,
        ana,
        marta,
    }
}

fn cred(id: StaffId, pin: &str) -> Credentials {
    Credentials {
        staff_id: id,
        pin: pin.into(),
    }
}

/// The register's projection digest and journal head: what a refused
/// operation must leave as it was.
fn state(t: &Till) -> (caja_shared::digest::Hash256, u64) {
    (
        caja_node::projection::digest(t.register.conn()).expect("digest"),
        t.register.status().expect("status").head_seq,
    )
}

fn conflicts(hub: &Hub, reason: &str) -> i64 {
    hub.db()
        .expect("db")
        .query_row(
            "SELECT count(*) FROM conflicts WHERE reason = ?1 AND strategy = 'manual'",
            [reason],
            |r| r.get(0),
        )
        .expect("conflicts")
}

fn activity(s: &Store) -> serde_json::Value {
    s.hub
        .get(&format!(
            "/v1/admin/staff/activity?store={}",
            s.tills[0].register.device().store
        ))
        .expect("activity")
}

#[test]
fn a_price_override_needs_a_supervisor_and_a_wrong_pin_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let (ana, marta) = (s.ana, s.marta);
    let t = &mut s.tills[0];
    // Rice at RD$ 60.00 instead of the shelf's RD$ 65.00.
    let cheaper = sale(
        vec![line("ARROZ", 2000, Some(6000))],
        vec![pay(PaymentMethod::Cash, 20_000)],
    );
    let doc = Document::default();
    let before = state(t);
    assert!(matches!(
        t.register.sell(op_id(), &cheaper),
        Err(OpError::Refused(Refusal::ApprovalRequired(
            "price_override"
        )))
    ));
    assert!(matches!(
        t.register
            .sell_approved(op_id(), &cheaper, &doc, Some(&cred(ana, "1111"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::Role { .. })))
    ));
    assert!(matches!(
        t.register
            .sell_approved(op_id(), &cheaper, &doc, Some(&cred(marta, "0000"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::WrongPin {
            left: 4
        })))
    ));
    assert_eq!(state(t), before, "a refused approval changes nothing");
    // Whatever the payment (here store credit the customer does not have),
    // an override still asks for the supervisor first.
    let mut on_credit = sale(
        vec![line("ARROZ", 1000, Some(6000))],
        vec![pay(PaymentMethod::StoreCredit, 6000)],
    );
    on_credit.customer = Some("019aaf70-dbf4-7000-8000-0000000c0001".parse().expect("id"));
    assert!(matches!(
        t.register.sell(op_id(), &on_credit),
        Err(OpError::Refused(Refusal::ApprovalRequired(
            "price_override"
        )))
    ));
    assert_eq!(state(t), before);
    // A negative price is refused naming the field, unchanged too.
    let negative = sale(
        vec![line("ARROZ", 1000, Some(-1))],
        vec![pay(PaymentMethod::Cash, 20_000)],
    );
    assert!(matches!(
        t.register.sell_approved(op_id(), &negative, &doc, Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::Sale(SaleError::BadPrice { ref field, .. }))) if field == "lines[0].unit_price"
    ));
    assert_eq!(state(t), before);
    let sold = t
        .register
        .sell_approved(op_id(), &cheaper, &doc, Some(&cred(marta, "2222")))
        .expect("approved override");
    assert_eq!(sold.total, Money(12_000));
    let z = t.register.z_report(None).expect("z");
    assert_eq!(
        (z.price_overrides, z.price_override_amount),
        (1, Money(-1_000))
    );
    let text = caja_node::messages::z_report(&z);
    assert!(
        text.contains("Autorizado — price_override: Marta"),
        "{text}"
    );
    assert!(text.contains("Cambios de precio autorizados: 1"), "{text}");
    // At the hub: the approval in the audit log and the staff activity; an
    // approved price is never a stale price.
    t.sync.round().expect("push");
    let entries: Vec<Vec<u8>> = {
        let db = s.hub.db().expect("db");
        let mut stmt = db
            .prepare("SELECT entry FROM audit_log WHERE kind = 'event_accepted'")
            .expect("stmt");
        let rows = stmt
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<Vec<Vec<u8>>, _>>()
            .expect("entries");
        rows
    };
    let audited = entries
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .find(|e| e.contains("\"price_override\""))
        .expect("the override's approval is in the audit log");
    assert!(audited.contains("\"name\":\"Marta\""), "{audited}");
    let a = activity(&s);
    let approvals = a["approvals"].as_array().expect("approvals");
    assert!(
        approvals
            .iter()
            .any(|x| x["action"] == "price_override" && x["name"] == "Marta"),
        "{a}"
    );
    assert_eq!(conflicts(&s.hub, "stale_price"), 0);
}

#[test]
fn opening_the_drawer_without_a_sale_is_approved_kicked_and_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let marta = s.marta;
    let t = &mut s.tills[0];
    let before = state(t);
    assert!(matches!(
        t.register.open_drawer(op_id(), "cambio", None),
        Err(OpError::Refused(Refusal::ApprovalRequired("drawer_open")))
    ));
    assert!(matches!(
        t.register
            .open_drawer(op_id(), "cambio", Some(&cred(marta, "9999"))),
        Err(OpError::Refused(Refusal::Staff(
            StaffError::WrongPin { .. }
        )))
    ));
    assert!(matches!(
        t.register
            .open_drawer(op_id(), "  ", Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::Invalid {
            field: "reason",
            ..
        }))
    ));
    assert_eq!(state(t), before, "refusals change nothing");
    let opened = t
        .register
        .open_drawer(op_id(), "cambio para la caja 2", Some(&cred(marta, "2222")))
        .expect("drawer");
    // The kick goes through the print queue, once.
    let run = t.register.print_pending().expect("print");
    assert_eq!(run.jobs.len(), 1, "{run:?}");
    assert!(run.jobs[0].error.is_none(), "{run:?}");
    let folder = tmp.path().join("recibos-1");
    let slips: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .map(|e| std::fs::read_to_string(e.path()).expect("slip"))
        .collect();
    assert_eq!(slips.len(), 1);
    for want in [
        "[GAVETA]",
        "APERTURA DE GAVETA",
        "cambio para la caja 2",
        "Marta",
    ] {
        assert!(slips[0].contains(want), "{want} in\n{}", slips[0]);
    }
    assert!(t.register.print_pending().expect("again").jobs.is_empty());
    let z = t.register.z_report(None).expect("z");
    assert_eq!(z.drawer_opens, 1);
    assert!(z
        .approvals
        .contains(&"drawer_open: Marta (supervisor)".to_owned()));
    assert!(caja_node::messages::z_report(&z).contains("Aperturas de gaveta sin venta: 1"));
    // The hub sees it (projection and audit).
    t.sync.round().expect("push");
    let a = activity(&s);
    let opens = a["drawer_opens"].as_array().expect("opens");
    assert_eq!(opens.len(), 1, "{a}");
    assert_eq!(opens[0]["approved_by"], "Marta");
    assert_eq!(opens[0]["reason"], "cambio para la caja 2");
    assert_eq!(
        opened.seq,
        s.tills[0].register.status().expect("st").head_seq
    );
    let (live, rebuilt) = s.tills[0].register.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt);
}

#[test]
fn store_credit_refunded_then_spent_and_overspent_across_registers_is_a_conflict() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let marta = s.marta;
    let rosa: CustomerId = s.tills[0]
        .register
        .upsert_customer(
            op_id(),
            &CustomerRequest {
                customer_id: None,
                name: "Doña Rosa".into(),
                phone: None,
                tax_id: None,
                credit_limit: 0,
            },
        )
        .expect("customer")
        .customer_id;
    // She buys 3 rice (RD$ 195.00) at A and returns 2 for store credit.
    let mut bought = sale(
        vec![line("ARROZ", 3000, None)],
        vec![pay(PaymentMethod::Cash, 20_000)],
    );
    bought.customer = Some(rosa);
    let sold = s.tills[0].register.sell(op_id(), &bought).expect("sale");
    let a = &mut s.tills[0];
    let credit = ReturnRequest {
        sale: sold.sale_id.to_string(),
        lines: vec![ReturnLineRequest {
            line: 0,
            qty_milli: 2000,
            damaged: false,
        }],
        refund: PaymentMethod::StoreCredit,
        modified_date: None,
        buyer_tax_id: None,
        buyer_name: None,
        customer: None,
        unknown_original: vec![],
    };
    let r = a
        .register
        .return_sale(op_id(), &credit, Some(&cred(marta, "2222")))
        .expect("return as store credit");
    assert_eq!(r.total, Money(13_000));
    assert_eq!(r.store_credit_balance, Some(Money(13_000)));
    assert_eq!(
        a.register.store_credit_balance(rosa).expect("balance"),
        Money(13_000)
    );
    let z = a.register.z_report(None).expect("z");
    assert_eq!(
        z.refunds_by_method.get(&PaymentMethod::StoreCredit),
        Some(&Money(13_000))
    );
    assert_eq!(z.expected_cash, Money(100_000 + 19_500), "no cash left");
    // Never below zero at a register: more than her balance is refused.
    let mut too_much = sale(
        vec![line("7460000000011", 2000, None)],
        vec![pay(PaymentMethod::StoreCredit, 19_000)],
    );
    too_much.customer = Some(rosa);
    let before = state(a);
    assert!(matches!(
        a.register.sell(op_id(), &too_much),
        Err(OpError::Refused(Refusal::Sale(
            SaleError::StoreCreditExceeded { .. }
        )))
    ));
    assert_eq!(state(a), before);
    // B learns the credit by syncing; both then go offline and each spends
    // RD$ 95.00 of her RD$ 130.00: each within what it knows.
    a.sync.round().expect("push");
    s.tills[1].sync.round().expect("pull");
    let mut soda = sale(
        vec![line("7460000000011", 1000, None)],
        vec![pay(PaymentMethod::StoreCredit, 9_500)],
    );
    soda.customer = Some(rosa);
    for t in &mut s.tills {
        assert_eq!(
            t.register.store_credit_balance(rosa).expect("balance"),
            Money(13_000)
        );
        t.set_network(Mode::Down);
        t.register.sell(op_id(), &soda).expect("spend offline");
        assert_eq!(
            t.register.store_credit_balance(rosa).expect("balance"),
            Money(3_500)
        );
    }
    for t in &mut s.tills {
        t.set_network(Mode::Up);
        t.sync.round().expect("push");
    }
    for t in &mut s.tills {
        t.sync.round().expect("pull the other's");
    }
    assert_eq!(
        conflicts(&s.hub, "store_credit_overdrawn"),
        1,
        "an overdraw across registers is a manual conflict at the hub"
    );
    let act = activity(&s);
    let balance = act["store_credit"]
        .as_array()
        .expect("balances")
        .iter()
        .find(|b| b["customer"] == rosa.to_string())
        .cloned()
        .expect("Rosa");
    assert_eq!(balance["balance"], 13_000 - 2 * 9_500, "{act}");
    // Every register now knows both spends: her balance there is the hub's.
    for t in &s.tills {
        assert_eq!(
            t.register.store_credit_balance(rosa).expect("balance"),
            Money(13_000 - 2 * 9_500)
        );
    }
    for t in &mut s.tills {
        let (live, rebuilt) = t.register.rebuild().expect("rebuild");
        assert_eq!(live, rebuilt, "store credit equals its rebuild");
    }
}

#[test]
fn a_return_of_a_sale_unknown_offline_is_flagged_and_checked_when_the_sale_arrives() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let marta = s.marta;
    for t in &s.tills {
        t.set_network(Mode::Down);
    }
    // A sells 3 rice offline; B, offline too, never saw it.
    let sold = s.tills[0]
        .register
        .sell(
            op_id(),
            &sale(
                vec![line("ARROZ", 3000, None)],
                vec![pay(PaymentMethod::Cash, 20_000)],
            ),
        )
        .expect("sale at A");
    let ncf = sold.fiscal_number.clone().expect("B02");
    let b = &mut s.tills[1];
    let by_line = ReturnRequest {
        sale: ncf.clone(),
        lines: vec![ReturnLineRequest {
            line: 0,
            qty_milli: 1000,
            damaged: false,
        }],
        refund: PaymentMethod::Cash,
        modified_date: None,
        buyer_tax_id: None,
        buyer_name: None,
        customer: None,
        unknown_original: vec![],
    };
    assert!(matches!(
        b.register
            .return_sale(op_id(), &by_line, Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::UnknownSaleRef(_)))
    ));
    // By product, as an unknown original: a supervisor must approve.
    let unknown = ReturnRequest {
        lines: vec![],
        unknown_original: vec![ProductReturnRequest {
            code: "ARROZ".into(),
            qty_milli: 2000,
            unit_price: None,
            damaged: false,
        }],
        ..by_line.clone()
    };
    let before = state(b);
    assert!(matches!(
        b.register.return_sale(op_id(), &unknown, None),
        Err(OpError::Refused(Refusal::ApprovalRequired(
            "return_unknown_original"
        )))
    ));
    assert!(matches!(
        b.register
            .return_sale(op_id(), &unknown, Some(&cred(marta, "1234"))),
        Err(OpError::Refused(Refusal::Staff(
            StaffError::WrongPin { .. }
        )))
    ));
    let fractional = ReturnRequest {
        unknown_original: vec![ProductReturnRequest {
            qty_milli: 1500,
            ..unknown.unknown_original[0].clone()
        }],
        ..unknown.clone()
    };
    assert!(matches!(
        b.register
            .return_sale(op_id(), &fractional, Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::Invalid {
            field: "unknown_original[].qty_milli",
            ..
        }))
    ));
    assert_eq!(state(b), before, "refusals change nothing");
    let r = b
        .register
        .return_sale(op_id(), &unknown, Some(&cred(marta, "2222")))
        .expect("flagged return");
    assert!(r.original_unknown);
    assert_eq!(r.sale_id, None, "given by fiscal number");
    assert_eq!(r.total, Money(13_000));
    assert!(r.credit_note.is_some());
    let z = b.register.z_report(None).expect("z");
    assert_eq!(z.returns_unknown_original, 1);
    assert!(z
        .approvals
        .contains(&"return_unknown_original: Marta (supervisor)".to_owned()));
    // B syncs first: the hub flags it for review (the sale is not there yet).
    b.set_network(Mode::Up);
    b.sync.round().expect("push B");
    assert_eq!(conflicts(&s.hub, "return_original_unknown"), 1);
    assert_eq!(conflicts(&s.hub, "over_return"), 0);
    // A, still offline, returns 2 of the 3 rice by line (within what it
    // knows): with B's 2, 4 of 3 were returned.
    let a = &mut s.tills[0];
    a.register
        .return_sale(
            op_id(),
            &ReturnRequest {
                lines: vec![ReturnLineRequest {
                    line: 0,
                    qty_milli: 2000,
                    damaged: false,
                }],
                ..by_line.clone()
            },
            Some(&cred(marta, "2222")),
        )
        .expect("A's return");
    a.set_network(Mode::Up);
    a.sync.round().expect("push A");
    assert_eq!(
        conflicts(&s.hub, "over_return"),
        1,
        "the sale arrived: never more than sold"
    );
    // Once a register knows both, it refuses more of that product, and a
    // return by product of a known sale is refused (return it by line).
    a.sync.round().expect("pull B's return");
    let before = state(a);
    assert!(matches!(
        a.register.return_sale(
            op_id(),
            &ReturnRequest {
                lines: vec![ReturnLineRequest {
                    line: 0,
                    qty_milli: 1000,
                    damaged: false,
                }],
                ..by_line.clone()
            },
            Some(&cred(marta, "2222"))
        ),
        Err(OpError::Refused(Refusal::ReturnTooMuch { .. }))
    ));
    assert!(matches!(
        a.register
            .return_sale(op_id(), &unknown, Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::Invalid {
            field: "unknown_original",
            ..
        }))
    ));
    assert_eq!(state(a), before);
    let act = activity(&s);
    assert_eq!(
        act["returns_unknown"].as_array().map(Vec::len),
        Some(1),
        "{act}"
    );
    assert_eq!(act["returns_unknown"][0]["reference"], ncf);
    for t in &mut s.tills {
        let (live, rebuilt) = t.register.rebuild().expect("rebuild");
        assert_eq!(live, rebuilt);
    }
}
