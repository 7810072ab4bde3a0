//! Electronic fiscal documents in the simulation: every register is an
//! e-CF issuer (a signer certificate of the test PKI, valid over the
//! simulated dates, and `[ecf]`), holding blocks of the consumer series
//! `E32`, the tax-credit series `E31` and the credit notes `E34` beside
//! `B02`; the workload sells some sales on them ([`issue`]), signed in the
//! sale's transaction, and a return of such a sale takes an `E34`. The
//! hub's outbox submits them to a DGII emulator of the run's own (its
//! faults drawn from the run's seed): one worker's turn at a time between
//! the simulation's steps (`outbox_worker::step_once`, the production
//! claim, build, submit, lookup, poll and record code, with a fixed
//! jitter so the run replays), through the production gateway
//! (`taxgw::dgii_http`, over loopback).
//!
//! Invariant checked after convergence ([`check`]): every e-CF number a
//! register acknowledged (and did not lose with its machine) is one outbox
//! document at the hub, decided and accepted, an accepted whole e-CF with
//! its track id; the emulator received each number exactly once with one
//! content and the bytes the hub holds (extra identical arrivals only after
//! an answer it lost on purpose), refused none, and received nothing else;
//! no number was issued twice (the checker's fiscal uniqueness, over every
//! series); every register holds a verdict for each of its documents.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use caja_hub::dgii_emulator::{Checks, Emulator, Faults};
use caja_hub::outbox_worker::PoolConfig;
use caja_hub::taxgw::TaxGateway;
use caja_node::register::Document;

use super::net::lock;
use super::tally::Work;
use super::world::{SimClock, World};
use super::SimError;

/// The issuer's RNC (the test PKI's signer).
pub const RNC: &str = crate::pki::SIGNER_RNC;

/// The e-CF series of the run: consumer (summarized as RFCE under
/// RD$250,000), tax credit (whole e-CF, with a track id) and credit notes
/// (a return of an electronic sale; submitted once the document it
/// modifies is accepted).
pub const ECF_SERIES: [&str; 3] = ["E32", "E31", "E34"];

/// The business buying with a tax-credit invoice (`E31`).
pub const E31_BUYER: (&str, &str) = ("101000015", "Cafetería El Puente SRL");

/// The register's `[ecf]` section.
pub const REGISTER_ECF: &str = "\n[ecf]\nenvironment = \"testecf\"\nrnc = \"131234567\"\nlegal_name = \"Colmado La Esquina SRL\"\naddress = \"C/ Duarte 12, Santiago\"\n";

/// Per-mille of the emulator's calls answered 503 in the safety phase
/// (half before processing, half after: the answer lost, the document in
/// doubt).
const DGII_ERRORS_PER_MILLE: u32 = 60;

/// The signer's PKCS#12 file, made once per process with the test PKI: a
/// certificate valid from 2025 to 2030, around the simulated dates.
pub fn signer() -> Result<&'static PathBuf, SimError> {
    static SIGNER: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    SIGNER
        .get_or_init(|| {
            let pki = crate::pki::Pki::get().ok_or_else(|| {
                "the simulation's e-CF workload needs `openssl` (Debian: apt-get install openssl)"
                    .to_owned()
            })?;
            pki.signer_between("sim-signer", "20250101000000Z", "20300101000000Z")
        })
        .as_ref()
        .map_err(|e| SimError(format!("e-CF signer: {e}")))
}

