//! Property: for any sequence of register operations (valid or not), the
//! projections updated incrementally equal a rebuild from the journal, and every
//! closed shift's Z report equals the sums of its events.

mod common;

use caja_node::error::OpError;
use caja_node::register::CustomerRequest;
use caja_node::sale::PaymentRequest;
use caja_shared::ids::{CustomerId, SaleId};
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{Money, QtyMilli};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Open(i64),
    Sell {
        item: u8,
        qty: i64,
        method: u8,
        extra: i64,
    },
    Void(usize),
    Customer(i64),
    Fiado {
        customer: usize,
        qty: i64,
    },
    PayDebt {
        customer: usize,
        amount: i64,
    },
    Receive {
        item: u8,
        qty: i64,
    },
    Count {
        item: u8,
        qty: i64,
    },
    Close(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..100_000).prop_map(Op::Open),
        (0u8..3, 1i64..4, 0u8..3, 0i64..5000).prop_map(|(item, qty, method, extra)| Op::Sell {
            item,
            qty,
            method,
            extra
        }),
        (0usize..20).prop_map(Op::Void),
        (0i64..200_000).prop_map(Op::Customer),
        (0usize..5, 1i64..5).prop_map(|(customer, qty)| Op::Fiado { customer, qty }),
        (0usize..5, 1i64..50_000).prop_map(|(customer, amount)| Op::PayDebt { customer, amount }),
        (0u8..3, 1i64..50).prop_map(|(item, qty)| Op::Receive { item, qty }),
        (0u8..3, 0i64..50).prop_map(|(item, qty)| Op::Count { item, qty }),
        (0i64..1_000_000).prop_map(Op::Close),
    ]
}

const ITEMS: [(&str, i64); 3] = [
    ("ARROZ", 1000),
    ("2000000000017", 455),
    ("7460000000011", 1000),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn projections_equal_a_rebuild_and_z_reports_add_up(ops in prop::collection::vec(op(), 1..40), seed in any::<u64>()) {
        let mut f = Fixture::new(seed);
        let mut sales: Vec<SaleId> = Vec::new();
        let mut customers: Vec<CustomerId> = Vec::new();
        for o in ops {
            let id = f.op();
            let r: Result<(), OpError> = match o {
                Op::Open(float) => f.register.open_shift(id, "ana", Money(float)).map(drop),
                Op::Sell { item, qty, method, extra } => {
                    let (code, unit) = ITEMS[usize::from(item)];
                    let method = [PaymentMethod::Cash, PaymentMethod::Card, PaymentMethod::Transfer][usize::from(method)];
                    // Pay generously in cash, exactly otherwise (card/transfer give no change).
                    let probe = sale(vec![line(code, qty * unit)], vec![cash(i64::MAX / 8)]);
                    let total = caja_node::sale::build_sale(
                        &probe,
                        caja_node::sale::SaleContext { sale_id: "019aaf70-dbf4-7000-8000-00000000a001".parse().expect("id"), cashier: "x".into(), shift_id: "019aaf70-d618-7000-8000-00000000c001".parse().expect("id"), fiscal: None },
                        |c| caja_node::queries::lookup_item(f.register.conn(), c).ok().flatten(),
                        None,
                    ).map(|o| o.body.total.0).unwrap_or(1);
                    let amount = if method == PaymentMethod::Cash { total + extra } else { total };
                    let pay = PaymentRequest { method, amount, reference: Some("R1".into()) };
                    f.register.sell(id, &sale(vec![line(code, qty * unit)], vec![pay])).map(|s| sales.push(s.sale_id))
                }
                Op::Void(i) => match sales.get(i) {
                    Some(s) => f.register.void(id, *s, "prueba").map(drop),
                    None => Ok(()),
                },
                Op::Customer(limit) => f.register
                    .upsert_customer(id, &CustomerRequest { customer_id: None, name: "Cliente".into(), phone: None, tax_id: None, credit_limit: limit })
                    .map(|c| customers.push(c.customer_id)),
                Op::Fiado { customer, qty } => match customers.get(customer) {
                    Some(c) => {
                        let pay = PaymentRequest { method: PaymentMethod::Fiado, amount: qty * 6500, reference: None };
                        let mut r = sale(vec![line("ARROZ", qty * 1000)], vec![pay]);
                        r.customer = Some(*c);
                        f.register.sell(id, &r).map(|s| sales.push(s.sale_id))
                    }
                    None => Ok(()),
                },
                Op::PayDebt { customer, amount } => match customers.get(customer) {
                    Some(c) => f.register.pay_debt(id, *c, Money(amount), PaymentMethod::Cash).map(drop),
                    None => Ok(()),
                },
                Op::Receive { item, qty } => f.register.receive_stock(id, ITEMS[usize::from(item)].0, QtyMilli(qty * 1000), None).map(drop),
                Op::Count { item, qty } => f.register.count_stock(id, ITEMS[usize::from(item)].0, QtyMilli(qty * 1000)).map(drop),
                Op::Close(counted) => f.register.close_shift(id, Money(counted)).map(|c| {
                    // The Z report equals the sums of the shift's sales rows.
                    let (net, tax): (i64, i64) = f.register.conn().query_row(
                        "SELECT coalesce(sum(total), 0), coalesce(sum(tax), 0) FROM sales WHERE shift_id = ?1 AND voided_seq IS NULL",
                        [c.z.shift_id.to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    ).expect("sums");
                    assert_eq!(c.z.net_total.0 + voided_elsewhere(&f, &c.z), net);
                    assert_eq!(c.z.tax_total.0 + voided_tax_elsewhere(&f, &c.z), tax);
                }),
            };
            if let Err(e) = r {
                prop_assert!(e.is_validation(), "unexpected failure: {e}");
            }
        }
        let (live, rebuilt) = f.register.rebuild().expect("rebuild");
        prop_assert_eq!(live, rebuilt);
    }
}

/// Totals of this shift's sales voided in a later shift (counted there) minus
/// totals of earlier shifts' sales voided in this one (counted here).
fn voided_elsewhere(f: &Fixture, z: &caja_node::zreport::ZReport) -> i64 {
    cross_shift(f, z, "total")
}

fn voided_tax_elsewhere(f: &Fixture, z: &caja_node::zreport::ZReport) -> i64 {
    cross_shift(f, z, "tax")
}

fn cross_shift(f: &Fixture, z: &caja_node::zreport::ZReport, col: &str) -> i64 {
    let sql = format!(
        "SELECT coalesce(sum(CASE WHEN shift_id = ?1 AND voided_seq > ?3 THEN -{col}
                                 WHEN shift_id != ?1 AND voided_seq BETWEEN ?2 AND ?3 THEN {col}
                                 ELSE 0 END), 0) FROM sales",
    );
    f.register
        .conn()
        .query_row(
            &sql,
            rusqlite::params![
                z.shift_id.to_string(),
                z.first_seq as i64,
                z.last_seq as i64
            ],
            |r| r.get(0),
        )
        .expect("cross-shift sums")
}
