//! The register's operations on a real SQLite file: a whole shift, retries by
//! op id, and invalid operations that must change nothing.

mod common;

use caja_node::error::{OpError, Refusal};
use caja_node::journal::Journal;
use caja_node::projection;
use caja_node::register::CustomerRequest;
use caja_node::sale::{PaymentRequest, SaleError};
use caja_shared::ids::{CustomerId, SaleId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{Money, QtyMilli};
use common::*;

/// Everything an operation could change, logically: journal head, checkpoints,
/// op ids, hub chain and every projection row.
fn snapshot(f: &Fixture) -> (u64, String, i64, i64, i64, String) {
    let c = f.register.conn();
    let head = Journal::head(c).expect("head");
    let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).expect("count");
    (
        head.seq,
        head.hash.to_hex(),
        count("SELECT count(*) FROM checkpoints"),
        count("SELECT count(*) FROM ops"),
        count("SELECT count(*) FROM hub_events"),
        projection::digest(c).expect("digest").to_hex(),
    )
}

#[test]
fn a_whole_shift_adds_up_and_survives_a_reopen() {
    let mut f = Fixture::new(1);
    let op = f.op();
    let shift = f
        .register
        .open_shift(op, "ana", Money(500_000))
        .expect("open");
    assert_eq!(shift.seq, 1);
    let op = f.op();
    let s1 = f
        .register
        .sell(
            op,
            &sale(
                vec![line("ARROZ", 2000), line("2000000000017", 455)],
                vec![cash(40000)],
            ),
        )
        .expect("sale 1");
    assert_eq!(
        (s1.total, s1.tax, s1.change),
        (Money(30290), Money(1983), Money(9710))
    );
    let op = f.op();
    let s2 = f
        .register
        .sell(
            op,
            &sale(vec![line("7460000000011", 1000)], vec![cash(9500)]),
        )
        .expect("sale 2");
    let op = f.op();
    f.register
        .void(op, s2.sale_id, "cliente desistió")
        .expect("void");
    let op = f.op();
    let customer = f
        .register
        .upsert_customer(
            op,
            &CustomerRequest {
                customer_id: None,
                name: "Doña Rosa".into(),
                phone: Some("809-555-0101".into()),
                tax_id: None,
                credit_limit: 50_000,
            },
        )
        .expect("customer");
    let op = f.op();
    let mut fiado = sale(
        vec![line("ARROZ", 3000)],
        vec![PaymentRequest {
            method: PaymentMethod::Fiado,
            amount: 19500,
            reference: None,
        }],
    );
    fiado.customer = Some(customer.customer_id);
    let s3 = f.register.sell(op, &fiado).expect("fiado sale");
    assert_eq!(s3.fiado, Money(19500));
    assert!(s3.debt_id.is_some());
    let op = f.op();
    let paid = f
        .register
        .pay_debt(op, customer.customer_id, Money(5000), PaymentMethod::Cash)
        .expect("debt payment");
    assert_eq!(paid.balance, Money(14500));
    let op = f.op();
    f.register
        .receive_stock(op, "ARROZ", QtyMilli(24_000), Some("factura 1234"))
        .expect("receive");
    let op = f.op();
    f.register
        .count_stock(op, "ARROZ", QtyMilli(18_000))
        .expect("count");

    let z = f.register.z_report(None).expect("z of the open shift");
    assert_eq!(z.sales_count, 3);
    assert_eq!(z.voids_count, 1);
    assert_eq!(z.net_total, Money(30290 + 19500));
    assert_eq!(z.fiado_given, Money(19500));
    assert_eq!(z.fiado_collected, Money(5000));
    assert_eq!(z.expected_cash, Money(500_000 + 30290 + 5000));

    let op = f.op();
    let closed = f.register.close_shift(op, Money(535_000)).expect("close");
    assert_eq!(closed.z.cash_difference, Some(Money(-290)));
    assert!(closed.z.closed);
    // A retried close answers the same Z report (read back from the op record).
    assert_eq!(
        f.register.close_shift(op, Money(535_000)).expect("retry"),
        closed
    );
    let cp = Journal::latest_checkpoint(f.register.conn())
        .expect("cp")
        .expect("a checkpoint at close");
    assert_eq!(cp.checkpoint.seq.get(), closed.seq);

    // Stock: 24 received, 2 + 3 sold, counted 18 → the count event carries -1 000.
    let stock: i64 = f
        .register
        .conn()
        .query_row(
            "SELECT qty_milli FROM stock WHERE sku = '7501234567890'",
            [],
            |r| r.get(0),
        )
        .expect("stock row");
    assert_eq!(stock, 18_000);

    // Reopen the same files: the chain verifies and projections equal a rebuild.
    let before = snapshot(&f);
    f.reopen();
    assert_eq!(snapshot(&f), before);
    let (live, rebuilt) = f.register.rebuild().expect("rebuild");
    assert_eq!(
        live, rebuilt,
        "projections must equal a rebuild from the journal"
    );
}

