//! The cashier screen's operations without HTTP (`caja_node::ui::screen`), on
//! a real register database and a virtual Toledo scale on a pty: cart lines
//! once per op id and kept across a restart, weighed lines from the scale, a
//! sale made once however the payment is retried (also when the node stopped
//! between the sale and emptying the cart), bad input refused in Spanish with
//! nothing changed, shift close with the Z report, cash movements, returns,
//! reprints once per op id; a price override kept in the cart across a
//! restart and paid only with a supervisor's right PIN; discounts priced by
//! the sale's rules and approved beyond the limit; customers and abonos.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use caja_node::journal::Journal;
use caja_node::register::Register;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::ui::screen::{
    AddLine, Cash, OpOnly, Pay, RemoveLine, Reprint, Return, ReturnLine, Screen, SetPrice,
    ShiftClose, ShiftOpen,
};
use caja_shared::entropy::SeededRandom;
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;
use common::Fixture;
use serde_json::Value;

type TestScreen = Screen<Arc<caja_shared::clock::ManualClock>, SeededRandom>;

fn screen(fx: &Fixture, seed: u64) -> TestScreen {
    let r = Register::open(&fx.data, fx.clock.clone(), SeededRandom::new(seed)).expect("open");
    Screen::new(r).expect("screen")
}

fn pay(op: OpId, cash: &str) -> Pay {
    Pay {
        op,
        cash: Some(cash.into()),
        card: None,
        card_ref: None,
        transfer: None,
        transfer_ref: None,
        fiado: None,
        customer: None,
        approver: None,
        pin: None,
        document: None,
        buyer_tax_id: None,
        buyer_name: None,
    }
}

fn lines(v: &Value) -> Vec<(String, String)> {
    v["cart"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().expect("name").to_owned(),
                l["qty"].as_str().expect("qty").to_owned(),
            )
        })
        .collect()
}

fn head(fx: &Fixture) -> u64 {
    Journal::head(fx.register.conn()).expect("head").seq
}

fn open_shift(fx: &mut Fixture, s: &TestScreen) {
    let op = fx.op();
    s.open_shift(&ShiftOpen {
        op,
        cashier: "ana".into(),
        pin: None,
        float: "1000.00".into(),
    })
    .expect("shift");
}

