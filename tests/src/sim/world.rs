//! The simulated world: one hub, N registers, the network between them, the
//! clocks, and the record of what the cashiers were told (kept outside the
//! nodes, so the checker can hold the nodes to it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caja_node::datadir::{Adopted, DataDir};
use caja_node::error::OpError;
use caja_node::journal::Journal;
use caja_node::register::Register;
use caja_node::staff::Credentials;
use caja_node::sync::backoff::BackoffPolicy;
use caja_node::sync::breaker::BreakerPolicy;
use caja_node::sync::client::HubClient;
use caja_node::sync::engine::{SyncEngine, SyncSettings};
use caja_shared::clock::ManualClock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::ids::{CustomerId, DeviceId, OpId, SaleId, StaffId, StoreId};
use caja_shared::kind::Role;

use super::faults::Fault;
use super::hub::SimHub;
use super::net::{lock, Link, Net, NetState};
use super::tally::{Work, WorkCounts};
use super::trace::Trace;
use super::{SimConfig, SimError};

/// The simulation's first instant: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;

/// The stores' names, in creation order.
const STORE_NAMES: [&str; 3] = ["Colmado La Esquina", "Colmado El Puente", "Súper Los Pinos"];

/// Staff of every store: name, role, PIN (hashed at the hub with
/// [`super::hub::SIM_PIN_ITERATIONS`] rounds).
pub const STAFF: [(&str, Role, &str); 3] = [
    ("ana", Role::Cashier, "1357"),
    ("luis", Role::Cashier, "2468"),
    ("marta", Role::Supervisor, "9090"),
];

/// The id of [`STAFF`]`[i]` (fixed, so every run knows it).
pub fn staff_id(i: usize) -> StaffId {
    StaffId::new_v7(START_MS, &mut SeededRandom::new(0x57AF_F000 + i as u64))
        .expect("a time after the epoch")
}

/// The credentials of [`STAFF`]`[i]`, with its PIN or a wrong one.
pub fn credentials(i: usize, right_pin: bool) -> Credentials {
    Credentials {
        staff_id: staff_id(i),
        pin: if right_pin { STAFF[i].2 } else { "0000" }.into(),
    }
}

/// The fiscal series every register keeps.
pub const SERIES: &str = "B02";

/// A register's clock, the engine and the register over one data directory.
pub type SimClock = Arc<ManualClock>;
/// The register operations of a simulated register.
pub type SimRegisterOps = Register<SimClock, SeededRandom>;
/// The sync engine of a simulated register.
pub type SimSync = SyncEngine<SimClock, SeededRandom>;

/// A backup file of a register and the journal head it holds.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The file.
    pub path: PathBuf,
    /// Its journal head.
    pub head: u64,
    /// Step it was made at.
    pub step: u64,
}

/// One simulated register.
#[derive(Debug)]
pub struct SimRegister {
    /// `r0`, `r1`, …
    pub name: String,
    /// Index.
    pub idx: usize,
    /// Its data directory.
    pub data: DataDir,
    /// Its clock (the world's time plus its offset).
    pub clock: SimClock,
    /// Its clock's offset from the world's time, ms.
    pub offset_ms: i64,
    /// The cashier's operations (`None` while crashed).
    pub ops: Option<SimRegisterOps>,
    /// Sync (`None` while crashed).
    pub sync: Option<SimSync>,
    /// Its device id.
    pub device: DeviceId,
    /// The store it sells for (index into [`World::stores`]).
    pub store: usize,
    /// Backups made of it.
    pub backups: Vec<Backup>,
    /// The world time of its next sync round.
    pub next_sync_ms: i64,
    /// Its disk is full now (a `disk_full` fault): a refusal for the disk is
    /// expected, any other failure still fails the run.
    pub disk_full: bool,
}

