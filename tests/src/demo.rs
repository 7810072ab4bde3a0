//! The foundation demo: two registers of one store write hash-chained events with
//! the real `caja-shared` core, the hub side verifies their chains and checkpoints,
//! appends audit entries to an RFC 9162 Merkle log and signs its head, and an
//! auditor catches an edited sale.
//!
//! Everything runs in memory: the SQLite journal (Node issue), the HTTP hub (Hub
//! issue) and sync (Sync issue) are not built yet, and this demo says so when it
//! runs. It is deterministic: the same seed prints the same bytes.

use std::io::Write;

use caja_shared::canonical::{Object, Value};
use caja_shared::chain::{verify_chain, ChainBreak, ChainHead};
use caja_shared::checkpoint::Checkpoint;
use caja_shared::clock::{Clock, ManualClock};
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::HlcState;
use caja_shared::ids::{DeviceId, EventId, KeyId, SaleId, Seq, ShiftId, StoreId};
use caja_shared::key::{DeviceKey, HubSigningKey};
use caja_shared::kind::{
    EventBody, FiscalRef, Payment, PaymentMethod, SaleCreated, SaleLine, SaleVoided, ShiftOpened,
};
use caja_shared::merkle::{self, SignedTreeHead, TreeHead};
use caja_shared::money::{LineAmounts, Money, QtyMilli, SaleTotals, TaxRateBp};

/// 2026-11-23 08:00 in Santo Domingo (UTC−4), in UTC ms.
const DEMO_START_MS: i64 = 1_795_435_200_000;
/// Most an HLC may run ahead of the local clock because of a remote timestamp.
const MAX_DRIFT_MS: i64 = 60_000;

/// What the demo established, for the test that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    /// Events written per register.
    pub events_per_register: Vec<u64>,
    /// Audit log size at the end.
    pub audit_entries: u64,
    /// Audit log root at the end.
    pub audit_root: Hash256,
    /// Where the auditor found the edited history.
    pub tamper_found: ChainBreak,
}

/// Why the demo failed (it should not: every step is a check).
#[derive(Debug, thiserror::Error)]
#[error("demo step failed: {0}")]
pub struct DemoError(String);

fn fail(step: &str) -> impl Fn(String) -> DemoError + '_ {
    move |e| DemoError(format!("{step}: {e}"))
}

macro_rules! step {
    ($what:expr, $e:expr) => {
        $e.map_err(|e| DemoError(format!("{}: {e}", $what)))
    };
}

struct Register {
    name: &'static str,
    device: DeviceId,
    key: DeviceKey,
    key_id: KeyId,
    hlc: HlcState,
    events: Vec<Event>,
}

impl Register {
    fn append(
        &mut self,
        store: StoreId,
        clock: &ManualClock,
        rng: &mut SeededRandom,
        deps: Vec<EventId>,
        body: EventBody,
    ) -> Result<&Event, DemoError> {
        let seq = step!("seq", Seq::new(self.events.len() as u64 + 1))?;
        let prev = self.events.last().map_or(Hash256::ZERO, Event::hash);
        let hlc = step!("hlc", self.hlc.tick(clock.now_ms()))?;
        let draft = EventDraft {
            store,
            device: self.device,
            seq,
            prev,
            hlc,
            deps,
            body,
        };
        let event = step!("build event", Event::build(draft, rng))?;
        self.events.push(event);
        self.events
            .last()
            .ok_or_else(|| DemoError("event vanished".into()))
    }

    fn checkpoint(&self) -> Result<Checkpoint, DemoError> {
        let last = self
            .events
            .last()
            .ok_or_else(|| DemoError("no events to checkpoint".into()))?;
        Ok(Checkpoint::sign(
            &self.key,
            self.key_id.clone(),
            self.device,
            last.seq(),
            last.hash(),
        ))
    }
}

fn short(h: &Hash256) -> String {
    h.to_hex()[..12].to_owned()
}

/// A basket item: SKU, name, unit price (centavos), quantity (thousandths), tax (bp).
type Item = (&'static str, &'static str, i64, i64, u16);

