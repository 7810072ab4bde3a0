//! The register's own e-CF issuer: the `[ecf]` configuration (who issues,
//! which DGII environment, deferred sending) and the certificate installed
//! with `caja-node fiscal certificate install`, loaded when the register
//! opens.
//!
//! Invariant: a certificate outside its validity at the signing time never
//! signs (the sale is refused); a missing `[ecf]` or certificate is reported
//! only when an `E` series is used, so a register selling `B` documents
//! needs neither. A sale's documents are signed on the issuer's one kept
//! thread ([`super::beside::Worker`]), the e-CF's check handed back to the
//! sale's thread while the RFCE is signed, the RFCE's check run beside the
//! sale's SQL ([`super::beside`]).

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

use super::beside::{Steps, Worker};
use super::{
    EcfIssuer, EcfUnavailable, IssueFailed, IssuedEcf, IssuerSlot, Modification, Modified,
    PendingSale, SignedDoc, Signing, SigningOwned,
};
use crate::config::{EcfConfig, NodeConfig};
use crate::datadir::DataDir;

/// The configured issuer, its DGII environment, its signer and the
/// certificate's validity.
#[derive(Debug)]
pub struct Configured {
    /// The `[ecf]` section.
    pub config: EcfConfig,
    keys: Arc<Keys>,
    creds: Credentials,
    worker: Worker,
}

/// What signing needs, shared with the worker thread.
#[derive(Debug)]
struct Keys {
    issuer: Issuer,
    environment: Environment,
    signer: Signer,
    deferred_send: bool,
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
    let deferred_send = ecf.deferred_send;
    Ok(Arc::new(Configured {
        config: ecf,
        keys: Arc::new(Keys {
            issuer,
            environment,
            signer,
            deferred_send,
        }),
        creds,
        worker: Worker::new(),
    }))
}

impl Configured {
    /// The worker thread's id once one signed (for tests: one kept thread).
    pub fn worker_thread(&self) -> Option<std::thread::ThreadId> {
        self.worker.thread_id()
    }
}

impl Keys {
    fn context<'a>(&'a self, at: &Signing<'a>) -> SaleContextEcf<'a> {
        SaleContextEcf {
            issuer: &self.issuer,
            environment: self.environment,
            offset: UtcOffset::SANTO_DOMINGO,
            issued_ms: at.issued_ms,
            signed_at_ms: at.signed_at_ms,
            series_valid_until: at.series_valid_until,
            deferred_send: self.deferred_send,
            buyer_name: at.buyer_name,
        }
    }
}

impl EcfIssuer for Configured {
    fn check(&self, at_ms: i64) -> Result<(), EcfUnavailable> {
        self.check_validity(at_ms)
    }

    fn issue_sale(&self, sale: &SaleCreated, at: &Signing<'_>) -> Result<IssuedEcf, IssueFailed> {
        let mut pending = self.start_sale(
            sale.clone(),
            SigningOwned {
                issued_ms: at.issued_ms,
                signed_at_ms: at.signed_at_ms,
                series_valid_until: at.series_valid_until.map(str::to_owned),
                buyer_name: at.buyer_name.map(str::to_owned),
            },
        );
        let issued = pending.documents()?;
        pending.finish()?;
        Ok(issued)
    }

    fn start_sale(&self, sale: SaleCreated, at: SigningOwned) -> PendingSale {
        let (steps, pending) = PendingSale::channel();
        let keys = Arc::clone(&self.keys);
        self.worker
            .run(Box::new(move || keys.sign_sale(&sale, &at, &steps)));
        pending
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
        issue::issue_credit_note(ret, &modified, &self.keys.context(at), &self.keys.signer)
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

impl Keys {
    /// A sale's signing steps on the worker thread (the same steps and
    /// bytes as [`issue::issue_sale`]): the e-CF signed and its check handed
    /// to the sale's thread; the RFCE signed with the e-CF's code; the
    /// documents sent; then the RFCE's check, while the sale's thread stores
    /// them.
    fn sign_sale(&self, sale: &SaleCreated, at: &SigningOwned, steps: &Steps<IssuedEcf>) {
        let signing = at.signing();
        let ctx = self.context(&signing);
        let ecf = match issue::sign_sale_ecf(sale, &ctx, None, &self.signer) {
            Ok(e) => e,
            Err(e) => return steps.failed(failed(e)),
        };
        let (signed, value) = (ecf.signed().to_vec(), ecf.signature_value().to_owned());
        steps.check_here(Box::new(move || {
            issue::check_ecf(&signed, &value).map_err(failed)
        }));
        let rfce = match ecf.sign_summary(sale, &ctx, &self.signer) {
            Ok(r) => r,
            Err(e) => return steps.failed(failed(e)),
        };
        let to_check = rfce.clone();
        steps.documents(converted(ecf.into_issued_unchecked(&ctx, rfce)));
        steps.checked(
            to_check
                .as_ref()
                .map_or(Ok(()), issue::check_signed)
                .map_err(failed),
        );
    }
}
