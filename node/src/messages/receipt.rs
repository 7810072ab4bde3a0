//! What is printed on paper beside the receipt layout itself: the default
//! store name, the drawer-opening slip and the return slip, in Spanish like
//! the rest of `messages`.
//!
//! Invariant: text only; imports nothing of the crate, so the print queue
//! can use it without depending on the rest of `messages`.

/// The store name printed on receipts when `store_name` is not configured.
pub const DEFAULT_STORE_NAME: &str = "Tienda";

/// The slip printed when the drawer opens without a sale, line by line
/// (the first is the title).
pub fn drawer_slip(
    store: &str,
    register: &str,
    at: &str,
    d: &caja_shared::kind::DrawerOpened,
    copy_at: Option<String>,
) -> Vec<String> {
    let mut out = vec![
        "APERTURA DE GAVETA".to_owned(),
        store.to_owned(),
        format!("Caja: {register}"),
        format!("Fecha: {at}"),
        format!("Motivo: {}", d.reason),
    ];
    match &d.approval {
        Some(a) => out.push(format!("Autorizó: {}", a.name)),
        None => out.push("Sin autorización (caja sin personal)".to_owned()),
    }
    if let Some(c) = copy_at {
        out.push(format!("COPIA {c} (la gaveta no se abre otra vez)"));
    }
    out
}

// — COUNTER —

/// Why a manual drawer opening is refused (`caja-node drawer manual`, the
/// screen's dialog): no receipt of the sale would open the drawer.
pub const DRAWER_NO_RECEIPT: &str = "ningún recibo de esta venta abre la gaveta";
/// … its receipt already went out with the kick.
pub const DRAWER_ALREADY_KICKED: &str =
    "su recibo ya salió a la impresora con la orden de abrir la gaveta";
/// … the sale took no cash, or the opening is already recorded.
pub const DRAWER_NO_CASH: &str =
    "esta venta no recibió efectivo, o la apertura de su gaveta ya está registrada";
/// … the opening is already recorded.
pub const DRAWER_ALREADY_RECORDED: &str = "la apertura de su gaveta ya está registrada";

/// One returned line as its slip shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnSlipLine {
    /// The product's name (its code when the catalog lacks it).
    pub name: String,
    /// Quantity returned, thousandths.
    pub qty_milli: i64,
    /// Sold by weight (the quantity is in kg).
    pub weighed: bool,
    /// Refunded for it, tax included.
    pub total: caja_shared::money::Money,
    /// Damaged: not back to stock.
    pub damaged: bool,
}

/// What a return's slip says (from its journaled `SaleReturned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnSlip<'a> {
    /// Store name.
    pub store: &'a str,
    /// Store RNC (may be empty).
    pub rnc: &'a str,
    /// This register.
    pub register: &'a str,
    /// When, in the store's zone.
    pub at: &'a str,
    /// The return's id.
    pub return_id: &'a str,
    /// The original sale's id, when known.
    pub sale: Option<String>,
    /// The original's fiscal number (NCF / e-NCF), when known.
    pub original_number: Option<String>,
    /// The credit note issued, if any.
    pub credit_note: Option<String>,
    /// The lines returned.
    pub lines: Vec<ReturnSlipLine>,
    /// Refunded, tax included.
    pub total: caja_shared::money::Money,
    /// ITBIS in `total`.
    pub tax: caja_shared::money::Money,
    /// How the money went back.
    pub refund: caja_shared::kind::PaymentMethod,
    /// Who processed it.
    pub cashier: &'a str,
    /// The supervisor who approved it.
    pub approved_by: Option<String>,
    /// Set on a reprint or a retry that may have printed.
    pub copy_at: Option<String>,
}

/// `left` and `right` on one line of `cols` columns (right-aligned), or on
/// two when they do not fit.
fn two_columns(left: &str, right: &str, cols: usize) -> Vec<String> {
    let (l, r) = (left.chars().count(), right.chars().count());
    if l + 1 + r <= cols {
        vec![format!("{left}{}{right}", " ".repeat(cols - l - r))]
    } else {
        vec![
            left.to_owned(),
            format!("{}{right}", " ".repeat(cols.saturating_sub(r))),
        ]
    }
}

fn quantity(qty_milli: i64, weighed: bool) -> String {
    let sign = if qty_milli < 0 { "-" } else { "" };
    let a = qty_milli.unsigned_abs();
    if weighed {
        format!("{sign}{}.{:03} kg", a / 1000, a % 1000)
    } else if a % 1000 == 0 {
        format!("{sign}{} ud.", a / 1000)
    } else {
        format!("{sign}{}.{:03} ud.", a / 1000, a % 1000)
    }
}

