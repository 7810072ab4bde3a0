//! The cashier screen's operations without HTTP (`caja_node::ui::screen`), on
//! a real register database and a virtual Toledo scale on a pty: cart lines
//! once per op id and kept across a restart, weighed lines from the scale, a
//! sale made once however the payment is retried (also when the node stopped
//! between the sale and emptying the cart), bad input refused in Spanish with
//! nothing changed, shift close with the Z report, cash movements, returns,
//! reprints once per op id.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use caja_node::journal::Journal;
use caja_node::register::Register;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::ui::screen::{
    AddLine, Cash, OpOnly, Pay, RemoveLine, Reprint, Return, ReturnLine, Screen, ShiftClose,
    ShiftOpen,
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
        fiado: None,
        customer: None,
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
            fiado: None,
            customer: None,
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
            }],
            refund: "cash".into(),
            approver: None,
            pin: None,
        })
        .expect("returned");
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
