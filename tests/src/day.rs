//! The demo of README's main command: a real hub and three real registers on
//! loopback HTTP (each with its own SQLite files) play a day at a colmado —
//! sales on every register, one register offline for a while selling the same
//! scarce products, a price change from head office while it is offline, a
//! void, fiado and a debt payment, shift closes with Z reports — then the
//! network heals, everything converges, and the invariants are checked.
//! Every sale is an electronic fiscal document (e-CF) signed at its register
//! with a throwaway certificate ([`crate::day_ecf`]): consumer invoices
//! (`E32`, some signed offline) and a tax-credit invoice (`E31`) naming its
//! buyer; the hub's outbox submits them to a DGII emulator, and the demo
//! checks that each arrived exactly once, as the register's signed bytes.
//! A failed check is an error (non-zero exit).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caja_node::journal::Journal;
use caja_node::messages;
use caja_node::register::CustomerRequest;
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::sync::backoff::BackoffPolicy;
use caja_node::sync::breaker::{BreakerPolicy, BreakerState};
use caja_node::sync::engine::SyncSettings;
use caja_node::system::SystemClock;
use caja_node::testkit;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;
use caja_shared::entropy::{RandomSource, SeededRandom};
use caja_shared::ids::{OpId, SaleId};
use caja_shared::kind::{EventBody, PaymentMethod, PriceSet};
use caja_shared::merkle;
use caja_shared::money::{Money, QtyMilli};

use crate::cluster::{Hub, Till};
use crate::day_ecf::EcfDay;
use crate::proxy::Mode;

/// What every register of the demo keeps of fiscal numbers (e-CF series:
/// consumer `E32` by default, tax-credit `E31`) and stock quotas, and its
/// receipt header. `[ecf]` follows ([`EcfDay::make_issuer`]).
const FISCAL_CONFIG: &str = "fiscal_documents = [\"E32\", \"E31\"]\nfiscal_document = \"E32\"\nfiscal_block_size = 100\nfiscal_low_water = 20\nstock_quotas = true\nescrow_low_milli = 3000\nescrow_target_milli = 12000\nstore_name = \"Colmado La Esquina\"\nstore_rnc = \"131234567\"";

/// The business buying with a tax-credit invoice (`E31`): RNC and name.
const E31_BUYER: (&str, &str) = ("101000015", "Cafetería El Puente SRL");

/// e-CF a register signed so far.
fn signed_count(t: &Till) -> Result<usize, DayError> {
    crate::day_ecf::signed_by_series(t)
        .map(|(n, _)| n)
        .map_err(fail("signed e-CF"))
}

/// The e-CF series head office loads: prefix and last number.
const SERIES: [(&str, u64); 2] = [("E32", 1000), ("E31", 300)];

/// How to run the day.
#[derive(Debug, Clone)]
pub struct DayOptions {
    /// Keep the files here (a temp directory otherwise).
    pub data_dir: Option<PathBuf>,
    /// Seed of the shoppers' choices.
    pub seed: u64,
}

/// What the day established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySummary {
    /// Events per register.
    pub events: Vec<(String, u64)>,
    /// Events the hub holds of registers (each exactly once).
    pub at_hub: u64,
    /// Audit entries re-hashed and found intact.
    pub audit_entries: u64,
    /// The audit log's Merkle root.
    pub audit_root: Hash256,
    /// The hub's overall health at the end.
    pub health: String,
    /// e-CF the registers signed, each received exactly once by the DGII
    /// emulator.
    pub ecf_at_emulator: usize,
}

/// A failed step or check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DayError(pub String);

fn fail<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> DayError + '_ {
    move |e| DayError(format!("{what}: {e}"))
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), DayError> {
    if ok {
        Ok(())
    } else {
        Err(DayError(format!("invariant check failed: {}", what.into())))
    }
}

struct Day<'o, W: Write> {
    out: &'o mut W,
    rng: SeededRandom,
    ops: caja_node::system::OsRandom,
    started: Instant,
    /// Sales refused for lack of stock quota.
    refused: u64,
}

/// The policy of a product in the hub's catalog.
fn stock_policy(db: &rusqlite::Connection, product: &str) -> Result<String, DayError> {
    db.query_row(
        "SELECT json_extract(body, '$.policy') FROM p_catalog WHERE product = ?1 LIMIT 1",
        [product],
        |r| r.get(0),
    )
    .map_err(fail("policy"))
}

