//! The cashier screen's words for its discount, customer, debt-payment and
//! buyer dialogs: the page's labels (added to [`super::UI_LABELS`] when the
//! page is rendered) and the sentences of their answers.
//!
//! Invariant: every key here is unique and not one of [`super::UI_LABELS`]
//! (a unit test checks it), so a `{{key}}` slot has one text.

use caja_shared::kind::PaymentMethod;
use caja_shared::money::Money;

use super::rd;

/// Labels of the screen's dialogs, by key (the page's `{{key}}` slots and
/// the script's `T.key`).
pub const DIALOG_LABELS: &[(&str, &str)] = &[
    ("discount", "Descuento"),
    ("sale_discount", "Descuento a la venta (F5)"),
    ("discount_title", "Descuento"),
    ("discount_amount", "Descuento en RD$ (o porcentaje, ej. 10%)"),
    ("discount_hint", "Deje el campo vacío para quitar el descuento. Más allá del límite de la caja, un supervisor autoriza el cobro con su PIN."),
    ("confirm_discount", "Aplicar el descuento"),
    ("discount_of_sale", "Descuento a la venta"),
    ("discount_note", "El descuento pasa del límite de la caja: un supervisor autoriza el cobro con su PIN."),
    ("customers", "Clientes y abonos (F2)"),
    ("customers_title", "Clientes"),
    ("col_customer", "Cliente"),
    ("col_owes", "Debe"),
    ("col_credit_left", "Crédito disponible"),
    ("pay_debt", "Abonar"),
    ("new_customer", "Cliente nuevo"),
    ("customer_name", "Nombre del cliente"),
    ("customer_phone", "Teléfono (opcional)"),
    ("customer_tax_id", "RNC o cédula (opcional)"),
    ("credit_limit", "Límite de crédito (fiado)"),
    ("confirm_customer", "Registrar el cliente"),
    ("debt_title", "Abono a la cuenta"),
    ("debt_amount", "Monto del abono"),
    ("debt_method", "Forma de pago del abono"),
    ("method_cash", "efectivo"),
    ("method_card", "tarjeta"),
    ("method_transfer", "transferencia"),
    ("confirm_debt", "Registrar el abono"),
    ("document", "Comprobante fiscal"),
    ("document_default", "el de siempre de esta caja"),
    ("buyer_tax_id", "RNC o cédula del comprador"),
    ("buyer_name", "Nombre o razón social del comprador"),
    ("print_pending", "Reimprimir pendientes"),
    ("damaged", "Dañado, no vuelve al inventario"),
    ("buyer_hint", "Crédito fiscal (B01, E31): RNC o cédula del comprador; E31 también el nombre."),
    // — COUNTER —
    ("drawer_manual", "Gaveta abierta con llave"),
    ("drawer_manual_title", "Gaveta abierta con llave (impresora sin respuesta)"),
    ("drawer_manual_hint", "Si la impresora no responde, abra la gaveta con la llave y regístrelo aquí: el recibo no volverá a abrirla."),
    ("drawer_sale", "Venta de la gaveta"),
    ("confirm_drawer_manual", "Registrar la apertura"),
    ("transfer_qr", "Transferencia o QR (monto)"),
    ("transfer_ref", "Referencia de la transferencia o del QR"),
    ("edit_customer", "Editar"),
    ("edit_customer_title", "Editar cliente"),
    ("edit_customer_hint", "Deje el teléfono o el RNC/cédula vacío para quitarlo."),
    ("confirm_edit_customer", "Guardar los cambios"),
];

/// The printer's status bits on the status bar (key `printer_state`):
/// paper out, cover open or an error are `bad`, paper near its end or an
/// unknown state `warn`.
pub fn ui_printer_state(r: &crate::devices::PrinterReport) -> super::StatusItem {
    let level = if r.paper_out || r.cover_open || r.error {
        "bad"
    } else if r.paper_low || r.unknown || !r.ready {
        "warn"
    } else {
        "ok"
    };
    super::StatusItem {
        key: "printer_state",
        text: super::printer_state(r),
        level,
    }
}

/// The discount field could not be read.
pub fn ui_bad_discount(text: &str) -> String {
    format!("Descuento inválido: «{text}» (ejemplos: 25.00 o 10%).")
}

/// A discount larger than what it discounts.
pub fn ui_discount_too_large(discount: Money, of: Money) -> String {
    format!(
        "El descuento de {} es mayor que el importe ({}).",
        rd(discount),
        rd(of)
    )
}

/// A discount beyond the register's limit, asked before anything is
/// recorded when nobody approved it.
pub fn ui_discount_needs_supervisor() -> String {
    "El descuento pasa del límite de la caja: un supervisor debe autorizarlo con su nombre y PIN."
        .into()
}

/// The discount shown under the cart's total.
pub fn ui_discount_line(discount: Money) -> String {
    format!("Descuento: −{}", rd(discount))
}