#[test]
fn a_retried_operation_is_applied_once_and_answers_the_first_result() {
    let mut f = Fixture::new(2);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("open");
    let op = f.op();
    let req = sale(vec![line("ARROZ", 1000)], vec![cash(10000)]);
    let first = f.register.sell(op, &req).expect("sale");
    let after_first = snapshot(&f);
    for _ in 0..3 {
        let again = f.register.sell(op, &req).expect("retry");
        assert_eq!(again, first);
        assert_eq!(snapshot(&f), after_first, "a retry writes nothing");
    }
    // Across a restart too.
    f.reopen();
    assert_eq!(
        f.register.sell(op, &req).expect("retry after reopen"),
        first
    );
    // The same id for another request is refused, and changes nothing.
    let other = sale(vec![line("ARROZ", 2000)], vec![cash(20000)]);
    assert!(matches!(
        f.register.sell(op, &other),
        Err(OpError::Refused(Refusal::OpIdReused(_)))
    ));
    assert_eq!(snapshot(&f), after_first);
}

#[test]
fn every_invalid_operation_changes_nothing() {
    let mut f = Fixture::new(3);
    // Before a shift is open.
    let before = snapshot(&f);
    let op = f.op();
    assert!(matches!(
        f.register
            .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(6500)])),
        Err(OpError::Refused(Refusal::ShiftNotOpen))
    ));
    assert_eq!(snapshot(&f), before);
    let op = f.op();
    assert!(matches!(
        f.register.close_shift(op, Money(0)),
        Err(OpError::Refused(Refusal::ShiftNotOpen))
    ));
    assert_eq!(snapshot(&f), before);

    let op = f.op();
    f.register.open_shift(op, "ana", Money(1000)).expect("open");
    let op = f.op();
    let sold = f
        .register
        .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(6500)]))
        .expect("sale");
    let op = f.op();
    f.register
        .void(op, sold.sale_id, "error de digitación")
        .expect("void");
    let before = snapshot(&f);
    let unknown_customer: CustomerId = "019aaf70-dbf4-7000-8000-0000000c0001".parse().expect("id");
    let unknown_sale: SaleId = "019aaf70-dbf4-7000-8000-0000000a0009".parse().expect("id");

    type Attempt = Box<dyn Fn(&mut TestRegister, caja_shared::ids::OpId) -> Result<(), OpError>>;
    let attempts: Vec<(&str, Attempt)> = vec![
        (
            "second open shift",
            Box::new(|reg, op| reg.open_shift(op, "luis", Money(0)).map(drop)),
        ),
        (
            "empty cashier",
            Box::new(|reg, op| reg.open_shift(op, "  ", Money(0)).map(drop)),
        ),
        (
            "unknown item",
            Box::new(|reg, op| {
                reg.sell(op, &sale(vec![line("NOPE", 1000)], vec![cash(1)]))
                    .map(drop)
            }),
        ),
        (
            "negative quantity",
            Box::new(|reg, op| {
                reg.sell(op, &sale(vec![line("ARROZ", -1000)], vec![cash(1)]))
                    .map(drop)
            }),
        ),
        (
            "payment short",
            Box::new(|reg, op| {
                reg.sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(6499)]))
                    .map(drop)
            }),
        ),
        (
            "fiado without customer",
            Box::new(|reg, op| {
                let pay = PaymentRequest {
                    method: PaymentMethod::Fiado,
                    amount: 6500,
                    reference: None,
                };
                reg.sell(op, &sale(vec![line("ARROZ", 1000)], vec![pay]))
                    .map(drop)
            }),
        ),
        (
            "fiado to unknown customer",
            Box::new(move |reg, op| {
                let pay = PaymentRequest {
                    method: PaymentMethod::Fiado,
                    amount: 6500,
                    reference: None,
                };
                let mut r = sale(vec![line("ARROZ", 1000)], vec![pay]);
                r.customer = Some(unknown_customer);
                reg.sell(op, &r).map(drop)
            }),
        ),
        (
            "void twice",
            Box::new(move |reg, op| reg.void(op, sold.sale_id, "otra vez").map(drop)),
        ),
        (
            "void unknown sale",
            Box::new(move |reg, op| reg.void(op, unknown_sale, "x").map(drop)),
        ),
        (
            "void without reason",
            Box::new(move |reg, op| reg.void(op, sold.sale_id, "").map(drop)),
        ),
        (
            "debt payment of unknown customer",
            Box::new(move |reg, op| {
                reg.pay_debt(op, unknown_customer, Money(1), PaymentMethod::Cash)
                    .map(drop)
            }),
        ),
        (
            "debt payment of zero",
            Box::new(move |reg, op| {
                reg.pay_debt(op, unknown_customer, Money(0), PaymentMethod::Cash)
                    .map(drop)
            }),
        ),
        (
            "receive unknown product",
            Box::new(|reg, op| {
                reg.receive_stock(op, "NOPE", QtyMilli(1000), None)
                    .map(drop)
            }),
        ),
        (
            "receive zero",
            Box::new(|reg, op| reg.receive_stock(op, "ARROZ", QtyMilli(0), None).map(drop)),
        ),
        (
            "negative count",
            Box::new(|reg, op| reg.count_stock(op, "ARROZ", QtyMilli(-1)).map(drop)),
        ),
        (
            "negative credit limit",
            Box::new(|reg, op| {
                let r = CustomerRequest {
                    customer_id: None,
                    name: "x".into(),
                    phone: None,
                    tax_id: None,
                    credit_limit: -1,
                };
                reg.upsert_customer(op, &r).map(drop)
            }),
        ),
        (
            "update unknown customer",
            Box::new(move |reg, op| {
                let r = CustomerRequest {
                    customer_id: Some(unknown_customer),
                    name: "x".into(),
                    phone: None,
                    tax_id: None,
                    credit_limit: 0,
                };
                reg.upsert_customer(op, &r).map(drop)
            }),
        ),
        (
            "negative counted cash",
            Box::new(|reg, op| reg.close_shift(op, Money(-1)).map(drop)),
        ),
    ];
    for (what, attempt) in attempts {
        let op = f.op();
        let err = attempt(&mut f.register, op).expect_err(what);
        assert!(
            err.is_validation(),
            "{what}: {err} should be a validation error"
        );
        assert_eq!(snapshot(&f), before, "{what} changed the database");
    }
}