/// An operation the register acknowledged (the cashier saw "done").
#[derive(Debug, Clone)]
pub struct Acked {
    /// The register.
    pub reg: usize,
    /// What it was.
    pub kind: &'static str,
    /// Its journal events (seq, hash).
    pub events: Vec<(u64, Hash256)>,
    /// The sale, for sales.
    pub sale: Option<SaleId>,
    /// The fiscal number the sale printed.
    pub fiscal: Option<String>,
    /// Lost with the machine: made after the backup that replaced the
    /// register's database and never reached the hub.
    pub lost: bool,
    /// The step.
    pub step: u64,
    /// The approval one of its events carries (`void`, `return`,
    /// `paid_out`, `price_override`, `close_shift`), by a supervisor.
    pub approved: Option<&'static str>,
}

/// A conflict an operator resolved, as the admin API answered it.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The conflict.
    pub conflict: String,
    /// Its candidates when resolved.
    pub candidates: Vec<String>,
    /// The `ConflictResolved` hub event.
    pub event: String,
}

/// A card payment a register acknowledged with a terminal code.
#[derive(Debug, Clone)]
pub struct CardPayment {
    /// The register.
    pub reg: usize,
    /// The sale's journal seq.
    pub seq: u64,
    /// Its sale.
    pub sale: SaleId,
    /// The authorization code.
    pub code: String,
    /// The amount.
    pub amount: i64,
    /// The amount the provider reported captured, once it did.
    pub reported: Option<i64>,
}

/// A payment intent the hub created for a register, and the provider's
/// webhooks delivered for it: (provider event id, state).
#[derive(Debug, Clone)]
pub struct Intent {
    /// The register that asked.
    pub reg: usize,
    /// The hub's intent id.
    pub intent: String,
    /// Its amount.
    pub amount: i64,
    /// Webhooks delivered (a duplicate repeats its event id).
    pub sent: Vec<(String, &'static str)>,
}

/// An opened store's files and what was acknowledged opening it: every run
/// starts from a copy (building it costs more than a short run).
#[derive(Debug)]
pub struct Snapshot {
    dir_guard: tempfile::TempDir,
    /// The files.
    pub dir: PathBuf,
    /// What the opening acknowledged.
    pub acked: Vec<Acked>,
    /// The stores.
    pub stores: Vec<StoreId>,
    /// Registers: name, device and store index.
    pub regs: Vec<(String, DeviceId, usize)>,
    /// The time it was taken at.
    pub now_ms: i64,
}

impl Snapshot {
    /// Where the files are kept.
    pub fn guard(&self) -> &Path {
        self.dir_guard.path()
    }
}

/// Copies a directory tree (SQLite files closed, so no WAL beside them).
pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<(), SimError> {
    let e = |x: std::io::Error| SimError(format!("copy {}: {x}", from.display()));
    std::fs::create_dir_all(to).map_err(e)?;
    // The mode too: a register refuses a signer directory others may read.
    let mode = std::fs::metadata(from).map_err(e)?.permissions();
    std::fs::set_permissions(to, mode).map_err(e)?;
    for entry in std::fs::read_dir(from).map_err(e)? {
        let entry = entry.map_err(e)?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(e)?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(e)?;
        }
    }
    Ok(())
}

/// The whole world of one run.
#[derive(Debug)]
pub struct World {
    /// The run's seed.
    pub seed: u64,
    /// Its configuration.
    pub cfg: SimConfig,
    /// Its data (a temporary directory).
    pub root: PathBuf,
    /// The world's time (the hub's clock reads it).
    pub now_ms: i64,
    /// The hub's clock.
    pub hub_clock: SimClock,
    /// The network (and the hub inside it).
    pub net: Net,
    /// The registers.
    pub regs: Vec<SimRegister>,
    /// The first store (kept for tests written for one store).
    pub store: StoreId,
    /// Every store; register `i` sells for store `i % stores.len()`.
    pub stores: Vec<StoreId>,
    /// The world's dice (schedule, workload, faults).
    pub rng: SeededRandom,
    /// The trace.
    pub trace: Trace,
    /// What the cashiers were told.
    pub acked: Vec<Acked>,
    /// Customers created (by the register that created them).
    pub customers: Vec<(usize, CustomerId)>,
    /// Sales voided (acknowledged).
    pub voided: Vec<SaleId>,
    /// Steps run.
    pub step: u64,
    /// Steps the hub stays down for (0: up).
    pub hub_down_steps: u64,
    /// Invariant checks passed.
    pub checks: u64,
    /// The workload's actions beyond sales, per kind.
    pub work: WorkCounts,
    /// The hub clock's offset from the world's time (hub clock jumps), ms.
    pub hub_offset_ms: i64,
    /// Conflicts operators resolved.
    pub resolutions: Vec<Resolution>,
    /// Card payments acknowledged with a terminal code.
    pub card_payments: Vec<CardPayment>,
    /// Payment intents created.
    pub intents: Vec<Intent>,
    /// Provider events sent so far (their ids).
    pub provider_events: u64,
    /// The run's DGII emulator and the outbox's gateway to it (`None` while
    /// building the opened store).
    pub ecf: Option<super::ecf::SimEcf>,
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> SimError + '_ {
    move |e| SimError(format!("{what}: {e}"))
}

