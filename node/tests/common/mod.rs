//! Fixtures for the node's integration tests: a data directory with a register
//! initialized for a test store, and a signed hub chain carrying a catalog.

#![allow(dead_code)]

use caja_node::datadir::{init, DataDir, InitParams};
use caja_node::register::Register;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::testkit;
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::ManualClock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::SeededRandom;
use caja_shared::event::Event;
use caja_shared::ids::OpId;
use caja_shared::key::HubSigningKey;
use caja_shared::kind::PaymentMethod;
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

/// The store's hub chain carrying the sample catalog, with a hub checkpoint.
pub fn catalog_chain() -> (Vec<Event>, HubCheckpoint) {
    let (events, cp) = testkit::hub_chain_page(
        &hub_key(),
        &"hub-1".parse().expect("key id"),
        STORE.parse().expect("store"),
        HUB_CHAIN.parse().expect("hub chain"),
        1,
        Hash256::ZERO,
        START_MS - 1000,
        testkit::sample_catalog_bodies(),
        &mut SeededRandom::new(1),
    )
    .expect("hub events");
    (events, cp.expect("a checkpoint"))
}

pub fn line(code: &str, qty_milli: i64) -> LineRequest {
    LineRequest {
        code: code.into(),
        qty_milli,
        discount: None,
        unit_price: None,
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
