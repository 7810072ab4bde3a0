//! Fixtures for the node's integration tests: a data directory with a register
//! initialized for a test store, and a signed hub chain carrying a catalog.

#![allow(dead_code)]

use caja_node::register::{init, DataDir, InitParams, Register};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::ManualClock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::{Event, EventDraft};
use caja_shared::hlc::Hlc;
use caja_shared::ids::{DeviceId, OpId, Seq, StoreId};
use caja_shared::key::HubSigningKey;
use caja_shared::kind::{
    CatalogItemUpserted, EventBody, PaymentMethod, PriceSet, SoldBy, StockPolicy,
};
use caja_shared::money::{Money, TaxRateBp};
use std::sync::Arc;

pub const STORE: &str = "01935f4e-8a00-7000-8000-000000000001";
pub const HUB_CHAIN: &str = "01935f4e-8a00-7000-8000-0000000000b0";
pub const START_MS: i64 = 1_795_435_200_000;

pub type TestRegister = Register<Arc<ManualClock>, SeededRandom>;

pub fn hub_key() -> HubSigningKey {
    HubSigningKey::from_seed([0x20; 32])
}

/// A register in a fresh temp dir, with the test catalog imported.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub data: DataDir,
    pub clock: Arc<ManualClock>,
    pub register: TestRegister,
    pub ops: SeededRandom,
}

impl Fixture {
    pub fn new(seed: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::new(dir.path().join("node"));
        let clock = Arc::new(ManualClock::new(START_MS));
        let mut rng = SeededRandom::new(seed);
        init(
            &data,
            &InitParams {
                store: STORE.parse().expect("store"),
                device: None,
                hub_public_key: Some(hub_key().public_key()),
            },
            &clock,
            &mut rng,
        )
        .expect("init");
        let mut register =
            Register::open(&data, clock.clone(), SeededRandom::new(seed ^ 0xabc)).expect("open");
        let (events, cp) = catalog_chain();
        register
            .import_hub_events(&events, &cp)
            .expect("catalog imports");
        Fixture {
            dir,
            data,
            clock,
            register,
            ops: SeededRandom::new(seed ^ 0x5eed),
        }
    }

    pub fn op(&mut self) -> OpId {
        OpId::new_v7(START_MS, &mut self.ops).expect("op id")
    }

    pub fn reopen(&mut self) {
        let fresh =
            Register::open(&self.data, self.clock.clone(), SeededRandom::new(99)).expect("reopen");
        self.register = fresh;
    }
}

/// The store's hub chain: three items and their prices, with a hub checkpoint.
pub fn catalog_chain() -> (Vec<Event>, HubCheckpoint) {
    let rate = |bp| TaxRateBp::new(bp).expect("bp");
    let bodies: Vec<EventBody> = vec![
        CatalogItemUpserted {
            product: "7501234567890".parse().expect("sku"),
            name: "Arroz Selecto 1kg".into(),
            barcodes: vec!["ARROZ".parse().expect("code")],
            tax_bp: rate(1800),
            sold_by: SoldBy::Unit,
            policy: StockPolicy::Block,
        }
        .into(),
        CatalogItemUpserted {
            product: "2000000000017".parse().expect("sku"),
            name: "Queso de freír".into(),
            barcodes: vec![],
            tax_bp: rate(0),
            sold_by: SoldBy::Weight,
            policy: StockPolicy::Warn,
        }
        .into(),
        CatalogItemUpserted {
            product: "7460000000011".parse().expect("sku"),
            name: "Refresco 2L".into(),
            barcodes: vec![],
            tax_bp: rate(1800),
            sold_by: SoldBy::Unit,
            policy: StockPolicy::Block,
        }
        .into(),
        PriceSet {
            product: "7501234567890".parse().expect("sku"),
            unit_price: Money(6500),
        }
        .into(),
        PriceSet {
            product: "2000000000017".parse().expect("sku"),
            unit_price: Money(38000),
        }
        .into(),
        PriceSet {
            product: "7460000000011".parse().expect("sku"),
            unit_price: Money(9500),
        }
        .into(),
    ];
    hub_chain(1, Hash256::ZERO, bodies)
}

/// Builds hub-chain events from `first_seq` after `prev`, signed at the end.
pub fn hub_chain(
    first_seq: u64,
    prev: Hash256,
    bodies: Vec<EventBody>,
) -> (Vec<Event>, HubCheckpoint) {
    let mut rng = SeededRandom::new(first_seq);
    let device: DeviceId = HUB_CHAIN.parse().expect("hub chain");
    let store: StoreId = STORE.parse().expect("store");
    let mut prev = prev;
    let mut out = Vec::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let seq = first_seq + i as u64;
        let e = Event::build(
            EventDraft {
                store,
                device,
                seq: Seq::new(seq).expect("seq"),
                prev,
                hlc: Hlc::new(START_MS - 1000 + seq as i64, 0).expect("hlc"),
                deps: vec![],
                body,
            },
            &mut rng,
        )
        .expect("hub event");
        prev = e.hash();
        out.push(e);
    }
    let last = out.last().expect("at least one");
    let cp = HubCheckpoint::sign(
        &hub_key(),
        "hub-1".parse().expect("key id"),
        device,
        last.seq(),
        last.hash(),
    );
    (out, cp)
}

pub fn line(code: &str, qty_milli: i64) -> LineRequest {
    LineRequest {
        code: code.into(),
        qty_milli,
        discount: None,
    }
}

pub fn cash(amount: i64) -> PaymentRequest {
    PaymentRequest {
        method: PaymentMethod::Cash,
        amount,
        reference: None,
    }
}

pub fn sale(lines: Vec<LineRequest>, payments: Vec<PaymentRequest>) -> SaleRequest {
    SaleRequest {
        lines,
        payments,
        discount: None,
        customer: None,
    }
}
