//! Staff, approvals, returns and cash movements end to end with a real hub and
//! real registers: head office creates staff (PINs reach the registers only
//! hashed), a cashier signs in offline, a wrong supervisor PIN changes nothing
//! and five lock the supervisor out, a return at register B of a sale made at
//! register A issues a B04 credit note, two offline registers returning the
//! same line become a `manual` conflict at the hub, and the Z report with
//! drops, paid-outs and a return equals the sum of the events.

use caja_node::error::{OpError, Refusal};
use caja_node::register::{ReturnLineRequest, ReturnRequest};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::staff::{Credentials, StaffError};
use caja_node::testkit;
use caja_shared::ids::StaffId;
use caja_shared::kind::{CashMovement, PaymentMethod};
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};
use caja_tests::proxy::Mode;
use serde_json::json;

fn sale() -> SaleRequest {
    SaleRequest {
        lines: vec![
            LineRequest {
                code: "ARROZ".into(),
                qty_milli: 3000,
                discount: None,
                unit_price: None,
            },
            LineRequest {
                code: "7460000000011".into(),
                qty_milli: 1000,
                discount: None,
                unit_price: None,
            },
        ],
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 50_000,
            reference: None,
        }],
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
    assert!(v.get("pin").is_none(), "the PIN is never answered: {v}");
    v["staff_id"].as_str().expect("id").parse().expect("id")
}