struct Scale {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Scale {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A virtual Toledo scale showing `grams`, configured in the data directory.
fn with_scale(fx: &Fixture, grams: &str) -> (Scale, std::path::PathBuf) {
    let weight = fx.dir.path().join("peso.txt");
    std::fs::write(&weight, grams).expect("weight");
    let link = fx.dir.path().join("balanza");
    let sim = caja_node::devices::VirtualScale::start(
        caja_hardware::scale::Protocol::Toledo8217,
        &weight,
        Some(&link),
    )
    .expect("virtual scale");
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let thread = std::thread::spawn(move || caja_node::devices::run_virtual_scale(&sim, &s2));
    std::fs::write(
        fx.data.root().join("config.toml"),
        format!(
            "scale = \"toledo://{}\"\nscale_timeout_ms = 2000\n",
            link.display()
        ),
    )
    .expect("config");
    (
        Scale {
            stop,
            thread: Some(thread),
        },
        weight,
    )
}

#[test]
fn cart_lines_once_per_op_weighed_from_the_scale_and_kept_across_a_restart() {
    let mut fx = Fixture::new(1);
    let (_scale, weight) = with_scale(&fx, "1250");
    let s = screen(&fx, 2);
    let op = fx.op();
    let add = AddLine {
        op,
        entry: "2*ARROZ".into(),
    };
    s.add_line(&add).expect("add");
    let v = s.add_line(&add).expect("retry adds nothing");
    assert_eq!(
        lines(&v),
        vec![("Arroz Selecto 1kg".to_owned(), "2".to_owned())]
    );
    assert_eq!(v["cart"]["total"], "RD$ 130.00");
    assert_eq!(v["cart"]["tax"], "RD$ 19.83");

    let op = fx.op();
    let v = s
        .add_line(&AddLine {
            op,
            entry: "2000000000017".into(),
        })
        .expect("weighed");
    assert_eq!(
        lines(&v)[1],
        ("Queso de freír".to_owned(), "1.250 kg".to_owned())
    );
    assert_eq!(v["notice"], "Pesado Queso de freír: 1.250 kg.");
    assert_eq!(v["cart"]["total"], "RD$ 605.00");

    // Refusals: in Spanish, nothing added.
    for (entry, says) in [
        ("3*2000000000017", "se vende por peso"),
        ("NOEXISTE", "Producto desconocido: NOEXISTE"),
        ("0*ARROZ", "Cantidad inválida"),
        ("1.5*ARROZ", "Cantidad inválida"),
        ("  ", "Escriba o escanee"),
    ] {
        let op = fx.op();
        let e = s
            .add_line(&AddLine {
                op,
                entry: entry.into(),
            })
            .expect_err(entry);
        assert_eq!((e.status, e.code), (422, "refused"), "{entry}");
        assert!(e.message.contains(says), "{entry}: {}", e.message);
    }
    // A moving weight is refused: nothing added.
    std::fs::write(&weight, "motion").expect("weight");
    // The simulator rereads its file every 50 ms: wait until the status bar
    // sees the motion.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        s.refresh_scale();
        let v = s.state().expect("state");
        let bar = v["status"].to_string();
        if bar.contains("inestable") {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "scale never moving: {bar}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let op = fx.op();
    let e = s
        .add_line(&AddLine {
            op,
            entry: "2000000000017".into(),
        })
        .expect_err("motion");
    assert_eq!(e.code, "scale");
    assert!(e.message.contains("inestable"), "{}", e.message);

    // The node restarts: the cart is where it was.
    drop(s);
    let s = screen(&fx, 3);
    let v = s.state().expect("state");
    assert_eq!(lines(&v).len(), 2);
    let first = v["cart"]["lines"][0]["id"].as_i64().expect("id");
    let op = fx.op();
    let v = s
        .remove_line(&RemoveLine { op, line: first })
        .expect("remove");
    assert_eq!(lines(&v).len(), 1);
    let op = fx.op();
    let v = s.clear(&OpOnly { op }).expect("clear");
    assert!(lines(&v).is_empty());
    assert_eq!(head(&fx), 0, "nothing of this is an event");
}

#[test]
fn a_sale_is_made_once_however_the_payment_is_retried() {
    let mut fx = Fixture::new(4);
    let s = screen(&fx, 5);
    open_shift(&mut fx, &s);
    let op = fx.op();
    s.add_line(&AddLine {
        op,
        entry: "ARROZ".into(),
    })
    .expect("add");
    let before = head(&fx);

    // Refused: short, unreadable, card without reference. Nothing changes.
    let first = fx.op();
    let e = s.pay(&pay(first, "50.00")).expect_err("short");
    assert!(e.message.contains("Pago insuficiente"), "{}", e.message);
    let e = s.pay(&pay(fx.op(), "diez")).expect_err("bad amount");
    assert!(
        e.message.contains("Monto inválido en «efectivo»"),
        "{}",
        e.message
    );
    let e = s
        .pay(&Pay {
            op: fx.op(),
            cash: None,
            card: Some("65.00".into()),
            card_ref: None,
            transfer: None,
            transfer_ref: None,
            fiado: None,
            customer: None,
            approver: None,
            pin: None,
            document: None,
            buyer_tax_id: None,
            buyer_name: None,
        })
        .expect_err("no reference");
    assert!(e.message.contains("referencia"), "{}", e.message);
    assert_eq!(head(&fx), before, "refusals write nothing");
    assert_eq!(lines(&s.state().expect("state")).len(), 1);

    // Paid; the same request again (its answer lost) gives the same answer.
    let op = fx.op();
    let v = s.pay(&pay(op, "100")).expect("paid");
    assert_eq!(v["done"], true);
    assert!(lines(&v).is_empty());
    let shown = v["shown"]["text"].as_str().expect("text").to_owned();
    assert!(shown.contains("cambio RD$ 35.00"), "{shown}");
    let after = head(&fx);
    assert_eq!(after, before + 1);
    let again = s.pay(&pay(op, "100")).expect("retry answered");
    assert_eq!(again["shown"]["text"], shown.as_str());
    assert_eq!(head(&fx), after, "one sale");
    // A new request on the empty cart is refused.
    let e = s.pay(&pay(fx.op(), "100")).expect_err("empty");
    assert!(e.message.contains("No hay artículos"), "{}", e.message);
}

#[test]
fn a_sale_committed_before_the_cart_was_emptied_is_finished_on_restart() {
    let mut fx = Fixture::new(6);
    let s = screen(&fx, 7);
    open_shift(&mut fx, &s);
    let op = fx.op();
    s.add_line(&AddLine {
        op,
        entry: "HABICHUELAS".into(),
    })
    .expect("add");
    drop(s);
    // The node recorded the payment's op id and made the sale, then stopped
    // before emptying the cart.
    let pay_op = fx.op();
    let other = fx.op();
    let conn = fx.register.conn();
    assert_eq!(
        caja_node::ui::cart::begin_pay(conn, pay_op).expect("begin"),
        pay_op
    );
    assert_eq!(
        caja_node::ui::cart::begin_pay(conn, other).expect("begin"),
        pay_op,
        "a second attempt reuses the first op id"
    );
    fx.register
        .sell(
            pay_op,
            &SaleRequest {
                lines: vec![LineRequest {
                    code: "HABICHUELAS".into(),
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
    let sold = head(&fx);
    // On restart the screen sees the sale done and empties the cart; paying
    // again cannot sell it twice.
    let s = screen(&fx, 8);
    let v = s.state().expect("state");
    assert!(lines(&v).is_empty());
    assert!(
        v["shown"]["text"]
            .as_str()
            .expect("text")
            .contains("RD$ 85.00"),
        "{v}"
    );
    assert!(s.pay(&pay(other, "100")).is_err());
    assert_eq!(head(&fx), sold);
}

#[test]
fn shift_close_cash_return_reprint_and_x_report() {
    let mut fx = Fixture::new(9);
    let s = screen(&fx, 10);
    // No shift: selling is refused in Spanish.
    let op = fx.op();
    s.add_line(&AddLine {
        op,
        entry: "ARROZ".into(),
    })
    .expect("add");
    let e = s.pay(&pay(fx.op(), "100")).expect_err("no shift");
    assert!(
        e.message.contains("No hay un turno abierto"),
        "{}",
        e.message
    );
    open_shift(&mut fx, &s);
    let v = s.state().expect("state");
    assert_eq!(v["shift"]["cashier"], "ana");
    s.pay(&pay(fx.op(), "100")).expect("sold");
    let sales = s.sales().expect("sales");
    let sale = sales["sales"][0]["sale_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(sales["sales"][0]["total"], "RD$ 65.00");

    // Paid in, then a bad amount refused.
    let op = fx.op();
    let v = s
        .cash(&Cash {
            op,
            kind: "in".into(),
            amount: "200.00".into(),
            reason: "cambio del banco".into(),
            approver: None,
            pin: None,
        })
        .expect("paid in");
    assert_eq!(
        v["shown"]["text"],
        "Entrada de efectivo de RD$ 200.00 registrada."
    );
    let before = head(&fx);
    let e = s
        .cash(&Cash {
            op: fx.op(),
            kind: "out".into(),
            amount: "-5".into(),
            reason: "x".into(),
            approver: None,
            pin: None,
        })
        .expect_err("negative");
    assert!(e.message.contains("«monto»"), "{}", e.message);
    let e = s
        .cash(&Cash {
            op: fx.op(),
            kind: "out".into(),
            amount: "5".into(),
            reason: " ".into(),
            approver: Some("Marta".into()),
            pin: None,
        })
        .expect_err("name without PIN");
    assert!(e.message.contains("nombre y el PIN"), "{}", e.message);
    assert_eq!(head(&fx), before);

    // A return of the rice, in cash; too much is refused.
    let e = s
        .return_sale(&Return {
            op: fx.op(),
            sale: sale.clone(),
            lines: vec![ReturnLine {
                line: 0,
                qty: "2".into(),
                damaged: false,
            }],
            refund: "cash".into(),
            approver: None,
            pin: None,
        })
        .expect_err("too much");
    assert!(e.message.contains("solo quedan"), "{}", e.message);
    let v = s
        .return_sale(&Return {
            op: fx.op(),
            sale: sale.clone(),
            lines: vec![ReturnLine {
                line: 0,
                qty: "1".into(),
                damaged: true,
            }],
            refund: "cash".into(),
            approver: None,
            pin: None,
        })
        .expect("returned");
    // Damaged on the screen is damaged in the journal (not back to stock).
    let last = Journal::head(fx.register.conn()).expect("head").seq;
    let returned = (1..=last)
        .rev()
        .find_map(|seq| {
            match Journal::event(fx.register.conn(), seq)
                .expect("read")
                .expect("event")
                .body()
                .expect("body")
            {
                caja_shared::kind::EventBody::SaleReturned(r) => Some(r),
                _ => None,
            }
        })
        .expect("a return in the journal");
    assert!(returned.lines[0].damaged, "{returned:?}");
    assert!(
        v["shown"]["text"]
            .as_str()
            .expect("text")
            .contains("reembolso RD$ 65.00"),
        "{v}"
    );

    // Reprint: once per op id.
    let op = fx.op();
    s.reprint(&Reprint {
        op,
        sale: sale.clone(),
    })
    .expect("reprint");
    s.reprint(&Reprint {
        op,
        sale: sale.clone(),
    })
    .expect("retry");
    let copies: i64 = fx
        .register
        .conn()
        .query_row(
            "SELECT count(*) FROM print_jobs WHERE kind = 'copy'",
            [],
            |r| r.get(0),
        )
        .expect("jobs");
    assert_eq!(copies, 1);

    let x = s.x_report().expect("x");
    assert!(x["z"].as_str().expect("z").contains("REPORTE Z"), "{x}");
    let op = fx.op();
    let v = s
        .close_shift(&ShiftClose {
            op,
            counted: "1200.00".into(),
            by: None,
            pin: None,
        })
        .expect("closed");
    let z = v["shown"]["z"].as_str().expect("z");
    assert!(z.contains("Ventas: 1 por RD$ 65.00"), "{z}");
    assert!(v["shift"].is_null());
}

/// Staff from the store's hub chain (after the catalog): Ana, cashier, PIN
/// 1111; Marta, supervisor, PIN 2222 (few PBKDF2 rounds: a test).
fn import_staff(fx: &mut Fixture) {
    use caja_shared::kind::{Role, StaffUpserted};
    let (catalog, _) = common::catalog_chain();
    let last = catalog.last().expect("catalog events");
    let bodies = [
        (
            "01935f4e-8a00-7000-8000-0000000000a1",
            "Ana",
            Role::Cashier,
            "1111",
        ),
        (
            "01935f4e-8a00-7000-8000-0000000000a2",
            "Marta",
            Role::Supervisor,
            "2222",
        ),
    ]
    .into_iter()
    .map(|(id, name, role, pin)| {
        StaffUpserted {
            staff_id: id.parse().expect("staff id"),
            name: name.into(),
            role,
            pin: caja_shared::pin::hash_with(pin, [7; 16], 1000),
            active: true,
        }
        .into()
    })
    .collect();
    let (events, cp) = caja_node::testkit::hub_chain_page(
        &common::hub_key(),
        &"hub-1".parse().expect("key id"),
        common::STORE.parse().expect("store"),
        common::HUB_CHAIN.parse().expect("hub chain"),
        last.seq().get() + 1,
        last.hash(),
        common::START_MS - 500,
        bodies,
        &mut SeededRandom::new(2),
    )
    .expect("staff events");
    fx.register
        .import_hub_events(&events, &cp.expect("checkpoint"))
        .expect("staff imports");
}

fn cart_prices(v: &Value) -> Vec<(String, bool, String)> {
    v["cart"]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["unit_price"].as_str().expect("price").to_owned(),
                l["overridden"].as_bool().expect("overridden"),
                l["total"].as_str().expect("total").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_price_override_is_kept_in_the_cart_and_paid_only_with_a_supervisors_pin() {
    let mut fx = Fixture::new(12);
    import_staff(&mut fx);
    let s = screen(&fx, 13);
    let op = fx.op();
    s.open_shift(&ShiftOpen {
        op,
        cashier: "Ana".into(),
        pin: Some("1111".into()),
        float: "500.00".into(),
    })
    .expect("signed in");
    let op = fx.op();
    s.add_line(&AddLine {
        op,
        entry: "2*ARROZ".into(),
    })
    .expect("add");
    let op = fx.op();
    let v = s
        .add_line(&AddLine {
            op,
            entry: "HABICHUELAS".into(),
        })
        .expect("add");
    assert_eq!(v["cart"]["overrides"], false);
    let rice = v["cart"]["lines"][0]["id"].as_i64().expect("id");
    let beans = v["cart"]["lines"][1]["id"].as_i64().expect("id");
    let before = head(&fx);

    // Bad prices and a line not in the cart: refused in Spanish, nothing
    // changes.
    for (line, price, says) in [
        (rice, "sesenta", "Monto inválido en «precio»"),
        (rice, "-1.00", "Monto inválido en «precio»"),
        (rice + 1000, "60.00", "ya no está en la venta"),
    ] {
        let op = fx.op();
        let e = s
            .set_price(&SetPrice {
                op,
                line,
                price: price.into(),
            })
            .expect_err(price);
        assert_eq!((e.status, e.code), (422, "refused"), "{price}");
        assert!(e.message.contains(says), "{price}: {}", e.message);
    }
    assert_eq!(s.state().expect("state")["cart"]["overrides"], false);

    // RD$ 60.00 instead of the shelf's 65.00 for the rice; the beans' shelf
    // price typed is no override.
    let op = fx.op();
    s.set_price(&SetPrice {
        op,
        line: rice,
        price: "60.00".into(),
    })
    .expect("price");
    let op = fx.op();
    let v = s
        .set_price(&SetPrice {
            op,
            line: beans,
            price: "85.00".into(),
        })
        .expect("same price");
    let expected = vec![
        ("RD$ 60.00".to_owned(), true, "RD$ 120.00".to_owned()),
        ("RD$ 85.00".to_owned(), false, "RD$ 85.00".to_owned()),
    ];
    assert_eq!(cart_prices(&v), expected);
    assert_eq!(v["cart"]["lines"][0]["shelf_price"], "RD$ 65.00");
    assert_eq!(v["cart"]["lines"][0]["price"], "60.00");
    assert_eq!(v["cart"]["total"], "RD$ 205.00");
    assert_eq!(v["cart"]["overrides"], true);
    assert_eq!(head(&fx), before, "a typed price is not an event");

    // The node restarts: the override is still there.
    drop(s);
    let s = screen(&fx, 14);
    let v = s.state().expect("state");
    assert_eq!(cart_prices(&v), expected);
    assert_eq!(v["cart"]["total"], "RD$ 205.00");

    // Without a supervisor, or with a wrong PIN: refused, no sale, the cart
    // as it was.
    let with = |op, who: Option<&str>, pin: Option<&str>| Pay {
        approver: who.map(str::to_owned),
        pin: pin.map(str::to_owned),
        ..pay(op, "300.00")
    };
    let e = s
        .pay(&with(fx.op(), None, None))
        .expect_err("no supervisor");
    assert_eq!(e.code, "refused");
    assert!(e.message.contains("PIN del supervisor"), "{}", e.message);
    let e = s
        .pay(&with(fx.op(), Some("Marta"), Some("9999")))
        .expect_err("wrong PIN");
    assert_eq!((e.status, e.code), (422, "refused"));
    assert!(e.message.contains("PIN incorrecto"), "{}", e.message);
    let e = s
        .pay(&with(fx.op(), Some("Ana"), Some("1111")))
        .expect_err("a cashier cannot approve");
    assert!(
        e.message.contains("se necesita un supervisor"),
        "{}",
        e.message
    );
    assert_eq!(head(&fx), before, "refusals write nothing");
    let v = s.state().expect("state");
    assert_eq!(cart_prices(&v), expected);
    assert!(v["shown"]["kind"] != "sale", "no sale shown: {v}");

    // The supervisor's right PIN: sold at RD$ 60.00, the approval in the
    // SaleCreated event's line.
    let v = s
        .pay(&with(fx.op(), Some("Marta"), Some("2222")))
        .expect("approved");
    assert_eq!(v["done"], true);
    assert!(lines(&v).is_empty());
    assert_eq!(v["cart"]["overrides"], false);
    let text = v["shown"]["text"].as_str().expect("text");
    assert!(
        text.contains("total RD$ 205.00, cambio RD$ 95.00"),
        "{text}"
    );
    assert_eq!(head(&fx), before + 1);
    let event = Journal::event(fx.register.conn(), before + 1)
        .expect("read")
        .expect("sale event");
    let caja_shared::kind::EventBody::SaleCreated(sale) = event.body().expect("body") else {
        panic!("not a sale: {:?}", event.body());
    };
    let rice_line = &sale.lines[0];
    assert_eq!(
        (rice_line.unit_price.0, rice_line.total.0),
        (6000, 12000),
        "{rice_line:?}"
    );
    let o = rice_line
        .price_override
        .as_ref()
        .expect("override recorded");
    assert_eq!(o.shelf_price.0, 6500);
    let approval = o.approval.as_ref().expect("approved");
    assert_eq!(approval.name, "Marta");
    assert_eq!(approval.role, caja_shared::kind::Role::Supervisor);
    assert_eq!(approval.action, "price_override");
    assert_eq!(
        sale.lines[1].price_override, None,
        "the shelf price is no override"
    );
}

#[test]
fn discounts_priced_by_the_sale_and_approved_beyond_the_limit_and_customers_with_abonos() {
    use caja_node::ui::dialogs::{DebtPay, Discount, NewCustomer};
    let mut fx = Fixture::new(21);
    import_staff(&mut fx);
    let s = screen(&fx, 22);
    let op = fx.op();
    s.open_shift(&ShiftOpen {
        op,
        cashier: "Ana".into(),
        pin: Some("1111".into()),
        float: "500.00".into(),
    })
    .expect("signed in");
    let op = fx.op();
    let v = s
        .add_line(&AddLine {
            op,
            entry: "3*ARROZ".into(),
        })
        .expect("add");
    let rice = v["cart"]["lines"][0]["id"].as_i64().expect("id");
    let before = head(&fx);

    // Refused, naming what is wrong; nothing changes.
    for (line, amount, says) in [
        (Some(rice), "diez", "Descuento inválido"),
        (Some(rice), "195.01", "mayor que el importe"),
        (None, "200.00", "mayor que el importe"),
        (Some(rice + 99), "1.00", "ya no está en la venta"),
    ] {
        let e = s
            .discount(&Discount {
                op: fx.op(),
                line,
                amount: amount.into(),
            })
            .expect_err(amount);
        assert_eq!((e.status, e.code), (422, "refused"), "{amount}");
        assert!(e.message.contains(says), "{amount}: {}", e.message);
    }
    // 5 % of the line (9.75) is within the register's 10 %: no approval.
    let v = s
        .discount(&Discount {
            op: fx.op(),
            line: Some(rice),
            amount: "5%".into(),
        })
        .expect("line discount");
    assert_eq!(v["cart"]["total"], "RD$ 185.25");
    assert_eq!(v["cart"]["lines"][0]["discount"], "RD$ 9.75");
    assert_eq!(v["cart"]["discount_approval"], false);
    // 15.25 more on the sale: 25.00 of 195.00 is beyond 10 %.
    let v = s
        .discount(&Discount {
            op: fx.op(),
            line: None,
            amount: "15.25".into(),
        })
        .expect("sale discount");
    assert_eq!(v["cart"]["total"], "RD$ 170.00");
    assert_eq!(v["cart"]["discount_approval"], true);
    assert_eq!(head(&fx), before, "discounts in the cart are not events");

    // A restart keeps them; paying without a supervisor is refused first.
    drop(s);
    let s = screen(&fx, 23);
    assert_eq!(s.state().expect("state")["cart"]["total"], "RD$ 170.00");
    let e = s.pay(&pay(fx.op(), "200.00")).expect_err("no supervisor");
    assert!(e.message.contains("supervisor"), "{}", e.message);
    // A B01 is not issued by this register: named, refused.
    let e = s
        .pay(&Pay {
            document: Some("B01".into()),
            ..pay(fx.op(), "200.00")
        })
        .expect_err("no B01 here");
    assert!(
        e.message.contains("no emite comprobantes B01"),
        "{}",
        e.message
    );
    assert_eq!(head(&fx), before, "refusals write nothing");
    let v = s
        .pay(&Pay {
            approver: Some("Marta".into()),
            pin: Some("2222".into()),
            ..pay(fx.op(), "200.00")
        })
        .expect("approved");
    assert!(
        v["shown"]["text"]
            .as_str()
            .expect("text")
            .contains("total RD$ 170.00, cambio RD$ 30.00"),
        "{v}"
    );
    assert_eq!(
        v["cart"]["sale_discount"],
        Value::Null,
        "paid: discount gone"
    );
    let event = Journal::event(fx.register.conn(), before + 1)
        .expect("read")
        .expect("sale event");
    let caja_shared::kind::EventBody::SaleCreated(sale) = event.body().expect("body") else {
        panic!("not a sale: {:?}", event.body());
    };
    assert_eq!(sale.lines[0].discount.map(|d| d.0), Some(2_500));
    assert_eq!(
        sale.approval.as_ref().map(|a| a.action.as_str()),
        Some("discount")
    );

    // A customer (a cédula that does not check is refused), a fiado sale,
    // an abono.
    let e = s
        .add_customer(&NewCustomer {
            op: fx.op(),
            name: "Doña Rosa".into(),
            phone: None,
            tax_id: Some("00112345678".into()),
            credit_limit: "500.00".into(),
        })
        .expect_err("bad cédula");
    assert!(e.message.contains("cédula del cliente"), "{}", e.message);
    let v = s
        .add_customer(&NewCustomer {
            op: fx.op(),
            name: "Doña Rosa".into(),
            phone: Some("809-555-0101".into()),
            tax_id: None,
            credit_limit: "500.00".into(),
        })
        .expect("customer");
    let customer = v["shown"]["customer_id"].as_str().expect("id").to_owned();
    s.add_line(&AddLine {
        op: fx.op(),
        entry: "ARROZ".into(),
    })
    .expect("add");
    s.pay(&Pay {
        cash: None,
        fiado: Some("65.00".into()),
        customer: Some(customer.clone()),
        ..pay(fx.op(), "")
    })
    .expect("fiado");
    let mut abono = |amount: &str, method: &str| DebtPay {
        op: fx.op(),
        customer: customer.clone(),
        amount: amount.into(),
        method: method.into(),
    };
    let e = s.pay_debt(&abono("70.00", "cash")).expect_err("too much");
    assert!(e.message.contains("mayor que lo que debe"), "{}", e.message);
    let e = s.pay_debt(&abono("10.00", "fiado")).expect_err("fiado");
    assert!(e.message.contains("efectivo"), "{}", e.message);
    let v = s.pay_debt(&abono("25.00", "transfer")).expect("abono");
    assert_eq!(
        v["shown"]["text"],
        "Abono de RD$ 25.00 de Doña Rosa por transferencia: todavía debe RD$ 40.00."
    );
}

/// A TCP printer that answers every `DLE EOT n` with the status of an open
/// cover and a roll near its end (and reads whatever else it is sent).
fn printer_with_cover_open() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let problems = caja_hardware::status::Problems {
                    cover_open: true,
                    ..Default::default()
                };
                let (a, b, c) = caja_hardware::status::answers_for(problems, true);
                let mut pending = Vec::new();
                let mut buf = [0u8; 256];
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(i) = pending.windows(2).position(|w| w == [0x10, 0x04]) {
                        let Some(&which) = pending.get(i + 2) else {
                            break;
                        };
                        let answer = match which {
                            1 => a,
                            2 => b,
                            _ => c,
                        };
                        let _ = stream.write_all(&[answer]);
                        pending.drain(..i + 3);
                    }
                }
            });
        }
    });
    format!("tcp://{addr}")
}

#[test]
fn the_status_bar_shows_the_printers_status_bits() {
    let fx = Fixture::new(31);
    std::fs::write(
        fx.data.root().join("config.toml"),
        format!("printer = \"{}\"\n", printer_with_cover_open()),
    )
    .expect("config");
    let s = screen(&fx, 32);
    let bar = |v: &Value| {
        v["status"]
            .as_array()
            .expect("status")
            .iter()
            .find(|i| i["key"] == "printer_state")
            .cloned()
    };
    assert_eq!(bar(&s.state().expect("state")), None, "not asked yet");
    s.refresh_printer();
    let item = bar(&s.state().expect("state")).expect("printer state shown");
    assert_eq!(item["level"], "bad", "{item}");
    assert_eq!(
        item["text"],
        "Estado de la impresora: Tapa de la impresora abierta"
    );
}

#[test]
fn the_status_bar_shows_moments_in_local_time_with_their_age() {
    let mut fx = Fixture::new(33);
    let s = screen(&fx, 34);
    open_shift(&mut fx, &s);
    fx.clock.advance(125_000);
    let v = s.state().expect("state");
    let sync = v["status"]
        .as_array()
        .expect("status")
        .iter()
        .find(|i| i["key"] == "sync")
        .cloned()
        .expect("sync item");
    let text = sync["text"].as_str().expect("text");
    // Like `caja-node status`: the store's local time, then its age; never
    // raw milliseconds.
    let at = caja_node::messages::local_time(common::START_MS);
    assert!(
        text.contains(&format!("el más antiguo de {at}, hace 2 min")),
        "{text}"
    );
}

#[test]
fn a_transfer_qr_payment_offline_keeps_its_reference_and_says_so() {
    let mut fx = Fixture::new(35);
    // The hub is down: a port nothing listens on. The real sync engine is
    // asked, as `caja-node ui` asks it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = fx.data.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let ask = caja_node::ui::screen::AskIntents(Box::new(move |sale, paid| {
        counted.fetch_add(1, Ordering::SeqCst);
        let rng = SeededRandom::new(99);
        match caja_node::sync::engine::SyncEngine::open(
            &dir,
            &url,
            caja_node::system::SystemClock,
            rng,
            Default::default(),
        ) {
            Ok(mut e) => e.create_sale_intents(sale, "azul", paid),
            Err(e) => panic!("engine: {e}"),
        }
    }));
    let s = screen(&fx, 36).with_intents(ask);
    open_shift(&mut fx, &s);
    s.add_line(&AddLine {
        op: fx.op(),
        entry: "ARROZ".into(),
    })
    .expect("add");

    // Refused before anything is recorded: an unreadable transfer amount.
    let before = head(&fx);
    let mut bad = pay(fx.op(), "");
    bad.cash = None;
    bad.transfer = Some("sesenta".into());
    let e = s.pay(&bad).expect_err("bad amount");
    assert!(e.message.contains("transferencia"), "{}", e.message);
    assert_eq!(head(&fx), before);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let mut qr = pay(fx.op(), "");
    qr.cash = None;
    qr.transfer = Some("65.00".into());
    qr.transfer_ref = Some("QR-778899".into());
    let v = s.pay(&qr).expect("paid by QR");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let said = v["shown"]["intents"].as_str().expect("intents said");
    assert!(said.contains("Transferencia/QR RD$ 65.00"), "{said}");
    assert!(said.contains("referencia QR-778899"), "{said}");
    assert!(said.contains("sin conexión"), "{said}");
    // The sale stands with its reference.
    let sale = Journal::event(fx.register.conn(), head(&fx))
        .expect("read")
        .expect("sale event");
    let body = sale.body().expect("body");
    let caja_shared::kind::EventBody::SaleCreated(created) = body else {
        panic!("not a sale: {body:?}");
    };
    assert_eq!(created.payments.len(), 1);
    assert_eq!(created.payments[0].method, PaymentMethod::Transfer);
    assert_eq!(created.payments[0].reference.as_deref(), Some("QR-778899"));
}