fn sale_body(
    rng: &mut SeededRandom,
    now_ms: i64,
    shift: ShiftId,
    fiscal_number: u64,
    items: &[Item],
    tendered: Money,
) -> Result<SaleCreated, DemoError> {
    let mut lines = Vec::new();
    let mut amounts = Vec::new();
    for (sku, name, price, qty, bp) in items {
        let rate = step!("tax rate", TaxRateBp::new(*bp))?;
        let a = step!(
            "line amounts",
            LineAmounts::compute(Money(*price), QtyMilli(*qty), Money::ZERO, rate)
        )?;
        amounts.push((rate, a));
        lines.push(SaleLine {
            product: step!("sku", sku.parse())?,
            name: (*name).to_owned(),
            qty_milli: QtyMilli(*qty),
            unit_price: Money(*price),
            tax_bp: rate,
            discount: None,
            total: a.total,
            tax: a.tax,
            beyond_quota_milli: None,
            price_override: None,
        });
    }
    let totals = step!("sale totals", SaleTotals::from_lines(amounts))?;
    let change = step!("change", tendered.checked_sub(totals.total))?;
    Ok(SaleCreated {
        sale_id: step!("sale id", SaleId::new_v7(now_ms, rng))?,
        cashier: "ana".into(),
        shift_id: Some(shift),
        customer: None,
        fiscal: Some(FiscalRef {
            series: "B02".into(),
            number: format!("B02{fiscal_number:08}"),
            modifies: None,
            valid_until: None,
            buyer_tax_id: None,
            buyer_name: None,
        }),
        lines,
        total: totals.total,
        tax: totals.tax,
        payments: vec![Payment {
            method: PaymentMethod::Cash,
            amount: tendered,
            reference: None,
        }],
        change,
        approval: None,
    })
}

fn audit_entry(index: u64, kind: &str, at_ms: i64, store: StoreId, data: Value) -> Value {
    let mut o = Object::new();
    o.insert("index".into(), Value::Int(index as i64));
    o.insert("kind".into(), Value::String(kind.into()));
    o.insert("at_ms".into(), Value::Int(at_ms));
    o.insert("store".into(), Value::String(store.to_string()));
    o.insert("data".into(), data);
    Value::Object(o)
}