fn setup(tmp: &std::path::Path) -> Store {
    let hub = Hub::start(&tmp.join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    for (prefix, last) in [("B02", 1000), ("B04", 1000)] {
        hub.post(
            "/v1/admin/fiscal/series",
            &json!({"prefix": prefix, "digits": 8, "first": 1, "last": last, "valid_until": "2099-12-31"}),
        )
        .expect("series");
    }
    let ana = staff(&hub, "Ana", "cashier", "1111");
    let marta = staff(&hub, "Marta", "supervisor", "2222");
    let tills = (1..=2)
        .map(|i| {
            let mut t = Till::enroll(&hub, store, &format!("caja-{i}"), tmp, fast_sync_settings())
                .expect("enroll");
            t.configure(
                "fiscal_documents = [\"B02\", \"B04\"]\nfiscal_block_size = 20\nfiscal_low_water = 5",
                fast_sync_settings(),
            )
            .expect("configure");
            t.sync.round().expect("staff, catalog, blocks");
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

fn digest(t: &Till) -> caja_shared::digest::Hash256 {
    caja_node::projection::digest(t.register.conn()).expect("digest")
}

#[test]
fn staff_sign_in_approvals_lockout_and_no_pin_in_clear() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let t = &mut s.tills[0];
    t.set_network(Mode::Down);
    // With staff on the register a shift needs a signed-in member.
    assert!(matches!(
        t.register.open_shift(op_id(), "ana", Money(0)),
        Err(OpError::Refused(Refusal::SignInRequired))
    ));
    assert!(matches!(
        t.register
            .open_shift_signed(op_id(), &cred(s.ana, "9999"), Money(0)),
        Err(OpError::Refused(Refusal::Staff(StaffError::WrongPin {
            left: 4
        })))
    ));
    t.register
        .open_shift_signed(op_id(), &cred(s.ana, "1111"), Money(100_000))
        .expect("Ana signs in offline");
    let sold = t.register.sell(op_id(), &sale()).expect("sale");
    // A void needs a supervisor: none, a cashier, a wrong PIN — nothing changes.
    let before = digest(t);
    assert!(matches!(
        t.register.void(op_id(), sold.sale_id, "error"),
        Err(OpError::Refused(Refusal::ApprovalRequired("void")))
    ));
    assert!(matches!(
        t.register
            .void_approved(op_id(), sold.sale_id, "error", Some(&cred(s.ana, "1111"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::Role { .. })))
    ));
    for left in (1..=4).rev() {
        let r =
            t.register
                .void_approved(op_id(), sold.sale_id, "error", Some(&cred(s.marta, "0000")));
        assert!(
            matches!(r, Err(OpError::Refused(Refusal::Staff(StaffError::WrongPin { left: l }))) if l == left),
            "{r:?}"
        );
        assert_eq!(digest(t), before, "a refused approval changes nothing");
    }
    // The fifth wrong PIN locks Marta out here — even the right one now.
    assert!(matches!(
        t.register
            .void_approved(op_id(), sold.sale_id, "error", Some(&cred(s.marta, "0000"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::Locked { .. })))
    ));
    assert!(matches!(
        t.register
            .void_approved(op_id(), sold.sale_id, "error", Some(&cred(s.marta, "2222"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::Locked { .. })))
    ));
    assert_eq!(digest(t), before);
    // No PIN in clear anywhere in the register's database or the hub's.
    for db in [
        t.data.root().join("caja-node.sqlite3"),
        tmp.path().join("hub").join("hub.db"),
    ] {
        let bytes = std::fs::read(&db).expect("db");
        for pin in [b"\"2222\"".as_slice(), b"\"1111\"".as_slice()] {
            assert!(
                !bytes.windows(pin.len()).any(|w| w == pin),
                "a PIN in clear in {}",
                db.display()
            );
        }
    }
}

#[test]
fn a_return_at_another_register_issues_a_credit_note_and_over_returns_are_conflicts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let (ana, marta) = (s.ana, s.marta);
    for t in &mut s.tills {
        t.register
            .open_shift_signed(op_id(), &cred(ana, "1111"), Money(100_000))
            .expect("shift");
    }
    let sold = s.tills[0]
        .register
        .sell(op_id(), &sale())
        .expect("sale at A");
    let ncf = sold.fiscal_number.clone().expect("B02");
    s.tills[0].sync.round().expect("push");
    s.tills[1].sync.round().expect("pull A's sale");
    // At B, by the receipt's fiscal number: 1 of the 3 rice, refunded in cash.
    let b = &mut s.tills[1];
    let ret = ReturnRequest {
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
        b.register.return_sale(op_id(), &ret, None),
        Err(OpError::Refused(Refusal::ApprovalRequired("return")))
    ));
    let r = b
        .register
        .return_sale(op_id(), &ret, Some(&cred(marta, "2222")))
        .expect("return");
    let note = r.credit_note.clone().expect("a credit note");
    assert!(note.starts_with("B04"), "{note}");
    // Rice at RD$ 65.00: a third of the line's RD$ 195.00.
    assert_eq!(r.total, Money(6_500));
    // More than is left is refused, naming what is left.
    let too_much = ReturnRequest {
        lines: vec![ReturnLineRequest {
            line: 0,
            qty_milli: 2500,
            damaged: false,
        }],
        ..ret.clone()
    };
    assert!(matches!(
        b.register
            .return_sale(op_id(), &too_much, Some(&cred(marta, "2222"))),
        Err(OpError::Refused(Refusal::ReturnTooMuch { left, .. })) if left.0 == 2000
    ));
    // Both registers offline each return the last 2 of that line: each is
    // within what it knows; together they return more than was sold.
    let last_two = ReturnRequest {
        lines: vec![ReturnLineRequest {
            line: 0,
            qty_milli: 2000,
            damaged: true,
        }],
        ..ret.clone()
    };
    b.sync.round().expect("push the first return");
    s.tills[0].sync.round().expect("A pulls it");
    for t in &mut s.tills {
        t.set_network(Mode::Down);
        t.register
            .return_sale(op_id(), &last_two, Some(&cred(marta, "2222")))
            .expect("offline return within what this register knows");
    }
    for t in &mut s.tills {
        t.set_network(Mode::Up);
        t.sync.round().expect("round");
    }
    let conflicts: i64 = s
        .hub
        .db()
        .expect("db")
        .query_row(
            "SELECT count(*) FROM conflicts WHERE reason = 'over_return' AND strategy = 'manual'",
            [],
            |r| r.get(0),
        )
        .expect("conflicts");
    assert_eq!(
        conflicts, 1,
        "an over-return is a manual conflict at the hub"
    );
    // The credit notes are accounted in the B04 series.
    let rep = s
        .hub
        .get("/v1/admin/fiscal/report?series=B04")
        .expect("report");
    assert_eq!(rep["reports"][0]["totals"]["used"], 3, "{rep}");
    assert_eq!(rep["reports"][0]["duplicates"], 0);
    // Stock: 1 rice back (the damaged ones are not).
    let stock = s
        .hub
        .get(&format!(
            "/v1/admin/stock?store={}",
            s.tills[0].register.device().store
        ))
        .expect("stock");
    let rice = stock["products"]
        .as_array()
        .expect("products")
        .iter()
        .find(|p| p["product"] == "7501234567890")
        .cloned()
        .expect("rice");
    assert_eq!(rice["stock_milli"], -3000 + 1000, "{rice}");
}

#[test]
fn the_z_report_with_drops_paid_outs_and_a_return_equals_the_events() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let (ana, marta) = (s.ana, s.marta);
    let t = &mut s.tills[0];
    t.register
        .open_shift_signed(op_id(), &cred(ana, "1111"), Money(100_000))
        .expect("shift");
    let sold = t.register.sell(op_id(), &sale()).expect("sale"); // 195.00 + 95.00
    t.register
        .cash_move(
            op_id(),
            CashMovement::PaidIn,
            Money(20_000),
            "cambio del banco",
            None,
        )
        .expect("paid in");
    assert!(matches!(
        t.register
            .cash_move(op_id(), CashMovement::PaidOut, Money(5_000), "hielo", None),
        Err(OpError::Refused(Refusal::ApprovalRequired("paid_out")))
    ));
    t.register
        .cash_move(
            op_id(),
            CashMovement::PaidOut,
            Money(5_000),
            "hielo",
            Some(&cred(marta, "2222")),
        )
        .expect("paid out");
    t.register
        .cash_move(
            op_id(),
            CashMovement::Drop,
            Money(50_000),
            "a la caja fuerte",
            None,
        )
        .expect("drop");
    t.register
        .return_sale(
            op_id(),
            &ReturnRequest {
                sale: sold.sale_id.to_string(),
                lines: vec![ReturnLineRequest {
                    line: 1,
                    qty_milli: 1000,
                    damaged: false,
                }],
                refund: PaymentMethod::Cash,
                modified_date: None,
                buyer_tax_id: None,
                buyer_name: None,
                customer: None,
                unknown_original: vec![],
            },
            Some(&cred(marta, "2222")),
        )
        .expect("return the soda");
    // Expected: float 1000 + sale 290 − refund 95 + in 200 − out 50 − drop 500.
    let expected = 100_000 + 29_000 - 9_500 + 20_000 - 5_000 - 50_000;
    // Closing needs someone signed in: not anonymous, not another cashier.
    assert!(matches!(
        t.register.close_shift(op_id(), Money(0)),
        Err(OpError::Refused(Refusal::SignInRequired))
    ));
    // A blind close by Ana herself: she counts RD$ 5.00 short.
    let closed = t
        .register
        .close_shift_as(op_id(), Money(expected - 500), Some(&cred(ana, "1111")))
        .expect("close");
    let z = closed.z;
    assert_eq!(z.expected_cash, Money(expected));
    assert_eq!(z.cash_difference, Some(Money(-500)));
    assert_eq!(
        (z.paid_in, z.paid_out, z.drops),
        (Money(20_000), Money(5_000), Money(50_000))
    );
    assert_eq!((z.returns_count, z.returns_total), (1, Money(9_500)));
    assert_eq!(z.net_total, Money(29_000 - 9_500));
    assert_eq!(
        z.approvals.len(),
        2,
        "her own close is no approval: {:?}",
        z.approvals
    );
    let text = caja_node::messages::z_report(&z);
    for want in [
        "Devoluciones: 1",
        "Salidas de efectivo",
        "Depósitos a caja fuerte",
        "Autorizado — paid_out: Marta",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    let (live, rebuilt) = t.register.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt);
}

