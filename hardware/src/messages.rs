//! Everything the hardware crate prints on a receipt or says to a cashier about a
//! printer or a scale, in Spanish (es-DO), in one place. Code, logs and docs stay
//! in English; a translation changes only this file (the node keeps its own
//! messages in `node/src/messages.rs`).

use caja_shared::kind::PaymentMethod;
use caja_shared::money::{Money, QtyMilli, TaxRateBp};

use crate::localtime::{LocalDate, LocalDateTime};

/// The character repeated to draw a rule across the paper.
pub const RULE: char = '-';

/// Printed at the top and the bottom of every reprint.
pub const COPY_BANNER: &str = "*** COPIA ***";

/// The second line of a reprint: when it was printed.
pub fn reprinted_at(at: &LocalDateTime) -> String {
    format!("Reimpreso: {at}")
}

/// The store's tax id.
pub fn rnc(rnc: &str) -> String {
    format!("RNC: {rnc}")
}

/// The title of the fiscal document, from the NCF series (DGII's types).
pub fn fiscal_title(series: &str) -> &'static str {
    match series {
        "B01" => "FACTURA DE CRÉDITO FISCAL",
        "B02" => "FACTURA DE CONSUMO",
        "B14" => "FACTURA RÉGIMEN ESPECIAL",
        "B15" => "FACTURA GUBERNAMENTAL",
        "E31" => "FACTURA DE CRÉDITO FISCAL ELECTRÓNICA",
        "E32" => "FACTURA DE CONSUMO ELECTRÓNICA",
        "B04" => "NOTA DE CRÉDITO",
        "E34" => "NOTA DE CRÉDITO ELECTRÓNICA",
        _ => "COMPROBANTE FISCAL",
    }
}

/// Title of a receipt that carries no fiscal number.
pub const NON_FISCAL_TITLE: &str = "RECIBO DE VENTA";
/// Second line of a receipt that carries no fiscal number.
pub const NON_FISCAL_NOTE: &str = "Sin comprobante fiscal";

/// Label of the fiscal number.
pub const LABEL_NCF: &str = "NCF";
/// Label of an electronic fiscal number.
pub const LABEL_ENCF: &str = "e-NCF";
/// Label of the buyer's RNC or cédula.
pub const LABEL_BUYER_ID: &str = "RNC/Cédula comprador";
/// Label of the buyer's name.
pub const LABEL_BUYER_NAME: &str = "Razón social comprador";

/// The label of a fiscal number: `e-NCF` for an electronic one (`E…`).
pub fn ncf_label(number: &str) -> &'static str {
    if number.starts_with('E') {
        LABEL_ENCF
    } else {
        LABEL_NCF
    }
}
/// Label of the fiscal series' expiry date.
pub const LABEL_VALID_UNTIL: &str = "Válido hasta";
/// Label of the sale's date and time.
pub const LABEL_DATE: &str = "Fecha";
/// Label of the cashier.
pub const LABEL_CASHIER: &str = "Cajero";
/// Label of the register.
pub const LABEL_REGISTER: &str = "Caja";
/// Label of the sale id.
pub const LABEL_SALE: &str = "Venta";
/// Label of the customer.
pub const LABEL_CUSTOMER: &str = "Cliente";

/// "Label: value".
pub fn labelled(label: &str, value: &str) -> String {
    format!("{label}: {value}")
}

/// The fiscal series' expiry line.
pub fn valid_until(date: &LocalDate) -> String {
    labelled(LABEL_VALID_UNTIL, &date.to_string())
}

/// Column heading, left: the item.
pub const HEAD_ITEM: &str = "DESCRIPCIÓN";
/// Column heading, right: the amount.
pub const HEAD_AMOUNT: &str = "VALOR";

/// A line's discount.
pub const LINE_DISCOUNT: &str = "Descuento";

/// The shelf price of a line sold at another (approved) price.
pub fn shelf_price(price: Money) -> String {
    format!("Precio de lista: {}", currency(price))
}

