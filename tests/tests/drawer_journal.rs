//! A cash sale's drawer opened apart from its receipt reaches head office: the
//! printer cannot be reached, the cashier opens the drawer with the key and
//! records it; the register journals a `SaleDrawerOpened` (once, however
//! often it is asked), pushes it, and the hub's staff activity lists it with
//! the sale and how it was opened. A real hub router over loopback HTTP, a
//! real register and sync engine, a closed TCP port as the printer.

use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::testkit;
use caja_shared::kind::{EventBody, PaymentMethod};
use caja_shared::money::Money;
use caja_tests::cluster::{fast_sync_settings, op_id, Hub, Till};

#[test]
fn a_drawer_opened_with_the_key_is_journaled_once_and_head_office_sees_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub")).expect("hub starts");
    let store = hub.create_store("Colmado La Esquina").expect("store");
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .expect("catalog");
    let mut t =
        Till::enroll(&hub, store, "caja-1", tmp.path(), fast_sync_settings()).expect("enroll");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let gone = format!("tcp://{}", closed.local_addr().expect("addr"));
    drop(closed);
    t.configure(&format!("printer = \"{gone}\""), fast_sync_settings())
        .expect("configure");
    t.sync.round().expect("catalog");
    t.register
        .open_shift(op_id(), "ana", Money(50_000))
        .expect("shift");

    let sale = t
        .register
        .sell(
            op_id(),
            &SaleRequest {
                lines: vec![LineRequest {
                    code: "ARROZ".into(),
                    qty_milli: 1000,
                    discount: None,
                    unit_price: None,
                }],
                payments: vec![PaymentRequest {
                    method: PaymentMethod::Cash,
                    amount: 10_000,
                    reference: None,
                }],
                discount: None,
                customer: None,
            },
        )
        .expect("sale");
    // The printer does not answer: the drawer stays shut; nothing journaled.
    let run = t.register.print_pending().expect("print run");
    assert!(
        run.jobs
            .iter()
            .any(|j| j.drawer == Some(caja_node::print::DrawerNote::Unreachable)),
        "{run:?}"
    );
    let head = t.register.status().expect("status").head_seq;
    assert_eq!(head, sale.seq, "no opening yet");

    // The key, recorded: one `SaleDrawerOpened` after the sale.
    t.register
        .record_manual_drawer(sale.sale_id)
        .expect("manual opening");
    let head = t.register.status().expect("status").head_seq;
    assert_eq!(head, sale.seq + 1);
    let event = caja_node::journal::Journal::event(t.register.conn(), head)
        .expect("read")
        .expect("event");
    let EventBody::SaleDrawerOpened(opened) = event.body().expect("body") else {
        panic!("not a drawer opening: {:?}", event.body());
    };
    assert_eq!(opened.sale_id, Some(sale.sale_id));
    assert_eq!(opened.return_id, None);
    assert_eq!(opened.how, caja_shared::kind::DrawerHow::Manual);
    // Asked again (another print run, another call): nothing more.
    assert!(t
        .register
        .journal_drawer_openings()
        .expect("again")
        .is_empty());
    t.register.print_pending().expect("print run");
    assert_eq!(t.register.status().expect("status").head_seq, head);

    // Head office sees it.
    t.sync.round().expect("push");
    let v = hub
        .get(&format!("/v1/admin/staff/activity?store={store}"))
        .expect("activity");
    let opens = v["sale_drawer_opens"].as_array().expect("list");
    assert_eq!(opens.len(), 1, "{v}");
    assert_eq!(opens[0]["sale_id"], sale.sale_id.to_string(), "{v}");
    assert_eq!(opens[0]["how"], "manual", "{v}");
    assert_eq!(
        opens[0]["device"],
        t.register.device().device.to_string(),
        "{v}"
    );
    // And never as a drawer opened without a sale.
    assert_eq!(v["drawer_opens"].as_array().map(Vec::len), Some(0), "{v}");
}
