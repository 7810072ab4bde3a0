//! Fiscal blocks at the register, in process with a manual clock: a block is
//! used lowest number first, an expired block is never used and is released
//! at shift close, a block granted for another register or for a request this
//! database did not make is never used, and refusals change nothing.

mod common;

use caja_node::error::{OpError, Refusal};
use caja_shared::entropy::SeededRandom;
use caja_shared::ids::{DeviceId, GrantId, RequestId};
use caja_shared::kind::{EventBody, FiscalRangeGranted};
use caja_shared::money::Money;
use common::*;

/// Grants blocks (device, request, first, last, expires) as the next page of
/// the hub chain.
fn grant(f: &mut Fixture, blocks: &[(DeviceId, RequestId, u64, u64, i64)]) {
    let conn = f.register.conn();
    let (seq, hash): (i64, String) = conn
        .query_row("SELECT max(seq), (SELECT hash FROM hub_events ORDER BY seq DESC LIMIT 1) FROM hub_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("hub head");
    let mut rng = SeededRandom::new(seq.unsigned_abs());
    let bodies = blocks
        .iter()
        .map(|(device, request, first, last, expires)| {
            EventBody::FiscalRangeGranted(FiscalRangeGranted {
                grant_id: GrantId::new_v7(START_MS, &mut rng).expect("id"),
                device: *device,
                request_id: *request,
                series: "B02".into(),
                digits: 8,
                first: *first,
                last: *last,
                expires_ms: *expires,
                valid_until: "2099-12-31".into(),
            })
        })
        .collect();
    let (events, cp) = caja_node::testkit::hub_chain_page(
        &hub_key(),
        &"hub-1".parse().expect("key id"),
        STORE.parse().expect("store"),
        HUB_CHAIN.parse().expect("chain"),
        seq.unsigned_abs() + 1,
        hash.parse().expect("hash"),
        START_MS,
        bodies,
        &mut rng,
    )
    .expect("page");
    f.register
        .import_hub_events(&events, &cp.expect("checkpoint"))
        .expect("import");
}

fn fiscal_fixture(seed: u64) -> Fixture {
    let mut f = Fixture::new(seed);
    std::fs::write(
        f.data.root().join("config.toml"),
        "fiscal_documents = [\"B02\"]\nfiscal_block_size = 10\nfiscal_low_water = 2\n",
    )
    .expect("config");
    f.reopen();
    f
}

fn request(f: &mut Fixture, n: u64) -> RequestId {
    let id: RequestId = format!("019aaf70-0000-7000-8000-{n:012x}")
        .parse()
        .expect("id");
    caja_node::fiscal::record_request(f.register.conn(), id, "B02", 10, START_MS).expect("record");
    id
}

#[test]
fn blocks_are_used_lowest_first_and_expired_or_foreign_blocks_never() {
    let mut f = fiscal_fixture(1);
    let me = f.register.device().device;
    let other: DeviceId = "01935f4e-8a00-7000-8000-0000000000ff".parse().expect("id");
    let (r1, r2) = (request(&mut f, 1), request(&mut f, 2));
    let unknown: RequestId = "019aaf70-0000-7000-8000-0000000000ee".parse().expect("id");
    grant(
        &mut f,
        &[
            (me, r1, 21, 22, START_MS + 60_000),       // expires in a minute
            (me, r2, 31, 40, START_MS + 86_400_000),   // a day
            (other, r1, 1, 10, START_MS + 86_400_000), // another register's
            (me, unknown, 11, 20, START_MS + 86_400_000), // not asked by this database
        ],
    );
    let op = f.op();
    f.register.open_shift(op, "ana", Money(0)).expect("shift");
    let mut used = Vec::new();
    for _ in 0..3 {
        let op = f.op();
        let r = f
            .register
            .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(10_000)]))
            .expect("sale");
        used.push(r.fiscal_number.expect("number"));
    }
    assert_eq!(used, ["B0200000021", "B0200000022", "B0200000031"]);
    // Past the first block's expiry nothing changes for the second block.
    f.clock.set(START_MS + 120_000);
    let op = f.op();
    let r = f
        .register
        .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(10_000)]))
        .expect("sale");
    assert_eq!(r.fiscal_number.as_deref(), Some("B0200000032"));
    assert_eq!(
        caja_node::fiscal::numbers_left(f.register.conn(), me, "B02", START_MS + 120_000)
            .expect("left"),
        8
    );
    // Past the second's expiry: refused, and nothing written.
    f.clock.set(START_MS + 86_400_001);
    let before = caja_node::projection::digest(f.register.conn()).expect("digest");
    let op = f.op();
    let refused = f
        .register
        .sell(op, &sale(vec![line("ARROZ", 1000)], vec![cash(10_000)]));
    assert!(
        matches!(&refused, Err(OpError::Refused(Refusal::FiscalExhausted(s))) if s == "B02"),
        "{refused:?}"
    );
    assert_eq!(
        caja_node::projection::digest(f.register.conn()).expect("digest"),
        before
    );
    // Shift close gives back the unused numbers of the expired blocks only
    // (the first was used up): 33..=40.
    let op = f.op();
    f.register.close_shift(op, Money(40_000)).expect("close");
    let released: Vec<(String, i64, i64)> = {
        let mut stmt = f
            .register
            .conn()
            .prepare("SELECT grant_id, next, released_from FROM fiscal_blocks WHERE released_from IS NOT NULL")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!((released[0].1, released[0].2), (33, 33));
    let kinds: i64 = f
        .register
        .conn()
        .query_row(
            "SELECT count(*) FROM journal WHERE kind = 'FiscalNumbersReleased'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kinds, 1);
    let (live, rebuilt) = f.register.rebuild().expect("rebuild");
    assert_eq!(
        live, rebuilt,
        "fiscal blocks rebuild from the hub chain and the journal"
    );
}