/// Runs the demo, printing what happens to `out`.
pub fn run(seed: u64, out: &mut impl Write) -> Result<DemoSummary, DemoError> {
    let io = fail("write output");
    let mut say = |line: String| writeln!(out, "{line}").map_err(|e| io(e.to_string()));
    let mut rng = SeededRandom::new(seed);
    let clock = ManualClock::new(DEMO_START_MS);
    let store = step!("store id", StoreId::new_v7(clock.now_ms(), &mut rng))?;
    say(format!(
        "Caja foundation demo (seed {seed}). In memory: the SQLite journal, the HTTP hub and sync are not built yet."
    ))?;
    say(format!("store {store}"))?;

    let mut registers = Vec::new();
    for name in ["caja-1", "caja-2"] {
        registers.push(Register {
            name,
            device: step!("device id", DeviceId::new_v7(clock.now_ms(), &mut rng))?,
            key: DeviceKey::generate(&mut rng),
            key_id: step!("key id", "k1".parse())?,
            hlc: step!("hlc", HlcState::new(MAX_DRIFT_MS))?,
            events: Vec::new(),
        });
    }

    // Each register opens a shift and sells; caja-1 also voids a sale.
    let baskets: [&[Item]; 2] = [
        &[
            ("7501234567890", "Arroz Selecto 1kg", 6500, 2000, 1800),
            ("2000000000017", "Queso de freír (peso)", 38000, 455, 0),
            ("7460000000011", "Refresco 2L", 9500, 1000, 1800),
        ],
        &[("7460000000028", "Habichuelas rojas 1lb", 8500, 3000, 1800)],
    ];
    let mut fiscal_next = [51u64, 1051];
    for (r, basket) in registers.iter_mut().zip(baskets) {
        let name = r.name;
        clock.advance(60_000);
        let shift_id = step!("shift id", ShiftId::new_v7(clock.now_ms(), &mut rng))?;
        let opened = r.append(
            store,
            &clock,
            &mut rng,
            vec![],
            ShiftOpened {
                shift_id,
                cashier: "ana".into(),
                opening_float: Money(500_000),
                staff_id: None,
            }
            .into(),
        )?;
        let shift_event = opened.id();
        let line = format!(
            "[{name}] seq {} ShiftOpened float RD$ 5000.00  hash {}",
            opened.seq(),
            short(&opened.hash())
        );
        say(line)?;
        for round in 0..2 {
            clock.advance(45_000);
            let idx = usize::from(r.name == "caja-2");
            let sale = sale_body(
                &mut rng,
                clock.now_ms(),
                shift_id,
                fiscal_next[idx],
                basket,
                Money(100_000),
            )?;
            fiscal_next[idx] += 1;
            let summary = format!(
                "SaleCreated {} lines total RD$ {} ITBIS RD$ {} change RD$ {} NCF {}",
                sale.lines.len(),
                sale.total,
                sale.tax,
                sale.change,
                sale.fiscal.as_ref().map_or("-", |f| f.number.as_str())
            );
            let sale_id = sale.sale_id;
            let e = r.append(store, &clock, &mut rng, vec![shift_event], sale.into())?;
            let (seq, hash, sale_event) = (e.seq(), e.hash(), e.id());
            say(format!(
                "[{}] seq {seq} {summary}  hash {}",
                r.name,
                short(&hash)
            ))?;
            if r.name == "caja-1" && round == 1 {
                clock.advance(20_000);
                let v = r.append(
                    store,
                    &clock,
                    &mut rng,
                    vec![sale_event],
                    SaleVoided {
                        sale_id,
                        reason: "cliente desistió".into(),
                        approval: None,
                        approved_by: Some("supervisor".into()),
                    }
                    .into(),
                )?;
                let line = format!(
                    "[{name}] seq {} SaleVoided (depends on seq {seq})  hash {}",
                    v.seq(),
                    short(&v.hash())
                );
                say(line)?;
            }
        }
    }

    // The hub side: verify every chain and checkpoint, then log each event.
    let hub_key = HubSigningKey::generate(&mut rng);
    let hub_key_id: KeyId = step!("hub key id", "hub-2026-1".parse())?;
    let mut leaves = Vec::new();
    let mut entries = Vec::new();
    for r in &registers {
        let cp = r.checkpoint()?;
        let pairs: Vec<(Value, Hash256)> = r
            .events
            .iter()
            .map(|e| (e.value().clone(), e.hash()))
            .collect();
        let head = step!(
            "verify chain",
            verify_chain(ChainHead::GENESIS, pairs.iter().map(|(v, h)| (v, h)))
        )?;
        step!("verify checkpoint", cp.verify(&r.key))?;
        if head.hash != cp.hash || head.seq != cp.seq.get() {
            return Err(DemoError("checkpoint does not cover the chain head".into()));
        }
        say(format!(
            "[hub] {}: chain of {} events verifies; checkpoint seq {} MAC ok",
            r.name, head.seq, cp.seq
        ))?;
        for e in &r.events {
            let mut data = Object::new();
            data.insert("event_hash".into(), Value::String(e.hash().to_hex()));
            let entry = audit_entry(
                entries.len() as u64,
                "event_accepted",
                clock.now_ms(),
                store,
                Value::Object(data),
            );
            leaves.push(merkle::leaf_hash(&entry.to_canonical_bytes()));
            entries.push(entry);
        }
    }
    let first_size = (registers[0].events.len()) as u64;
    let first_root = merkle::root(&leaves[..registers[0].events.len()]);
    let root = merkle::root(&leaves);
    let head = TreeHead {
        tree_size: leaves.len() as u64,
        root,
        at_ms: clock.now_ms(),
        key_id: hub_key_id,
    };
    let sth = step!("sign tree head", SignedTreeHead::sign(&head, &hub_key))?;
    step!("verify tree head", sth.verify(&hub_key.public_key()))?;
    say(format!(
        "[hub] audit log: {} entries, root {}, signed tree head verifies with hub key {}",
        leaves.len(),
        short(&root),
        &hub_key.public_key().to_hex()[..12]
    ))?;
    let probe = 2u64;
    let proof = step!("inclusion proof", merkle::inclusion_proof(&leaves, probe))?;
    step!(
        "verify inclusion",
        merkle::verify_inclusion(&leaves[2], probe, head.tree_size, &proof, &root)
    )?;
    say(format!(
        "[auditor] entry {probe} is in the log: inclusion proof of {} hashes verifies",
        proof.len()
    ))?;
    let cproof = step!(
        "consistency proof",
        merkle::consistency_proof(&leaves, first_size)
    )?;
    step!(
        "verify consistency",
        merkle::verify_consistency(first_size, head.tree_size, &first_root, &root, &cproof)
    )?;
    say(format!(
        "[auditor] the log of size {first_size} is a prefix of the log of size {}: consistency proof verifies",
        head.tree_size
    ))?;

    // Someone edits a sale in caja-1's history, keeping the stored hashes.
    let mut edited: Vec<(Value, Hash256)> = registers[0]
        .events
        .iter()
        .map(|e| (e.value().clone(), e.hash()))
        .collect();
    if let Some((Value::Object(env), _)) = edited.get_mut(1) {
        if let Some(Value::Object(body)) = env.get("body").cloned() {
            let mut body = body;
            body.insert("total".into(), Value::Int(100));
            env.insert("body".into(), Value::Object(body));
        }
    }
    let found = match verify_chain(ChainHead::GENESIS, edited.iter().map(|(v, h)| (v, h))) {
        Err(b) => b,
        Ok(_) => return Err(DemoError("an edited sale went unnoticed".into())),
    };
    say(format!(
        "[auditor] caja-1's copy with an edited sale total: {found}"
    ))?;

    Ok(DemoSummary {
        events_per_register: registers.iter().map(|r| r.events.len() as u64).collect(),
        audit_entries: leaves.len() as u64,
        audit_root: root,
        tamper_found: found,
    })
}