/// A customer was registered.
pub fn ui_customer_added(name: &str, limit: Money) -> String {
    format!(
        "Cliente {name} registrado, con límite de crédito de {}.",
        rd(limit)
    )
}

/// A debt payment was taken.
pub fn ui_debt_paid(name: &str, amount: Money, method: PaymentMethod, balance: Money) -> String {
    let how = match method {
        PaymentMethod::Card => "con tarjeta",
        PaymentMethod::Transfer => "por transferencia",
        _ => "en efectivo",
    };
    if balance.0 == 0 {
        format!(
            "Abono de {} de {name} {how}: la cuenta queda saldada.",
            rd(amount)
        )
    } else {
        format!(
            "Abono de {} de {name} {how}: todavía debe {}.",
            rd(amount),
            rd(balance)
        )
    }
}

/// The debt payment's method was not one of cash, card or transfer.
pub fn ui_bad_debt_method() -> String {
    "Un abono se paga en efectivo, con tarjeta o por transferencia.".into()
}

/// A customer's name was left empty.
pub fn ui_customer_name_missing() -> String {
    "Escriba el nombre del cliente.".into()
}

/// The buyer's RNC or cédula could not be read (the field is named).
pub fn ui_bad_buyer_tax_id(text: &str) -> String {
    format!(
        "RNC o cédula del comprador inválido: «{text}» (un RNC tiene 9 dígitos, una cédula 11, con su dígito verificador)."
    )
}

/// A customer's RNC or cédula could not be read.
pub fn ui_bad_customer_tax_id(text: &str) -> String {
    format!(
        "RNC o cédula del cliente inválido: «{text}» (un RNC tiene 9 dígitos, una cédula 11, con su dígito verificador)."
    )
}

/// The document asks for the buyer's RNC or cédula and none was typed.
pub fn ui_buyer_tax_id_missing(series: &str) -> String {
    format!("El comprobante {series} requiere el RNC o la cédula del comprador: escríbalo en «RNC o cédula del comprador».")
}

/// The document asks for the buyer's name too.
pub fn ui_buyer_name_missing(series: &str) -> String {
    format!("El comprobante {series} requiere el nombre del comprador: escríbalo en «Nombre o razón social del comprador».")
}

/// A series this register does not issue.
pub fn ui_unknown_document(series: &str) -> String {
    format!("Esta caja no emite comprobantes {series}.")
}

// — COUNTER —

/// The drawer dialog was sent without a readable sale id.
pub fn ui_drawer_no_sale() -> String {
    "Indique la venta cuya gaveta abrió con la llave (su número de venta).".into()
}

/// The state of a sale's card and transfer/QR payments at the provider, as
/// the hub last reported it: `Pago RD$ 65.00 con azul: pendiente`.
pub fn ui_intent_states(intents: &[crate::projection::IntentLine]) -> String {
    intents
        .iter()
        .map(|i| {
            let state = match i.state.as_str() {
                "pending" => "pendiente (esperando al proveedor)",
                "authorized" => "autorizado",
                "captured" => "cobrado",
                "refunded" => "reembolsado",
                "voided" => "anulado",
                "failed" => "fallido",
                _ => "desconocido",
            };
            format!(
                "Pago {} con {}: {state}.",
                super::rd(caja_shared::money::Money(i.amount)),
                i.provider
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// — COUNTER —

/// A customer's changes were saved.
pub fn ui_customer_edited(name: &str, limit: Money) -> String {
    format!(
        "Cliente {name} actualizado; límite de crédito {}.",
        rd(limit)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_bits_on_the_status_bar() {
        let report =
            |paper_low, paper_out, cover_open, lines: &[&str]| crate::devices::PrinterReport {
                ready: !(paper_out || cover_open),
                paper_low,
                paper_out,
                cover_open,
                error: false,
                unknown: false,
                lines: lines.iter().map(|l| (*l).to_owned()).collect(),
            };
        let cases = [
            (report(false, false, false, &["Lista"]), "ok"),
            (report(true, false, false, &["Papel por acabarse"]), "warn"),
            (
                report(false, true, true, &["Tapa abierta", "Sin papel"]),
                "bad",
            ),
        ];
        for (r, level) in cases {
            let i = ui_printer_state(&r);
            assert_eq!((i.key, i.level), ("printer_state", level), "{r:?}");
            assert!(i.text.starts_with("Estado de la impresora: "), "{}", i.text);
            assert!(i.text.contains(&r.lines.join("; ")), "{}", i.text);
        }
    }

    #[test]
    fn dialog_labels_are_unique_and_new() {
        let mut seen = std::collections::HashSet::new();
        for (k, _) in super::super::UI_LABELS.iter().chain(DIALOG_LABELS) {
            assert!(seen.insert(*k), "label {k} twice");
        }
    }
}