/// The sync settings of simulated registers: short waits (the world's time
/// moves by up to seconds per step), a breaker that opens after 3 failures.
pub fn sync_settings() -> SyncSettings {
    SyncSettings {
        push_batch: 50,
        push_bytes: caja_node::sync::batch::DEFAULT_PUSH_BYTES,
        pull_limit: 50,
        timeout_ms: 1_000,
        interval_ms: 4_000,
        backoff: BackoffPolicy {
            base_ms: 200,
            cap_ms: 4_000,
        },
        breaker: BreakerPolicy {
            failures_to_open: 3,
            open_wait_ms: 2_000,
            open_jitter_ms: 1_000,
            successes_to_close: 1,
        },
        keep_alive: false,
        escrow_retry_ms: 30_000,
        ..SyncSettings::default()
    }
}

/// The register's configuration: fiscal numbers of [`SERIES`] and of the
/// e-CF series (`sim::ecf`) in small blocks, stock quotas for tracked products.
const REGISTER_CONFIG: &str = "fiscal_documents = [\"B02\", \"E32\", \"E31\", \"E34\"]\nfiscal_document = \"B02\"\nfiscal_block_size = 6\nfiscal_low_water = 3\nstock_quotas = true\nescrow_low_milli = 2000\nescrow_target_milli = 6000\n";

impl World {
    /// Builds the world of `seed`: a hub with a store, the sample catalog and
    /// a fiscal series, and `cfg.registers` enrolled registers.
    pub fn new(seed: u64, cfg: SimConfig, root: &Path, trace: Trace) -> Result<World, SimError> {
        let mut rng = SeededRandom::new(seed);
        let hub_clock = Arc::new(ManualClock::new(START_MS));
        let hub = SimHub::create(
            &root.join("hub"),
            hub_clock.clone(),
            rng.next_u64(),
            cfg.hub_db,
        )?;
        let net: Net = Arc::new(std::sync::Mutex::new(NetState::new(
            hub,
            cfg.registers,
            rng.next_u64(),
            trace.clone(),
        )));
        let stores = {
            let mut n = lock(&net);
            let mut stores = Vec::new();
            for i in 0..cfg.stores.max(1) {
                let v = n.hub.admin(
                    "POST",
                    "/v1/admin/stores",
                    Some(&serde_json::json!({"name": STORE_NAMES[i % STORE_NAMES.len()]})),
                )?;
                let store: StoreId = v["store"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| SimError(format!("store answer {v}")))?;
                stores.push(store);
            }
            let bodies = caja_node::testkit::sample_catalog_bodies();
            let mut items = Vec::new();
            let mut prices = Vec::new();
            for b in &bodies {
                let v = b.to_value().map_err(err("catalog"))?.to_serde();
                match b {
                    caja_shared::kind::EventBody::CatalogItemUpserted(_) => items.push(v),
                    _ => prices.push(v),
                }
            }
            n.hub.admin(
                "POST",
                "/v1/admin/catalog",
                Some(&serde_json::json!({"items": items, "prices": prices})),
            )?;
            n.hub.admin(
                "POST",
                "/v1/admin/fiscal/series",
                Some(
                    &serde_json::json!({"prefix": SERIES, "digits": 8, "first": 1,
                    "last": cfg.fiscal_series_size, "valid_until": "2099-12-31"}),
                ),
            )?;
            for series in super::ecf::ECF_SERIES {
                n.hub.admin(
                    "POST",
                    "/v1/admin/fiscal/series",
                    Some(
                        &serde_json::json!({"prefix": series, "digits": 10, "first": 1,
                        "last": cfg.fiscal_series_size, "valid_until": "2099-12-31"}),
                    ),
                )?;
            }
            for (i, (name, role, pin)) in STAFF.iter().enumerate() {
                n.hub.admin(
                    "POST",
                    "/v1/admin/staff",
                    Some(&serde_json::json!({"staff_id": staff_id(i).to_string(),
                        "name": name, "role": role, "pin": pin})),
                )?;
            }
            stores
        };
        let mut world = World {
            seed,
            cfg,
            root: root.to_path_buf(),
            now_ms: START_MS,
            hub_clock,
            net,
            regs: Vec::new(),
            store: stores[0],
            stores,
            rng,
            trace,
            acked: Vec::new(),
            customers: Vec::new(),
            voided: Vec::new(),
            step: 0,
            hub_down_steps: 0,
            checks: 0,
            work: WorkCounts::default(),
            hub_offset_ms: 0,
            resolutions: Vec::new(),
            card_payments: Vec::new(),
            intents: Vec::new(),
            provider_events: 0,
            ecf: None,
        };
        for i in 0..world.cfg.registers {
            world.enroll(i)?;
        }
        Ok(world)
    }