/// The slip printed for a return, line by line (the first is the title),
/// laid out for `cols` columns.
pub fn return_slip(s: &ReturnSlip<'_>, cols: usize) -> Vec<String> {
    use caja_hardware::messages::{currency, payment_method};
    let rule = "-".repeat(cols);
    let mut out = vec!["COMPROBANTE DE DEVOLUCIÓN".to_owned(), s.store.to_owned()];
    if !s.rnc.is_empty() {
        out.push(format!("RNC: {}", s.rnc));
    }
    out.push(format!("Caja: {}", s.register));
    out.push(format!("Fecha: {}", s.at));
    // Ids on a line of their own: 36 characters do not fit beside a label.
    out.push("Devolución:".to_owned());
    out.push(format!("  {}", s.return_id));
    match &s.sale {
        Some(sale) => {
            out.push("Venta original:".to_owned());
            out.push(format!("  {sale}"));
        }
        None => out.push("Venta original: no registrada en esta caja".to_owned()),
    }
    if let Some(n) = &s.original_number {
        out.push(format!("NCF original: {n}"));
    }
    if let Some(n) = &s.credit_note {
        out.push(format!("Nota de crédito: {n}"));
    }
    out.push(rule.clone());
    for l in &s.lines {
        out.push(l.name.clone());
        out.extend(two_columns(
            &format!("  {}", quantity(l.qty_milli, l.weighed)),
            &currency(l.total),
            cols,
        ));
        if l.damaged {
            out.push("  DAÑADO: no vuelve al inventario".to_owned());
        }
    }
    out.push(rule);
    out.extend(two_columns("TOTAL REEMBOLSADO", &currency(s.total), cols));
    out.extend(two_columns("ITBIS incluido", &currency(s.tax), cols));
    out.push(format!("Reembolso en: {}", payment_method(s.refund)));
    out.push(format!("Cajero: {}", s.cashier));
    if let Some(a) = &s.approved_by {
        out.push(format!("Autorizó: {a}"));
    }
    out.push(String::new());
    out.push("Firma del cliente: ____________________".to_owned());
    if let Some(c) = &s.copy_at {
        out.push(format!("COPIA {c}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::kind::PaymentMethod;
    use caja_shared::money::Money;

    fn slip() -> ReturnSlip<'static> {
        ReturnSlip {
            store: "Colmado La Esquina",
            rnc: "101000000",
            register: "caja-1",
            at: "06/12/2026 12:42",
            return_id: "0190a000-0000-7000-8000-000000000001",
            sale: Some("0190a000-0000-7000-8000-000000000002".into()),
            original_number: Some("B0200000051".into()),
            credit_note: Some("B0400000007".into()),
            lines: vec![
                ReturnSlipLine {
                    name: "Arroz 1 lb".into(),
                    qty_milli: 2000,
                    weighed: false,
                    total: Money(9000),
                    damaged: false,
                },
                ReturnSlipLine {
                    name: "Queso de freír".into(),
                    qty_milli: 1250,
                    weighed: true,
                    total: Money(123_456),
                    damaged: true,
                },
            ],
            total: Money(132_456),
            tax: Money(20_205),
            refund: PaymentMethod::StoreCredit,
            cashier: "ana",
            approved_by: Some("Marta".into()),
            copy_at: None,
        }
    }

    #[test]
    fn the_return_slip_names_the_original_its_lines_and_the_refund() {
        let lines = return_slip(&slip(), 42);
        let text = lines.join("\n");
        for want in [
            "COMPROBANTE DE DEVOLUCIÓN",
            "RNC: 101000000",
            "NCF original: B0200000051",
            "Nota de crédito: B0400000007",
            "  2 ud.                          RD$ 90.00",
            "  1.250 kg                    RD$ 1,234.56",
            "  DAÑADO: no vuelve al inventario",
            "TOTAL REEMBOLSADO             RD$ 1,324.56",
            "ITBIS incluido                  RD$ 202.05",
            "Reembolso en: Crédito en tienda",
            "Autorizó: Marta",
        ] {
            assert!(text.contains(want), "{want:?} missing in\n{text}");
        }
        assert!(lines.iter().all(|l| l.chars().count() <= 42), "{text}");
        assert_eq!(text.matches("DAÑADO").count(), 1, "{text}");
        assert!(!text.contains("COPIA"));
        let copy = ReturnSlip {
            copy_at: Some("06/12/2026 13:00".into()),
            ..slip()
        };
        assert!(return_slip(&copy, 42)
            .join("\n")
            .contains("COPIA 06/12/2026 13:00"));
    }

    #[test]
    fn an_amount_too_wide_for_its_line_goes_on_the_next() {
        assert_eq!(
            two_columns("abcdef", "RD$ 1.00", 10),
            vec!["abcdef".to_owned(), "  RD$ 1.00".to_owned()]
        );
        assert_eq!(two_columns("ab", "cd", 6), vec!["ab  cd".to_owned()]);
    }
}
