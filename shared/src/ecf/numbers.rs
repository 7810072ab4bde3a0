//! The shapes of DGII numbers: e-NCF (`E` + 2-digit type + 10-digit
//! sequence), NCF (`B` + 2-digit type + 8-digit sequence), RNC and cédula,
//! and which documents must name their buyer.
//!
//! Invariant: a number these functions accept is what DGII's schemas accept
//! in `eNCF` / `NCFModificado` / `RNCComprador`; a series prefix accepted here
//! names a document type DGII defines. Sources: DGII "Formato Comprobante
//! Fiscal Electrónico (e-CF) v1.0" (`eNCF`, types 31–47, `RNCComprador`
//! conditions: e-CF 31 always; 32 of DOP$250,000.00 or more; 33/34 modifying
//! either), Norma General 06-2018 for the `B` series (types 01–17), the XSDs'
//! `RNCValidationType` (`[0-9]{11}|[0-9]{9}`).

use crate::money::Money;

/// e-CF types DGII defines.
pub const ECF_TYPES: [u8; 10] = [31, 32, 33, 34, 41, 43, 44, 45, 46, 47];

/// Consumer invoices (`E32`) from this total on must name their buyer and go
/// to DGII in full; below it they go as a summary (RFCE): DOP$250,000.00.
pub const BUYER_THRESHOLD: Money = Money(25_000_000);

/// Why a number is not a valid e-NCF / NCF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Wrong length or prefix or non-digits.
    #[error("{0:?} is not an e-NCF (E + 2-digit type + 10 digits) nor an NCF (B + 2-digit type + 8 digits)")]
    Shape(String),
    /// A type DGII does not define.
    #[error("{0:?}: type {1:02} is not a DGII document type")]
    Type(String, u8),
}

/// A parsed fiscal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiscalNumber {
    /// `true` for an electronic number (`E`), `false` for `B`.
    pub electronic: bool,
    /// The document type (31, 32, … or 01, 02, …).
    pub doc_type: u8,
    /// The sequence.
    pub sequence: u64,
}

fn two_digit(s: &str) -> Option<u8> {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses a series prefix: `E31`…`E47` or `B01`…`B17`.
pub fn parse_series(series: &str) -> Result<(bool, u8), NumberError> {
    let bad = || NumberError::Shape(series.to_owned());
    let (electronic, digits) = match series.as_bytes().first() {
        Some(b'E') => (true, &series[1..]),
        Some(b'B') => (false, &series[1..]),
        _ => return Err(bad()),
    };
    let t = two_digit(digits).ok_or_else(bad)?;
    let known = if electronic {
        ECF_TYPES.contains(&t)
    } else {
        (1..=17).contains(&t)
    };
    if !known {
        return Err(NumberError::Type(series.to_owned(), t));
    }
    Ok((electronic, t))
}

/// Parses a full number: `E` + type + 10 digits, or `B` + type + 8 digits.
pub fn parse_number(number: &str) -> Result<FiscalNumber, NumberError> {
    let bad = || NumberError::Shape(number.to_owned());
    if !number.is_ascii() || number.len() < 3 {
        return Err(bad());
    }
    let (electronic, doc_type) = parse_series(&number[..3]).map_err(|e| match e {
        NumberError::Type(_, t) => NumberError::Type(number.to_owned(), t),
        NumberError::Shape(_) => bad(),
    })?;
    let seq = &number[3..];
    let want = if electronic { 10 } else { 8 };
    if seq.len() != want || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(FiscalNumber {
        electronic,
        doc_type,
        sequence: seq.parse().map_err(|_| bad())?,
    })
}

/// Parses an e-NCF (`E` only): returns its type.
pub fn parse_encf(number: &str) -> Result<FiscalNumber, NumberError> {
    let n = parse_number(number)?;
    if !n.electronic {
        return Err(NumberError::Shape(number.to_owned()));
    }
    Ok(n)
}

/// Why a buyer's tax id is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxIdError {
    /// Not 9 (RNC) or 11 (cédula) digits.
    #[error("{0:?} is not an RNC (9 digits) or a cédula (11 digits)")]
    Shape(String),
}

/// Checks an RNC (9 digits) or cédula (11 digits), digits only.
pub fn check_tax_id(id: &str) -> Result<(), TaxIdError> {
    if (id.len() == 9 || id.len() == 11) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(TaxIdError::Shape(id.to_owned()))
    }
}

/// Whether an invoice of this type and total must name its buyer (RNC or
/// cédula, and name): every `E31`/`B01`, and an `E32`/`B02` of
/// [`BUYER_THRESHOLD`] or more.
pub fn invoice_needs_buyer(doc_type: u8, total: Money) -> bool {
    match doc_type {
        1 | 31 => true,
        2 | 32 => total >= BUYER_THRESHOLD,
        _ => false,
    }
}

/// Whether a consumer invoice goes to DGII as a summary (RFCE): an `E32`
/// under [`BUYER_THRESHOLD`].
pub fn uses_summary(doc_type: u8, total: Money) -> bool {
    doc_type == 32 && total < BUYER_THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_dgii_shapes() {
        assert_eq!(
            parse_number("E320000000051"),
            Ok(FiscalNumber {
                electronic: true,
                doc_type: 32,
                sequence: 51
            })
        );
        assert_eq!(parse_number("B0200000051").unwrap().doc_type, 2);
        for bad in [
            "E32000000051",
            "E3200000000510",
            "B020000005",
            "E3a0000000051",
            "X320000000051",
            "",
            "E32",
            "E32000000005ñ",
        ] {
            assert!(
                matches!(parse_number(bad), Err(NumberError::Shape(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_number("E350000000001"),
            Err(NumberError::Type(_, 35))
        ));
        assert!(matches!(
            parse_number("B1800000001"),
            Err(NumberError::Type(_, 18))
        ));
        assert!(parse_encf("B0200000051").is_err());
        assert_eq!(parse_series("E34"), Ok((true, 34)));
        assert_eq!(parse_series("B04"), Ok((false, 4)));
        assert!(parse_series("E3").is_err());
    }

    #[test]
    fn buyer_rules() {
        assert!(check_tax_id("131880738").is_ok());
        assert!(check_tax_id("00112345678").is_ok());
        for bad in ["13188073", "1318807380", "13188073a", "", "131-88073-8"] {
            assert!(check_tax_id(bad).is_err(), "{bad}");
        }
        assert!(invoice_needs_buyer(31, Money(1)));
        assert!(invoice_needs_buyer(32, Money(25_000_000)));
        assert!(!invoice_needs_buyer(32, Money(24_999_999)));
        assert!(invoice_needs_buyer(2, Money(25_000_000)));
        assert!(uses_summary(32, Money(24_999_999)));
        assert!(!uses_summary(32, Money(25_000_000)));
        assert!(!uses_summary(31, Money(1)));
    }
}