#[test]
fn large_discounts_and_closing_another_persons_shift_need_a_supervisor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = setup(tmp.path());
    let (ana, marta) = (s.ana, s.marta);
    let t = &mut s.tills[0];
    t.register
        .open_shift_signed(op_id(), &cred(ana, "1111"), Money(0))
        .expect("shift");
    // 5 % off is within the register's 10 % limit; 20 % is not.
    let mut small = sale();
    small.discount = Some(1_450);
    t.register.sell(op_id(), &small).expect("small discount");
    let mut big = sale();
    big.discount = Some(5_800);
    let before = digest(t);
    assert!(matches!(
        t.register.sell(op_id(), &big),
        Err(OpError::Refused(Refusal::ApprovalRequired("discount")))
    ));
    assert_eq!(digest(t), before);
    let doc = caja_node::register::Document::default();
    let r = t
        .register
        .sell_approved(op_id(), &big, &doc, Some(&cred(marta, "2222")))
        .expect("approved discount");
    assert_eq!(r.total, Money(29_000 - 5_800));
    // Another cashier cannot close Ana's shift; a supervisor can.
    let _ = staff(&s.hub, "Luis", "cashier", "3333");
    t.sync.round().expect("Luis reaches the register");
    let luis = caja_node::staff::find(t.register.conn(), "Luis")
        .expect("find")
        .expect("Luis");
    assert!(matches!(
        t.register
            .close_shift_as(op_id(), Money(0), Some(&cred(luis, "3333"))),
        Err(OpError::Refused(Refusal::Staff(StaffError::Role { .. })))
    ));
    let closed = t
        .register
        .close_shift_as(op_id(), Money(0), Some(&cred(marta, "2222")))
        .expect("a supervisor closes it");
    let text = caja_node::messages::z_report(&closed.z);
    assert!(text.contains("Autorizado — discount: Marta"), "{text}");
    assert!(text.contains("Autorizado — close_shift: Marta"), "{text}");
}
