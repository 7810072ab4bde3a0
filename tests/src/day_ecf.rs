//! The electronic fiscal documents (e-CF) of the demo's day: a throwaway
//! certification authority and signer certificate made with the `openssl`
//! command ([`crate::pki`]), a DGII emulator on loopback that checks every
//! document it receives as DGII does (the XMLDSig signature always; the
//! schema with `xmllint` when DGII's XSD directory `../shared/dgii/xsd` and
//! `xmllint` are both there), the hub's `[tax_authority]` pointed at it with
//! the throwaway CA as its trusted CA and its own certificate installed (it
//! signs cancellations, ANECF), and the registers made e-CF issuers (`[ecf]`
//! and the signer's certificate). After the day, [`EcfDay::settle`] waits
//! until the hub's outbox has decided every document and checks the
//! exactly-once promise with the emulator's own counts and hashes.
//!
//! Invariant: the demo never falls back to unsigned documents — without
//! `openssl` it stops with a sentence saying how to install it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use caja_hub::config::{HubConfig, TaxAuthorityConfig};
use caja_hub::dgii_emulator::{Checks, Emulator, Faults};
use caja_node::sync::engine::SyncSettings;
use caja_shared::clock::Clock;
use caja_shared::digest::Hash256;

use crate::cluster::{Hub, Till};
use crate::pki::{Pki, P12_PASSWORD, SIGNER_RNC};

/// The colmado's RNC: the one in its signer certificate, its registers'
/// `[ecf]`, the hub's `[tax_authority]` and the emulator's token.
pub const RNC: &str = SIGNER_RNC;

/// The trusted CA's file in the hub's data directory.
pub const TRUSTED_CA_FILE: &str = "ca-de-prueba.pem";

/// A failed e-CF step or check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EcfDayError(pub String);

fn fail<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> EcfDayError + '_ {
    move |e| EcfDayError(format!("{what}: {e}"))
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), EcfDayError> {
    if ok {
        Ok(())
    } else {
        Err(EcfDayError(format!(
            "invariant check failed: {}",
            what.into()
        )))
    }
}

