//! What the screen computes and checks before asking the register, without
//! HTTP and without the screen: the cart priced by the sale's own rules, a
//! discount as typed, the fiscal document a payment asks for, the printer
//! whose status bits the bar shows.
//!
//! Invariant: the totals and the "needs a supervisor" flag the screen shows
//! for a discounted cart come from the sale's own arithmetic
//! ([`crate::sale::build_sale`], the probe the register uses for approvals),
//! so the screen never shows a total the sale would not record.

use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;

use super::cart;
use crate::error::{OpError, Refusal};
use crate::messages::screen as words;
use crate::register::{self, Register};
use crate::sale::{self, LineRequest, PaymentRequest, SaleContext, SaleRequest};

/// What the sale would record for the cart as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The sale's total.
    pub total: Money,
    /// Tax included in it.
    pub tax: Money,
    /// Its discounts exceed the register's `max_discount_bp` of its gross.
    pub needs_approval: bool,
}

/// The cart priced by the sale's own rules (`None`: the cart is empty or the
/// sale would be refused; paying says why).
pub fn probe<C: Clock, R: RandomSource>(
    node: &Register<C, R>,
    sale_discount: Option<i64>,
) -> Result<Option<Probe>, OpError> {
    let conn = node.conn();
    let lines = cart::lines(conn)?;
    if lines.is_empty() {
        return Ok(None);
    }
    let req = SaleRequest {
        lines: lines
            .into_iter()
            .map(|l| LineRequest {
                code: l.code,
                qty_milli: l.qty_milli,
                discount: l.discount,
                unit_price: l.unit_price,
            })
            .collect(),
        payments: vec![PaymentRequest {
            method: PaymentMethod::Cash,
            amount: i64::MAX / 4,
            reference: None,
        }],
        discount: sale_discount,
        customer: None,
    };
    let ctx = SaleContext {
        sale_id: nil()?,
        cashier: String::new(),
        shift_id: nil()?,
        fiscal: None,
    };
    let Ok(out) = sale::build_sale(
        &req,
        ctx,
        |code| crate::queries::lookup_item(conn, code).ok().flatten(),
        None,
    ) else {
        return Ok(None);
    };
    let discount: i128 = out
        .body
        .lines
        .iter()
        .map(|l| i128::from(l.discount.map_or(0, |d| d.0)))
        .sum();
    let gross = i128::from(out.body.total.0) + discount;
    Ok(Some(Probe {
        total: out.body.total,
        tax: out.body.tax,
        needs_approval: discount * 10_000 > gross * i128::from(node.config().max_discount_bp),
    }))
}

/// The all-zero id a probe is built under (never journaled).
fn nil<T: std::str::FromStr>() -> Result<T, OpError> {
    "00000000-0000-7000-8000-000000000000".parse().map_err(|_| {
        OpError::Refused(Refusal::Invalid {
            field: "probe",
            reason: "nil id unreadable".into(),
        })
    })
}

/// `25.00` or `12.5%` of `base`, in centavos (a percentage rounds half up);
/// the refusal's sentence when it cannot be read or exceeds `base`.
pub fn discount_amount(text: &str, base: Money) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let bad = || words::ui_bad_discount(text);
    let d = match t.strip_suffix('%') {
        Some(pct) => {
            // "12.5" read as money is 1250: hundredths of a percent.
            let bp = pct
                .trim()
                .parse::<Money>()
                .ok()
                .filter(|m| m.0 > 0 && m.0 <= 10_000)
                .ok_or_else(bad)?;
            let v = (i128::from(base.0) * i128::from(bp.0) + 5_000) / 10_000;
            i64::try_from(v).map_err(|_| bad())?
        }
        None => {
            t.parse::<Money>()
                .ok()
                .filter(|m| m.0 > 0)
                .ok_or_else(bad)?
                .0
        }
    };
    if d > base.0 {
        return Err(words::ui_discount_too_large(Money(d), base));
    }
    Ok(Some(d))
}

/// The fiscal document a payment asks for (`series`, empty: the register's
/// default), checked before anything is recorded: a series this register
/// issues, the buyer's RNC or cédula where the series needs it (check digit
/// included), the name on an `E31`. The refusal's sentence names the
/// screen's field.
pub fn document<C: Clock, R: RandomSource>(
    node: &Register<C, R>,
    series: Option<&str>,
    buyer_tax_id: Option<&str>,
    buyer_name: Option<&str>,
) -> Result<register::Document, String> {
    let asked = series.map(str::to_uppercase);
    let cfg = node.config();
    if let Some(s) = &asked {
        if !cfg.fiscal_documents.contains(s) {
            return Err(words::ui_unknown_document(s));
        }
    }
    let series = cfg.document_for(asked.as_deref());
    let tax_id = match buyer_tax_id {
        Some(t) => Some(
            caja_shared::fiscal::validate_tax_id(t)
                .map_err(|_| words::ui_bad_buyer_tax_id(t))?
                .1,
        ),
        None => None,
    };
    let name = buyer_name.map(str::to_owned);
    if let Some(s) = &series {
        if tax_id.is_none() && caja_shared::fiscal::requires_buyer_tax_id(s) {
            return Err(words::ui_buyer_tax_id_missing(s));
        }
        if s == "E31" && name.is_none() {
            return Err(words::ui_buyer_name_missing(s));
        }
    }
    Ok(register::Document {
        series: asked,
        buyer_tax_id: tax_id,
        buyer_name: name,
    })
}

/// The printer the status bar asks for its status bits: not a file or a
/// folder (opening one would start a job, and they answer nothing).
pub fn answering_printer(
    p: Option<crate::print::PrinterSettings>,
) -> Option<crate::print::PrinterSettings> {
    use caja_hardware::device::PrinterAddress;
    p.filter(|p| {
        !matches!(
            p.address,
            PrinterAddress::File { .. } | PrinterAddress::Folder { .. }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_as_typed() {
        let base = Money(13_000);
        let cases: &[(&str, Result<Option<i64>, ()>)] = &[
            ("", Ok(None)),
            ("10.00", Ok(Some(1_000))),
            ("10%", Ok(Some(1_300))),
            ("12.5 %", Ok(Some(1_625))),
            ("100%", Ok(Some(13_000))),
            ("130.01", Err(())),
            ("101%", Err(())),
            ("0", Err(())),
            ("-5", Err(())),
            ("diez", Err(())),
        ];
        for (text, want) in cases {
            let got = discount_amount(text, base).map_err(|_| ());
            assert_eq!(&got, want, "{text:?}");
        }
    }
}
