use std::collections::{BTreeMap, HashMap, VecDeque};

use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::event::Event;
use caja_shared::hlc::Hlc;
use caja_shared::kind::{CatalogItemUpserted, PriceSet, SoldBy, StockPolicy};
use caja_shared::money::{Money, TaxRateBp};
use proptest::prelude::*;

use super::*;
use crate::hubchain::{self, HubChainHead};
use crate::ingest::{admit, Admission, Candidate, MemoryIndex};
use crate::workload::Workload;

const STORE: &str = "01935f4e-8a00-7000-8000-0000000000a1";
const T0: i64 = 1_763_880_000_000;

fn meta(e: &Event, origin: Origin) -> EventMeta<'_> {
    let env = e.envelope();
    EventMeta {
        event_id: env.event_id,
        store: env.store,
        device: env.device,
        seq: env.seq.get(),
        hlc: env.hlc,
        origin,
        deps: &env.deps,
    }
}

/// A history: the registers' chains and the hub chain, per device in seq order.
fn history(seed: u64, n: usize) -> Vec<Vec<(Event, Origin)>> {
    let store: StoreId = STORE.parse().unwrap();
    let mut w = Workload::with_new_registers(seed, store, 3);
    let mut rng = SeededRandom::new(seed);
    let mut hub = HubChainHead {
        store,
        device: "01935f4e-8a00-7000-8000-0000000000b1".parse().unwrap(),
        seq: 0,
        hash: Hash256::ZERO,
        last_hlc: Hlc::ZERO,
    };
    let mut hub_events = vec![];
    for i in 0..n {
        let now = T0 + i64::try_from(i).unwrap() * 1000;
        if rng.next_u64() % 10 == 0 {
            let product: Sku = crate::workload::PRODUCTS[i % 5].0.parse().unwrap();
            let body = if i % 2 == 0 {
                EventBody::PriceSet(PriceSet {
                    product,
                    unit_price: Money(i64::try_from(i).unwrap() * 10),
                })
            } else {
                EventBody::CatalogItemUpserted(CatalogItemUpserted {
                    product,
                    name: format!("item {i}"),
                    barcodes: vec![],
                    tax_bp: TaxRateBp::new(1800).unwrap(),
                    sold_by: SoldBy::Unit,
                    policy: StockPolicy::Warn,
                })
            };
            let (e, next) = hubchain::next_event(&hub, body, now, &mut rng).unwrap();
            hub = next;
            hub_events.push((e, Origin::Hub));
        } else {
            let r = usize::try_from(rng.next_u64() % 3).unwrap();
            w.next(r, now);
        }
    }
    let mut chains: Vec<Vec<(Event, Origin)>> = w
        .registers
        .iter()
        .map(|r| {
            r.events
                .iter()
                .map(|e| (e.clone(), Origin::Register))
                .collect()
        })
        .collect();
    chains.push(hub_events);
    chains
}

/// Applies the history arriving in an order picked by `order_seed` (each
/// device's events in their own order, devices interleaved at random) through
/// the causal gate, and returns the projections.
fn replay(chains: &[Vec<(Event, Origin)>], order_seed: u64) -> (Projections, usize) {
    let mut rng = SeededRandom::new(order_seed);
    let mut queues: Vec<VecDeque<&(Event, Origin)>> =
        chains.iter().map(|c| c.iter().collect()).collect();
    let by_id: HashMap<EventId, &(Event, Origin)> =
        chains.iter().flatten().map(|x| (x.0.id(), x)).collect();
    let mut previous: HashMap<EventId, EventId> = HashMap::new();
    for c in chains {
        for pair in c.windows(2) {
            previous.insert(pair[1].0.id(), pair[0].0.id());
        }
    }
    let mut idx = MemoryIndex::default();
    let mut p = Projections::default();
    let mut applied = 0;
    loop {
        let live: Vec<usize> = (0..queues.len())
            .filter(|i| !queues[*i].is_empty())
            .collect();
        if live.is_empty() {
            break;
        }
        let q = live[usize::try_from(rng.next_u64() % live.len() as u64).unwrap()];
        let (e, _) = queues[q].pop_front().unwrap();
        let got = admit(
            &mut idx,
            &Candidate {
                id: e.id(),
                deps: &e.envelope().deps,
                previous: previous.get(&e.id()).copied(),
            },
        )
        .unwrap();
        if let Admission::Applied { released } = got {
            for id in std::iter::once(e.id()).chain(released) {
                let (ev, origin) = by_id[&id];
                p.apply_event(&meta(ev, *origin), &ev.body().unwrap());
                applied += 1;
            }
        }
    }
    assert!(idx.held().is_empty());
    (p, applied)
}

#[test]
fn a_workload_has_every_kind_of_fact_and_some_conflicts() {
    let chains = history(11, 600);
    let (p, applied) = replay(&chains, 1);
    assert_eq!(applied, chains.iter().map(Vec::len).sum::<usize>());
    let mut kinds = BTreeMap::new();
    for f in p.all() {
        *kinds.entry(rank(f).0).or_insert(0) += 1;
    }
    for k in [0u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
        assert!(kinds.contains_key(&k), "no fact of rank {k}: {kinds:?}");
    }
    let s = p.summary();
    assert!(!s.shifts.is_empty() && !s.stock.is_empty() && !s.debts.is_empty());
    let reasons: Vec<&str> = p.conflicts().iter().map(|c| c.reason).collect();
    assert!(reasons.contains(&"duplicate_fiscal_number"), "{reasons:?}");
    assert!(reasons.contains(&"debt_overpaid"), "{reasons:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// DESIGN invariant 5: the projections and the conflicts are a function of the
    /// set of events, whatever causal order they were applied in.
    #[test]
    fn projections_do_not_depend_on_arrival_order(seed in 0u64..1000, a in any::<u64>(), b in any::<u64>()) {
        let chains = history(seed, 150);
        let (pa, _) = replay(&chains, a);
        let (pb, _) = replay(&chains, b);
        prop_assert_eq!(pa.digest(), pb.digest());
        prop_assert_eq!(pa, pb);
    }
}

#[test]
fn lww_and_server_wins_pick_the_same_winner_in_any_order() {
    let c: CustomerId = "01935f4e-8a00-7000-8000-0000000000c1".parse().unwrap();
    let e1: EventId = "019aaf70-d618-7000-8000-000000000001".parse().unwrap();
    let e2: EventId = "019aaf70-d618-7000-8000-000000000002".parse().unwrap();
    let d: DeviceId = "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap();
    let older = Fact::Customer {
        customer_id: c,
        event_id: e1,
        hlc: Hlc::new(5, 0).unwrap(),
        device: d,
        body: "a".into(),
    };
    let newer = Fact::Customer {
        customer_id: c,
        event_id: e2,
        hlc: Hlc::new(5, 1).unwrap(),
        device: d,
        body: "b".into(),
    };
    let mut x = Projections::default();
    x.apply(older.clone());
    x.apply(newer.clone());
    let mut y = Projections::default();
    y.apply(newer.clone());
    y.apply(older);
    assert_eq!(x, y);
    assert_eq!(x.all().next(), Some(&newer));
}

#[test]
fn conflict_ids_are_stable_uuids() {
    let a = conflict_id("duplicate_fiscal_number", "fiscal:B02:B0200000001");
    assert_eq!(
        a,
        conflict_id("duplicate_fiscal_number", "fiscal:B02:B0200000001")
    );
    assert_ne!(
        a,
        conflict_id("duplicate_fiscal_number", "fiscal:B02:B0200000002")
    );
    assert_eq!(a.to_string().as_bytes()[14], b'8');
}