/// Quantity and price of a line: `1.250 kg x RD$ 45.00` for weighed items,
/// `2 x RD$ 125.00` for pieces (`2.500 x …` if a fraction of a piece was sold).
pub fn quantity(qty: QtyMilli, weighed: bool, unit_price: Money) -> String {
    let price = currency(unit_price);
    if weighed {
        format!("{qty} kg x {price}")
    } else if qty.milli() % QtyMilli::PER_UNIT == 0 {
        format!("{} x {price}", qty.milli() / QtyMilli::PER_UNIT)
    } else {
        format!("{qty} x {price}")
    }
}

/// Sum of the lines before discounts.
pub const SUBTOTAL: &str = "Subtotal";
/// Sum of the discounts.
pub const DISCOUNTS: &str = "Descuentos";
/// What the customer pays.
pub const TOTAL: &str = "TOTAL";
/// Tax contained at one rate.
pub fn tax_at(rate: TaxRateBp) -> String {
    format!("ITBIS {rate}")
}
/// Amount of the lines exempt from tax.
pub const EXEMPT: &str = "Exento";
/// The total tax of the sale.
pub const TAX_TOTAL: &str = "Total ITBIS";

/// A payment method's name.
pub fn payment_method(method: PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Cash => "Efectivo",
        PaymentMethod::Card => "Tarjeta",
        PaymentMethod::Transfer => "Transferencia",
        PaymentMethod::Fiado => "Fiado (crédito)",
        PaymentMethod::StoreCredit => "Crédito en tienda",
    }
}

/// A payment line, with its card or transfer reference.
pub fn payment(method: PaymentMethod, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("{} ref. {r}", payment_method(method)),
        None => payment_method(method).to_string(),
    }
}

/// Cash given back.
pub const CHANGE: &str = "Cambio";
/// What the customer owes the store after this sale (fiado).
pub const FIADO_BALANCE: &str = "Balance pendiente";

/// Printed under the fiscal QR code.
pub const QR_CAPTION: &str = "Verifique este comprobante";

/// The tax authority's security code, under the QR code of a confirmed
/// electronic document.
pub fn security_code(code: &str) -> String {
    format!("Código de seguridad: {code}")
}

/// When the electronic document was signed (DGII's `FechaHoraFirma`),
/// `dd-MM-yyyy HH:mm:ss` in GMT-4 as DGII's "Representación Impresa" writes it.
pub fn signed_at(at: &crate::localtime::LocalDateTime) -> String {
    format!(
        "Fecha de firma: {:02}-{:02}-{:04} {:02}:{:02}:{:02}",
        at.day, at.month, at.year, at.hour, at.minute, at.second
    )
}

/// The default footer.
pub const DEFAULT_FOOTER: &[&str] = &["¡Gracias por su compra!"];

/// An amount with thousands separators: `1,234.50`, `-5.00`.
pub fn amount(m: Money) -> String {
    let plain = m.to_string();
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain.as_str()),
    };
    let (whole, cents) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{cents}")
}

/// An amount with the currency: `RD$ 1,234.50`.
pub fn currency(m: Money) -> String {
    format!("RD$ {}", amount(m))
}

/// Marker the decoder writes for a QR code.
pub fn decoded_qr(data: &str) -> String {
    format!("[QR: {data}]")
}
/// Marker the decoder writes for a paper cut.
pub const DECODED_CUT: &str = "[CORTE]";
/// Marker the decoder writes for a cash drawer kick.
pub const DECODED_DRAWER: &str = "[GAVETA]";

