//! What the printed receipt of an e-CF carries besides the sale: the QR's
//! consultation address and DGII's date and time strings.
//!
//! Invariant: every query value is percent-encoded (a security code comes
//! from base64 and may hold `+` and `/`; dates hold spaces and colons), so
//! the address read from the QR is the one DGII's service parses. Sources:
//! DGII "Descripción técnica de facturación electrónica" (`ConsultaTimbre`
//! with `RncEmisor`, `RncComprador` when there is a buyer, `ENCF`,
//! `FechaEmision`, `MontoTotal`, `FechaFirma`, `CodigoSeguridad`;
//! `ConsultaTimbreFC` with `RncEmisor`, `ENCF`, `MontoTotal`,
//! `CodigoSeguridad` for consumer invoices under DOP$250,000.00, on the `fc`
//! host) and "Representación Impresa" (dates `dd-MM-yyyy`, signing time
//! `dd-MM-yyyy HH:mm:ss`, local time of the Dominican Republic, GMT−4).

use crate::localtime::{LocalDate, LocalDateTime};
use crate::money::Money;

use super::issuer::Environment;

/// `dd-MM-yyyy`.
pub fn date_dmy(d: LocalDate) -> String {
    format!("{:02}-{:02}-{:04}", d.day, d.month, d.year)
}

/// `dd-MM-yyyy HH:mm:ss`.
pub fn datetime_dmy(t: LocalDateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02}",
        date_dmy(t.date()),
        t.hour,
        t.minute,
        t.second
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base?k=v&…` with every value percent-encoded.
pub fn query(base: &str, params: &[(&str, String)]) -> String {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("{}?{}", base.trim_end_matches('/'), q.join("&"))
}

/// What the full-document QR names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimbreParams<'a> {
    /// Issuer RNC.
    pub rnc: &'a str,
    /// Buyer RNC/cédula, when the document names one.
    pub buyer_rnc: Option<&'a str>,
    /// The e-NCF.
    pub encf: &'a str,
    /// Issue date.
    pub issued: LocalDate,
    /// Total.
    pub total: Money,
    /// Signing time (local).
    pub signed_at: LocalDateTime,
    /// Security code.
    pub code: &'a str,
}

/// `{ecf_base}/ConsultaTimbre?…`.
pub fn consulta_timbre(base: &str, p: &TimbreParams<'_>) -> String {
    let mut params = vec![("RncEmisor", p.rnc.to_owned())];
    if let Some(b) = p.buyer_rnc {
        params.push(("RncComprador", b.to_owned()));
    }
    params.extend([
        ("ENCF", p.encf.to_owned()),
        ("FechaEmision", date_dmy(p.issued)),
        ("MontoTotal", p.total.to_string()),
        ("FechaFirma", datetime_dmy(p.signed_at)),
        ("CodigoSeguridad", p.code.to_owned()),
    ]);
    query(
        &format!("{}/ConsultaTimbre", base.trim_end_matches('/')),
        &params,
    )
}

/// `{fc_base}/ConsultaTimbreFC?…` for a consumer invoice sent as a summary.
pub fn consulta_timbre_fc(base: &str, rnc: &str, encf: &str, total: Money, code: &str) -> String {
    query(
        &format!("{}/ConsultaTimbreFC", base.trim_end_matches('/')),
        &[
            ("RncEmisor", rnc.to_owned()),
            ("ENCF", encf.to_owned()),
            ("MontoTotal", total.to_string()),
            ("CodigoSeguridad", code.to_owned()),
        ],
    )
}

/// The QR address of an issued document in an environment: `ConsultaTimbreFC`
/// for a summarized consumer invoice, else `ConsultaTimbre`.
pub fn qr_url(env: Environment, summarized: bool, p: &TimbreParams<'_>) -> String {
    if summarized {
        consulta_timbre_fc(&env.fc_base(), p.rnc, p.encf, p.total, p.code)
    } else {
        consulta_timbre(&env.ecf_base(), p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::localtime::UtcOffset;

    #[test]
    fn qr_addresses_encode_every_value() {
        // 2026-11-23 14:06:10 in Santo Domingo.
        let at = LocalDateTime::from_utc_ms(1_795_457_170_000, UtcOffset::SANTO_DOMINGO);
        let p = TimbreParams {
            rnc: "131880738",
            buyer_rnc: Some("101672919"),
            encf: "E310000000007",
            issued: at.date(),
            total: Money(96000),
            signed_at: at,
            code: "a+/b=c",
        };
        assert_eq!(
            qr_url(Environment::Test, false, &p),
            "https://ecf.dgii.gov.do/testecf/ConsultaTimbre?RncEmisor=131880738&RncComprador=101672919&ENCF=E310000000007&FechaEmision=23-11-2026&MontoTotal=960.00&FechaFirma=23-11-2026%2014%3A06%3A10&CodigoSeguridad=a%2B%2Fb%3Dc"
        );
        assert_eq!(
            qr_url(Environment::Production, true, &p),
            "https://fc.dgii.gov.do/ecf/ConsultaTimbreFC?RncEmisor=131880738&ENCF=E310000000007&MontoTotal=960.00&CodigoSeguridad=a%2B%2Fb%3Dc"
        );
        assert_eq!(percent_encode("ñ &"), "%C3%B1%20%26");
    }
}
