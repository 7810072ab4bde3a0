//! `caja-hub dgii certification`: DGII's data-test step ("Pruebas de Datos
//! e-CF" of "Proceso de Certificación para ser Emisor Electrónico"). Reads a
//! set of cases as CSV, builds and signs each e-CF with the hub's installed
//! certificate for the configured taxpayer, submits it to the configured
//! environment (`certecf`, or the emulator) through the same gateway the
//! outbox uses — an `E32` under RD$250,000 as its RFCE, everything else as
//! the e-CF — follows a tracking id until its verdict, and reports each
//! case.
//!
//! The CSV (guessed: DGII hands the set as an Excel workbook whose layout
//! is not public; this is the subset of its columns Caja needs, exported one
//! row per line item): `caso,encf,rnc_comprador,nombre_comprador,descripcion,
//! cantidad_milesimas,precio_centavos,itbis_bp` — rows of one case share
//! `caso` and `encf`; the buyer columns may be empty on an E32. A bad row is
//! named (line and column) and nothing is sent.
//!
//! Invariant: each e-NCF of the set is sent once per run; the report names
//! every case with its verdict and DGII's messages.

use std::collections::BTreeMap;
use std::time::Duration;

use caja_shared::ecf::document::SaleContextEcf;
use caja_shared::ecf::issue::issue_sale;
use caja_shared::ecf::issuer::{Environment, Issuer};
use caja_shared::ecf::xmldsig::Signer;
use caja_shared::ids::{DeviceId, StoreId};
use caja_shared::kind::{FiscalDocType, SaleCreated};
use caja_shared::localtime::UtcOffset;
use caja_shared::money::{line_tax, line_total, Money, QtyMilli, TaxRateBp};
use serde::Serialize;
use serde_json::json;

use crate::outbox::{Claimed, DocState, FinalStatus, Prepared};
use crate::taxgw::{StatusAnswer, Submitted, TaxGateway};

/// One line of the set.
#[derive(Debug, Clone, serde::Deserialize)]
struct Row {
    caso: String,
    encf: String,
    #[serde(default)]
    rnc_comprador: String,
    #[serde(default)]
    nombre_comprador: String,
    descripcion: String,
    cantidad_milesimas: i64,
    precio_centavos: i64,
    itbis_bp: u16,
}

/// A case's buyer (RNC, name) and lines, as read.
type Gathered = (Option<(String, String)>, Vec<serde_json::Value>);

/// What happened to one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// The case's name in the set.
    pub case: String,
    /// Its e-NCF.
    pub encf: String,
    /// `ecf` or `rfce`.
    pub channel: String,
    /// `accepted`, `accepted_conditional`, `rejected` or `error`.
    pub result: String,
    /// DGII's messages, or the error.
    pub messages: Vec<String>,
}

/// A case: its number and the sale it documents.
#[derive(Debug, Clone)]
pub struct Case {
    name: String,
    encf: String,
    buyer_name: Option<String>,
    sale: SaleCreated,
}

