//! A deterministic workload: the chains of a store's registers (shifts, sales
//! with ITBIS, voids of sales made at other registers, fiado debts and their
//! payments, stock receipts and counts, customers), with the causal `deps`
//! DESIGN.md asks for. Used by the property tests, the end-to-end tests and the
//! benchmark (test support behind the `testkit` feature, never in a release
//! build); a seed replays the same history exactly.
//!
//! Architecture invariant: pure; time (`now_ms`) and randomness (a seeded
//! source) are passed in, events are built with `caja_shared::event::Event::build`.

use caja_shared::checkpoint::Checkpoint;
use caja_shared::digest::Hash256;
use caja_shared::ecf::document::{ModifiedDocument, SaleContextEcf};
use caja_shared::ecf::issue::{issue_sale, IssueError};
use caja_shared::ecf::issuer::{Environment, Issuer};
use caja_shared::ecf::xmldsig::Signer;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::HlcState;
use caja_shared::ids::{
    CustomerId, DebtId, DeviceId, EventId, KeyId, PaymentId, SaleId, Seq, ShiftId, StoreId,
};
use caja_shared::key::DeviceKey;
use caja_shared::kind::{
    CustomerUpserted, DebtOpened, DebtPaymentTaken, EventBody, FiscalDocType, FiscalDocumentIssued,
    FiscalRef, IssuedDocument, Payment, PaymentMethod, PaymentTaken, SaleCreated, SaleLine,
    SaleReturned, SaleVoided, ShiftClosed, ShiftOpened, StockCounted, StockReceived,
};
use caja_shared::localtime::UtcOffset;
use caja_shared::money::{LineAmounts, Money, QtyMilli, TaxRateBp};
use caja_shared::push::PushDocument;

/// Products the workload sells: (code, unit price in centavos, tax in bp).
pub const PRODUCTS: [(&str, i64, u16); 5] = [
    ("rice-1kg", 6500, 0),
    ("oil-1l", 32000, 1800),
    ("salami", 38000, 1800),
    ("soda-2l", 9500, 1800),
    ("eggs-30", 28000, 0),
];

/// One register's chain state.
#[derive(Debug, Clone)]
pub struct Register {
    /// Its device id.
    pub device: DeviceId,
    /// Its key (for checkpoints and request signing).
    pub key: DeviceKey,
    /// Its key id.
    pub key_id: KeyId,
    seq: u64,
    prev: Hash256,
    hlc: HlcState,
    shift: Option<(ShiftId, EventId)>,
    /// Every event it wrote, in seq order.
    pub events: Vec<Event>,
}

impl Register {
    /// A register with an empty chain.
    pub fn new(device: DeviceId, key: DeviceKey, key_id: KeyId) -> Register {
        Register {
            device,
            key,
            key_id,
            seq: 0,
            prev: Hash256::ZERO,
            // 1 h of drift: remote timestamps are never merged here.
            hlc: HlcState::new(3_600_000).unwrap_or_else(|e| unreachable!("{e}")),
            shift: None,
            events: Vec::new(),
        }
    }

    /// The checkpoint of its chain at the last event.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let last = self.events.last()?;
        Some(Checkpoint::sign(
            &self.key,
            self.key_id.clone(),
            self.device,
            last.seq(),
            last.hash(),
        ))
    }

    /// Appends an event with `body` and `deps` at `now_ms`.
    pub fn append(
        &mut self,
        store: StoreId,
        body: EventBody,
        deps: Vec<EventId>,
        now_ms: i64,
        rng: &mut impl RandomSource,
    ) -> Event {
        let hlc = self
            .hlc
            .tick(now_ms)
            .unwrap_or_else(|e| unreachable!("{e}"));
        self.seq += 1;
        let event = Event::build(
            EventDraft {
                store,
                device: self.device,
                seq: Seq::new(self.seq).unwrap_or(Seq::FIRST),
                prev: self.prev,
                hlc,
                deps,
                body,
            },
            rng,
        )
        .unwrap_or_else(|e| unreachable!("workload event is valid: {e}"));
        self.prev = event.hash();
        self.events.push(event.clone());
        event
    }
}