    /// Opens the store: the back office receives the opening stock; every
    /// register fetches the catalog, its first fiscal block and stock
    /// quotas, and opens a shift.
    pub fn open_store(&mut self) -> Result<(), SimError> {
        for s in 0..self.stores.len() {
            // The store's first register receives its opening stock.
            if let Some(first) = self.regs.iter().position(|r| r.store == s) {
                self.opening_stock(first)?;
            }
        }
        for i in 0..self.regs.len() {
            self.sync_now(i)?;
            let op = self.op_id();
            if let Some(ops) = self.regs[i].ops.as_mut() {
                let r = ops
                    .open_shift_signed(
                        op,
                        &credentials(i % 2, true),
                        caja_shared::money::Money(50_000),
                    )
                    .map_err(|e| SimError(format!("r{i} first shift: {e}")))?;
                self.ack(i, "shift_open", &[r.seq], None, None)?;
            }
        }
        Ok(())
    }

    /// The back office of register `reg`'s store receives the opening stock.
    fn opening_stock(&mut self, reg: usize) -> Result<(), SimError> {
        self.sync_now(reg)?;
        for (sku, _, weighed) in super::workload::PRODUCTS {
            let op = self.op_id();
            let qty = if weighed { 20_000 } else { 40_000 };
            if let Some(ops) = self.regs[reg].ops.as_mut() {
                let r = ops
                    .receive_stock(
                        op,
                        sku,
                        caja_shared::money::QtyMilli(qty),
                        Some("inventario"),
                    )
                    .map_err(|e| SimError(format!("opening stock: {e}")))?;
                self.ack(reg, "stock_receive", &r.seqs, None, None)?;
            }
        }
        Ok(())
    }

    /// A round now, outside the breaker (set-up).
    fn sync_now(&mut self, i: usize) -> Result<(), SimError> {
        let Some(sync) = self.regs[i].sync.as_mut() else {
            return Ok(());
        };
        let r = sync
            .round()
            .map_err(|e| SimError(format!("r{i} first sync: {e}")))?;
        self.log(format!("r{i} first sync: hub events {}", r.hub_events));
        Ok(())
    }

    /// Closes every register and the hub (their files stay consistent).
    pub fn shutdown(&mut self) {
        for r in &mut self.regs {
            r.ops = None;
            r.sync = None;
        }
        lock(&self.net).hub.close();
    }