fn openssl_present() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// DGII's XSD directory (`$CAJA_DGII_XSD`, else `../shared/dgii/xsd`
/// beside the workspace) when it exists and `xmllint` is installed;
/// otherwise why schema validation is skipped.
fn schema_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("CAJA_DGII_XSD").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/dgii/xsd"),
        PathBuf::from,
    );
    if !dir.join("e-CF-32.xsd").is_file() {
        return Err(format!(
            "DGII's schemas are not at {} (set CAJA_DGII_XSD to their directory)",
            dir.display()
        ));
    }
    if Command::new("xmllint").arg("--version").output().is_err() {
        return Err(
            "xmllint is not installed (Debian/Ubuntu: apt-get install libxml2-utils)".into(),
        );
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// The e-CF side of the day.
#[derive(Debug)]
pub struct EcfDay {
    /// The throwaway PKI (in the demo's `pki/` folder).
    pub pki: Pki,
    /// Where the emulator's schemas come from, or why it skips them.
    pub schema: Result<PathBuf, String>,
    rt: tokio::runtime::Runtime,
    emu: Option<Emulator>,
}

impl EcfDay {
    /// Makes the PKI in `root/pki` and starts the DGII emulator. Fails with
    /// a sentence when `openssl` is missing.
    pub fn start(root: &Path) -> Result<EcfDay, EcfDayError> {
        if !openssl_present() {
            return Err(EcfDayError(
                "the demo issues e-CF signed with a throwaway certificate it makes with the \
                 `openssl` command, and openssl is not installed: install it (Debian/Ubuntu: \
                 `sudo apt-get install openssl`; macOS: `brew install openssl`) and run the demo again"
                    .into(),
            ));
        }
        let pki = Pki::generate(&root.join("pki")).map_err(fail("throwaway certificates"))?;
        let schema = schema_dir();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(fail("runtime"))?;
        let emu = rt
            .block_on(Emulator::start_checked(
                "127.0.0.1:0".parse().map_err(fail("address"))?,
                RNC,
                Faults::default(),
                1,
                Checks {
                    xsd_dir: schema.clone().ok(),
                    signatures: true,
                },
            ))
            .map_err(fail("DGII emulator"))?;
        Ok(EcfDay {
            pki,
            schema,
            rt,
            emu: Some(emu),
        })
    }

    fn emu(&self) -> Result<&Emulator, EcfDayError> {
        self.emu
            .as_ref()
            .ok_or_else(|| EcfDayError("the DGII emulator stopped".into()))
    }

    /// The emulator's address.
    pub fn emulator_url(&self) -> Result<String, EcfDayError> {
        Ok(format!("http://{}", self.emu()?.addr()))
    }

    /// Starts the hub in `dir` with `[tax_authority]` pointed at the
    /// emulator, the throwaway CA trusted and its own certificate installed.
    pub fn start_hub(&self, dir: &Path) -> Result<Hub, EcfDayError> {
        let emu = self.emu()?;
        let tax = TaxAuthorityConfig {
            ecf_base_url: emu.ecf_base_url(),
            fc_base_url: emu.fc_base_url(),
            rnc: RNC.into(),
            legal_name: "Colmado La Esquina SRL".into(),
            address: Some("C/ Duarte 12, Santiago".into()),
            trusted_ca: Some(TRUSTED_CA_FILE.into()),
            workers: 2,
            lease_ms: 6_000,
            request_timeout_ms: 2_000,
            poll_interval_ms: 50,
            retry_base_ms: 50,
            retry_cap_ms: 500,
            idle_poll_ms: 50,
            ..TaxAuthorityConfig::default()
        };
        let pki = &self.pki;
        Hub::start_prepared(
            dir,
            |c| HubConfig {
                tax_authority: Some(tax),
                ..c
            },
            |d| {
                std::fs::copy(&pki.ca_pem, d.join(TRUSTED_CA_FILE))
                    .map_err(|e| format!("trusted CA: {e}"))?;
                let p12 = std::fs::read(&pki.leaf_p12).map_err(|e| format!("p12: {e}"))?;
                caja_hub::certificate::install(
                    d,
                    &pki.leaf_p12,
                    &p12,
                    P12_PASSWORD,
                    caja_hub::system::SystemClock.now_ms(),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            },
        )
        .map_err(fail("hub"))
    }

    /// Makes `till` an e-CF issuer of the colmado (signer certificate and
    /// `[ecf]`).
    pub fn make_issuer(&self, till: &mut Till, settings: SyncSettings) -> Result<(), EcfDayError> {
        till.issue_ecf_with(&self.pki, RNC, settings)
            .map_err(fail("e-CF issuer"))
    }

    /// Waits until the hub's outbox has decided every document the
    /// registers signed, then checks against the emulator: every e-NCF
    /// arrived exactly once, as the register's signed bytes (SHA-256 of the
    /// RFCE of a summarized `E32`, of the e-CF otherwise), passed the
    /// emulator's checks and was accepted. Returns the lines to print.
    pub fn settle(&self, hub: &Hub, tills: &[Till]) -> Result<Vec<String>, EcfDayError> {
        // What the registers signed: per e-NCF, the register and the hash
        // of the bytes DGII must receive.
        let mut signed: BTreeMap<String, (String, Hash256)> = BTreeMap::new();
        let hub_db = hub.db().map_err(fail("hub db"))?;
        let mut held = 0;
        for t in tills {
            let docs = caja_node::ecf::store::all(t.register.conn()).map_err(fail("documents"))?;
            for (sha, encf, kind, xml) in &docs {
                let at_hub: Vec<u8> = hub_db
                    .query_row(
                        "SELECT xml FROM signed_documents WHERE sha256 = ?1",
                        [sha],
                        |r| r.get(0),
                    )
                    .map_err(fail(&format!("the hub's copy of the {kind} of {encf}")))?;
                check(
                    at_hub == *xml,
                    format!("the hub holds the {kind} of {encf} as {} signed it", t.name),
                )?;
                held += 1;
                let sha: Hash256 = sha.parse().map_err(fail("document hash"))?;
                let summarized = docs.iter().any(|d| d.1 == *encf && d.2 == "rfce");
                if kind == "rfce" || !summarized {
                    let before = signed.insert(encf.clone(), (t.name.clone(), sha));
                    check(
                        before.is_none(),
                        format!("{encf} signed once by one register"),
                    )?;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        let listed = loop {
            let v = hub
                .get("/v1/admin/outbox?state=all&limit=1000")
                .map_err(fail("outbox"))?;
            let docs = v["documents"].as_array().cloned().unwrap_or_default();
            let decided = docs
                .iter()
                .filter(|d| !matches!(d["state"].as_str(), Some("pending" | "submitted")))
                .count();
            if docs.len() == signed.len() && decided == docs.len() {
                break docs;
            }
            if Instant::now() > deadline {
                return Err(EcfDayError(format!(
                    "the outbox did not decide every document in time ({decided} of {} decided, {} signed): {}",
                    docs.len(),
                    signed.len(),
                    v["health"]
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for d in &listed {
            check(
                d["state"] == "accepted",
                format!("the emulator accepted {}: {d}", d["document"]),
            )?;
        }
        let emu = self.emu()?;
        let totals = emu.totals();
        let hashes = emu.received_hashes();
        for (encf, (till, sha)) in &signed {
            let n = totals.per_number.get(encf).cloned().unwrap_or_default();
            check(
                n.received == 1 && n.duplicates == 0 && n.conflicting == 0 && n.refused == 0,
                format!("{encf} of {till} arrived exactly once at the emulator: {n:?}"),
            )?;
            check(
                hashes.get(encf) == Some(sha),
                format!("the emulator received {till}'s signed bytes of {encf} unchanged"),
            )?;
        }
        check(
            totals.per_number.keys().all(|k| signed.contains_key(k)),
            "the emulator received only documents the registers signed",
        )?;
        let summaries = listed.iter().filter(|d| d["channel"] == "rfce").count();
        let schema = match &self.schema {
            Ok(dir) => format!("schema-validated with xmllint against {}", dir.display()),
            Err(why) => format!("schema validation SKIPPED: {why}"),
        };
        Ok(vec![
            format!(
                "  the hub holds all {held} signed documents (e-CF and RFCE) byte for byte as the registers signed them"
            ),
            format!(
                "  DGII emulator: {} e-CF arrived exactly once each ({} E32 as their RFCE summary, {} whole), \
                 each the register's signed bytes (SHA-256 equal), all accepted",
                signed.len(),
                summaries,
                signed.len() - summaries
            ),
            format!("  DGII emulator: every document's signature verified; {schema}"),
        ])
    }

    /// Stops the emulator.
    pub fn stop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.stop());
        }
    }
}

impl Drop for EcfDay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many e-CF `till` signed, by series, e.g. `E31 1, E32 14`.
pub fn signed_by_series(till: &Till) -> Result<(usize, String), EcfDayError> {
    let docs = caja_node::ecf::store::all(till.register.conn()).map_err(fail("documents"))?;
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut rfce = 0;
    for (_, encf, kind, _) in &docs {
        if kind == "ecf" {
            *by.entry(encf.chars().take(3).collect()).or_default() += 1;
        } else {
            rfce += 1;
        }
    }
    let total = by.values().sum();
    let mut text = by
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    text.push_str(&format!("; {rfce} RFCE summaries"));
    Ok((total, text))
}

/// Checks `folder` holds the original receipt of every e-CF `till` signed
/// for a sale — one file each, carrying its e-NCF and security code — and
/// that the register queued exactly one original per sale. Returns the
/// number of sales and the file of `encf`'s original, if asked.
pub fn originals_in_folder(
    till: &Till,
    folder: &Path,
    encf: Option<&str>,
) -> Result<(usize, Option<PathBuf>), EcfDayError> {
    let conn = till.register.conn();
    let count = |sql: &str| -> Result<usize, EcfDayError> {
        let n: i64 = conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(fail("count"))?;
        Ok(usize::try_from(n).unwrap_or(0))
    };
    let device = till.register.device().device.to_string();
    let sales: i64 = conn
        .query_row(
            "SELECT count(*) FROM sales WHERE device = ?1",
            [&device],
            |r| r.get(0),
        )
        .map_err(fail("sales"))?;
    let sales = usize::try_from(sales).unwrap_or(0);
    let signed = count("SELECT count(*) FROM issued_ecf WHERE sale_id IS NOT NULL")?;
    check(
        signed == sales,
        format!(
            "{}: every sale issued as a signed e-CF ({signed} of {sales})",
            till.name
        ),
    )?;
    let originals = count("SELECT count(*) FROM print_jobs WHERE kind = 'original'")?;
    check(
        originals == sales,
        format!(
            "{}: one original receipt queued per e-CF sale ({originals} for {sales})",
            till.name
        ),
    )?;
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(fail("receipts folder"))? {
        let path = entry.map_err(fail("receipts folder"))?.path();
        if path.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(&path).map_err(fail("receipt"))?;
            texts.push((path, text));
        }
    }
    let mut stmt = conn
        .prepare("SELECT encf, security_code FROM issued_ecf WHERE sale_id IS NOT NULL")
        .map_err(fail("issued"))?;
    let issued: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(fail("issued"))?
        .collect::<Result<_, _>>()
        .map_err(fail("issued"))?;
    let mut asked = None;
    for (number, code) in &issued {
        let files: Vec<&PathBuf> = texts
            .iter()
            .filter(|(_, t)| {
                t.contains(number.as_str())
                    && t.contains(&format!("Código de seguridad: {code}"))
                    && !t.contains("COPIA")
            })
            .map(|(p, _)| p)
            .collect();
        check(
            files.len() == 1,
            format!(
                "{}: the folder holds the original receipt of {number} once (found {})",
                till.name,
                files.len()
            ),
        )?;
        if encf == Some(number.as_str()) {
            asked = files.first().map(|p| (*p).clone());
        }
    }
    Ok((sales, asked))
}
