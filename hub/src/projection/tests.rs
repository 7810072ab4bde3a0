use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::event::Event;
use caja_shared::hlc::Hlc;
use caja_shared::kind::{CatalogItemUpserted, PriceSet, SoldBy, StockPolicy};
use caja_shared::money::{Money, TaxRateBp};
use proptest::prelude::*;

use caja_shared::digest::Hash256;
use caja_shared::ids::{CustomerId, DeviceId, EventId, Sku, StoreId};
use caja_shared::kind::{EventBody, PaymentMethod};

use super::projections::rank;
use super::*;
use crate::conflict::ConflictReason;
use crate::hubchain::{self, HubChainHead};
use crate::ingest::{admit, Admission, Candidate, MemoryIndex};
use crate::workload::Workload;

pub(crate) const STORE: &str = "01935f4e-8a00-7000-8000-0000000000a1";
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
pub(crate) fn history(seed: u64, n: usize) -> Vec<Vec<(Event, Origin)>> {
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
    let reasons: Vec<&str> = p.conflicts().iter().map(|c| c.reason.as_str()).collect();
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

/// A history built for conflicts: registers with skewed clocks that sell at
/// the price they last pulled (so some sell at a stale one), fiado sales whose
/// debts other registers pay while the sale is voided elsewhere, overpaid
/// debts, customers edited at several registers, hub price changes; then the
/// hub resolves some of the conflicts the set has (a resolution's deps are
/// its candidates), and later events reopen some of them.
pub(crate) mod conflicts {
    use super::*;
    use crate::conflict::STALE_PRICE_GRACE_MS;
    use crate::workload::Register;
    use caja_shared::ids::{CustomerId, DebtId, PaymentId, SaleId};
    use caja_shared::key::DeviceKey;
    use caja_shared::kind::{
        Approval, ConflictResolved, CustomerUpserted, DebtOpened, DebtPaymentTaken, DrawerOpened,
        FiscalRef, Payment, PriceOverride, ReturnLine, Role, SaleCreated, SaleLine, SaleReturned,
        SaleVoided, UnknownOriginal,
    };
    use caja_shared::money::QtyMilli;

    const PRODUCTS: [&str; 2] = ["rice-1kg", "oil-1l"];
    const PRICES: [i64; 3] = [1000, 1005, 1300];

    struct Gen {
        rng: SeededRandom,
        store: StoreId,
        regs: Vec<Register>,
        skew_ms: Vec<i64>,
        /// The hub seq of the last hub event each register pulled.
        known: Vec<u64>,
        hub: HubChainHead,
        hub_events: Vec<Event>,
        /// (hub seq, product index, price)
        prices: Vec<(u64, usize, i64)>,
        sales: Vec<(SaleId, EventId, i64)>,
        /// Per sale in `sales`: its product index and fiscal number.
        sale_info: Vec<(usize, String)>,
        debts: Vec<(DebtId, CustomerId, EventId, i64)>,
        customers: Vec<CustomerId>,
        fiscal_next: u64,
    }

    impl Gen {
        fn new(seed: u64) -> Gen {
            let mut rng = SeededRandom::new(seed);
            let store: StoreId = STORE.parse().unwrap();
            let regs = (0..3)
                .map(|_| {
                    Register::new(
                        DeviceId::new_v7(1_700_000_000_000, &mut rng).unwrap(),
                        DeviceKey::generate(&mut rng),
                        "k1".parse().unwrap(),
                    )
                })
                .collect();
            let customers = (0..3)
                .map(|_| CustomerId::new_v7(T0, &mut rng).unwrap())
                .collect();
            Gen {
                rng,
                store,
                regs,
                // One register's clock runs 15 min ahead, one 15 min behind.
                skew_ms: vec![0, 900_000, -900_000],
                known: vec![0; 3],
                hub: HubChainHead {
                    store,
                    device: "01935f4e-8a00-7000-8000-0000000000b1".parse().unwrap(),
                    seq: 0,
                    hash: Hash256::ZERO,
                    last_hlc: Hlc::ZERO,
                },
                hub_events: vec![],
                prices: vec![],
                sales: vec![],
                sale_info: vec![],
                debts: vec![],
                customers,
                fiscal_next: 1,
            }
        }

        fn pick(&mut self, n: usize) -> usize {
            usize::try_from(self.rng.next_u64() % u64::try_from(n).unwrap()).unwrap()
        }

        fn hub_append(&mut self, body: EventBody, deps: Vec<EventId>, now: i64) -> Event {
            let (e, next) =
                hubchain::next_event_with_deps(&self.hub, body, deps, now, &mut self.rng).unwrap();
            self.hub = next;
            self.hub_events.push(e.clone());
            e
        }

        fn append(&mut self, r: usize, body: EventBody, deps: Vec<EventId>, now: i64) -> Event {
            let at = now + self.skew_ms[r];
            self.regs[r].append(self.store, body, deps, at, &mut self.rng)
        }

        fn step(&mut self, now: i64) {
            let r = self.pick(3);
            if self.pick(3) == 0 {
                // The register syncs: it knows every hub event so far.
                self.known[r] = self.hub.seq;
            }
            match self.pick(100) {
                0..=14 => {
                    let p = self.pick(PRODUCTS.len());
                    let price = PRICES[self.pick(PRICES.len())];
                    let body = EventBody::PriceSet(PriceSet {
                        product: PRODUCTS[p].parse().unwrap(),
                        unit_price: Money(price),
                    });
                    let e = self.hub_append(body, vec![], now);
                    self.prices.push((e.seq().get(), p, price));
                }
                15..=49 => {
                    let p = self.pick(PRODUCTS.len());
                    let known = self.known[r];
                    let price = self
                        .prices
                        .iter()
                        .rfind(|(seq, q, _)| *seq <= known && *q == p)
                        .map_or(PRICES[0], |x| x.2);
                    let sale_id = SaleId::new_v7(now, &mut self.rng).unwrap();
                    let i = self.pick(3);
                    let customer = self.customers[i];
                    let number = format!("B02{:08}", self.fiscal_next);
                    self.fiscal_next += 1;
                    // One sale in six at an approved price of its own: never
                    // a stale price, whatever the price in force.
                    let overridden = self.pick(6) == 0;
                    let price = if overridden { price / 2 } else { price };
                    let body = EventBody::SaleCreated(SaleCreated {
                        sale_id,
                        cashier: "ana".into(),
                        shift_id: None,
                        customer: Some(customer),
                        fiscal: Some(FiscalRef {
                            series: "B02".into(),
                            number: number.clone(),
                            valid_until: None,
                            buyer_tax_id: None,
                            buyer_name: None,
                            modifies: None,
                        }),
                        lines: vec![SaleLine {
                            product: PRODUCTS[p].parse().unwrap(),
                            name: PRODUCTS[p].into(),
                            qty_milli: QtyMilli(1000),
                            unit_price: Money(price),
                            tax_bp: TaxRateBp::ZERO,
                            discount: None,
                            total: Money(price),
                            tax: Money(0),
                            beyond_quota_milli: None,
                            price_override: overridden.then(|| PriceOverride {
                                shelf_price: Money(price * 2),
                                approval: Some(approval("price_override")),
                            }),
                        }],
                        total: Money(price),
                        tax: Money(0),
                        payments: vec![Payment {
                            method: PaymentMethod::Fiado,
                            amount: Money(price),
                            reference: None,
                        }],
                        change: Money(0),
                        approval: None,
                    });
                    let sale = self.append(r, body, vec![], now);
                    self.sales.push((sale_id, sale.id(), price));
                    self.sale_info.push((p, number));
                    let debt_id = DebtId::new_v7(now, &mut self.rng).unwrap();
                    let debt = self.append(
                        r,
                        EventBody::DebtOpened(DebtOpened {
                            debt_id,
                            customer,
                            sale_id: Some(sale_id),
                            amount: Money(price),
                        }),
                        vec![sale.id()],
                        now,
                    );
                    self.debts.push((debt_id, customer, debt.id(), price));
                }
                50..=61 if !self.sales.is_empty() => {
                    let i = self.pick(self.sales.len());
                    let (sale_id, event, _) = self.sales[i];
                    self.append(
                        r,
                        EventBody::SaleVoided(SaleVoided {
                            sale_id,
                            reason: "mistake".into(),
                            approval: None,
                            approved_by: None,
                        }),
                        vec![event],
                        now,
                    );
                }
                62..=79 if !self.debts.is_empty() => self.pay(r, now),
                80..=81 if !self.sales.is_empty() => self.return_line(r, now),
                82..=83 => self.return_unknown(r, now),
                84..=88 => self.spend_store_credit(r, now),
                89 => {
                    let movement_id =
                        caja_shared::ids::MovementId::new_v7(now, &mut self.rng).unwrap();
                    let shift_id = caja_shared::ids::ShiftId::new_v7(now, &mut self.rng).unwrap();
                    self.append(
                        r,
                        EventBody::DrawerOpened(DrawerOpened {
                            movement_id,
                            shift_id,
                            reason: "cambio".into(),
                            approval: Some(approval("drawer_open")),
                        }),
                        vec![],
                        now,
                    );
                }
                90 if !self.sales.is_empty() => {
                    // A cash sale's drawer opened apart from its receipt.
                    let i = self.pick(self.sales.len());
                    let (sale_id, event, _) = self.sales[i];
                    self.append(
                        r,
                        EventBody::SaleDrawerOpened(caja_shared::kind::SaleDrawerOpened {
                            sale_id: Some(sale_id),
                            return_id: None,
                            how: caja_shared::kind::DrawerHow::Pulse,
                            opened_ms: now,
                        }),
                        vec![event],
                        now,
                    );
                }
                _ => {
                    let i = self.pick(3);
                    let customer = self.customers[i];
                    let n = self.pick(1000);
                    self.append(
                        r,
                        EventBody::CustomerUpserted(CustomerUpserted {
                            customer_id: customer,
                            name: format!("name {n}"),
                            phone: None,
                            tax_id: None,
                            credit_limit: Money(100_000),
                        }),
                        vec![],
                        now,
                    );
                }
            }
        }

        /// A return by line of a known sale (1 of its 1 piece: a second one
        /// of the same sale is an over-return), refunded in cash or as store
        /// credit to the sale's customer.
        fn return_line(&mut self, r: usize, now: i64) {
            // One of the last sales: returns meet on few sales.
            let n = self.sales.len();
            let i = n - 1 - self.pick(n.min(2));
            let (sale_id, event, price) = self.sales[i];
            let p = self.sale_info[i].0;
            let c = self.pick(3);
            let customer = self.customers[c];
            let credit = self.pick(2) == 0;
            let return_id = caja_shared::ids::ReturnId::new_v7(now, &mut self.rng).unwrap();
            let shift_id = caja_shared::ids::ShiftId::new_v7(now, &mut self.rng).unwrap();
            self.append(
                r,
                EventBody::SaleReturned(SaleReturned {
                    return_id,
                    sale_id: Some(sale_id),
                    shift_id,
                    cashier: "ana".into(),
                    lines: vec![ReturnLine {
                        line: Some(0),
                        product: PRODUCTS[p].parse().unwrap(),
                        qty_milli: QtyMilli(1000),
                        total: Money(price),
                        tax: Money(0),
                        damaged: false,
                        tax_bp: None,
                    }],
                    total: Money(price),
                    tax: Money(0),
                    refund: if credit {
                        PaymentMethod::StoreCredit
                    } else {
                        PaymentMethod::Cash
                    },
                    customer: credit.then_some(customer),
                    credit_note: None,
                    approval: Some(approval("return")),
                    original_unknown: None,
                }),
                vec![event],
                now,
            );
        }

        /// A return whose original the register did not know: by a sale's
        /// id, by a sale's fiscal number, or by a number no sale has (yet);
        /// refunded as store credit. No deps: it may arrive before its sale.
        fn return_unknown(&mut self, r: usize, now: i64) {
            let c = self.pick(3);
            let customer = self.customers[c];
            let how = self.pick(3);
            let (sale_id, reference, p) = match (self.sales.len(), how) {
                (0, _) | (_, 2) => {
                    let k = self.pick(3);
                    (None, format!("B02{:08}", 90_000 + k), 0)
                }
                (n, 0) => {
                    let i = n - 1 - self.pick(n.min(2));
                    (
                        Some(self.sales[i].0),
                        self.sales[i].0.to_string(),
                        self.sale_info[i].0,
                    )
                }
                (n, _) => {
                    let i = n - 1 - self.pick(n.min(2));
                    (None, self.sale_info[i].1.clone(), self.sale_info[i].0)
                }
            };
            let amount = 500 + i64::try_from(self.pick(1000)).unwrap();
            let damaged = self.pick(4) == 0;
            let return_id = caja_shared::ids::ReturnId::new_v7(now, &mut self.rng).unwrap();
            let shift_id = caja_shared::ids::ShiftId::new_v7(now, &mut self.rng).unwrap();
            self.append(
                r,
                EventBody::SaleReturned(SaleReturned {
                    return_id,
                    sale_id,
                    shift_id,
                    cashier: "ana".into(),
                    lines: vec![ReturnLine {
                        line: None,
                        product: PRODUCTS[p].parse().unwrap(),
                        qty_milli: QtyMilli(1000),
                        total: Money(amount),
                        tax: Money(0),
                        damaged,
                        tax_bp: Some(TaxRateBp::ZERO),
                    }],
                    total: Money(amount),
                    tax: Money(0),
                    refund: PaymentMethod::StoreCredit,
                    customer: Some(customer),
                    credit_note: None,
                    approval: Some(approval("return_unknown_original")),
                    original_unknown: Some(UnknownOriginal { reference }),
                }),
                vec![],
                now,
            );
        }

        /// A sale paid with store credit (each register checks only what it
        /// knows, so together they may overdraw it).
        fn spend_store_credit(&mut self, r: usize, now: i64) {
            let c = self.pick(3);
            let customer = self.customers[c];
            let p = self.pick(PRODUCTS.len());
            let price = 300 + i64::try_from(self.pick(1200)).unwrap();
            let sale_id = SaleId::new_v7(now, &mut self.rng).unwrap();
            let number = format!("B02{:08}", self.fiscal_next);
            self.fiscal_next += 1;
            let sale = self.append(
                r,
                EventBody::SaleCreated(SaleCreated {
                    sale_id,
                    cashier: "ana".into(),
                    shift_id: None,
                    customer: Some(customer),
                    fiscal: Some(FiscalRef {
                        series: "B02".into(),
                        number: number.clone(),
                        valid_until: None,
                        buyer_tax_id: None,
                        buyer_name: None,
                        modifies: None,
                    }),
                    lines: vec![SaleLine {
                        product: PRODUCTS[p].parse().unwrap(),
                        name: PRODUCTS[p].into(),
                        qty_milli: QtyMilli(1000),
                        unit_price: Money(price),
                        tax_bp: TaxRateBp::ZERO,
                        discount: None,
                        total: Money(price),
                        tax: Money(0),
                        beyond_quota_milli: None,
                        price_override: Some(PriceOverride {
                            shelf_price: Money(price + 1),
                            approval: Some(approval("price_override")),
                        }),
                    }],
                    total: Money(price),
                    tax: Money(0),
                    payments: vec![Payment {
                        method: PaymentMethod::StoreCredit,
                        amount: Money(price),
                        reference: None,
                    }],
                    change: Money(0),
                    approval: None,
                }),
                vec![],
                now,
            );
            self.sales.push((sale_id, sale.id(), price));
            self.sale_info.push((p, number));
        }

        fn pay(&mut self, r: usize, now: i64) {
            let i = self.pick(self.debts.len());
            let (debt_id, customer, event, amount) = self.debts[i];
            let part = 1 + i64::try_from(self.pick(usize::try_from(amount).unwrap())).unwrap();
            let payment_id = PaymentId::new_v7(now, &mut self.rng).unwrap();
            self.append(
                r,
                EventBody::DebtPaymentTaken(DebtPaymentTaken {
                    payment_id,
                    debt_id,
                    customer,
                    method: PaymentMethod::Cash,
                    amount: Money(part),
                }),
                vec![event],
                now,
            );
        }

        fn chains(&self) -> Vec<Vec<(Event, Origin)>> {
            let mut out: Vec<Vec<(Event, Origin)>> = self
                .regs
                .iter()
                .map(|r| {
                    r.events
                        .iter()
                        .map(|e| (e.clone(), Origin::Register))
                        .collect()
                })
                .collect();
            out.push(
                self.hub_events
                    .iter()
                    .map(|e| (e.clone(), Origin::Hub))
                    .collect(),
            );
            out
        }
    }

    fn approval(action: &str) -> Approval {
        Approval {
            staff_id: "019aaf70-dbf4-7000-8000-0000000000e1".parse().unwrap(),
            name: "Marta".into(),
            role: Role::Supervisor,
            action: action.into(),
        }
    }

    /// The history: `n` steps, the hub resolving every other conflict of the
    /// set, then `n / 4` more steps (which may reopen resolved conflicts).
    pub(crate) fn history(seed: u64, n: usize) -> Vec<Vec<(Event, Origin)>> {
        let mut g = Gen::new(seed);
        let step_ms = STALE_PRICE_GRACE_MS / 4;
        let mut now = T0;
        for _ in 0..n {
            now += step_ms;
            g.step(now);
        }
        let (p, _) = replay(&g.chains(), seed);
        for (i, c) in p.conflicts().into_iter().enumerate() {
            if i % 2 == 0 {
                now += 1000;
                let body = EventBody::ConflictResolved(ConflictResolved {
                    conflict_id: c.conflict_id,
                    strategy: c.strategy().as_str().into(),
                    winner: c.events.iter().next().copied().filter(|_| i % 4 == 0),
                    resolved_by: "ops".into(),
                    note: format!("case {i}"),
                });
                g.hub_append(body, c.events.iter().copied().collect(), now);
            }
        }
        for _ in 0..n / 4 {
            now += step_ms;
            g.step(now);
        }
        g.chains()
    }

    #[test]
    fn a_history_has_every_manual_conflict_and_resolutions() {
        let chains = history(7, 200);
        let (p, applied) = replay(&chains, 3);
        assert_eq!(applied, chains.iter().map(Vec::len).sum::<usize>());
        let states = p.conflict_states();
        let reasons: BTreeSet<&str> = states.iter().map(|s| s.conflict.reason.as_str()).collect();
        for want in [
            "payment_on_voided_debt",
            "stale_price",
            "debt_overpaid",
            "over_return",
            "store_credit_overdrawn",
            "return_original_unknown",
        ] {
            assert!(reasons.contains(want), "no {want}: {reasons:?}");
        }
        let resolved = states.iter().filter(|s| s.resolution.is_some()).count();
        assert!(
            resolved > 0 && resolved < states.len(),
            "{resolved} of {}",
            states.len()
        );
        // Every resolution event decided on candidates of its conflict.
        for f in p.all() {
            if let Fact::Resolution {
                winner: Some(w),
                covers,
                ..
            } = f
            {
                assert!(covers.contains(w));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Invariant 5 with voids, debt payments, customer edits, price changes
        /// and resolutions: every causal order gives the same projections, the
        /// same conflicts (reason, subject, candidates) and the same
        /// resolution state.
        #[test]
        fn conflict_decisions_do_not_depend_on_arrival_order(seed in 0u64..500, a in any::<u64>(), b in any::<u64>()) {
            let chains = history(seed, 80);
            let (pa, _) = replay(&chains, a);
            let (pb, _) = replay(&chains, b);
            prop_assert_eq!(pa.conflict_states(), pb.conflict_states());
            prop_assert_eq!(pa.digest(), pb.digest());
            prop_assert_eq!(pa, pb);
        }
    }

    #[test]
    fn a_later_candidate_reopens_a_resolved_conflict() {
        let c = Conflict::new(
            ConflictReason::DebtOverpaid,
            Subject::Debt("019aaf70-d618-7000-8000-0000000000de".parse().unwrap()),
            STORE.parse().unwrap(),
            ["019aaf70-d618-7000-8000-000000000001".parse().unwrap()].into(),
        );
        let r = Fact::Resolution {
            event_id: "019aaf70-d618-7000-8000-0000000000f1".parse().unwrap(),
            store: c.store,
            conflict_id: c.conflict_id,
            hub_seq: 4,
            strategy: "manual".into(),
            winner: None,
            resolved_by: "ops".into(),
            note: "n".into(),
            covers: c.events.clone(),
        };
        assert!(settling(&c, [&r]).is_some());
        let mut grown = c.clone();
        grown
            .events
            .insert("019aaf70-d618-7000-8000-000000000002".parse().unwrap());
        assert_eq!(settling(&grown, [&r]), None);
    }
}
