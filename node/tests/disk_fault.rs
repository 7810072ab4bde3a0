//! A register whose disk cannot write: SQLite's `max_page_count` pinned to
//! the database's size makes every write that needs a new page fail with
//! `SQLITE_FULL`, as a full disk does. The register refuses with one Spanish
//! sentence, keeps every sale it confirmed, half-applies none, and sells
//! again once the disk has room.

mod common;

use caja_shared::money::Money;
use common::*;

fn journal_sales(f: &Fixture) -> (i64, i64, i64) {
    let c = f.register.conn();
    let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    (
        one("SELECT count(*) FROM journal WHERE kind = 'SaleCreated'"),
        one("SELECT count(*) FROM sales"),
        one("SELECT count(*) FROM ops WHERE kind = 'sell'"),
    )
}

fn set_disk_full(f: &Fixture, full: bool) {
    let sql = if full {
        "PRAGMA max_page_count = 1"
    } else {
        "PRAGMA max_page_count = 4294967294"
    };
    f.register
        .conn()
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .expect("max_page_count");
}

#[test]
fn a_full_disk_refuses_the_sale_in_spanish_keeps_every_confirmed_one_and_sells_again_when_it_has_room(
) {
    let mut f = Fixture::new(26);
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("open");
    let mut confirmed = Vec::new();
    for _ in 0..3 {
        let op = f.op();
        let s = f
            .register
            .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(20000)]))
            .expect("sale");
        confirmed.push(s.sale_id);
    }
    set_disk_full(&f, true);
    // Sell until the disk is out of room (a few may still fit in free pages).
    let mut refused = None;
    for _ in 0..2000 {
        let op = f.op();
        let big: Vec<_> = (0..40).map(|_| line("ARROZ", 1000)).collect();
        match f.register.sell(op, &sale(big, vec![cash(1_000_000)])) {
            Ok(s) => confirmed.push(s.sale_id),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("a full disk refuses a sale");
    assert!(e.is_disk_fault(), "{e:?}");
    let text = caja_node::messages::error(&e);
    assert!(
        text.contains("disco") && text.contains("NO se registró"),
        "{text}"
    );
    // Nothing half-applied: journal, projection and op records agree, and
    // every confirmed sale is there.
    let n = i64::try_from(confirmed.len()).expect("n");
    assert_eq!(journal_sales(&f), (n, n, n));
    // It keeps refusing while the disk is full, and nothing moves.
    let op = f.op();
    let again = f
        .register
        .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(20000)]))
        .expect_err("still full");
    assert!(again.is_disk_fault(), "{again:?}");
    assert_eq!(journal_sales(&f), (n, n, n));
    // The disk has room again: it sells, the chain verifies, the projections
    // equal a rebuild, and a reopen finds every confirmed sale.
    set_disk_full(&f, false);
    let op = f.op();
    f.register
        .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(20000)]))
        .expect("sells again");
    let (live, rebuilt) = f.register.rebuild().expect("rebuild");
    assert_eq!(live, rebuilt);
    f.reopen();
    assert_eq!(journal_sales(&f), (n + 1, n + 1, n + 1));
}
