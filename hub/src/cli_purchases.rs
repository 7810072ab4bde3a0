//! `caja-hub admin purchases`: the supplier e-CF the hub received as DGII
//! receiver (`GET /v1/admin/purchases`), and head office's commercial
//! decision on one (`--issuer RNC --encf E31… --decide approve|reject --by
//! WHO [--note WHY]`, `POST /v1/admin/purchases/{issuer}/{encf}/decide`: the
//! hub signs the ACECF); and the file of `caja-hub fiscal representation`.
//! The CLI half only.
//!
//! Invariant: no decision here; the hub checks and records.

use serde_json::{json, Value};

use crate::admin_client::{AdminClient, AdminError};

/// Arguments of `caja-hub admin purchases`.
#[derive(Debug, Clone, clap::Args)]
pub struct PurchasesArgs {
    /// Most documents listed (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The supplier's RNC (with `--decide`).
    #[arg(long, requires = "decide")]
    pub issuer: Option<String>,
    /// The supplier's e-NCF (with `--decide`).
    #[arg(long, requires = "decide")]
    pub encf: Option<String>,
    /// `approve` or `reject` the supplier's e-CF (needs `--issuer`, `--encf`,
    /// `--by`; a rejection needs `--note`).
    #[arg(long, requires_all = ["issuer", "encf", "by"])]
    pub decide: Option<String>,
    /// Who decides (kept in the audit log).
    #[arg(long)]
    pub by: Option<String>,
    /// Why (a rejection's reason, sent in the ACECF).
    #[arg(long, default_value = "")]
    pub note: String,
}

/// Runs the command against the hub.
pub async fn run(c: &AdminClient, a: PurchasesArgs) -> Result<Value, AdminError> {
    match (a.decide, a.issuer, a.encf) {
        (Some(decision), Some(issuer), Some(encf)) => {
            c.post(
                &format!("/v1/admin/purchases/{issuer}/{encf}/decide"),
                &json!({"decision": decision, "by": a.by.unwrap_or_default(), "note": a.note}),
            )
            .await
        }
        _ => {
            c.get(&format!("/v1/admin/purchases?limit={}", a.limit))
                .await
        }
    }
}

/// Writes the PDF of a `GET /v1/admin/fiscal/representation/{encf}` answer
/// (`caja-hub fiscal representation`).
pub fn write_pdf(answer: &Value, out: &std::path::Path) -> anyhow::Result<()> {
    use base64::Engine as _;
    let b64 = answer["pdf"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the hub's answer has no pdf"))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
    std::fs::write(out, bytes).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(())
}
