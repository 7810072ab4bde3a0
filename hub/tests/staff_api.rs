//! Staff actions and store credit at the hub over loopback HTTP, on both
//! backends: a return whose original the register did not know (by fiscal
//! number) refunded as store credit with a supervisor's approval, a drawer
//! opened without a sale, and the credit spent at two registers (more than
//! it holds): `GET /v1/admin/staff/activity`, the `return_original_unknown`
//! review item and the `store_credit_overdrawn` conflict, the approvals in
//! the audit log, and a rebuild from the events that gives the same state.

mod support;

use caja_hub::workload::Register;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::{CustomerId, MovementId, ReturnId, SaleId, ShiftId, StaffId, StoreId};
use caja_shared::kind::{
    Approval, DrawerOpened, EventBody, Payment, PaymentMethod, ReturnLine, Role, SaleCreated,
    SaleLine, SaleReturned, ShiftOpened, UnknownOriginal,
};
use caja_shared::money::{line_tax, Money, QtyMilli, TaxRateBp};
use support::*;

const REFERENCE: &str = "B0200000099";

fn supervisor(action: &str) -> Approval {
    Approval {
        staff_id: "019aaf72-0000-7000-8000-000000000001"
            .parse::<StaffId>()
            .unwrap(),
        name: "Marta".into(),
        role: Role::Supervisor,
        action: action.into(),
    }
}

fn shift(reg: &mut Register, store: StoreId, rng: &mut SeededRandom) -> (ShiftId, Event) {
    let shift_id = ShiftId::new_v7(now_ms(), rng).unwrap();
    let e = reg.append(
        store,
        EventBody::ShiftOpened(ShiftOpened {
            shift_id,
            cashier: "ana".into(),
            opening_float: Money(0),
            staff_id: None,
        }),
        vec![],
        now_ms(),
        rng,
    );
    (shift_id, e)
}

/// A one-line sale of rice paid with the customer's store credit.
fn spend(
    shift_id: ShiftId,
    customer: CustomerId,
    amount: i64,
    rng: &mut SeededRandom,
) -> EventBody {
    let total = Money(amount);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    EventBody::SaleCreated(SaleCreated {
        sale_id: SaleId::new_v7(now_ms(), rng).unwrap(),
        cashier: "ana".into(),
        shift_id: Some(shift_id),
        customer: Some(customer),
        fiscal: None,
        lines: vec![SaleLine {
            product: "RICE".parse().unwrap(),
            name: "Arroz".into(),
            qty_milli: QtyMilli(1000),
            unit_price: total,
            tax_bp: TaxRateBp::new(1800).unwrap(),
            discount: None,
            total,
            tax,
            beyond_quota_milli: None,
            price_override: None,
        }],
        total,
        tax,
        payments: vec![Payment {
            method: PaymentMethod::StoreCredit,
            amount: total,
            reference: None,
        }],
        change: Money(0),
        approval: None,
    })
}