#[test]
fn fiado_beyond_the_credit_limit_is_refused_and_names_payments() {
    let mut f = Fixture::new(4);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("open");
    let op = f.op();
    let c = f
        .register
        .upsert_customer(
            op,
            &CustomerRequest {
                customer_id: None,
                name: "Juan".into(),
                phone: None,
                tax_id: None,
                credit_limit: 10000,
            },
        )
        .expect("customer");
    let before = snapshot(&f);
    let pay = PaymentRequest {
        method: PaymentMethod::Fiado,
        amount: 13000,
        reference: None,
    };
    let mut r = sale(vec![line("ARROZ", 2000)], vec![pay]);
    r.customer = Some(c.customer_id);
    let op = f.op();
    match f.register.sell(op, &r) {
        Err(OpError::Refused(Refusal::Sale(e @ SaleError::CreditLimitExceeded { .. }))) => {
            assert_eq!(e.field(), "payments")
        }
        other => panic!("expected credit limit exceeded, got {other:?}"),
    }
    assert_eq!(snapshot(&f), before);
}

/// A register selling with its WAL checkpointer: the thread copies the WAL
/// in passes, the WAL stays within its bound over many sales, and after the
/// checkpointer stops (joined) and the register opens again every sale is
/// there, the chain verifies and the projections equal a rebuild.
#[test]
fn sales_with_the_checkpointer_keep_the_wal_bounded_and_every_sale() {
    let mut f = Fixture::new(71);
    let op = f.op();
    f.register
        .open_shift(op, "ana", Money(0))
        .expect("shift opens");
    let policy = caja_node::checkpointer::CheckpointPolicy {
        start_pages: 60,
        hard_pages: 300,
        idle_ms: 0,
    };
    assert!(f.register.start_checkpointer(policy).expect("starts"));
    let req = sale(
        vec![line("ARROZ", 2000), line("2000000000017", 455)],
        vec![cash(100_000)],
    );
    for _ in 0..150 {
        let op = f.op();
        f.register.sell(op, &req).expect("sells");
    }
    let s = f.register.stop_checkpointer().expect("it ran");
    assert_eq!((s.commits, s.failed), (150, 0), "{s:?}");
    assert!(s.thread_checkpoints >= 1, "{s:?}");
    assert!(s.writer_checkpoints >= 1, "{s:?}");
    // The bound and a couple of sales (~15 frames each).
    assert!(s.max_wal_pages <= 300 + 40, "{s:?}");
    f.reopen();
    let c = f.register.conn();
    let n: i64 = c
        .query_row("SELECT count(*) FROM sales", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 150);
    let key = caja_node::keyfile::read_key_file(&f.data.key_path()).expect("key");
    Journal::verify(c, &key, None, |_, _| {}).expect("the chain verifies");
    let live = projection::digest(c).expect("digest");
    projection::rebuild(c).expect("rebuild");
    assert_eq!(projection::digest(c).expect("digest"), live);
}