/// Reads the set; errors name the line and column.
pub fn read_set(csv_text: &str) -> Result<Vec<Case>, String> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut cases: BTreeMap<(String, String), Gathered> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, rec) in reader.deserialize::<Row>().enumerate() {
        let line = i + 2;
        let row = rec.map_err(|e| format!("line {line}: {e}"))?;
        let bad = |col: &str, why: &str| format!("line {line}, column {col}: {why}");
        if caja_shared::ecf::numbers::parse_encf(&row.encf).is_err() {
            return Err(bad("encf", "not an e-NCF (E + 2 + 10 digits)"));
        }
        if row.cantidad_milesimas <= 0 {
            return Err(bad("cantidad_milesimas", "must be positive"));
        }
        if row.precio_centavos < 0 {
            return Err(bad("precio_centavos", "must not be negative"));
        }
        if !matches!(row.itbis_bp, 0 | 1600 | 1800) {
            return Err(bad("itbis_bp", "must be 0, 1600 or 1800"));
        }
        let rate = TaxRateBp::new(row.itbis_bp).map_err(|e| bad("itbis_bp", &e.to_string()))?;
        let total = line_total(
            Money(row.precio_centavos),
            QtyMilli(row.cantidad_milesimas),
            Money(0),
        )
        .map_err(|e| bad("precio_centavos", &e.to_string()))?;
        let tax = line_tax(total, rate).map_err(|e| bad("itbis_bp", &e.to_string()))?;
        let key = (row.caso.clone(), row.encf.clone());
        if !cases.contains_key(&key) {
            order.push(key.clone());
        }
        let entry = cases.entry(key).or_insert((None, Vec::new()));
        if !row.rnc_comprador.is_empty() {
            entry.0 = Some((row.rnc_comprador.clone(), row.nombre_comprador.clone()));
        }
        entry.1.push(json!({
            "product": format!("item-{}", entry.1.len() + 1),
            "name": row.descripcion,
            "qty_milli": row.cantidad_milesimas,
            "unit_price": row.precio_centavos,
            "tax_bp": row.itbis_bp,
            "total": total.0,
            "tax": tax.0,
        }));
    }
    order
        .into_iter()
        .enumerate()
        .map(|(n, key)| {
            let (buyer, lines) = cases.remove(&key).unwrap_or_default();
            let total: i64 = lines.iter().filter_map(|l| l["total"].as_i64()).sum();
            let tax: i64 = lines.iter().filter_map(|l| l["tax"].as_i64()).sum();
            let mut fiscal =
                json!({"series": &key.1[..3], "number": key.1, "valid_until": "2099-12-31"});
            if let Some((rnc, _)) = &buyer {
                fiscal["buyer_tax_id"] = json!(rnc);
            }
            let sale: SaleCreated = serde_json::from_value(json!({
                "sale_id": format!("019aaf70-dbf4-7000-8000-{:012x}", n + 1),
                "cashier": "certificacion",
                "fiscal": fiscal,
                "lines": lines,
                "total": total,
                "tax": tax,
                "payments": [{"method": "card", "amount": total, "reference": "cert"}],
                "change": 0,
            }))
            .map_err(|e| format!("case {}: {e}", key.0))?;
            Ok(Case {
                name: key.0,
                encf: key.1,
                buyer_name: buyer.map(|(_, n)| n).filter(|n| !n.is_empty()),
                sale,
            })
        })
        .collect()
}

fn verdict_name(s: FinalStatus) -> &'static str {
    match s {
        FinalStatus::Accepted => "accepted",
        FinalStatus::AcceptedConditional => "accepted_conditional",
        FinalStatus::Rejected => "rejected",
    }
}

/// Builds, signs, submits and follows every case (see the module doc).
pub async fn run(
    gateway: &dyn TaxGateway,
    cases: &[Case],
    issuer: &Issuer,
    env: Environment,
    signer: &Signer,
    now_ms: i64,
    poll: Duration,
) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let ctx = SaleContextEcf {
            issuer,
            environment: env,
            offset: UtcOffset::SANTO_DOMINGO,
            issued_ms: now_ms,
            signed_at_ms: now_ms,
            series_valid_until: Some("2099-12-31"),
            deferred_send: false,
            buyer_name: c.buyer_name.as_deref(),
        };
        let error = |channel: &str, m: String| CaseResult {
            case: c.name.clone(),
            encf: c.encf.clone(),
            channel: channel.to_owned(),
            result: "error".into(),
            messages: vec![m],
        };
        let issued = match issue_sale(&c.sale, &ctx, signer) {
            Ok(i) => i,
            Err(e) => {
                out.push(error("", e.to_string()));
                continue;
            }
        };
        // The RFCE of a summarized E32 (the last document), else the e-CF.
        let (channel, doc) = match issued.documents.as_slice() {
            [_, rfce] => ("rfce", rfce),
            [ecf, ..] => ("ecf", ecf),
            [] => {
                out.push(error("", "nothing was signed".into()));
                continue;
            }
        };
        let claimed = Claimed {
            doc_id: i64::try_from(i).unwrap_or(0),
            doc_key: c.encf.clone(),
            doc_type: FiscalDocType::Invoice,
            series: c.encf[..3].to_owned(),
            store: StoreId::from_uuid(uuid::Uuid::nil()),
            device: DeviceId::from_uuid(uuid::Uuid::nil()),
            event_id: None,
            range: None,
            created_ms: now_ms,
            state: DocState::Pending,
            prepared: Some(Prepared {
                channel: channel.to_owned(),
                body: doc.xml.clone(),
                body_hash: doc.sha256,
                archive: None,
                security_code: Some(issued.security_code.clone()),
                verify_url: None,
            }),
            track_id: None,
            in_doubt: false,
            attempts: 0,
            corrections: 0,
        };
        let mut answer = gateway.submit(&claimed).await;
        let mut polls = 0;
        let verdict = loop {
            match answer {
                Ok(Submitted::Decided(v)) => break Ok(v),
                Ok(Submitted::Tracked(track)) => {
                    if polls >= 60 {
                        break Err(format!("no verdict for trackId {track}"));
                    }
                    polls += 1;
                    tokio::time::sleep(poll).await;
                    answer = match gateway.status(&claimed, &track).await {
                        Ok(StatusAnswer::Final(v)) => Ok(Submitted::Decided(v)),
                        Ok(_) => Ok(Submitted::Tracked(track)),
                        Err(e) => Err(e),
                    };
                }
                Err(e) => break Err(e.to_string()),
            }
        };
        out.push(match verdict {
            Ok(v) => CaseResult {
                case: c.name.clone(),
                encf: c.encf.clone(),
                channel: channel.to_owned(),
                result: verdict_name(v.status).to_owned(),
                messages: v.messages.iter().map(|m| format!("{m:?}")).collect(),
            },
            Err(e) => error(channel, e),
        });
    }
    out
}

