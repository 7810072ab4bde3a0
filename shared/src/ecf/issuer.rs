//! The taxpayer who issues e-CF (RNC, legal name, address, trade name) and the
//! DGII environment documents are issued for.
//!
//! Invariant: an [`Issuer`] holds only values every Caja document can carry
//! as they are — the RNC is 9 or 11 digits, the legal and trade names at most
//! 150 characters, the address at most 100, none blank or with control
//! characters — so a builder never drops or cuts issuer data: missing or
//! unfit data is a configuration error when the issuer is built (at start or
//! series load). Source: DGII "Formato Comprobante Fiscal Electrónico (e-CF)
//! v1.0", área Emisor (`RNCEmisor`, `RazonSocialEmisor`, `NombreComercial`,
//! `DireccionEmisor`) and the XSDs' `RNCValidationType`, `AlfNum150Type`,
//! `AlfNum100Type`; environments from DGII "Descripción técnica de
//! facturación electrónica" (`testecf`, `certecf`, `ecf` under
//! `https://ecf.dgii.gov.do/` and `https://fc.dgii.gov.do/`).

use super::numbers::{self, TaxIdError};
use super::xml::{check_text, TextError};

/// A DGII environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// Pre-certification tests, `testecf`.
    Test,
    /// Certification, `certecf`.
    Certification,
    /// Production, `ecf`.
    Production,
}

impl Environment {
    /// `testecf` | `certecf` | `ecf`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "testecf" => Some(Environment::Test),
            "certecf" => Some(Environment::Certification),
            "ecf" => Some(Environment::Production),
            _ => None,
        }
    }

    /// The path segment DGII uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Environment::Test => "testecf",
            Environment::Certification => "certecf",
            Environment::Production => "ecf",
        }
    }

    /// `https://ecf.dgii.gov.do/<env>`: e-CF services and `ConsultaTimbre`.
    pub fn ecf_base(&self) -> String {
        format!("https://ecf.dgii.gov.do/{}", self.as_str())
    }

    /// `https://fc.dgii.gov.do/<env>`: consumer-invoice summaries and
    /// `ConsultaTimbreFC`.
    pub fn fc_base(&self) -> String {
        format!("https://fc.dgii.gov.do/{}", self.as_str())
    }
}

/// Maximum length of `RazonSocialEmisor` and `NombreComercial`.
pub const MAX_NAME_CHARS: usize = 150;
/// Maximum length of `DireccionEmisor`.
pub const MAX_ADDRESS_CHARS: usize = 100;

/// The issuing taxpayer, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// RNC (9 digits) or cédula (11 digits).
    pub rnc: String,
    /// Legal name (`RazonSocialEmisor`).
    pub legal_name: String,
    /// Address (`DireccionEmisor`, required on every full e-CF).
    pub address: String,
    /// Trade name (`NombreComercial`), when it differs.
    pub trade_name: Option<String>,
}

/// Why issuer data cannot go on documents; names the configuration field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The RNC is not 9 or 11 digits.
    #[error("issuer.rnc: {0}")]
    Rnc(TaxIdError),
    /// A text field is empty, too long or has control characters.
    #[error("{0}")]
    Text(TextError),
}

impl Issuer {
    /// Validates and builds the issuer. Leading and trailing spaces are
    /// trimmed; everything else is kept as given.
    pub fn new(
        rnc: &str,
        legal_name: &str,
        address: &str,
        trade_name: Option<&str>,
    ) -> Result<Issuer, IssuerError> {
        let rnc = rnc.trim();
        numbers::check_tax_id(rnc).map_err(IssuerError::Rnc)?;
        let legal_name = legal_name.trim();
        let address = address.trim();
        check_text("issuer.legal_name", legal_name, MAX_NAME_CHARS).map_err(IssuerError::Text)?;
        check_text("issuer.address", address, MAX_ADDRESS_CHARS).map_err(IssuerError::Text)?;
        let trade_name = match trade_name.map(str::trim) {
            None | Some("") => None,
            Some(t) => {
                check_text("issuer.trade_name", t, MAX_NAME_CHARS).map_err(IssuerError::Text)?;
                Some(t.to_owned())
            }
        };
        Ok(Issuer {
            rnc: rnc.to_owned(),
            legal_name: legal_name.to_owned(),
            address: address.to_owned(),
            trade_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_name_dgii_bases() {
        for (s, env) in [
            ("testecf", Environment::Test),
            ("certecf", Environment::Certification),
            ("ecf", Environment::Production),
        ] {
            assert_eq!(Environment::parse(s), Some(env));
            assert_eq!(env.as_str(), s);
        }
        assert_eq!(Environment::parse("prod"), None);
        assert_eq!(
            Environment::Certification.ecf_base(),
            "https://ecf.dgii.gov.do/certecf"
        );
        assert_eq!(
            Environment::Production.fc_base(),
            "https://fc.dgii.gov.do/ecf"
        );
    }

    #[test]
    fn issuer_data_is_validated_with_the_field_named() {
        let ok = Issuer::new(" 131880738 ", "Colmado & Hijos SRL", "Calle 1", Some(" ")).unwrap();
        assert_eq!(ok.rnc, "131880738");
        assert_eq!(ok.trade_name, None);
        for (rnc, name, addr, trade, want) in [
            ("13188073", "A", "B", None, "issuer.rnc"),
            ("1318807381", "A", "B", None, "issuer.rnc"),
            ("13188073X", "A", "B", None, "issuer.rnc"),
            ("131880738", "", "B", None, "issuer.legal_name"),
            ("131880738", "A", "", None, "issuer.address"),
            ("131880738", "A", &"x".repeat(101), None, "issuer.address"),
            ("131880738", "A", "B", Some("\u{1}"), "issuer.trade_name"),
        ] {
            let e = Issuer::new(rnc, name, addr, trade).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
        assert!(Issuer::new("00112345678", "A", &"x".repeat(100), None).is_ok());
    }
}
