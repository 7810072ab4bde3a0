//! Conflict resolution end to end with a real hub and two real registers over
//! loopback HTTP: register A voids a fiado sale while register B, offline,
//! takes a payment on that debt. The hub keeps both (never a rejection) and
//! raises a `manual` conflict with both candidates; head office resolves it
//! through the admin API; the resolution is a hub event that reaches both
//! registers and shows in their status; the hub's fiado balances equal a
//! rebuild from the events.

use caja_node::register::CustomerRequest;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::testkit;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};
use caja_tests::proxy::Mode;

const SODA: &str = "7460000000011";

fn sync(t: &mut Till) {
    t.sync
        .round()
        .unwrap_or_else(|e| panic!("{} sync: {e}", t.name));
}

#[test]
fn a_payment_on_a_debt_voided_elsewhere_is_resolved_by_head_office_and_reaches_both_registers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut a =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll a");
    let mut b =
        Till::enroll(&hub, store, "caja-2", tmp.path(), fast_sync_settings()).expect("enroll b");
    for t in [&mut a, &mut b] {
        sync(t);
        t.register
            .open_shift(op_id(), "ana", Money(0))
            .expect("shift");
    }

    // A registers the customer and sells to her on fiado; B learns both.
    let customer = a
        .register
        .upsert_customer(
            op_id(),
            &CustomerRequest {
                customer_id: None,
                name: "Doña Carmen".into(),
                phone: None,
                tax_id: None,
                credit_limit: 1_000_000,
            },
        )
        .expect("customer")
        .customer_id;
    let sale = a
        .register
        .sell(
            op_id(),
            &SaleRequest {
                lines: vec![LineRequest {
                    code: SODA.into(),
                    qty_milli: 2000,
                    discount: None,
                    unit_price: None,
                }],
                payments: vec![PaymentRequest {
                    method: PaymentMethod::Fiado,
                    // 2 sodas at RD$95.00 (sample catalog), all on credit.
                    amount: 19_000,
                    reference: None,
                }],
                discount: None,
                customer: Some(customer),
            },
        )
        .expect("fiado sale");
    assert!(sale.fiado.0 > 0 && sale.debt_id.is_some(), "{sale:?}");
    sync(&mut a);
    sync(&mut b);

    // B loses the network; A voids the sale meanwhile; B, not knowing, takes
    // a payment on the debt.
    b.set_network(Mode::Down);
    a.register
        .void(op_id(), sale.sale_id, "cliente devolvió todo")
        .expect("void");
    sync(&mut a);
    let paid = Money(sale.fiado.0 / 2);
    b.register
        .pay_debt(op_id(), customer, paid, PaymentMethod::Cash)
        .expect("offline payment");
    b.set_network(Mode::Up);
    sync(&mut b);

    // The hub kept both and raised a manual conflict naming both candidates.
    let open = hub
        .get("/v1/admin/conflicts?state=open")
        .expect("conflicts");
    let conflicts = open["conflicts"].as_array().expect("array");
    assert_eq!(conflicts.len(), 1, "{open}");
    let c = &conflicts[0];
    assert_eq!(c["reason"], "payment_on_voided_debt");
    assert_eq!(c["strategy"], "manual");
    let candidates: Vec<String> = c["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(candidates.len(), 2);
    let id = c["conflict_id"].as_str().expect("id").to_owned();
    let health = hub.get("/v1/health").expect("health");
    assert_eq!(health["conflicts"]["open"], 1, "{health}");

    // Head office: the void stands; the payment is given back as cash.
    let winner = candidates[0].clone();
    let resolved = hub
        .post(
            &format!("/v1/admin/conflicts/{id}/resolve"),
            &serde_json::json!({
                "winner": winner,
                "note": "la anulación se mantiene; devolver el abono en efectivo",
                "by": "maria (oficina)"
            }),
        )
        .expect("resolve");
    assert_eq!(resolved["state"], "resolved", "{resolved}");

    // Both registers receive the resolution with their next sync.
    for t in [&mut a, &mut b] {
        sync(t);
        let status = t.register.status().expect("status");
        assert_eq!(status.conflicts_resolved.len(), 1, "{}", t.name);
        let r = &status.conflicts_resolved[0];
        assert_eq!(r.conflict_id, id);
        assert_eq!(r.strategy, "manual");
        assert_eq!(r.winner.as_deref(), Some(winner.as_str()));
        assert_eq!(r.resolved_by, "maria (oficina)");
        assert!(caja_node::messages::status(&status)
            .contains("Conflictos resueltos por la oficina central: 1"));
    }
    let health = hub.get("/v1/health").expect("health");
    assert_eq!(health["conflicts"]["open"], 0, "{health}");
    assert_eq!(health["conflicts"]["resolved"], 1, "{health}");

    // Fiado is never lost: the hub's balances equal a rebuild from the events.
    let balances = |db: &rusqlite::Connection| -> Vec<(String, i64)> {
        let mut stmt = db
            .prepare("SELECT customer_id, balance FROM v_debt_balances ORDER BY customer_id")
            .expect("query");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("balances")
    };
    let live = balances(&hub.db().expect("db"));
    assert_eq!(live, vec![(customer.to_string(), sale.fiado.0 - paid.0)]);
    let digest =
        caja_hub::storage::digest(&caja_hub::storage::Conn::from_sqlite(hub.db().expect("db")))
            .expect("digest");
    let mut hub = hub;
    hub.stop().expect("stop");
    let db = caja_hub::storage::Conn::from_sqlite(hub.db().expect("db"));
    caja_hub::storage::rebuild(&db).expect("rebuild");
    let raw = db.sqlite().expect("an SQLite hub");
    assert_eq!(balances(raw), live);
    assert_eq!(caja_hub::storage::digest(&db).expect("digest"), digest);
}
