//! The register's own e-CF issuer: the `[ecf]` configuration (who issues,
//! which DGII environment, deferred sending) and the certificate installed
//! with `caja-node fiscal certificate install`, loaded when the register
//! opens.
//!
//! Invariant: a certificate outside its validity at the signing time never
//! signs (the sale is refused); a missing `[ecf]` or certificate is reported
//! only when an `E` series is used, so a register selling `B` documents
//! needs neither.

use std::sync::Arc;

use caja_shared::ecf::certificate::{Credentials, Validity};
use caja_shared::ecf::document::{
    DocumentError, ModificationCode, ModifiedDocument, SaleContextEcf,
};
use caja_shared::ecf::issue;
use caja_shared::ecf::issuer::{Environment, Issuer};
use caja_shared::ecf::xmldsig::Signer;
use caja_shared::kind::{SaleCreated, SaleReturned};
use caja_shared::localtime::UtcOffset;

use super::{
    EcfIssuer, EcfUnavailable, IssueFailed, IssuedEcf, IssuerSlot, Modification, Modified,
    SignedDoc, Signing,
};
use crate::config::{EcfConfig, NodeConfig};
use crate::datadir::DataDir;

/// The configured issuer, its DGII environment, its signer and the
/// certificate's validity.
#[derive(Debug)]
pub struct Configured {
    /// The `[ecf]` section.
    pub config: EcfConfig,
    issuer: Issuer,
    environment: Environment,
    signer: Signer,
    creds: Credentials,
}

impl Configured {
    /// Whether the certificate may sign at `at_ms`.
    pub fn check_validity(&self, at_ms: i64) -> Result<(), EcfUnavailable> {
        match self.creds.validity(at_ms) {
            Validity::Valid { .. } | Validity::ExpiresSoon { .. } => Ok(()),
            Validity::Expired | Validity::NotYetValid => {
                let info = self.creds.info();
                Err(EcfUnavailable::CertificateNotValid {
                    at_ms,
                    not_before_ms: info.not_before_ms,
                    not_after_ms: info.not_after_ms,
                })
            }
        }
    }
}

/// The issuer the data directory and configuration give, or why there is
/// none.
pub fn load(dir: &DataDir, config: &NodeConfig) -> IssuerSlot {
    let Some(ecf) = config.ecf.clone() else {
        return Err(EcfUnavailable::NoIssuer);
    };
    let creds = match crate::fiscal::certificate::load(dir) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(EcfUnavailable::NoCertificate),
        Err(e) => return Err(EcfUnavailable::Broken(e.to_string())),
    };
    let broken =
        |what: &str, e: &dyn std::fmt::Display| EcfUnavailable::Broken(format!("{what}: {e}"));
    let environment = Environment::parse(&ecf.environment)
        .ok_or_else(|| broken("ecf.environment", &ecf.environment))?;
    let issuer = Issuer::new(
        &ecf.rnc,
        &ecf.legal_name,
        &ecf.address,
        ecf.trade_name.as_deref(),
    )
    .map_err(|e| broken("ecf", &e))?;
    let signer = Signer::new(creds.key_pkcs8(), creds.cert_der().to_vec())
        .map_err(|e| broken("certificate", &e))?;
    Ok(Arc::new(Configured {
        config: ecf,
        issuer,
        environment,
        signer,
        creds,
    }))
}

impl Configured {
    fn context<'a>(&'a self, at: &Signing<'a>) -> SaleContextEcf<'a> {
        SaleContextEcf {
            issuer: &self.issuer,
            environment: self.environment,
            offset: UtcOffset::SANTO_DOMINGO,
            issued_ms: at.issued_ms,
            signed_at_ms: at.signed_at_ms,
            series_valid_until: at.series_valid_until,
            deferred_send: self.config.deferred_send,
            buyer_name: at.buyer_name,
        }
    }
}

impl EcfIssuer for Configured {
    fn check(&self, at_ms: i64) -> Result<(), EcfUnavailable> {
        self.check_validity(at_ms)
    }

    fn issue_sale(&self, sale: &SaleCreated, at: &Signing<'_>) -> Result<IssuedEcf, IssueFailed> {
        issue::issue_sale_joined(sale, &self.context(at), None, &self.signer, &Beside)
            .map(converted)
            .map_err(failed)
    }

    fn issue_credit_note(
        &self,
        ret: &SaleReturned,
        modified: &Modified,
        at: &Signing<'_>,
    ) -> Result<IssuedEcf, IssueFailed> {
        let modified = ModifiedDocument {
            ncf: modified.ncf.clone(),
            issued_date: modified.issued_date,
            code: match modified.modification {
                Modification::Full => ModificationCode::Cancel,
                Modification::Partial => ModificationCode::CorrectAmounts,
            },
        };
        issue::issue_credit_note(ret, &modified, &self.context(at), &self.signer)
            .map(converted)
            .map_err(failed)
    }
}

fn converted(i: issue::Issued) -> IssuedEcf {
    IssuedEcf {
        encf: i.encf,
        security_code: i.security_code,
        signed_at_ms: i.signed_at_ms,
        total: i.total,
        documents: i
            .documents
            .into_iter()
            .map(|d| SignedDoc {
                kind: d.kind.as_str().to_owned(),
                xml: d.xml,
                sha256: d.sha256,
            })
            .collect(),
        qr_url: i.qr_url,
    }
}

/// The failure, naming the field of the document (or the sale) at fault.
fn failed(e: issue::IssueError) -> IssueFailed {
    let (field, reason) = match &e {
        issue::IssueError::Document(DocumentError::Field { field, reason }) => {
            (field.clone(), reason.clone())
        }
        issue::IssueError::Document(DocumentError::TaxRate { line, .. }) => {
            (format!("lines[{line}].tax_bp"), e.to_string())
        }
        _ => ("ecf".to_owned(), e.to_string()),
    };
    IssueFailed { field, reason }
}

/// [`issue::Join`] over two threads: the e-CF's check runs on a scoped
/// thread while this one builds and signs the RFCE, both before the sale's
/// transaction goes on (one `thread::scope`, joined before it returns); on
/// this thread alone when no thread can be started.
struct Beside;

impl issue::Join for Beside {
    fn join(&self, beside: &mut (dyn FnMut() + Send), here: &mut dyn FnMut()) {
        // Behind a lock so that it can still run here if no thread starts.
        let beside = std::sync::Mutex::new(beside);
        let run_beside = || match beside.lock() {
            Ok(mut f) => f(),
            Err(poisoned) => (poisoned.into_inner())(),
        };
        std::thread::scope(|s| {
            let spawned = std::thread::Builder::new()
                .name("ecf-check".into())
                .spawn_scoped(s, run_beside);
            match spawned {
                Ok(handle) => {
                    here();
                    if let Err(panic) = handle.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                Err(_) => {
                    run_beside();
                    here();
                }
            }
        });
    }
}