/// Printer states, as the register shows them.
pub mod printer {
    /// Ready to print.
    pub const READY: &str = "Impresora lista";
    /// Ready, paper running low.
    pub const PAPER_LOW: &str = "Impresora lista (papel por acabarse)";
    /// No paper.
    pub const PAPER_OUT: &str = "Impresora sin papel";
    /// Cover open.
    pub const COVER_OPEN: &str = "Tapa de la impresora abierta";
    /// Offline for another reason.
    pub const OFFLINE: &str = "Impresora fuera de línea";
    /// Reported an error (cutter jam, overheating…).
    pub const ERROR: &str = "Error de la impresora";
    /// The status cannot be read on this connection.
    pub const UNKNOWN_ONE_WAY: &str =
        "Estado de la impresora desconocido (la conexión no permite consultarlo)";
    /// The printer did not answer the status query.
    pub const UNKNOWN_NO_ANSWER: &str = "Estado de la impresora desconocido (no responde)";
    /// The printer cannot be reached.
    pub const UNREACHABLE: &str = "No se puede conectar con la impresora";
    /// Print jobs waiting.
    pub fn queued(pending: usize, failed: usize) -> String {
        if failed == 0 {
            format!("Recibos en cola: {pending}")
        } else {
            format!("Recibos en cola: {pending}; sin imprimir tras varios intentos: {failed}")
        }
    }
    /// Characters a receipt could not print.
    pub fn unmappable(count: usize) -> String {
        format!("{count} carácter(es) no se pudieron imprimir y salen como «?»")
    }
}

/// Scale problems, as the register shows them.
pub mod scale {
    /// The weight is moving.
    pub const MOTION: &str =
        "Peso inestable: la balanza está en movimiento; espere a que se detenga";
    /// More than the scale's capacity.
    pub const OVERLOAD: &str = "Sobrecarga: retire peso de la balanza";
    /// Below zero.
    pub const UNDER_ZERO: &str = "Peso negativo (bajo cero): ponga la balanza en cero";
    /// Nothing on the scale.
    pub const NO_WEIGHT: &str = "No hay peso en la balanza";
    /// The scale rests at the center of zero.
    pub const AT_ZERO: &str = "Balanza en cero: coloque el producto en la balanza";
    /// The scale did not understand the register's request.
    pub const BAD_COMMAND: &str =
        "Comando inválido: la balanza no entendió la petición (revise el protocolo configurado)";
    /// The line answered the echo probe but the scale sent no weight.
    pub const ECHO_ONLY: &str = "la línea responde a la prueba de eco: revise que la balanza esté en el protocolo 8217 y no en otro modo";
    /// The scale reports a zero-setting problem.
    pub const ZERO_ERROR: &str = "La balanza necesita ponerse en cero";
    /// Unsupported unit (e.g. pounds).
    pub const UNIT: &str = "La balanza no está en kilogramos";
    /// No answer before the deadline.
    pub const NO_ANSWER: &str = "La balanza no responde";
    /// Garbled data or a bad checksum.
    pub const GARBLED: &str = "Datos ilegibles de la balanza (revise el cable y la configuración)";
    /// The cable or adapter is gone.
    pub const DISCONNECTED: &str = "Balanza desconectada";
    /// The port cannot be opened.
    pub const CANNOT_OPEN: &str = "No se puede abrir el puerto de la balanza";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        let cases = [
            (0, "0.00"),
            (5, "0.05"),
            (-500, "-5.00"),
            (13_000, "130.00"),
            (123_450, "1,234.50"),
            (100_000_000, "1,000,000.00"),
            (-123_456_789, "-1,234,567.89"),
            (i64::MIN, "-92,233,720,368,547,758.08"),
        ];
        for (minor, text) in cases {
            assert_eq!(amount(Money(minor)), text);
        }
        assert_eq!(currency(Money(4500)), "RD$ 45.00");
    }

    #[test]
    fn quantities_read_like_the_shelf() {
        assert_eq!(
            quantity(QtyMilli(1250), true, Money(4500)),
            "1.250 kg x RD$ 45.00"
        );
        assert_eq!(
            quantity(QtyMilli(2000), false, Money(12500)),
            "2 x RD$ 125.00"
        );
        assert_eq!(
            quantity(QtyMilli(2500), false, Money(100)),
            "2.500 x RD$ 1.00"
        );
    }
}