#[test]
fn the_drawer_opened_with_the_key_is_recorded_once_and_only_for_cash() {
    let mut fx = Fixture::new(37);
    let s = screen(&fx, 38);
    open_shift(&mut fx, &s);
    let sell = |fx: &mut Fixture, p: Pay| {
        s.add_line(&AddLine {
            op: fx.op(),
            entry: "ARROZ".into(),
        })
        .expect("add");
        s.pay(&p).expect("paid")["shown"]["sale_id"]
            .as_str()
            .expect("sale id")
            .to_owned()
    };
    let mut by_card = pay(fx.op(), "");
    by_card.cash = None;
    by_card.card = Some("65.00".into());
    by_card.card_ref = Some("123456".into());
    let card_sale = sell(&mut fx, by_card);
    let cash_pay = pay(fx.op(), "100.00");
    let cash_sale = sell(&mut fx, cash_pay);
    let manual = |fx: &Fixture| -> i64 {
        fx.register
            .conn()
            .query_row(
                "SELECT count(*) FROM drawer_openings WHERE how = 'manual'",
                [],
                |r| r.get(0),
            )
            .expect("count")
    };
    use caja_node::ui::dialogs::DrawerManual;
    // Refused, nothing recorded: no sale, a card sale.
    for bad in ["", "no-es-una-venta", card_sale.as_str()] {
        let e = s
            .drawer_manual(&DrawerManual {
                op: fx.op(),
                sale: bad.into(),
            })
            .expect_err(bad);
        assert_eq!(e.status, 422, "{bad}: {}", e.message);
        assert_eq!(manual(&fx), 0);
    }
    // The cash sale: recorded; the same request again answers the same.
    let op = fx.op();
    let req = DrawerManual {
        op,
        sale: cash_sale.clone(),
    };
    let v = s.drawer_manual(&req).expect("recorded");
    let said = v["shown"]["text"].as_str().expect("text").to_owned();
    assert!(
        said.contains("Apertura manual de la gaveta registrada"),
        "{said}"
    );
    assert!(said.contains(&cash_sale), "{said}");
    s.drawer_manual(&req).expect("a retry is the same answer");
    assert_eq!(manual(&fx), 1);
    // A second opening of the same drawer is refused.
    let e = s
        .drawer_manual(&DrawerManual {
            op: fx.op(),
            sale: cash_sale,
        })
        .expect_err("twice");
    assert_eq!(e.status, 422, "{}", e.message);
    assert_eq!(manual(&fx), 1);
}