impl<W: Write> Day<'_, W> {
    fn say(&mut self, line: impl AsRef<str>) -> Result<(), DayError> {
        let t = self.started.elapsed().as_millis();
        writeln!(
            self.out,
            "[{:>2}.{:01}s] {}",
            t / 1000,
            (t % 1000) / 100,
            line.as_ref()
        )
        .map_err(fail("write"))
    }

    fn op(&mut self) -> Result<OpId, DayError> {
        OpId::new_v7(SystemClock.now_ms(), &mut self.ops).map_err(fail("op id"))
    }

    fn sell(
        &mut self,
        t: &mut Till,
        basket: &[(&str, i64)],
        pay: Vec<PaymentRequest>,
        customer: Option<caja_shared::ids::CustomerId>,
    ) -> Result<(SaleId, Money), DayError> {
        let req = SaleRequest {
            lines: basket
                .iter()
                .map(|(code, qty)| LineRequest {
                    code: (*code).to_owned(),
                    qty_milli: *qty,
                    discount: None,
                    unit_price: None,
                })
                .collect(),
            payments: pay,
            discount: None,
            customer,
        };
        let id = self.op()?;
        let r = t
            .register
            .sell(id, &req)
            .map_err(fail(&format!("{}: sale", t.name)))?;
        Ok((r.sale_id, r.total))
    }

    fn random_sale(&mut self, t: &mut Till) -> Result<Money, DayError> {
        let menu: [&[(&str, i64)]; 4] = [
            &[("ARROZ", 2000), ("HABICHUELAS", 1000)],
            &[("2000000000017", 455)],
            &[("7460000000011", 1000), ("2000000000024", 250)],
            &[("ARROZ", 1000)],
        ];
        let basket = menu[usize::try_from(self.rng.next_u64() % 4).unwrap_or(0)];
        let req = SaleRequest {
            lines: basket
                .iter()
                .map(|(code, qty)| LineRequest {
                    code: (*code).to_owned(),
                    qty_milli: *qty,
                    discount: None,
                    unit_price: None,
                })
                .collect(),
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount: 200_000,
                reference: None,
            }],
            discount: None,
            customer: None,
        };
        let id = self.op()?;
        match t.register.sell(id, &req) {
            Ok(r) => Ok(r.total),
            // Beyond the register's quota of a `block` product: refused,
            // nothing written; the cashier sees why.
            Err(
                e @ caja_node::error::OpError::Refused(caja_node::error::Refusal::QuotaExceeded {
                    ..
                }),
            ) => {
                self.refused += 1;
                self.say(format!(
                    "  {} refused a sale: {}",
                    t.name,
                    caja_node::messages::error(&e)
                ))?;
                Ok(Money::ZERO)
            }
            Err(e) => Err(DayError(format!("{}: sale: {e}", t.name))),
        }
    }

    fn sync_all(&mut self, tills: &mut [Till]) -> Result<(), DayError> {
        for t in tills.iter_mut() {
            let (r, _) = t.sync.tick();
            match r {
                Ok(r) if r.pushed + r.hub_events + r.peer_events + r.recovered > 0 => {
                    self.say(format!(
                        "  {} synced: {} pushed, {} from head office, {} from other registers",
                        t.name, r.pushed, r.hub_events, r.peer_events
                    ))?
                }
                Ok(_) => {}
                Err(e) => self.say(format!("  {} cannot reach the hub: {e}", t.name))?,
            }
        }
        Ok(())
    }
}

fn settings() -> SyncSettings {
    SyncSettings {
        timeout_ms: 3_000,
        interval_ms: 100,
        backoff: BackoffPolicy {
            base_ms: 20,
            cap_ms: 300,
        },
        breaker: BreakerPolicy {
            failures_to_open: 3,
            open_wait_ms: 100,
            open_jitter_ms: 100,
            successes_to_close: 3,
        },
        // The demo's day lasts a second: ask for quota again at every round.
        escrow_retry_ms: 0,
        ..SyncSettings::default()
    }
}