/// The registers of one store and the shared business state their events refer to.
#[derive(Debug)]
pub struct Workload {
    rng: SeededRandom,
    /// The store.
    pub store: StoreId,
    /// Its registers.
    pub registers: Vec<Register>,
    /// Sales made so far: id, event, register.
    sales: Vec<(SaleId, EventId, usize)>,
    voided: Vec<SaleId>,
    /// Debts opened so far: id, customer, event, register.
    debts: Vec<(DebtId, CustomerId, EventId, usize)>,
    customers: Vec<CustomerId>,
    fiscal_next: u64,
    /// When set, events refer to other registers' sales and debts only once
    /// [`Workload::settle`] marked them as synced (the first `n` of each list);
    /// a register's own events are always referable.
    settled: Option<(usize, usize)>,
    /// The lengths at each [`Workload::settle_lagged`] call, newest last.
    marks: Vec<(usize, usize)>,
}

impl Workload {
    /// A workload for `registers` (device id, key, key id) of `store`.
    pub fn new(seed: u64, store: StoreId, registers: Vec<Register>) -> Workload {
        Workload {
            rng: SeededRandom::new(seed),
            store,
            registers,
            sales: Vec::new(),
            voided: Vec::new(),
            debts: Vec::new(),
            customers: Vec::new(),
            fiscal_next: 1,
            settled: None,
            marks: Vec::new(),
        }
    }

    /// A workload with `n` registers whose ids and keys come from the seed.
    pub fn with_new_registers(seed: u64, store: StoreId, n: usize) -> Workload {
        let mut rng = SeededRandom::new(seed ^ 0x5eed);
        let registers = (0..n)
            .map(|_| {
                let device = DeviceId::new_v7(1_700_000_000_000, &mut rng)
                    .unwrap_or_else(|e| unreachable!("{e}"));
                Register::new(
                    device,
                    DeviceKey::generate(&mut rng),
                    "k1".parse().unwrap_or_else(|e| unreachable!("{e}")),
                )
            })
            .collect();
        Workload::new(seed, store, registers)
    }