#[test]
fn a_retried_payment_whose_sale_was_made_does_not_ask_for_its_intent_again() {
    let mut fx = Fixture::new(39);
    // Every ask is counted; the hub is down, as in the test above.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let ask = caja_node::ui::screen::AskIntents(Box::new(move |_sale, paid| {
        counted.fetch_add(1, Ordering::SeqCst);
        paid.iter()
            .enumerate()
            .map(
                |(index, (method, amount, reference))| caja_node::sync::intents::SaleIntent {
                    index,
                    method: *method,
                    amount: *amount,
                    reference: reference.clone(),
                    intent_id: None,
                    error: Some("hub unreachable".into()),
                },
            )
            .collect()
    }));
    let s = screen(&fx, 40).with_intents(ask);
    open_shift(&mut fx, &s);
    let add = |fx: &mut Fixture| {
        s.add_line(&AddLine {
            op: fx.op(),
            entry: "ARROZ".into(),
        })
        .expect("add");
    };
    add(&mut fx);
    let op = fx.op();
    let qr = || {
        let mut qr = pay(op, "");
        qr.cash = None;
        qr.transfer = Some("65.00".into());
        qr.transfer_ref = Some("QR-5566".into());
        qr
    };
    let v = s.pay(&qr()).expect("paid by QR");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let said = v["shown"]["intents"]
        .as_str()
        .expect("intents said")
        .to_owned();
    let sold = head(&fx);

    // The answer was lost and the browser retries: the first answer again,
    // nothing asked.
    let v = s.pay(&qr()).expect("retry");
    assert_eq!(v["done"], Value::Bool(true));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(v["shown"]["intents"].as_str(), Some(said.as_str()));

    // The screen stopped after the sale and before it emptied the cart (the
    // cart still holds the line and the payment's op): the retry answers the
    // sale already made and shows what was said, without asking again.
    add(&mut fx);
    fx.register
        .conn()
        .execute("UPDATE ui_cart SET pay_op = ?1", [op.to_string()])
        .expect("cart as the stopped screen left it");
    let v = s.pay(&qr()).expect("retry through the sale");
    assert_eq!(v["done"], Value::Bool(true));
    assert_eq!(head(&fx), sold, "no second sale");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the intent was not asked again"
    );
    assert_eq!(v["shown"]["intents"].as_str(), Some(said.as_str()), "{v}");
}