/// The hub's own signer (the same certificate): it signs DGII's
/// authentication seed, which the checking emulator verifies.
fn hub_signer() -> Result<Arc<caja_shared::ecf::xmldsig::Signer>, SimError> {
    static SIGNER: std::sync::OnceLock<Result<Arc<caja_shared::ecf::xmldsig::Signer>, String>> =
        std::sync::OnceLock::new();
    SIGNER
        .get_or_init(|| {
            let path = signer().map_err(|e| e.0)?;
            let p12 = std::fs::read(path).map_err(|e| e.to_string())?;
            let c = caja_shared::ecf::certificate::Credentials::from_pkcs12(
                &p12,
                crate::pki::P12_PASSWORD,
            )
            .map_err(|e| e.to_string())?;
            caja_shared::ecf::xmldsig::Signer::new(c.key_pkcs8(), c.cert_der().to_vec())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| SimError(format!("the hub's signer: {e}")))
}

/// Makes the register in `data` an e-CF issuer: installs the signer.
pub fn install_signer(data: &caja_node::datadir::DataDir, now_ms: i64) -> Result<(), SimError> {
    let path = signer()?;
    let p12 = std::fs::read(path).map_err(|e| SimError(format!("signer: {e}")))?;
    caja_node::fiscal::certificate::install(data, path, &p12, crate::pki::P12_PASSWORD, now_ms)
        .map(|_| ())
        .map_err(|e| SimError(format!("install the e-CF signer: {e}")))
}

/// The run's DGII: an emulator on loopback (its own runtime thread) and
/// the hub's gateway to it.
pub struct SimEcf {
    rt: tokio::runtime::Runtime,
    emu: Option<Emulator>,
    gateway: Arc<dyn TaxGateway>,
    cfg: PoolConfig,
}

impl std::fmt::Debug for SimEcf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimEcf")
            .field("emu", &self.emu)
            .finish_non_exhaustive()
    }
}

impl SimEcf {
    /// Starts the run's emulator (faults from `seed`) and a gateway whose
    /// clock is the hub's.
    pub fn start(seed: u64, hub_clock: SimClock) -> Result<SimEcf, SimError> {
        let e = |what: &str| {
            let what = what.to_owned();
            move |x: String| SimError(format!("{what}: {x}"))
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|x| e("emulator runtime")(x.to_string()))?;
        let faults = Faults {
            error_per_mille: DGII_ERRORS_PER_MILLE,
            in_process_polls: 1,
            ..Faults::default()
        };
        let emu = rt
            .block_on(Emulator::start_checked(
                "127.0.0.1:0"
                    .parse()
                    .map_err(|x| e("address")(format!("{x}")))?,
                RNC,
                faults,
                seed,
                Checks {
                    xsd_dir: None,
                    signatures: true,
                },
            ))
            .map_err(|x| e("DGII emulator")(x.to_string()))?;
        let gateway = caja_hub::taxgw::dgii_http::DgiiGateway::new(
            caja_hub::taxgw::dgii::DgiiConfig {
                ecf_base_url: emu.ecf_base_url(),
                fc_base_url: emu.fc_base_url(),
                rnc: RNC.into(),
                legal_name: "Colmado La Esquina SRL".into(),
                address: Some("C/ Duarte 12, Santiago".into()),
            },
            // Loopback answers at once; a long deadline so no call times
            // out by the machine's load (a timeout would change the path).
            60_000,
            hub_clock,
        )
        .map_err(|x| e("gateway")(x.to_string()))?
        .with_signature_check(caja_hub::taxgw::dgii_signed::signature_check(None))
        .with_signer(hub_signer()?);
        let cfg = PoolConfig {
            workers: 1,
            lease_ms: caja_hub::outbox::DEFAULT_LEASE_MS,
            idle_poll_ms: 1_000,
            policy: caja_hub::outbox::RetryPolicy {
                base_ms: 500,
                cap_ms: 8_000,
                poll_ms: 1_000,
            },
            name: "sim".into(),
        };
        Ok(SimEcf {
            rt,
            emu: Some(emu),
            gateway: Arc::new(gateway),
            cfg,
        })
    }

    fn emu(&self) -> Result<&Emulator, SimError> {
        self.emu
            .as_ref()
            .ok_or_else(|| SimError("the DGII emulator stopped".into()))
    }

    /// The emulator's faults healed (the liveness phase).
    pub fn heal(&self) -> Result<(), SimError> {
        self.emu()?.update_faults(|f| {
            f.error_per_mille = 0;
        });
        Ok(())
    }