    fn pick(&mut self, n: usize) -> usize {
        // n is small; the modulo bias is irrelevant for a workload.
        usize::try_from(self.rng.next_u64() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn pick_from<T: Copy>(&mut self, list: impl Fn(&Workload) -> &Vec<T>) -> T {
        let n = list(self).len();
        let i = self.pick(n);
        list(self)[i]
    }

    /// From now on, cross-register references go only to events generated
    /// before the last [`Workload::settle`] call: the realistic case of a void
    /// or a debt payment at one register for a sale or a debt another register
    /// made earlier and already synced. (By default any event may be referred
    /// to at once, which makes many events wait for their dependencies.)
    pub fn settle(&mut self) {
        self.settle_lagged(0);
    }

    /// Like [`Workload::settle`], but what becomes referable is what existed
    /// `lag` calls ago: registers that run at different speeds (one a round
    /// ahead of another) then rarely refer to events not pushed yet.
    pub fn settle_lagged(&mut self, lag: usize) {
        self.marks.push((self.sales.len(), self.debts.len()));
        let i = self.marks.len().checked_sub(1 + lag);
        self.settled = Some(i.map_or((0, 0), |i| self.marks[i]));
    }

    /// A sale register `r` may refer to, if any.
    fn referable_sale(&mut self, r: usize) -> Option<(SaleId, EventId)> {
        let limit = self.settled.map_or(self.sales.len(), |s| s.0);
        let candidates: Vec<(SaleId, EventId)> = self
            .sales
            .iter()
            .enumerate()
            .filter(|(i, s)| *i < limit || s.2 == r)
            .map(|(_, s)| (s.0, s.1))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = self.pick(candidates.len());
        Some(candidates[i])
    }

    /// A debt register `r` may refer to, if any.
    fn referable_debt(&mut self, r: usize) -> Option<(DebtId, CustomerId, EventId)> {
        let limit = self.settled.map_or(self.debts.len(), |s| s.1);
        let candidates: Vec<(DebtId, CustomerId, EventId)> = self
            .debts
            .iter()
            .enumerate()
            .filter(|(i, d)| *i < limit || d.3 == r)
            .map(|(_, d)| (d.0, d.1, d.2))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = self.pick(candidates.len());
        Some(candidates[i])
    }

    fn id<T>(&mut self, now_ms: i64, make: fn(uuid::Uuid) -> T) -> T {
        let u = caja_shared::ids::uuid_v7(now_ms, &mut self.rng)
            .unwrap_or_else(|e| unreachable!("{e}"));
        make(u)
    }

    /// The next event of register `r`: a random action of a cashier's day.
    pub fn next(&mut self, r: usize, now_ms: i64) -> Event {
        let (body, deps) = self.action(r, now_ms);
        let store = self.store;
        let event = self.registers[r].append(store, body, deps, now_ms, &mut self.rng);
        self.record(r, &event);
        event
    }

    /// The next event of register `r`, always a sale (for the benchmark).
    pub fn next_sale(&mut self, r: usize, now_ms: i64) -> Event {
        let (body, deps) = match self.registers[r].shift {
            None => self.open_shift(now_ms),
            Some(_) => self.sale(r, now_ms),
        };
        let store = self.store;
        let event = self.registers[r].append(store, body, deps, now_ms, &mut self.rng);
        self.record(r, &event);
        event
    }

    fn record(&mut self, r: usize, event: &Event) {
        match event.body() {
            Ok(EventBody::ShiftOpened(b)) => {
                self.registers[r].shift = Some((b.shift_id, event.id()))
            }
            Ok(EventBody::ShiftClosed(_)) => self.registers[r].shift = None,
            Ok(EventBody::SaleCreated(b)) => self.sales.push((b.sale_id, event.id(), r)),
            Ok(EventBody::SaleVoided(b)) => self.voided.push(b.sale_id),
            Ok(EventBody::DebtOpened(b)) => {
                self.debts.push((b.debt_id, b.customer, event.id(), r));
            }
            Ok(EventBody::CustomerUpserted(b)) if !self.customers.contains(&b.customer_id) => {
                self.customers.push(b.customer_id);
            }
            _ => {}
        }
    }

    fn open_shift(&mut self, now_ms: i64) -> (EventBody, Vec<EventId>) {
        let shift_id = self.id(now_ms, ShiftId::from_uuid);
        (
            EventBody::ShiftOpened(ShiftOpened {
                shift_id,
                cashier: "ana".into(),
                opening_float: Money(500_000),
                staff_id: None,
            }),
            vec![],
        )
    }

    fn sale(&mut self, r: usize, now_ms: i64) -> (EventBody, Vec<EventId>) {
        let (shift_id, shift_event) = self.registers[r]
            .shift
            .unwrap_or_else(|| unreachable!("a sale needs an open shift"));
        let n_lines = 1 + self.pick(3);
        let mut lines = Vec::with_capacity(n_lines);
        let (mut total, mut tax) = (Money(0), Money(0));
        for _ in 0..n_lines {
            let (code, price, bp) = PRODUCTS[self.pick(PRODUCTS.len())];
            let qty = QtyMilli(i64::try_from(1 + self.pick(3)).unwrap_or(1) * 1000);
            let rate = TaxRateBp::new(bp).unwrap_or(TaxRateBp::ZERO);
            let amounts = LineAmounts::compute(Money(price), qty, Money(0), rate)
                .unwrap_or_else(|e| unreachable!("{e}"));
            total = Money(total.0 + amounts.total.0);
            tax = Money(tax.0 + amounts.tax.0);
            lines.push(SaleLine {
                product: code.parse().unwrap_or_else(|e| unreachable!("{e}")),
                name: code.into(),
                qty_milli: qty,
                unit_price: Money(price),
                tax_bp: rate,
                discount: None,
                total: amounts.total,
                tax: amounts.tax,
                beyond_quota_milli: None,
                price_override: None,
            });
        }
        let method = match self.pick(10) {
            0..=5 => PaymentMethod::Cash,
            6..=8 => PaymentMethod::Card,
            _ => PaymentMethod::Transfer,
        };
        let (tendered, change) = if method == PaymentMethod::Cash {
            let rounded = (total.0 + 9_999) / 10_000 * 10_000;
            (Money(rounded), Money(rounded - total.0))
        } else {
            (total, Money(0))
        };
        // One sale in 200 reuses the previous fiscal number: a conflict.
        let number = if self.fiscal_next > 1 && self.pick(200) == 0 {
            self.fiscal_next - 1
        } else {
            self.fiscal_next += 1;
            self.fiscal_next - 1
        };
        let sale_id = self.id(now_ms, SaleId::from_uuid);
        (
            EventBody::SaleCreated(SaleCreated {
                sale_id,
                cashier: "ana".into(),
                shift_id: Some(shift_id),
                customer: None,
                fiscal: Some(FiscalRef {
                    series: "B02".into(),
                    number: format!("B02{number:08}"),
                    modifies: None,
                    valid_until: None,
                    buyer_tax_id: None,
                    buyer_name: None,
                }),
                lines,
                total,
                tax,
                payments: vec![Payment {
                    method,
                    amount: tendered,
                    reference: None,
                }],
                change,
                approval: None,
            }),
            vec![shift_event],
        )
    }

    fn action(&mut self, r: usize, now_ms: i64) -> (EventBody, Vec<EventId>) {
        let Some((shift_id, shift_event)) = self.registers[r].shift else {
            return self.open_shift(now_ms);
        };
        let roll = self.pick(100);
        match roll {
            50..=57 => {
                let Some((sale_id, sale_event)) = self.referable_sale(r) else {
                    return self.sale(r, now_ms);
                };
                if self.voided.contains(&sale_id) {
                    return self.sale(r, now_ms);
                }
                (
                    EventBody::SaleVoided(SaleVoided {
                        sale_id,
                        reason: "customer changed mind".into(),
                        approval: None,
                        approved_by: Some("supervisor".into()),
                    }),
                    vec![sale_event],
                )
            }
            58..=65 if !self.customers.is_empty() => {
                let customer = self.pick_from(|w| &w.customers);
                let debt_id = self.id(now_ms, DebtId::from_uuid);
                let amount = Money(i64::try_from(1 + self.pick(50)).unwrap_or(1) * 1000);
                (
                    EventBody::DebtOpened(DebtOpened {
                        debt_id,
                        customer,
                        sale_id: None,
                        amount,
                    }),
                    vec![],
                )
            }
            66..=73 => {
                let Some((debt_id, customer, debt_event)) = self.referable_debt(r) else {
                    return self.sale(r, now_ms);
                };
                let payment_id = self.id(now_ms, PaymentId::from_uuid);
                let amount = Money(i64::try_from(1 + self.pick(30)).unwrap_or(1) * 1000);
                (
                    EventBody::DebtPaymentTaken(DebtPaymentTaken {
                        payment_id,
                        debt_id,
                        customer,
                        method: PaymentMethod::Cash,
                        amount,
                    }),
                    vec![debt_event],
                )
            }
            74..=81 => {
                let (code, _, _) = PRODUCTS[self.pick(PRODUCTS.len())];
                let qty = QtyMilli(i64::try_from(1 + self.pick(20)).unwrap_or(1) * 1000);
                (
                    EventBody::StockReceived(StockReceived {
                        product: code.parse().unwrap_or_else(|e| unreachable!("{e}")),
                        qty_milli: qty,
                        reference: None,
                    }),
                    vec![],
                )
            }
            82..=85 => {
                let (code, _, _) = PRODUCTS[self.pick(PRODUCTS.len())];
                let delta = i64::try_from(self.pick(5)).unwrap_or(0) * 1000 - 2000;
                (
                    EventBody::StockCounted(StockCounted {
                        product: code.parse().unwrap_or_else(|e| unreachable!("{e}")),
                        counted_milli: QtyMilli(10_000 + delta),
                        delta_milli: QtyMilli(delta),
                    }),
                    vec![],
                )
            }
            86..=93 => {
                let customer_id = if self.customers.is_empty() || self.pick(3) == 0 {
                    self.id(now_ms, CustomerId::from_uuid)
                } else {
                    self.pick_from(|w| &w.customers)
                };
                let name = format!("cliente {}", self.pick(1000));
                (
                    EventBody::CustomerUpserted(CustomerUpserted {
                        customer_id,
                        name,
                        phone: None,
                        tax_id: None,
                        credit_limit: Money(1_000_000),
                    }),
                    vec![],
                )
            }
            94..=96 => {
                let Some((sale_id, sale_event)) = self.referable_sale(r) else {
                    return self.sale(r, now_ms);
                };
                let payment_id = self.id(now_ms, PaymentId::from_uuid);
                (
                    EventBody::PaymentTaken(PaymentTaken {
                        payment_id,
                        sale_id,
                        method: PaymentMethod::Card,
                        amount: Money(1000),
                        reference: Some("auth-1".into()),
                    }),
                    vec![sale_event],
                )
            }
            97..=99 => (
                EventBody::ShiftClosed(ShiftClosed {
                    shift_id,
                    cashier: "ana".into(),
                    expected_cash: Money(500_000),
                    counted_cash: Money(500_000 - i64::try_from(self.pick(3)).unwrap_or(0) * 100),
                    approval: None,
                }),
                vec![shift_event],
            ),
            _ => self.sale(r, now_ms),
        }
    }
}

/// The signed documents of an electronic sale as a register sends them
/// (`FiscalDocumentIssued` and the bytes beside it), for tests and the
/// benchmark: [`caja_shared::ecf::issue::issue_sale`] with `signer` for
/// `issuer` — the e-CF, and for an E32 under RD$250,000 its RFCE.
pub fn signed_sale_documents(
    sale: &SaleCreated,
    issuer: &Issuer,
    signer: &Signer,
    now_ms: i64,
) -> Result<(FiscalDocumentIssued, Vec<PushDocument>), IssueError> {
    let ctx = SaleContextEcf {
        issuer,
        environment: Environment::Test,
        offset: UtcOffset::SANTO_DOMINGO,
        issued_ms: now_ms,
        signed_at_ms: now_ms,
        series_valid_until: Some("2099-12-31"),
        deferred_send: false,
        buyer_name: None,
    };
    let issued = issue_sale(sale, &ctx, signer)?;
    let event = FiscalDocumentIssued {
        encf: issued.encf.clone(),
        doc_type: FiscalDocType::Invoice,
        sale_id: Some(sale.sale_id),
        return_id: None,
        security_code: issued.security_code.clone(),
        signed_at_ms: issued.signed_at_ms,
        total: issued.total,
        documents: issued
            .documents
            .iter()
            .map(|d| IssuedDocument {
                kind: d.kind.as_str().to_owned(),
                sha256: d.sha256,
            })
            .collect(),
    };
    let push = issued
        .documents
        .into_iter()
        .map(|d| PushDocument {
            sha256: d.sha256,
            xml: d.xml,
        })
        .collect();
    Ok((event, push))
}

/// The signed credit note (E34) of a return as a register sends it
/// (`FiscalDocumentIssued` and the bytes), for tests:
/// [`caja_shared::ecf::issue::issue_credit_note`] with `signer`.
pub fn signed_credit_note_documents(
    ret: &SaleReturned,
    modified: &ModifiedDocument,
    issuer: &Issuer,
    signer: &Signer,
    now_ms: i64,
) -> Result<(FiscalDocumentIssued, Vec<PushDocument>), IssueError> {
    let ctx = SaleContextEcf {
        issuer,
        environment: Environment::Test,
        offset: UtcOffset::SANTO_DOMINGO,
        issued_ms: now_ms,
        signed_at_ms: now_ms,
        series_valid_until: Some("2099-12-31"),
        deferred_send: false,
        buyer_name: None,
    };
    let issued = caja_shared::ecf::issue::issue_credit_note(ret, modified, &ctx, signer)?;
    let event = FiscalDocumentIssued {
        encf: issued.encf.clone(),
        doc_type: FiscalDocType::CreditNote,
        sale_id: None,
        return_id: Some(ret.return_id),
        security_code: issued.security_code.clone(),
        signed_at_ms: issued.signed_at_ms,
        total: issued.total,
        documents: issued
            .documents
            .iter()
            .map(|d| IssuedDocument {
                kind: d.kind.as_str().to_owned(),
                sha256: d.sha256,
            })
            .collect(),
    };
    let push = issued
        .documents
        .into_iter()
        .map(|d| PushDocument {
            sha256: d.sha256,
            xml: d.xml,
        })
        .collect();
    Ok((event, push))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_history() {
        let store: StoreId = "01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap();
        let run = |seed| {
            let mut w = Workload::with_new_registers(seed, store, 3);
            (0..200)
                .map(|i| {
                    w.next(i % 3, 1_763_880_000_000 + i64::try_from(i).unwrap())
                        .hash()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