/// Plays the day, printing as it goes.
pub fn run(opts: &DayOptions, out: &mut impl Write) -> Result<DaySummary, DayError> {
    let tmp;
    let root: &Path = match &opts.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(fail("data dir"))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().map_err(fail("temp dir"))?;
            tmp.path()
        }
    };
    let mut day = Day {
        out,
        rng: SeededRandom::new(opts.seed),
        ops: caja_node::system::OsRandom::new().map_err(fail("random source"))?,
        started: Instant::now(),
        refused: 0,
    };
    day.say(format!(
        "Caja demo — a day at Colmado La Esquina. Files in {}",
        root.display()
    ))?;

    // e-CF: a throwaway certificate and a DGII emulator (stops here when
    // openssl is missing: never unsigned documents).
    let ecf = EcfDay::start(root).map_err(|e| DayError(e.to_string()))?;
    day.say(format!(
        "Throwaway CA and signer certificate (RNC {}) made with openssl in {}",
        crate::day_ecf::RNC,
        ecf.pki.dir.display()
    ))?;
    day.say(format!(
        "DGII emulator on {}: verifies every signature; {}",
        ecf.emulator_url().map_err(fail("emulator"))?,
        match &ecf.schema {
            Ok(dir) => format!(
                "validates every document against DGII's XSD in {} (xmllint)",
                dir.display()
            ),
            Err(why) => format!("schema validation SKIPPED: {why}"),
        }
    ))?;

    // Head office.
    let mut hub = ecf.start_hub(&root.join("hub")).map_err(fail("hub"))?;
    day.say(format!(
        "Hub listening on {} (SQLite in {})",
        hub.url,
        hub.dir.display()
    ))?;
    let store = hub
        .create_store("Colmado La Esquina")
        .map_err(fail("store"))?;
    hub.load_catalog(&testkit::sample_catalog_bodies())
        .map_err(fail("catalog"))?;
    day.say(format!(
        "Head office loaded {} items and their prices (signed hub events)",
        testkit::SAMPLE_CATALOG.len()
    ))?;

    day.say(format!(
        "Hub: [tax_authority] RNC {} → the DGII emulator, trusted CA {}, its own certificate installed (for cancellations)",
        crate::day_ecf::RNC,
        crate::day_ecf::TRUSTED_CA_FILE
    ))?;
    for (prefix, last) in SERIES {
        hub.post(
            "/v1/admin/fiscal/series",
            &serde_json::json!({"prefix": prefix, "digits": 10, "first": 1, "last": last,
                                "valid_until": "2099-12-31"}),
        )
        .map_err(fail("fiscal series"))?;
    }
    day.say(
        "Head office loaded the e-CF series E32 1..1000 and E31 1..300 (valid until 2099-12-31)",
    )?;

    // Registers.
    let mut tills = Vec::new();
    for i in 1..=3 {
        let mut t = Till::enroll(&hub, store, &format!("caja-{i}"), root, settings())
            .map_err(fail("enroll"))?;
        t.configure(FISCAL_CONFIG, settings())
            .map_err(fail("fiscal config"))?;
        ecf.make_issuer(&mut t, settings())
            .map_err(fail("e-CF issuer"))?;
        day.say(format!(
            "{} enrolled as device {}, an e-CF issuer (signer certificate installed, [ecf])",
            t.name,
            t.register.device().device
        ))?;
        tills.push(t);
    }
    day.sync_all(&mut tills)?;
    let receive = [
        ("ARROZ", 40_000),
        ("2000000000017", 5_000),
        ("7460000000011", 12_000),
        ("HABICHUELAS", 30_000),
        ("2000000000024", 3_000),
    ];
    for (code, qty) in receive {
        let id = day.op()?;
        tills[0]
            .register
            .receive_stock(id, code, QtyMilli(qty), Some("conduce 0042"))
            .map_err(fail("stock"))?;
    }
    day.say("caja-1 received stock: 40 rice, 30 beans, 5 kg cheese, 3 kg of the second weighed item, 12 sodas")?;
    day.sync_all(&mut tills)?;
    for t in &tills {
        let q = t
            .register
            .status()
            .map_err(fail("status"))?
            .quotas
            .unwrap_or_default();
        day.say(format!(
            "  {} holds stock quotas: {}",
            t.name,
            q.iter()
                .map(|x| format!("{} {}", x.product, x.left_milli / 1000))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    for t in &mut tills {
        let id = day.op()?;
        let name = t.name.clone();
        t.register
            .open_shift(id, &format!("cajero de {name}"), Money(500_000))
            .map_err(fail("shift"))?;
    }
    day.say("Shifts opened on all registers with RD$ 5000.00")?;

    // Morning.
    for t in &mut tills {
        for _ in 0..3 {
            day.random_sale(t)?;
        }
    }
    day.say("Morning: 3 sales on each register, each an E32 signed at its register")?;
    let (e31_sale, e31) = day.e31_sale(&mut tills[0])?;
    let op = day.op()?;
    for line in crate::devices::weighed_sale(&mut tills[0], op).map_err(fail("scale"))? {
        day.say(line)?;
    }
    day.sync_all(&mut tills)?;

    // caja-3 loses the internet.
    tills[2].set_network(Mode::Down);
    day.say("caja-3 loses its connection to head office (hub unreachable)")?;
    let signed_before_offline = signed_count(&tills[2])?;
    let id = day.op()?;
    let rosa = tills[1]
        .register
        .upsert_customer(
            id,
            &CustomerRequest {
                customer_id: None,
                name: "Doña Rosa".into(),
                phone: Some("809-555-0101".into()),
                tax_id: None,
                credit_limit: 100_000,
            },
        )
        .map_err(fail("customer"))?
        .customer_id;
    let fiado = PaymentRequest {
        method: PaymentMethod::Fiado,
        amount: 30_290,
        reference: None,
    };
    day.sell(
        &mut tills[1],
        &[("ARROZ", 2000), ("2000000000017", 455)],
        vec![fiado],
        Some(rosa),
    )?;
    day.say("caja-2: Doña Rosa takes RD$ 302.90 on fiado (credit limit RD$ 1000.00)")?;
    let (to_void, _) = day.random_sale_id(&mut tills[0])?;
    let id = day.op()?;
    tills[0]
        .register
        .void(id, to_void, "cliente desistió")
        .map_err(fail("void"))?;
    day.say("caja-1: a sale voided (cliente desistió)")?;
    hub.load_catalog(&[EventBody::PriceSet(PriceSet {
        product: "7501234567890".parse().map_err(fail("sku"))?,
        unit_price: Money(7_000),
    })])
    .map_err(fail("price"))?;
    day.say("Head office raises rice to RD$ 70.00 while caja-3 is offline")?;
    for round in 0..4 {
        for t in &mut tills {
            day.random_sale(t)?;
        }
        if round % 2 == 1 {
            day.sync_all(&mut tills)?;
        }
    }
    day.say("Midday: 4 more sales on each register; caja-3 sells the same rice offline, at the price it knows")?;
    let offline_e32 = day.offline_e32(&mut tills[2])?;
    let signed_offline = signed_count(&tills[2])? - signed_before_offline;
    day.say(format!(
        "  caja-3 signed {signed_offline} e-CF while offline, each with its code and QR on the receipt at once"
    ))?;

    // The network comes back.
    tills[2].set_network(Mode::Up);
    day.say("caja-3 is back online")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        day.sync_all(&mut tills)?;
        let closed = tills
            .iter()
            .all(|t| t.sync.breaker().state() == BreakerState::Closed { failures: 0 });
        if closed || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    let id = day.op()?;
    let paid = tills[1]
        .register
        .pay_debt(id, rosa, Money(10_000), PaymentMethod::Cash)
        .map_err(fail("debt payment"))?;
    day.say(format!(
        "caja-2: Doña Rosa pays RD$ 100.00; she still owes {}",
        messages::rd(paid.balance)
    ))?;
    let resolved_conflict = day.conflict_scene(&hub, &mut tills, rosa)?;

    // Closing.
    for t in &mut tills {
        let z = t.register.z_report(None).map_err(fail("z"))?;
        let id = day.op()?;
        let closed = t
            .register
            .close_shift(id, z.expected_cash)
            .map_err(fail("close"))?;
        if t.name == "caja-1" {
            day.say(format!(
                "Shift closed on caja-1:\n{}",
                messages::z_report(&closed.z)
            ))?;
        }
    }
    day.say("Shifts closed on all registers")?;
    for _ in 0..2 {
        for t in &mut tills {
            t.sync
                .round()
                .map_err(fail(&format!("{} final sync", t.name)))?;
        }
    }

    // Checks.
    day.say("Checking the invariants…")?;
    let hub_db = hub.db().map_err(fail("hub db"))?;
    let mut at_hub = 0;
    let mut events = Vec::new();
    for t in &tills {
        let conn = t.register.conn();
        let head = Journal::head(conn).map_err(fail("head"))?;
        check(
            Journal::acked_seq(conn).map_err(fail("acked"))? == head.seq,
            format!("{}: every event acknowledged", t.name),
        )?;
        let device = t.register.device().device.to_string();
        let mut stmt = hub_db
            .prepare("SELECT seq, hash FROM events WHERE device_id = ?1 ORDER BY seq")
            .map_err(fail("query"))?;
        let rows: Vec<(i64, String)> = stmt
            .query_map([&device], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(fail("query"))?
            .collect::<Result<_, _>>()
            .map_err(fail("rows"))?;
        check(
            rows.len() as u64 == head.seq,
            format!("{}: each event at the hub exactly once", t.name),
        )?;
        for (seq, hash) in &rows {
            let mine = Journal::event(conn, seq.unsigned_abs()).map_err(fail("event"))?;
            check(
                mine.map(|e| e.hash().to_hex()).as_deref() == Some(hash.as_str()),
                format!("{} seq {seq}: same bytes at the hub", t.name),
            )?;
        }
        for u in tills.iter().filter(|u| u.name != t.name) {
            let theirs = Journal::head(u.register.conn()).map_err(fail("head"))?.seq;
            let held: i64 = conn
                .query_row(
                    "SELECT count(*) FROM peer_events WHERE device = ?1",
                    [u.register.device().device.to_string()],
                    |r| r.get(0),
                )
                .map_err(fail("peers"))?;
            check(
                held.unsigned_abs() == theirs,
                format!("{} sees all of {}'s events", t.name, u.name),
            )?;
        }
        at_hub += head.seq;
        events.push((t.name.clone(), head.seq));
    }
    day.say(format!(
        "  every register event is at the hub exactly once ({at_hub}), with the same hashes"
    ))?;
    day.say("  every register holds every other register's events")?;
    for t in &mut tills {
        let (live, rebuilt) = t.register.rebuild().map_err(fail("rebuild"))?;
        check(
            live == rebuilt,
            format!("{}: projections equal a rebuild", t.name),
        )?;
    }
    day.say("  every register's projections equal a rebuild from its events")?;
    let rice_price: Option<i64> = tills[2]
        .register
        .conn()
        .query_row(
            "SELECT unit_price FROM catalog_items WHERE sku = '7501234567890'",
            [],
            |r| r.get(0),
        )
        .map_err(fail("price"))?;
    check(
        rice_price == Some(7_000),
        "caja-3 has the new rice price after reconnecting",
    )?;
    day.say("  caja-3 applied the new price once it could verify head office's signature")?;

    // The audit log: every entry re-hashed, the Merkle root recomputed.
    let mut stmt = hub_db
        .prepare("SELECT entry, leaf_hash FROM audit_log ORDER BY idx")
        .map_err(fail("audit"))?;
    let entries: Vec<(Vec<u8>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(fail("audit"))?
        .collect::<Result<_, _>>()
        .map_err(fail("audit rows"))?;
    let mut leaves = Vec::with_capacity(entries.len());
    for (i, (entry, leaf)) in entries.iter().enumerate() {
        let h = merkle::leaf_hash(entry);
        check(h.to_hex() == *leaf, format!("audit entry {i} intact"))?;
        caja_shared::canonical::canonicalize(entry)
            .ok()
            .filter(|c| c == entry)
            .ok_or_else(|| DayError(format!("audit entry {i} is not canonical JSON")))?;
        leaves.push(h);
    }
    let audit_root = merkle::root(&leaves);
    day.say(format!(
        "  audit log: {} entries re-hashed, Merkle root {}",
        leaves.len(),
        &audit_root.to_hex()[..16]
    ))?;
    // Head office signs a tree head now; it covers exactly those entries, and
    // every register verifies it extends the heads it saw before.
    let sth_json = hub
        .rt
        .block_on(hub.admin.sign_tree_head())
        .map_err(fail("sign tree head"))?;
    let hub_key_hex: String = hub_db
        .query_row("SELECT hub_public_key FROM hub_meta", [], |r| r.get(0))
        .map_err(fail("hub key"))?;
    let hub_key =
        caja_shared::key::HubPublicKey::from_hex(&hub_key_hex).map_err(fail("hub key"))?;
    let head = merkle::SignedTreeHead::parse(&sth_json.to_string())
        .and_then(|sth| sth.verify(&hub_key))
        .map_err(fail("signed tree head"))?;
    check(
        head.tree_size == leaves.len() as u64 && head.root == audit_root,
        "the signed tree head covers every audit entry",
    )?;
    for t in tills.iter_mut() {
        t.sync.round().map_err(fail("audit check round"))?;
        let log = t.register.status().map_err(fail("status"))?.sync.hub_log;
        check(
            log.trust == "ok" && log.tree_size == Some(head.tree_size),
            format!("{} verified the hub's signed tree head", t.name),
        )?;
    }
    day.say(format!(
        "  signed tree head of {} entries verified by every register (consistent with the heads they saw before)",
        head.tree_size
    ))?;
    let health = hub.get("/v1/health").map_err(fail("health"))?;
    let overall = health["overall"].as_str().unwrap_or("unknown").to_owned();
    let held = &health["consistency"];
    day.say(format!(
        "  hub health: {overall} ({}); consistency {held}",
        health["reasons"]
            .as_array()
            .map(|r| r
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join("; "))
            .unwrap_or_default()
    ))?;
    day.say(format!("  tax authority: {}", health["tax_authority"]))?;
    day.say(format!("  conflicts: {}", health["conflicts"]))?;
    day.say(format!("  stock: {}", health["stock"]))?;
    let cert = &health["fiscal"]["certificate"];
    check(
        cert["status"] == "valid",
        format!("the hub's e-CF certificate is valid: {cert}"),
    )?;
    day.say(format!(
        "  hub e-CF certificate: {}, {} days left",
        cert["status"].as_str().unwrap_or_default(),
        cert["days_left"]
    ))?;
    for (series, last) in SERIES {
        let fiscal = hub
            .get(&format!("/v1/admin/fiscal/report?series={series}"))
            .map_err(fail("fiscal report"))?;
        let rep = &fiscal["reports"][0];
        let t = &rep["totals"];
        let sum: u64 = t
            .as_object()
            .map(|o| o.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        check(
            sum == last,
            format!("every {series} number has exactly one status"),
        )?;
        check(
            rep["duplicates"] == 0,
            format!("no {series} number used twice"),
        )?;
        check(
            rep["anomalies"].as_array().is_some_and(Vec::is_empty),
            format!("no {series} anomaly: {}", rep["anomalies"]),
        )?;
        day.say(format!(
            "  fiscal {series}: {} used, {} voided, {} outstanding on registers, {} released, {} never allocated (of {last}); duplicates 0",
            t["used"], t["voided"], t["outstanding"], t["released_unused"], t["never_allocated"]
        ))?;
    }
    for till in &tills {
        let st = till.register.status().map_err(fail("status"))?;
        let left: Vec<String> = st
            .fiscal
            .iter()
            .map(|s| format!("{} {}", s.series, s.left))
            .collect();
        day.say(format!(
            "  {} fiscal numbers left: {}",
            till.name,
            left.join(", ")
        ))?;
    }
    let alerts = hub
        .get("/v1/admin/stock/alerts")
        .map_err(fail("stock alerts"))?;
    let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
    let oversells = alerts.iter().filter(|a| a["kind"] == "oversell").count();
    let negative: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["kind"] == "negative_stock")
        .collect();
    for a in &negative {
        let policy = stock_policy(&hub_db, a["product"].as_str().unwrap_or(""))?;
        check(
            policy != "block",
            format!(
                "no block product below zero through sales ({})",
                a["product"]
            ),
        )?;
    }
    day.say(format!(
        "  escrow: {} sale(s) refused beyond a register's quota, {} oversell alert(s) (warn items), {} product(s) below zero, each alerted",
        day.refused,
        oversells,
        negative.len()
    ))?;

    // e-CF: the outbox submits everything; the emulator's counts and hashes
    // are checked against what each register signed.
    let mut ecf_total = 0;
    for t in &tills {
        let (n, by) = crate::day_ecf::signed_by_series(t).map_err(fail("signed e-CF"))?;
        ecf_total += n;
        day.say(format!("  {} signed {n} e-CF ({by})", t.name))?;
    }
    for line in ecf.settle(&hub, &tills).map_err(fail("e-CF"))? {
        day.say(line)?;
    }
    day.say(format!(
        "  among them {offline_e32}, signed by caja-3 while offline, and the tax-credit invoice {e31}"
    ))?;

    // Every receipt, printed to each register's folder printer.
    let mut e31_receipt = None;
    for t in &mut tills {
        let folder = t.data.root().join("recibos");
        let p = crate::devices::print_to_folder(t, &folder).map_err(fail("receipts"))?;
        check(
            p.receipts == p.jobs && p.receipts > 0,
            format!("{}: every queued receipt printed once", t.name),
        )?;
        check(
            p.drawer_kicks > 0 && p.drawer_kicks <= p.receipts,
            format!("{}: cash sales open the drawer", t.name),
        )?;
        let (sales, file) = crate::day_ecf::originals_in_folder(t, &folder, Some(&e31))
            .map_err(fail("original receipts"))?;
        if file.is_some() {
            e31_receipt = file;
        }
        day.say(format!(
            "  {}: {} receipts printed to {} ({} opened the cash drawer); the original of each of its {sales} sales is there once, with its e-NCF and security code",
            t.name,
            p.receipts,
            p.folder.display(),
            p.drawer_kicks
        ))?;
    }

    // One original receipt, as it came out of the folder printer.
    let path = e31_receipt.ok_or_else(|| DayError(format!("no original receipt of {e31}")))?;
    let paper = std::fs::read_to_string(&path).map_err(fail("receipt"))?;
    let issued = caja_node::ecf::store::of_sale(tills[0].register.conn(), e31_sale)
        .map_err(fail("issued e-CF"))?
        .ok_or_else(|| DayError(format!("{e31} not signed")))?;
    for (what, needle) in [
        (
            "security code",
            format!("Código de seguridad: {}", issued.security_code),
        ),
        ("signing time", "Fecha de firma: ".to_owned()),
        ("QR", format!("[QR: {}", issued.qr_url)),
        ("buyer", E31_BUYER.0.to_owned()),
    ] {
        check(
            paper.contains(&needle),
            format!("the original receipt of {e31} shows its {what}: {paper}"),
        )?;
    }
    day.say(format!(
        "The original receipt of {e31} (caja-1, {}), as printed (ESC/POS decoded):\n{paper}",
        path.display()
    ))?;

    drop(stmt);
    drop(hub_db);
    hub.stop().map_err(fail("hub stop"))?;
    let conn = caja_hub::storage::open_connection(&hub.dir.join(caja_hub::datadir::DB_FILE))
        .map_err(fail("hub db"))?;
    let live = caja_hub::storage::digest(&conn).map_err(fail("digest"))?;
    caja_hub::storage::rebuild(&conn).map_err(fail("rebuild"))?;
    check(
        caja_hub::storage::digest(&conn).map_err(fail("digest"))? == live,
        "hub projections equal a rebuild from its event store",
    )?;
    day.say("  hub projections equal a rebuild from its event store")?;

    for (name, n) in &events {
        day.say(format!(
            "Summary: {name} wrote {n} events, all at the hub exactly once"
        ))?;
    }
    let decided: Vec<(String, i64)> = {
        let mut stmt = conn
            .prepare(
                "SELECT json_extract(CAST(entry AS TEXT), '$.data.strategy'), COUNT(*) FROM audit_log
                 WHERE kind = 'conflict_decided' GROUP BY 1 ORDER BY 1",
            )
            .map_err(fail("audit"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(fail("audit"))?
            .collect::<Result<_, _>>()
            .map_err(fail("audit"))?;
        rows
    };
    day.say(format!(
        "Summary: conflicts resolved — manual: 1 ({resolved_conflict}); automatic: {}",
        if decided.is_empty() {
            "none".to_owned()
        } else {
            decided
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ))?;
    day.say(format!(
        "All checks passed in {:.1?}.",
        day.started.elapsed()
    ))?;
    Ok(DaySummary {
        events,
        at_hub,
        audit_entries: leaves.len() as u64,
        audit_root,
        health: overall,
        ecf_at_emulator: ecf_total,
    })
}

impl<W: Write> Day<'_, W> {
    /// caja-1 loses the network; caja-2 voids a fiado sale of Doña Rosa;
    /// caja-1, offline, takes her payment of everything she owes, part of it
    /// on the voided debt. The hub keeps both and raises a `manual` conflict;
    /// head office resolves it; the resolution reaches every register.
    /// Returns what was resolved, for the summary.
    fn conflict_scene(
        &mut self,
        hub: &Hub,
        tills: &mut [Till],
        rosa: caja_shared::ids::CustomerId,
    ) -> Result<String, DayError> {
        let fiado = PaymentRequest {
            method: PaymentMethod::Fiado,
            amount: 9_500,
            reference: None,
        };
        let (soda, _) = self.sell(
            &mut tills[1],
            &[("7460000000011", 1000)],
            vec![fiado],
            Some(rosa),
        )?;
        // caja-2 pushes first, so that caja-1 pulls the sale and every payment.
        for i in [1, 0, 2] {
            let t = &mut tills[i];
            t.sync.round().map_err(fail(&format!("{} sync", t.name)))?;
        }
        tills[0].set_network(Mode::Down);
        let id = self.op()?;
        tills[1]
            .register
            .void(id, soda, "devolvió el refresco")
            .map_err(fail("void"))?;
        tills[1].sync.round().map_err(fail("caja-2 sync"))?;
        self.say("Conflict: caja-2 sells Doña Rosa a soda on fiado, then voids it (returned) while caja-1 is offline")?;
        let id = self.op()?;
        let balance = Money(
            caja_node::projection::customer_balance(tills[0].register.conn(), &rosa.to_string())
                .map_err(fail("balance"))?,
        );
        let paid = tills[0]
            .register
            .pay_debt(id, rosa, balance, PaymentMethod::Cash)
            .map_err(fail("offline payment"))?;
        self.say(format!(
            "  caja-1, offline, takes {} from Doña Rosa: everything it thinks she owes ({} debt payments)",
            messages::rd(balance),
            paid.seqs.len()
        ))?;
        tills[0].set_network(Mode::Up);
        tills[0].sync.round().map_err(fail("caja-1 sync"))?;
        let open = hub
            .get("/v1/admin/conflicts?state=open")
            .map_err(fail("conflicts"))?;
        let conflicts = open["conflicts"].as_array().cloned().unwrap_or_default();
        check(
            conflicts.len() == 1 && conflicts[0]["reason"] == "payment_on_voided_debt",
            format!("one payment_on_voided_debt conflict: {open}"),
        )?;
        let c = &conflicts[0];
        let conflict_id = c["conflict_id"].as_str().unwrap_or_default().to_owned();
        self.say(format!(
            "  head office sees conflict {} ({}, strategy {}) with {} candidates",
            &conflict_id[..8.min(conflict_id.len())],
            c["reason"].as_str().unwrap_or_default(),
            c["strategy"].as_str().unwrap_or_default(),
            c["candidates"].as_array().map_or(0, Vec::len)
        ))?;
        let resolved = hub
            .post(
                &format!("/v1/admin/conflicts/{conflict_id}/resolve"),
                &serde_json::json!({
                    "note": "la anulación se mantiene; se devuelven RD$ 95.00 a Doña Rosa",
                    "by": "maria (oficina)"
                }),
            )
            .map_err(fail("resolve"))?;
        check(
            resolved["state"] == "resolved",
            format!("resolved: {resolved}"),
        )?;
        self.say(
            "  head office resolves it: the void stands, RD$ 95.00 go back to Doña Rosa (maria)",
        )?;
        for t in tills.iter_mut() {
            t.sync.round().map_err(fail(&format!("{} sync", t.name)))?;
            let status = t.register.status().map_err(fail("status"))?;
            check(
                status
                    .conflicts_resolved
                    .iter()
                    .any(|r| r.conflict_id == conflict_id && r.strategy == "manual"),
                format!("{} received the resolution", t.name),
            )?;
        }
        self.say("  every register received the resolution (a signed head-office event)")?;
        Ok("payment_on_voided_debt, by maria (oficina)".into())
    }

    /// A tax-credit invoice (`E31`): a business buys, naming its RNC and
    /// name. Returns the sale and its e-NCF.
    fn e31_sale(&mut self, t: &mut Till) -> Result<(SaleId, String), DayError> {
        let req = SaleRequest {
            lines: [("2000000000017", 500), ("2000000000024", 500)]
                .iter()
                .map(|(code, qty)| LineRequest {
                    code: (*code).to_owned(),
                    qty_milli: *qty,
                    discount: None,
                    unit_price: None,
                })
                .collect(),
            payments: vec![PaymentRequest {
                method: PaymentMethod::Cash,
                amount: 50_000,
                reference: None,
            }],
            discount: None,
            customer: None,
        };
        let doc = caja_node::register::Document {
            series: Some("E31".into()),
            buyer_tax_id: Some(E31_BUYER.0.into()),
            buyer_name: Some(E31_BUYER.1.into()),
        };
        let id = self.op()?;
        let r = t
            .register
            .sell_as(id, &req, &doc)
            .map_err(fail(&format!("{}: E31 sale", t.name)))?;
        let encf = r
            .fiscal_number
            .ok_or_else(|| DayError("the E31 sale has no e-NCF".into()))?;
        check(encf.starts_with("E31"), format!("an E31 number: {encf}"))?;
        self.say(format!(
            "{}: {} (RNC {}) buys cheese and salami for {} with a tax-credit invoice, {encf}, signed at the register",
            t.name,
            E31_BUYER.1,
            E31_BUYER.0,
            messages::rd(r.total)
        ))?;
        Ok((r.sale_id, encf))
    }

    /// An `E32` sold on a register that cannot reach the hub: signed in the
    /// sale's transaction, its code ready for the receipt. Returns its e-NCF.
    fn offline_e32(&mut self, t: &mut Till) -> Result<String, DayError> {
        check(t.sync.round().is_err(), format!("{} is offline", t.name))?;
        let cash = PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 20_000,
            reference: None,
        };
        let (sale, total) = self.sell(t, &[("2000000000024", 250)], vec![cash], None)?;
        let issued = caja_node::ecf::store::of_sale(t.register.conn(), sale)
            .map_err(fail("issued e-CF"))?
            .ok_or_else(|| DayError(format!("{}: the offline sale was not signed", t.name)))?;
        check(
            issued.encf.starts_with("E32"),
            format!("an E32 number: {}", issued.encf),
        )?;
        self.say(format!(
            "  caja-3, offline, sells salami for {}: {} signed, security code {}",
            messages::rd(total),
            issued.encf,
            issued.security_code
        ))?;
        Ok(issued.encf)
    }

    fn random_sale_id(&mut self, t: &mut Till) -> Result<(SaleId, Money), DayError> {
        let cash = PaymentRequest {
            method: PaymentMethod::Cash,
            amount: 100_000,
            reference: None,
        };
        self.sell(t, &[("7460000000011", 1000)], vec![cash], None)
    }
}