    /// What the emulator saw.
    pub fn totals(&self) -> Result<caja_hub::dgii_emulator::Totals, SimError> {
        Ok(self.emu()?.totals())
    }
}

impl Drop for SimEcf {
    fn drop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.stop());
        }
    }
}

/// Most worker turns between two steps.
const TURNS_PER_STEP: usize = 6;

/// The hub's outbox worker takes its turns (when the hub is up): each claims
/// one due document and takes it a step (prepare and submit, look up,
/// poll), until nothing is due.
pub fn outbox_pass(w: &mut World) -> Result<(), SimError> {
    let Some(ecf) = w.ecf.as_ref() else {
        return Ok(());
    };
    let (gateway, cfg) = (ecf.gateway.clone(), ecf.cfg.clone());
    for _ in 0..TURNS_PER_STEP {
        let jitter = {
            use caja_shared::entropy::RandomSource;
            w.rng.next_u64()
        };
        let turn = lock(&w.net)
            .hub
            .outbox_step(gateway.clone(), cfg.clone(), "sim", jitter);
        let Some(turn) = turn else {
            return Ok(());
        };
        let (any, stats) = match turn {
            Ok(t) => t,
            // A disk fault or a closing hub: the lease expires, retried.
            Err(e) => {
                w.log(format!(
                    "outbox turn failed: {}",
                    super::world::first_words(&e.to_string())
                ));
                return Ok(());
            }
        };
        if !any {
            return Ok(());
        }
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let (sub, look, dec) = (
            get(&stats.submissions),
            get(&stats.lookups),
            get(&stats.decided),
        );
        for _ in 0..sub {
            w.work.add(Work::EcfSubmitted);
        }
        for _ in 0..look {
            w.work.add(Work::EcfLookup);
        }
        for _ in 0..dec {
            w.work.add(Work::EcfDecided);
        }
        w.log(format!(
            "outbox: a document taken a step: submitted {sub} looked up {look} decided {dec} failed {}",
            get(&stats.failures)
        ));
    }
    Ok(())
}

/// A cashier's electronic sale at `reg`: an `E32` (a consumer's, summarized)
/// or, one time in four, an `E31` naming the buying business.
pub fn issue(w: &mut World, reg: usize) -> Result<(), SimError> {
    let doc = if w.chance(250) {
        Document {
            series: Some("E31".into()),
            buyer_tax_id: Some(E31_BUYER.0.into()),
            buyer_name: Some(E31_BUYER.1.into()),
        }
    } else {
        Document {
            series: Some("E32".into()),
            ..Document::default()
        }
    };
    super::workload::sell_as(w, reg, Some(doc))
}

