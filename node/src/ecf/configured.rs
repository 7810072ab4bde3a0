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

use caja_shared::kind::{SaleCreated, SaleReturned};

use super::{EcfIssuer, EcfUnavailable, IssueFailed, IssuedEcf, IssuerSlot, Modified, Signing};
use crate::config::{EcfConfig, NodeConfig};
use crate::datadir::DataDir;

/// The configured issuer and its credentials.
#[derive(Debug)]
pub struct Configured {
    /// The `[ecf]` section.
    pub config: EcfConfig,
    pub(super) creds: Credentials,
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
    Ok(Arc::new(Configured { config: ecf, creds }))
}

impl EcfIssuer for Configured {
    fn check(&self, at_ms: i64) -> Result<(), EcfUnavailable> {
        self.check_validity(at_ms)
    }

    fn issue_sale(&self, _sale: &SaleCreated, _at: &Signing<'_>) -> Result<IssuedEcf, IssueFailed> {
        Err(not_yet())
    }

    fn issue_credit_note(
        &self,
        _ret: &SaleReturned,
        _modified: &Modified,
        _at: &Signing<'_>,
    ) -> Result<IssuedEcf, IssueFailed> {
        Err(not_yet())
    }
}

fn not_yet() -> IssueFailed {
    IssueFailed {
        field: "ecf".into(),
        reason: "this build has no e-CF document builder yet".into(),
    }
}