    /// The world of `seed` over a copy of an opened store's files
    /// (`snapshot`): the same hub, store and registers, new clocks offsets
    /// and random sources drawn from `seed`.
    pub fn resume(
        seed: u64,
        cfg: SimConfig,
        root: &Path,
        trace: Trace,
        snap: &Snapshot,
    ) -> Result<World, SimError> {
        copy_tree(&snap.dir, root)?;
        let mut rng = SeededRandom::new(seed);
        let hub_clock = Arc::new(ManualClock::new(snap.now_ms));
        let hub = SimHub::attach(
            &root.join("hub"),
            hub_clock.clone(),
            rng.next_u64(),
            cfg.hub_db,
        )?;
        let net: Net = Arc::new(std::sync::Mutex::new(NetState::new(
            hub,
            snap.regs.len(),
            rng.next_u64(),
            trace.clone(),
        )));
        let mut world = World {
            seed,
            cfg,
            root: root.to_path_buf(),
            now_ms: snap.now_ms,
            hub_clock,
            net,
            regs: Vec::new(),
            store: snap.stores[0],
            stores: snap.stores.clone(),
            rng,
            trace,
            acked: snap.acked.clone(),
            customers: Vec::new(),
            voided: Vec::new(),
            step: 0,
            hub_down_steps: 0,
            checks: 0,
            work: WorkCounts::default(),
            hub_offset_ms: 0,
            resolutions: Vec::new(),
            card_payments: Vec::new(),
            intents: Vec::new(),
            provider_events: 0,
            ecf: None,
        };
        let ecf_seed = world.rng.next_u64();
        world.ecf = Some(super::ecf::SimEcf::start(
            ecf_seed,
            world.hub_clock.clone(),
        )?);
        for (idx, (name, device, store)) in snap.regs.iter().enumerate() {
            let offset_ms = world.rand_range(-30_000, 30_000);
            world.regs.push(SimRegister {
                name: name.clone(),
                idx,
                data: DataDir::new(root.join(name)),
                clock: Arc::new(ManualClock::new(snap.now_ms + offset_ms)),
                offset_ms,
                ops: None,
                sync: None,
                device: *device,
                store: *store,
                backups: Vec::new(),
                next_sync_ms: snap.now_ms,
                disk_full: false,
            });
            world.open_register(idx)?;
        }
        Ok(world)
    }

    /// What [`World::resume`] needs of this world, whose files are in
    /// `dir` (call [`World::shutdown`] first).
    pub fn snapshot(&self, dir: tempfile::TempDir) -> Snapshot {
        Snapshot {
            dir_guard: dir,
            dir: self.root.clone(),
            acked: self.acked.clone(),
            stores: self.stores.clone(),
            regs: self
                .regs
                .iter()
                .map(|r| (r.name.clone(), r.device, r.store))
                .collect(),
            now_ms: self.now_ms,
        }
    }