/// The e-CF part of convergence: the hub's outbox holds nothing undecided.
pub fn settled(w: &World) -> Result<Option<String>, SimError> {
    if w.ecf.is_none() {
        return Ok(None);
    }
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/outbox?state=all&limit=1000", None)?;
    let open: Vec<&serde_json::Value> = v["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| matches!(d["state"].as_str(), Some("pending" | "submitted")))
        .collect();
    Ok(open.first().map(|d| {
        format!(
            "{} e-CF documents undecided in the outbox, e.g. {} {} ({} attempts, last error {})",
            open.len(),
            d["document"],
            d["state"],
            d["attempts"],
            d["last_error"]
        )
    }))
}

/// Whether every undecided outbox document is due after the hub's now, and
/// at least one is: what a step back of the hub's clock leaves (seed 43).
/// The outbox must not wait such a step out: a due time further ahead than
/// its policy ever schedules counts as due.
pub fn waits_out_clock_step(w: &World) -> Result<bool, SimError> {
    if w.ecf.is_none() {
        return Ok(false);
    }
    let hub_now = w.now_ms + w.hub_offset_ms;
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/outbox?state=all&limit=1000", None)?;
    let open: Vec<i64> = v["documents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| matches!(d["state"].as_str(), Some("pending" | "submitted")))
        .map(|d| d["next_attempt_ms"].as_i64().unwrap_or(0))
        .collect();
    Ok(!open.is_empty() && open.iter().all(|due| *due > hub_now))
}

/// Every e-CF number accounted for once (see the module doc).
pub fn check(w: &mut World) -> Result<(), SimError> {
    let Some(ecf) = w.ecf.as_ref() else {
        return Ok(());
    };
    let totals = ecf.totals()?;
    let hashes = ecf.emu()?.received_hashes();
    let v = lock(&w.net)
        .hub
        .admin("GET", "/v1/admin/outbox?state=all&limit=1000", None)?;
    let mut outbox: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for d in v["documents"].as_array().into_iter().flatten() {
        let key = d["document"].as_str().unwrap_or_default().to_owned();
        if outbox.insert(key.clone(), d.clone()).is_some() {
            return Err(SimError(format!("e-CF: {key} is twice in the outbox")));
        }
    }
    let fail = |m: String| Err(SimError(format!("e-CF: {m}")));
    // Every number a register acknowledged, once in the outbox, decided.
    let mut issued = 0u64;
    for a in w.acked.iter().filter(|a| !a.lost) {
        let Some(n) = a.fiscal.as_deref().filter(|n| n.starts_with('E')) else {
            continue;
        };
        issued += 1;
        let Some(d) = outbox.get(n) else {
            return fail(format!(
                "{n}, issued by r{} at step {}, is not in the hub's outbox",
                a.reg, a.step
            ));
        };
        if d["state"] != "accepted" {
            return fail(format!("{n} ended {} at the hub: {d}", d["state"]));
        }
        if d["channel"] == "ecf" && d["track_id"].as_str().is_none_or(str::is_empty) {
            return fail(format!("{n} accepted without its track id: {d}"));
        }
        if d["security_code"].as_str().is_none_or(str::is_empty) {
            return fail(format!("{n} accepted without a security code: {d}"));
        }
    }
    // Every document the outbox holds, received exactly once by DGII with
    // the bytes the hub built or kept; nothing else received.
    for (n, d) in &outbox {
        if !matches!(d["state"].as_str(), Some("accepted")) {
            return fail(format!("{n} ended {} at the hub: {d}", d["state"]));
        }
        let c = totals.per_number.get(n).cloned().unwrap_or_default();
        if c.received != 1 || c.conflicting != 0 || c.refused != 0 || c.contents != 1 {
            return fail(format!("{n} arrived at DGII {c:?}, not exactly once"));
        }
        if c.duplicates > c.answers_lost {
            return fail(format!(
                "{n} sent again {} times with only {} answers lost",
                c.duplicates, c.answers_lost
            ));
        }
        let sent = hashes.get(n).map(caja_shared::digest::Hash256::to_hex);
        if sent.as_deref() != d["body_hash"].as_str() {
            return fail(format!(
                "{n}: DGII received {sent:?}, the hub submitted {}",
                d["body_hash"]
            ));
        }
    }
    if let Some(n) = totals.per_number.keys().find(|n| !outbox.contains_key(*n)) {
        return fail(format!("DGII received {n}, which is in no outbox row"));
    }
    // Every register holds a verdict for each of its documents.
    for r in &w.regs {
        let ops = r
            .ops
            .as_ref()
            .ok_or_else(|| SimError(format!("{} closed", r.name)))?;
        let c = caja_node::projection::fiscal_doc_counts(ops.conn(), &r.device.to_string())
            .map_err(|e| SimError(format!("{}: fiscal documents: {e}", r.name)))?;
        if c.awaiting != 0 || c.rejected != 0 {
            return fail(format!(
                "{}: {} electronic sales still await a verdict, {} rejected",
                r.name, c.awaiting, c.rejected
            ));
        }
    }
    w.checks += issued + outbox.len() as u64 + w.regs.len() as u64;
    let faults = totals.faults;
    for _ in 0..faults {
        w.work.add(Work::DgiiError);
    }
    Ok(())
}