/// The environment of a DGII base address (`…/testecf`, `…/certecf`, else
/// production).
pub fn environment_of(ecf_base_url: &str) -> Environment {
    if ecf_base_url.contains("/testecf") {
        Environment::Test
    } else if ecf_base_url.contains("/certecf") {
        Environment::Certification
    } else {
        Environment::Production
    }
}

/// `caja-hub dgii certification --data-dir DIR --set FILE.csv`: the
/// `[tax_authority]` of `hub.toml`, the hub's installed certificate, then
/// [`run`]. Nothing is sent when the set or the configuration is bad.
pub async fn run_from_data_dir(
    data_dir: &std::path::Path,
    set: &std::path::Path,
) -> anyhow::Result<Vec<CaseResult>> {
    use anyhow::Context as _;
    use caja_shared::clock::Clock as _;
    let text = std::fs::read_to_string(set).with_context(|| format!("{}", set.display()))?;
    let cases = read_set(&text).map_err(|e| anyhow::anyhow!("{}: {e}", set.display()))?;
    let cfg = crate::config::HubConfig::load(data_dir, |k| std::env::var(k).ok())?;
    let t = cfg.tax_authority.ok_or_else(|| {
        anyhow::anyhow!("hub.toml has no [tax_authority]: the taxpayer and DGII's address")
    })?;
    let creds = crate::certificate::load_credentials(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!("no installed certificate: caja-hub fiscal certificate install")
    })?;
    let dgii_cfg = crate::taxgw::dgii::DgiiConfig {
        ecf_base_url: t.ecf_base_url.clone(),
        fc_base_url: t.fc_base_url.clone(),
        rnc: t.rnc.clone(),
        legal_name: t.legal_name.clone(),
        address: t.address.clone(),
    };
    let issuer = crate::taxgw::dgii::issuer(&dgii_cfg)?;
    let clock = std::sync::Arc::new(crate::system::SystemClock);
    let now = clock.now_ms();
    let gateway = crate::taxgw::dgii_http::DgiiGateway::new(dgii_cfg, t.request_timeout_ms, clock)?
        .with_signer(std::sync::Arc::new(creds.signer()?));
    let signer = creds.signer()?;
    let poll =
        Duration::from_millis(u64::try_from(t.poll_interval_ms.clamp(10, 60_000)).unwrap_or(1000));
    Ok(run(
        &gateway,
        &cases,
        &issuer,
        environment_of(&t.ecf_base_url),
        &signer,
        now,
        poll,
    )
    .await)
}