    fn enroll(&mut self, idx: usize) -> Result<(), SimError> {
        let name = format!("r{idx}");
        let store = idx % self.stores.len();
        let token = {
            let mut n = lock(&self.net);
            let v = n.hub.admin(
                "POST",
                "/v1/admin/enrollment-tokens",
                Some(&serde_json::json!({"store": self.stores[store].to_string(), "name": name})),
            )?;
            v["token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| SimError(format!("token answer {v}")))?
        };
        let client = self.client(idx);
        let e = client.enroll(&token).map_err(err("enroll"))?;
        let data = DataDir::new(self.root.join(&name));
        caja_node::datadir::adopt_enrollment(
            &data,
            &Adopted {
                store: e.store,
                device: e.device,
                key_id: e.key_id.clone(),
                key: e.key.clone(),
                hub_public_key: e.hub_key,
                hub_url: "https://sim-hub".into(),
            },
            self.now_ms,
        )
        .map_err(err("adopt"))?;
        let cfg_path = data.root().join(caja_node::config::CONFIG_FILE_NAME);
        let mut text = std::fs::read_to_string(&cfg_path).unwrap_or_default();
        text.push('\n');
        text.push_str(REGISTER_CONFIG);
        text.push_str(super::ecf::REGISTER_ECF);
        std::fs::write(&cfg_path, text).map_err(|e| SimError(format!("config: {e}")))?;
        super::ecf::install_signer(&data, self.now_ms)?;
        let offset_ms = self.rand_range(-30_000, 30_000);
        let clock = Arc::new(ManualClock::new(self.now_ms + offset_ms));
        self.regs.push(SimRegister {
            name,
            idx,
            data,
            clock,
            offset_ms,
            ops: None,
            sync: None,
            device: e.device,
            store,
            backups: Vec::new(),
            next_sync_ms: self.now_ms,
            disk_full: false,
        });
        self.open_register(idx)
    }

    /// A client of the hub over register `idx`'s link.
    pub fn client(&self, idx: usize) -> HubClient {
        HubClient::with_transport(
            "https://sim-hub",
            Arc::new(Link::new(self.net.clone(), idx)),
        )
    }

    /// Opens a register's operations and sync engine from its files.
    pub fn open_register(&mut self, idx: usize) -> Result<(), SimError> {
        let seed_ops = self.rng.next_u64();
        let seed_sync = self.rng.next_u64();
        let client = self.client(idx);
        let r = &mut self.regs[idx];
        let ops = Register::open(&r.data, r.clock.clone(), SeededRandom::new(seed_ops))
            .map_err(|e| SimError(format!("{}: open: {e}", r.name)))?;
        let sync = SyncEngine::open_with_client(
            &r.data,
            client,
            r.clock.clone(),
            SeededRandom::new(seed_sync),
            sync_settings(),
        )
        .map_err(|e| SimError(format!("{}: sync open: {e}", r.name)))?;
        r.ops = Some(ops);
        r.sync = Some(sync);
        Ok(())
    }

    /// A number in `lo..=hi`.
    pub fn rand_range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo + 1).unwrap_or(1).max(1);
        lo + i64::try_from(self.rng.next_u64() % span).unwrap_or(0)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.next_u64() % 1000 < per_mille
    }

    /// A customer created so far at a register of `reg`'s store (customers
    /// are a store's), if any.
    pub fn any_customer(&mut self, reg: usize) -> Option<CustomerId> {
        let store = self.regs[reg].store;
        let mine: Vec<CustomerId> = self
            .customers
            .iter()
            .filter(|(r, _)| self.regs[*r].store == store)
            .map(|(_, c)| *c)
            .collect();
        if mine.is_empty() {
            return None;
        }
        let i = self.pick(mine.len());
        Some(mine[i])
    }

    /// An index below `n` (n > 0).
    pub fn pick(&mut self, n: usize) -> usize {
        usize::try_from(self.rng.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// Moves the world's time and every clock.
    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        self.hub_clock.set(self.now_ms + self.hub_offset_ms);
        for r in &self.regs {
            r.clock.set(self.now_ms + r.offset_ms);
        }
    }

    /// A fresh client operation id.
    pub fn op_id(&mut self) -> OpId {
        let now = self.now_ms;
        // The world's dice, not the register's: an op id is the UI's.
        OpId::new_v7(now, &mut self.rng).unwrap_or_else(|_| {
            // Only fails for times before the epoch, which the world never has.
            OpId::new_v7(START_MS, &mut SeededRandom::new(0)).expect("valid time")
        })
    }

    /// Writes a line to the trace.
    pub fn log(&self, line: impl Into<String>) {
        self.trace.line(format!("[{}] {}", self.step, line.into()));
    }

    /// Records what a register acknowledged: its events' hashes, read back.
    pub fn ack(
        &mut self,
        reg: usize,
        kind: &'static str,
        seqs: &[u64],
        sale: Option<SaleId>,
        fiscal: Option<String>,
    ) -> Result<(), SimError> {
        let conn = self.regs[reg]
            .ops
            .as_ref()
            .ok_or_else(|| SimError("acked on a crashed register".into()))?
            .conn();
        let mut events = Vec::new();
        for s in seqs {
            let e = Journal::event(conn, *s)
                .map_err(err("journal"))?
                .ok_or_else(|| {
                    SimError(format!(
                        "r{reg}: acknowledged seq {s} is not in the journal"
                    ))
                })?;
            events.push((*s, e.hash()));
        }
        if self.regs[reg].store != 0 {
            self.work.add(Work::OtherStoreOp);
        }
        self.acked.push(Acked {
            reg,
            kind,
            events,
            sale,
            fiscal,
            lost: false,
            step: self.step,
            approved: None,
        });
        Ok(())
    }

    /// A refusal the cashier sees is fine; anything else (storage, journal,
    /// projections) is a failure of the run.
    pub fn refused(&self, reg: usize, what: &str, e: &OpError) -> Result<(), SimError> {
        if e.is_validation() {
            self.log(format!(
                "r{reg} {what} refused: {}",
                first_words(&e.to_string())
            ));
            Ok(())
        } else if self.regs[reg].disk_full && e.is_disk_fault() {
            self.log(format!(
                "r{reg} {what} refused, disk full: {}",
                caja_node::messages::error(e)
            ));
            Ok(())
        } else {
            Err(SimError(format!("r{reg} {what} failed: {e}")))
        }
    }

    /// Drops a register's process and opens it again from its files.
    pub fn crash_register(&mut self, idx: usize) -> Result<(), SimError> {
        self.regs[idx].ops = None;
        self.regs[idx].sync = None;
        lock(&self.net).counts.add(Fault::RegisterCrash);
        self.log(format!("r{idx} crashed and restarts"));
        self.open_register(idx)
    }

    /// Takes a backup of a register (SQLite's online backup API).
    pub fn backup_register(&mut self, idx: usize) -> Result<(), SimError> {
        let r = &mut self.regs[idx];
        // Named by the step too: a restore drops later backups from the
        // list, so their count alone would name a file that exists.
        let path = self.root.join(format!(
            "{}-backup-{}-{}.sqlite3",
            r.name,
            self.step,
            r.backups.len()
        ));
        let head = caja_node::datadir::backup(&r.data, &path).map_err(err("backup"))?;
        r.backups.push(Backup {
            path,
            head,
            step: self.step,
        });
        self.log(format!("r{idx} backup at seq {head}"));
        Ok(())
    }

    /// Replaces a register's database with one of its older backups: the
    /// machine was lost. What it acknowledged after the backup and never
    /// pushed is lost with it (the acknowledged ops are marked); what the hub
    /// holds comes back through `/v1/sync/own`.
    pub fn restore_register(&mut self, idx: usize, which: usize) -> Result<(), SimError> {
        let Some(b) = self.regs[idx].backups.get(which).cloned() else {
            return Ok(());
        };
        self.regs[idx].ops = None;
        self.regs[idx].sync = None;
        let hub_has = {
            let mut n = lock(&self.net);
            // The lost machine's requests die with it.
            n.forget_from(idx);
            n.counts.add(Fault::Restore);
            let conn = n.hub.conn()?;
            let seq: Option<i64> = conn
                .query_row(
                    "SELECT max(seq) FROM events WHERE device_id = $1",
                    [self.regs[idx].device.to_string()],
                    |r| r.get(0),
                )
                .map_err(|e| SimError(format!("hub db: {e}")))?;
            seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0)
        };
        let kept = b.head.max(hub_has);
        // Later backups hold events of the lost history: no longer a prefix
        // of the register's chain.
        self.regs[idx].backups.retain(|x| x.head <= kept);
        let mut lost = 0;
        for a in self.acked.iter_mut().filter(|a| a.reg == idx && !a.lost) {
            if a.events.iter().any(|(s, _)| *s > kept) {
                a.lost = true;
                lost += 1;
            }
        }
        let copy = self.root.join(format!(
            "{}-restore-{}.sqlite3",
            self.regs[idx].name, self.step
        ));
        std::fs::copy(&b.path, &copy).map_err(|e| SimError(format!("copy backup: {e}")))?;
        caja_node::datadir::restore(&self.regs[idx].data, &copy, self.now_ms)
            .map_err(err("restore"))?;
        self.log(format!(
            "r{idx} restored from backup {which} (seq {}, hub holds {hub_has}); {lost} acknowledged ops lost with the machine",
            b.head
        ));
        self.open_register(idx)
    }
}

/// The first words of an error, for the trace (no paths, no long bodies).
pub fn first_words(s: &str) -> String {
    s.chars().take(90).collect()
}