on_both_backends! {
#[tokio::test]
async fn unknown_originals_store_credit_and_drawer_openings_reach_head_office() {
    let hub = TestHub::start().await;
    let store = hub.create_store("colmado").await;
    let (mut a, _) = hub.enroll(store).await;
    let (mut b, _) = hub.enroll(store).await;
    let mut rng = SeededRandom::new(7);
    let customer: CustomerId = "019aaf73-0000-7000-8000-000000000001".parse().unwrap();

    // Register A: a return of a sale it never saw, refunded as RD$ 50.00 of
    // store credit, approved; the drawer opened for change; RD$ 40.00 spent.
    let (shift_a, opened_a) = shift(&mut a, store, &mut rng);
    let total = Money(5_000);
    let tax = line_tax(total, TaxRateBp::new(1800).unwrap()).unwrap();
    let ret = a.append(
        store,
        EventBody::SaleReturned(SaleReturned {
            return_id: ReturnId::new_v7(now_ms(), &mut rng).unwrap(),
            sale_id: None,
            shift_id: shift_a,
            cashier: "ana".into(),
            lines: vec![ReturnLine {
                line: None,
                product: "RICE".parse().unwrap(),
                qty_milli: QtyMilli(1000),
                total,
                tax,
                damaged: false,
                tax_bp: Some(TaxRateBp::new(1800).unwrap()),
            }],
            total,
            tax,
            refund: PaymentMethod::StoreCredit,
            customer: Some(customer),
            credit_note: None,
            approval: Some(supervisor("return")),
            original_unknown: Some(UnknownOriginal {
                reference: REFERENCE.into(),
            }),
        }),
        vec![opened_a.id()],
        now_ms(),
        &mut rng,
    );
    let drawer = a.append(
        store,
        EventBody::DrawerOpened(DrawerOpened {
            movement_id: MovementId::new_v7(now_ms(), &mut rng).unwrap(),
            shift_id: shift_a,
            reason: "cambio".into(),
            approval: Some(supervisor("drawer_open")),
        }),
        vec![opened_a.id()],
        now_ms(),
        &mut rng,
    );
    let spent_a = a.append(
        store,
        spend(shift_a, customer, 4_000, &mut rng),
        vec![opened_a.id()],
        now_ms(),
        &mut rng,
    );
    let r = hub.push(&a, &[opened_a, ret.clone(), drawer.clone(), spent_a]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Register B, which had not seen A's spending: RD$ 30.00 more.
    let (shift_b, opened_b) = shift(&mut b, store, &mut rng);
    let spent_b = b.append(
        store,
        spend(shift_b, customer, 3_000, &mut rng),
        vec![opened_b.id(), ret.id()],
        now_ms(),
        &mut rng,
    );
    let r = hub.push(&b, &[opened_b, spent_b]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let v = hub
        .admin_get(&format!("/v1/admin/staff/activity?store={store}"))
        .await;
    let approvals = v["approvals"].as_array().unwrap();
    let actions: Vec<&str> = approvals.iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(actions.len(), 2, "{v}");
    assert!(actions.contains(&"return") && actions.contains(&"drawer_open"), "{v}");
    assert!(approvals.iter().all(|x| x["name"] == "Marta" && x["role"] == "supervisor"), "{v}");
    assert_eq!(v["drawer_opens"][0]["event_id"], drawer.id().to_string(), "{v}");
    assert_eq!(v["drawer_opens"][0]["reason"], "cambio");
    let unknown = &v["returns_unknown"][0];
    assert_eq!(unknown["reference"], REFERENCE, "{v}");
    assert_eq!(unknown["product"], "RICE");
    assert_eq!(unknown["qty_milli"], 1000);
    assert_eq!(unknown["damaged"], false);
    assert_eq!(v["store_credit"][0]["customer"], customer.to_string(), "{v}");
    assert_eq!(v["store_credit"][0]["balance"], 5_000 - 4_000 - 3_000, "{v}");

    let conflicts = hub.admin_get("/v1/admin/conflicts?state=open").await;
    let reasons: Vec<&str> = conflicts["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"store_credit_overdrawn"), "{conflicts}");
    assert!(reasons.contains(&"return_original_unknown"), "{conflicts}");

    // The approvals are in the audit log's entries.
    let db = hub.db();
    let entries: Vec<Vec<u8>> = db
        .prepare("SELECT entry FROM audit_log WHERE kind = 'event_accepted' ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let approved: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::from_slice::<serde_json::Value>(e).unwrap())
        .filter(|e| e["data"].get("approvals").is_some())
        .collect();
    assert_eq!(approved.len(), 2, "{approved:?}");
    assert!(approved
        .iter()
        .all(|e| e["data"]["approvals"][0]["name"] == "Marta"));

    // A rebuild from the events gives the same projections and conflicts.
    let live = caja_hub::storage::digest(&db).unwrap();
    let mut hub = hub;
    hub.stop().await;
    caja_hub::storage::rebuild(&db).unwrap();
    assert_eq!(caja_hub::storage::digest(&db).unwrap(), live);
}
}

#[tokio::test]
async fn staff_activity_names_a_missing_or_bad_store() {
    let hub = TestHub::start().await;
    for query in ["", "?store=nope"] {
        let r = hub
            .http
            .get(format!("{}/v1/admin/staff/activity{query}", hub.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["field"], "store", "{query}");
    }
}
