//! Everything the register says to a cashier or a store manager, in Spanish
//! (es-DO), in one place. Code, logs and docs stay in English; a translation
//! changes only this file.

use caja_shared::money::Money;

use crate::error::{Failure, OpError, Refusal};
use crate::register::{
    CustomerResult, DebtPaymentResult, SaleResult, ShiftClosedResult, ShiftOpenedResult, Status,
    Written,
};
use crate::sale::SaleError;
use crate::zreport::ZReport;

#[cfg(unix)]
pub mod certificate;
pub mod hub;
pub mod printing;
pub mod receipt;
pub mod screen;

pub use printing::*;

/// "RD$ 1,234.50" style amount for people.
pub fn rd(m: Money) -> String {
    format!("RD$ {m}")
}

/// Shift opened.
pub fn shift_opened(r: &ShiftOpenedResult) -> String {
    format!("Turno abierto ({}), evento #{}.", r.shift_id, r.seq)
}

/// Sale done.
pub fn sale_done(r: &SaleResult) -> String {
    let mut s = format!(
        "Venta registrada #{}: total {} (ITBIS {}), cambio {}.",
        r.seq,
        rd(r.total),
        rd(r.tax),
        rd(r.change)
    );
    if r.fiado.0 > 0 {
        s.push_str(&format!(" Fiado: {}.", rd(r.fiado)));
    }
    if let Some(n) = &r.fiscal_number {
        s.push_str(&format!(" Comprobante {n}."));
        if let Some(left) = r.fiscal_low {
            s.push_str(&format!(
                " ¡Atención: quedan {left} números fiscales de la serie {}; conéctese para recibir más!",
                &n[..3.min(n.len())]
            ));
        }
    }
    s.push_str(&format!(" Venta {}", r.sale_id));
    s
}

/// The payment intents asked for after a sale: one line per card or
/// transfer/QR payment.
pub fn sale_intents(intents: &[crate::sync::intents::SaleIntent]) -> String {
    intents
        .iter()
        .map(|i| {
            let what = match i.method {
                caja_shared::kind::PaymentMethod::Card => "Tarjeta",
                _ => "Transferencia/QR",
            };
            let reference = i
                .reference
                .as_deref()
                .map(|r| format!(" (referencia {r})"))
                .unwrap_or_default();
            match &i.intent_id {
                Some(id) => format!(
                    "{what} {}{reference}: intención de pago {id} creada en la oficina central; se confirma al sincronizar.",
                    rd(i.amount)
                ),
                None => format!(
                    "{what} {}{reference}: sin conexión con la oficina central; el pago queda registrado con su referencia y se concilia al sincronizar.",
                    rd(i.amount)
                ),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A return done.
pub fn return_done(r: &crate::register::ReturnResult) -> String {
    let mut s = match r.sale_id {
        Some(sale) => format!(
            "Devolución registrada #{}: reembolso {} de la venta {sale}.",
            r.seq,
            rd(r.total)
        ),
        None => format!(
            "Devolución registrada #{}: reembolso {}.",
            r.seq,
            rd(r.total)
        ),
    };
    if r.original_unknown {
        s.push_str(
            " La venta original no se conoce en esta caja: la devolución queda marcada para revisión en la oficina central.",
        );
    }
    if let Some(n) = &r.credit_note {
        s.push_str(&format!(" Nota de crédito {n}."));
    }
    if let Some(b) = r.store_credit_balance {
        s.push_str(&format!(" Crédito en tienda del cliente: {}.", rd(b)));
    }
    s
}

/// The drawer was opened without a sale.
pub fn drawer_opened(r: &crate::register::DrawerResult) -> String {
    format!(
        "Apertura de gaveta registrada (evento #{}); la gaveta se abre con la impresora.",
        r.seq
    )
}

/// A customer's store-credit balance.
pub fn store_credit(customer: caja_shared::ids::CustomerId, balance: Money) -> String {
    format!("Crédito en tienda de {customer}: {}.", rd(balance))
}

/// A payment method's name for people.
pub fn method_name(m: caja_shared::kind::PaymentMethod) -> &'static str {
    match m {
        caja_shared::kind::PaymentMethod::Cash => "Efectivo",
        caja_shared::kind::PaymentMethod::Card => "Tarjeta",
        caja_shared::kind::PaymentMethod::Transfer => "Transferencia",
        caja_shared::kind::PaymentMethod::Fiado => "Fiado",
        caja_shared::kind::PaymentMethod::StoreCredit => "Crédito en tienda",
    }
}

/// Void, stock movement: events written.
pub fn written(what: &str, r: &Written) -> String {
    let seqs: Vec<String> = r.seqs.iter().map(|s| format!("#{s}")).collect();
    format!("{what} registrado (evento {}).", seqs.join(", "))
}

/// Debt payment.
pub fn debt_paid(r: &DebtPaymentResult) -> String {
    format!(
        "Abono registrado ({} evento(s)). Balance pendiente: {}.",
        r.seqs.len(),
        rd(r.balance)
    )
}

/// Customer created or changed.
pub fn customer_saved(r: &CustomerResult) -> String {
    format!("Cliente guardado: {} (evento #{}).", r.customer_id, r.seq)
}

/// Shift closed.
pub fn shift_closed(r: &ShiftClosedResult) -> String {
    format!("Turno cerrado (evento #{}).", r.seq)
}

/// The Z report as printed.
pub fn z_report(z: &ZReport) -> String {
    let mut out = vec![
        format!("REPORTE Z — turno {}", z.shift_id),
        format!("Cajero: {}", z.cashier),
        format!("Eventos: #{} a #{}", z.first_seq, z.last_seq),
        format!("Fondo inicial: {}", rd(z.opening_float)),
        format!("Ventas: {} por {}", z.sales_count, rd(z.sales_total)),
        format!("Anulaciones: {} por {}", z.voids_count, rd(z.voids_total)),
        format!("Total neto: {}", rd(z.net_total)),
    ];
    for (rate, tax) in &z.tax_by_rate {
        out.push(format!("ITBIS {rate}: {}", rd(*tax)));
    }
    out.push(format!("ITBIS total: {}", rd(z.tax_total)));
    for (method, amount) in &z.by_method {
        out.push(format!("{}: {}", method_name(*method), rd(*amount)));
    }
    if z.oversold_lines > 0 {
        out.push(format!(
            "Ventas sobre la cuota de inventario: {} línea(s), {} en total",
            z.oversold_lines,
            qty(caja_shared::money::QtyMilli(z.oversold_milli))
        ));
    }
    if z.returns_count > 0 {
        out.push(format!(
            "Devoluciones: {} por {}",
            z.returns_count,
            rd(z.returns_total)
        ));
        for (method, amount) in &z.refunds_by_method {
            out.push(format!(
                "  Reembolsado en {}: {}",
                method_name(*method).to_lowercase(),
                rd(*amount)
            ));
        }
        if z.returns_unknown_original > 0 {
            out.push(format!(
                "  Sin venta original conocida (a revisar): {}",
                z.returns_unknown_original
            ));
        }
    }
    if z.price_overrides > 0 {
        out.push(format!(
            "Cambios de precio autorizados: {} línea(s), diferencia {}",
            z.price_overrides,
            rd(z.price_override_amount)
        ));
    }
    if z.drawer_opens > 0 {
        out.push(format!("Aperturas de gaveta sin venta: {}", z.drawer_opens));
    }
    for (label, m) in [
        ("Entradas de efectivo", z.paid_in),
        ("Salidas de efectivo", z.paid_out),
        ("Depósitos a caja fuerte", z.drops),
    ] {
        if m.0 != 0 {
            out.push(format!("{label}: {}", rd(m)));
        }
    }
    for a in &z.approvals {
        out.push(format!("Autorizado — {a}"));
    }
    out.push(format!("Fiado otorgado: {}", rd(z.fiado_given)));
    out.push(format!("Fiado cobrado: {}", rd(z.fiado_collected)));
    out.push(format!("Efectivo esperado: {}", rd(z.expected_cash)));
    if let (Some(counted), Some(diff)) = (z.counted_cash, z.cash_difference) {
        out.push(format!("Efectivo contado: {}", rd(counted)));
        out.push(format!("Diferencia: {}", rd(diff)));
    } else {
        out.push("Turno abierto (reporte parcial)".into());
    }
    out.join("\n")
}

/// The status lines.
pub fn status(s: &Status) -> String {
    let shift = match &s.open_shift {
        Some((id, cashier)) => format!("abierto ({cashier}, {id})"),
        None => "cerrado".into(),
    };
    let mut lines = vec![
        format!("Tienda: {}", s.store),
        format!("Caja: {}", s.device),
        format!("Turno: {shift}"),
        format!("Eventos en el diario: {}", s.head_seq),
        format!(
            "Último punto de control: {}",
            s.last_checkpoint_seq
                .map_or("ninguno".to_string(), |q| format!("#{q}"))
        ),
        format!(
            "Conexión: {}",
            if s.sync.online {
                "en línea"
            } else {
                "sin conexión"
            }
        ),
        format!(
            "Eventos sin sincronizar: {}{}",
            s.unsynced,
            s.sync
                .oldest_unsynced_ms
                .map_or(String::new(), |ms| format!(
                    " (el más antiguo de {})",
                    moment(ms, s.now_ms)
                ))
        ),
        format!(
            "Última sincronización: {}",
            s.sync
                .last_success_ms
                .map_or("nunca".to_string(), |ms| moment(ms, s.now_ms))
        ),
        format!("Circuito: {}", circuit(&s.sync.circuit)),
        format!(
            "Desfase de reloj con la oficina central: {}",
            duration(s.sync.skew_ms)
        ),
        format!("Eventos de la oficina central: {}", s.hub_events),
        format!("Eventos de otras cajas: {}", s.peer_events),
        fiscal_line(&s.fiscal),
        fiscal_documents_line(&s.fiscal_documents),
        quota_line(s.quotas.as_deref()),
        format!(
            "Conflictos resueltos por la oficina central: {}",
            s.conflicts_resolved.len()
        ),
        format!(
            "Impresora: {}",
            s.printer.as_deref().unwrap_or("no configurada")
        ),
        print_queue(&s.print, s.now_ms),
        format!(
            "Balanza: {}",
            s.scale.as_deref().unwrap_or("no configurada")
        ),
        intents_line(&s.payment_intents),
    ];
    for c in s.conflicts_resolved.iter().take(5) {
        lines.push(format!(
            "  conflicto {} ({}): {} — {}",
            c.conflict_id.get(..8).unwrap_or(&c.conflict_id),
            c.strategy,
            c.resolved_by,
            c.note
        ));
    }
    if let Some(e) = &s.print.last_error {
        lines.push(format!("Último error de impresión: {e}"));
    }
    if s.sync.quarantined {
        lines.push(
            "ATENCIÓN: la oficina central puso esta caja en cuarentena (su historial difiere); llame a soporte."
                .into(),
        );
    }
    match s.sync.hub_log.trust.as_str() {
        "critical" => lines.push(format!(
            "CRÍTICO: el registro de auditoría de la oficina central fue reescrito; no se aplican sus datos (se puede seguir vendiendo). {} Llame a soporte.",
            s.sync.hub_log.problem.as_deref().unwrap_or("")
        )),
        "ok" => lines.push(format!(
            "Registro de auditoría de la oficina central: verificado ({} entradas)",
            s.sync.hub_log.tree_size.unwrap_or(0)
        )),
        _ => lines.push("Registro de auditoría de la oficina central: sin verificar todavía".into()),
    }
    // — RESTORE —
    if let Some(r) = s.sync.hub_restore.as_ref().filter(|r| !r.acknowledged) {
        lines.push(hub_restored_warning(r.epoch, r.tree_size.unwrap_or(0)));
    }
    if let Some(e) = &s.sync.last_error {
        lines.push(format!("Último error de sincronización: {e}"));
    }
    if s.restored_from_backup {
        lines.push(
            "ATENCIÓN: base de datos restaurada de un respaldo; sincronice antes de emitir comprobantes fiscales."
                .into(),
        );
    }
    lines.join("\n")
}

fn intents_line(intents: &[crate::projection::IntentLine]) -> String {
    if intents.is_empty() {
        return "Pagos con tarjeta/QR en la oficina central: ninguno".into();
    }
    let state = |s: &str| match s {
        "pending" => "pendiente",
        "authorized" => "autorizado",
        "captured" => "cobrado",
        "refunded" => "reembolsado",
        "voided" => "anulado",
        "failed" => "fallido",
        _ => "desconocido",
    };
    format!(
        "Pagos con tarjeta/QR en la oficina central: {}",
        intents
            .iter()
            .map(|i| {
                let part = if i.refunded > 0 && i.state != "refunded" {
                    format!(", {} reembolsado", rd(Money(i.refunded)))
                } else {
                    String::new()
                };
                format!(
                    "{} {}{part} ({}, venta {})",
                    rd(Money(i.amount)),
                    state(&i.state),
                    i.provider,
                    i.sale_id
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    )
}

fn qty(q: caja_shared::money::QtyMilli) -> String {
    let sign = if q.0 < 0 { "-" } else { "" };
    let a = q.0.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

fn quota_line(quotas: Option<&[crate::escrow::QuotaLeft]>) -> String {
    match quotas {
        None => "Cuotas de inventario: no se usan en esta caja".into(),
        Some([]) => "Cuotas de inventario: ninguna (se piden al conectarse)".into(),
        Some(q) => format!(
            "Cuotas de inventario: {}",
            q.iter()
                .map(|x| format!(
                    "{} {}",
                    x.product,
                    qty(caja_shared::money::QtyMilli(x.left_milli))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `caja-node fiscal status`.
pub fn status_fiscal(
    series: &[crate::fiscal::SeriesLeft],
    docs: &crate::projection::FiscalDocCounts,
) -> String {
    format!("{}\n{}", fiscal_line(series), fiscal_documents_line(docs))
}

/// The tax authority's verdicts on this register's electronic documents.
fn fiscal_documents_line(d: &crate::projection::FiscalDocCounts) -> String {
    if *d == crate::projection::FiscalDocCounts::default() {
        return "Comprobantes electrónicos: ninguno".into();
    }
    let mut line = format!(
        "Comprobantes electrónicos: {} aceptados, {} aceptados con condiciones, {} rechazados, {} por confirmar",
        d.accepted, d.accepted_conditional, d.rejected, d.awaiting
    );
    if d.rejected > 0 {
        line.push_str(" (¡la oficina central debe revisar los rechazados!)");
    }
    line
}

fn fiscal_line(series: &[crate::fiscal::SeriesLeft]) -> String {
    if series.is_empty() {
        return "Números fiscales: esta caja no emite comprobantes fiscales".into();
    }
    let parts: Vec<String> = series
        .iter()
        .map(|s| {
            let mut p = format!("{} quedan {}", s.series, s.left);
            if s.low {
                p.push_str(" (¡pocos!)");
            }
            if let Some(e) = &s.refused {
                p.push_str(&format!(" — la oficina central no dio más: {e}"));
            }
            p
        })
        .collect();
    format!("Números fiscales: {}", parts.join("; "))
}

/// What `caja-node fiscal release` gave back.
pub fn fiscal_released(r: &[crate::register::ReleasedRange]) -> String {
    if r.is_empty() {
        return "No había números fiscales sin usar.".into();
    }
    r.iter()
        .map(|x| {
            format!(
                "Devueltos {} {}..{} (evento #{})",
                x.series, x.first, x.last, x.seq
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A weight for the cashier: `1.250 kg`.
pub fn weight(grams: i64) -> String {
    format!("{} kg", caja_shared::money::QtyMilli(grams))
}

/// What `caja-node scale read` (and `status`) says about one look at the scale.
pub fn scale_report(r: &crate::devices::ScaleReport) -> String {
    let shown = r.grams.map_or_else(|| "sin peso".to_owned(), weight);
    match &r.problem {
        None => format!("Balanza {}: {shown} (estable, se puede vender).", r.address),
        Some(p) => format!("Balanza {}: {shown}. {p}.", r.address),
    }
}

/// The weighed line about to be sold.
pub fn weighed(code: &str, grams: i64) -> String {
    format!("Pesado {code}: {}.", weight(grams))
}

/// One plain Spanish sentence for a device error (the sale was not made).
pub fn device_error(e: &crate::devices::DeviceError) -> String {
    use crate::devices::DeviceError;
    match e {
        DeviceError::NoScale => "No hay balanza configurada: agregue `scale = \"toledo:///dev/ttyS0\"` en config.toml o defina CAJA_NODE_SCALE.".into(),
        DeviceError::Scale(s) => format!("{}. La venta no se hizo.", s.message()),
        DeviceError::NotSoldByWeight(code) => {
            format!("{code} se vende por unidad, no por peso: véndalo con --item.")
        }
        DeviceError::UnknownProduct(code) => format!("Producto desconocido: {code}."),
        DeviceError::Op(op) => error(op),
    }
}

/// The virtual scale is serving.
pub fn virtual_scale_started(path: &str, weight_file: &std::path::Path) -> String {
    format!(
        "Balanza virtual en {path}: configure `scale = \"<protocolo>://{path}\"`; el peso (gramos, «motion» o «silent») se lee de {} (Ctrl-C para detener).",
        weight_file.display()
    )
}

/// The running node's printer loop saw an error.
pub fn print_loop_error(detail: &str) -> String {
    format!("Impresión en espera: {detail}")
}

fn circuit(name: &str) -> &'static str {
    match name {
        "open" => "abierto (esperando para reintentar)",
        "half_open" => "medio abierto (probando la conexión)",
        _ => "cerrado (normal)",
    }
}

/// One plain Spanish sentence for an operation error.
pub fn error(e: &OpError) -> String {
    if e.is_disk_fault() {
        return disk_fault();
    }
    match e {
        OpError::Refused(r) => refusal(r),
        OpError::Failed(f) => failure(f),
    }
}

fn refusal(e: &Refusal) -> String {
    match e {
        Refusal::Invalid { field, reason } => format!("Dato inválido en «{field}»: {reason}."),
        Refusal::Sale(s) => sale_error(s),
        Refusal::ShiftNotOpen => "No hay un turno abierto: abra un turno primero.".into(),
        Refusal::ShiftAlreadyOpen(id) => format!("Ya hay un turno abierto ({id}): ciérrelo primero."),
        Refusal::UnknownSale(id) => format!("No existe la venta {id} en esta caja."),
        Refusal::AlreadyVoided(id) => format!("La venta {id} ya fue anulada."),
        Refusal::UnknownCustomer(id) => format!("No existe el cliente {id}."),
        Refusal::UnknownProduct(code) => format!("Producto desconocido: {code}."),
        Refusal::DebtOverpaid { amount, balance } => format!(
            "El abono de {} es mayor que lo que debe el cliente ({}).",
            rd(*amount),
            rd(*balance)
        ),
        Refusal::RestoredNeedsSync => "Esta caja fue restaurada de un respaldo: sincronice con la oficina central antes de vender (así no se repite ningún número fiscal).".into(),
        Refusal::Staff(e) => match e {
            crate::staff::StaffError::Unknown(_) => "Empleado desconocido o inactivo en esta caja.".into(),
            crate::staff::StaffError::WrongPin { left } => format!("PIN incorrecto (quedan {left} intentos)."),
            crate::staff::StaffError::Locked { until_ms } => format!(
                "Demasiados PIN incorrectos: bloqueado en esta caja hasta las {}.",
                local_time(*until_ms)
            ),
            crate::staff::StaffError::Role { name, action, .. } => format!(
                "{name} no puede autorizar {}: se necesita un supervisor.",
                approval_action(action)
            ),
        },
        Refusal::ApprovalRequired(action) => format!(
            "{} necesita la autorización de un supervisor (su PIN).",
            capitalized(approval_action(action))
        ),
        Refusal::SignInRequired => "Inicie sesión con su PIN para abrir el turno.".into(),
        Refusal::UnknownSaleRef(s) => format!(
            "No se encontró la venta {s} en esta caja ni en su tienda (puede que aún no se haya sincronizado)."
        ),
        Refusal::ReturnTooMuch { line, left, .. } => format!(
            "De la línea {line} solo quedan {} por devolver.",
            qty(*left)
        ),
        Refusal::FiscalExhausted(series) => format!(
            "No quedan números fiscales {series} en esta caja: conéctese con la oficina central para recibir más, o emita otro tipo de comprobante."
        ),
        Refusal::QuotaExceeded { name, left, wanted, .. } => format!(
            "No se puede vender {name}: la cuota de inventario de esta caja tiene {} y la venta pide {}. Conéctese para recibir más cuota.",
            qty(*left),
            qty(*wanted)
        ),
        Refusal::BuyerTaxIdRequired(series) => format!(
            "El comprobante {series} requiere el RNC o la cédula del comprador."
        ),
        Refusal::OpIdReused(id) => {
            format!("La operación {id} ya se usó para otra solicitud.")
        }
        Refusal::NoPrinter => "No hay impresora configurada: agregue `printer = \"tcp://…\"` en config.toml o defina CAJA_NODE_PRINTER.".into(),
        Refusal::HubEvents(why) => format!("Datos de la oficina central rechazados: {why}."),
        Refusal::EcfUnavailable(why) => ecf_unavailable(why),
        Refusal::EcfNotIssued(e) => format!(
            "No se pudo firmar el comprobante electrónico ({}: {}). No se registró nada.",
            e.field, e.reason
        ),
        Refusal::BuyerNameRequired(series) => format!(
            "El comprobante {series} requiere el nombre y el RNC o la cédula del comprador."
        ),
        Refusal::ModifiedDateRequired(ncf) => format!(
            "Esta caja no tiene el comprobante {ncf}: indique su fecha de emisión (aaaa-mm-dd)."
        ),
    }
}

fn failure(e: &Failure) -> String {
    match e {
        Failure::Receipt(why) => format!("No se pudo preparar el recibo: {why}."),
        Failure::Journal(j) => match j.first_bad_seq() {
            Some(seq) => format!(
                "El diario de esta caja fue alterado (primer evento dañado: #{seq}). No se puede vender hasta repararlo o restaurar un respaldo. Detalle: {j}"
            ),
            None => match j {
                crate::journal::JournalError::NotInitialized => {
                    "Esta caja no está inicializada: ejecute `caja-node init`.".into()
                }
                other => format!("Error del diario: {other}."),
            },
        },
        Failure::KeyFile(k) => format!("Problema con la llave de la caja: {k}."),
        Failure::Config(crate::config::ConfigError::Invalid { key, message })
            if key.starts_with("hub_") =>
        {
            hub::bad_setting(key, message)
        }
        Failure::Config(c) => format!("Configuración inválida: {c}."),
        Failure::ZReport(_)
        | Failure::Projection(_)
        | Failure::Db(_)
        | Failure::Sql(_)
        | Failure::Json(_) => format!("Error interno: {e}."),
    }
}

fn sale_error(e: &SaleError) -> String {
    match e {
        SaleError::LineCount(_) => "La venta no tiene artículos.".into(),
        SaleError::UnknownItem { code, .. } => format!("Artículo desconocido: {code}."),
        SaleError::NoPrice { sku, .. } => format!("El artículo {sku} no tiene precio."),
        SaleError::NonPositiveQuantity { .. } => "La cantidad debe ser mayor que cero.".into(),
        SaleError::FractionalPieces { sku, .. } => {
            format!("{sku} se vende por unidad: la cantidad debe ser entera.")
        }
        SaleError::BadDiscount { max, .. } => {
            format!("Descuento inválido: debe estar entre 0 y {}.", rd(*max))
        }
        SaleError::PaymentCount(_) => "Indique al menos un pago.".into(),
        SaleError::NonPositivePayment { .. } => "Cada pago debe ser mayor que cero.".into(),
        SaleError::MissingReference { .. } => {
            "El pago con tarjeta o transferencia necesita una referencia.".into()
        }
        SaleError::FiadoWithoutCustomer => "Para fiar hay que indicar el cliente.".into(),
        SaleError::StoreCreditWithoutCustomer => {
            "Para pagar con crédito en tienda hay que indicar el cliente.".into()
        }
        SaleError::StoreCreditExceeded {
            requested,
            available,
        } => format!(
            "Crédito en tienda insuficiente: se piden {} y el cliente tiene {}.",
            rd(*requested),
            rd(*available)
        ),
        SaleError::BadPrice { .. } => "El precio no puede ser negativo.".into(),
        SaleError::CreditLimitExceeded {
            requested,
            available,
        } => format!(
            "Límite de crédito excedido: fiado de {} y disponible {}.",
            rd(*requested),
            rd(*available)
        ),
        SaleError::PaymentShort { paid, total } => format!(
            "Pago insuficiente: pagó {} y el total es {}.",
            rd(*paid),
            rd(*total)
        ),
        SaleError::ChangeWithoutCash { change, .. } => format!(
            "Solo se puede dar cambio del efectivo (cambio {}).",
            rd(*change)
        ),
        SaleError::Overflow { field } => format!("Monto fuera de rango en {field}."),
    }
}

// ---------------------------------------------------------------------------
// The cashier's screen (`crate::ui`). Labels of the page (placed into its
// `{{key}}` slots and handed to its script), then the sentences of its answers
// and of its status bar.

/// Every label of the cashier's screen, by key: the page's `{{key}}` slots
/// and the script's `T.key`.
pub const UI_LABELS: &[(&str, &str)] = &[
    ("title", "Caja — pantalla del cajero"),
    ("app_name", "Caja"),
    ("status_region", "Estado de la caja"),
    ("item_label", "Código o artículo"),
    ("item_hint", "Escanee o escriba el código y pulse Intro. Cantidad: 3*código. Los artículos por peso se pesan en la balanza."),
    ("add", "Agregar"),
    ("quick_keys", "Teclas rápidas"),
    ("cart", "Venta en curso"),
    ("col_item", "Artículo"),
    ("col_qty", "Cantidad"),
    ("col_price", "Precio"),
    ("col_total", "Importe"),
    ("col_actions", "Acciones"),
    ("remove", "Quitar"),
    ("empty_cart", "No hay artículos. Escanee el primero."),
    ("total", "Total"),
    ("itbis", "ITBIS incluido"),
    ("pay", "Cobrar (F4)"),
    ("clear_cart", "Vaciar (F10)"),
    ("sales", "Ventas del turno (F7)"),
    ("cash_moves", "Entradas y salidas (F8)"),
    ("shift", "Turno (F9)"),
    ("x_report", "Reporte X"),
    ("payment", "Cobro"),
    ("to_pay", "A pagar"),
    ("cash", "Efectivo recibido"),
    ("card", "Tarjeta (monto)"),
    ("card_ref", "Referencia de la tarjeta"),
    ("fiado", "Fiado (monto)"),
    ("customer", "Cliente del fiado"),
    ("no_customer", "— ninguno —"),
    ("change_preview", "Cambio"),
    ("missing_preview", "Falta"),
    ("confirm_pay", "Cobrar e imprimir (Intro)"),
    ("cancel", "Cancelar (Esc)"),
    ("last_sale", "Última venta"),
    ("open_shift", "Abrir turno"),
    ("close_shift", "Cerrar turno"),
    ("cashier", "Cajero"),
    ("pin", "PIN"),
    ("float", "Fondo inicial"),
    ("counted", "Efectivo contado"),
    ("closed_by", "Quién cierra"),
    ("no_shift", "No hay turno abierto. Abra un turno para vender."),
    ("z_report", "Reporte Z"),
    ("sales_list", "Ventas del turno"),
    ("col_time", "Hora"),
    ("col_number", "Comprobante"),
    ("col_state", "Estado"),
    ("voided", "anulada"),
    ("reprint", "Reimprimir"),
    ("void", "Anular"),
    ("return", "Devolver"),
    ("reason", "Motivo"),
    ("supervisor", "Supervisor"),
    ("supervisor_pin", "PIN del supervisor"),
    ("approval_note", "Necesita la autorización de un supervisor."),
    ("confirm_void", "Anular la venta"),
    ("return_title", "Devolución"),
    ("return_qty", "Cantidad a devolver"),
    ("refund", "Reembolso en"),
    ("refund_cash", "efectivo"),
    ("refund_card", "tarjeta"),
    ("refund_transfer", "transferencia"),
    ("confirm_return", "Registrar la devolución"),
    ("cash_title", "Entradas y salidas de efectivo"),
    ("cash_kind", "Movimiento"),
    ("paid_in", "Entrada de efectivo"),
    ("paid_out", "Salida de efectivo (supervisor)"),
    ("drop", "Retiro a la caja fuerte"),
    ("amount", "Monto"),
    ("confirm_cash", "Registrar el movimiento"),
    ("close", "Cerrar"),
    ("working", "Procesando…"),
    ("change_price", "Precio"),
    ("price_title", "Cambiar el precio"),
    ("new_price", "Precio nuevo (por unidad o por kg)"),
    ("price_hint", "Deje el campo vacío para volver al precio de lista. Al cobrar, un supervisor autoriza el cambio con su PIN. Atajo: F6 cambia el precio de la última línea."),
    ("confirm_price", "Cambiar el precio"),
    ("shelf_price", "precio de lista"),
    ("override_note", "Hay precios cambiados: un supervisor autoriza el cobro con su PIN."),
    ("network_retry", "La pantalla no pudo hablar con la caja; reintentando la misma operación…"),
];

/// The cart is empty: nothing to pay.
pub fn ui_cart_empty() -> String {
    "No hay artículos en la venta: escanee o elija uno primero.".into()
}

/// Nothing typed in the item field.
pub fn ui_no_code() -> String {
    "Escriba o escanee el código del artículo.".into()
}

/// A weighed item was given a typed quantity.
pub fn ui_weighed_from_scale(name: &str) -> String {
    format!("{name} se vende por peso: se pesa en la balanza, no se escribe la cantidad.")
}

/// A quantity that could not be read.
pub fn ui_bad_quantity(field: &str, text: &str) -> String {
    format!("Cantidad inválida en «{field}»: «{text}».")
}

/// An amount that could not be read.
pub fn ui_bad_amount(field: &str, text: &str) -> String {
    format!("Monto inválido en «{field}»: «{text}» (ejemplo: 150.00).")
}

/// A request the screen sent that the node cannot read.
pub fn ui_bad_request(detail: &str) -> String {
    format!("Solicitud inválida de la pantalla: {detail}.")
}

/// No member of staff by that name.
pub fn ui_unknown_staff(who: &str) -> String {
    format!("Empleado desconocido en esta caja: {who}.")
}

/// The cart line named is no longer in the cart.
pub fn ui_line_gone() -> String {
    "Esa línea ya no está en la venta.".into()
}

/// A cart with a changed price is paid without a supervisor.
pub fn ui_override_needs_supervisor() -> String {
    "Hay precios cambiados en la venta: escriba el nombre y el PIN del supervisor que lo autoriza."
        .into()
}

/// Name and PIN go together.
pub fn ui_name_and_pin() -> String {
    "Escriba el nombre y el PIN juntos.".into()
}

/// A request refused because it did not come from the register's own screen.
pub fn ui_forbidden() -> String {
    "Solicitud rechazada: la pantalla de caja solo acepta pedidos de esta misma caja.".into()
}

/// The node's storage failed while answering the screen.
pub fn ui_storage(detail: &str) -> String {
    format!("La caja no pudo guardar ni leer sus datos: {detail}. Llame a soporte.")
}

/// The line just weighed.
pub fn ui_weighed(name: &str, grams: i64) -> String {
    format!("Pesado {name}: {}.", weight(grams))
}

/// What the screen shows after a sale.
pub fn ui_sale_done(r: &SaleResult, credit_left: Option<Money>) -> String {
    let mut s = format!("Venta registrada: total {}", rd(r.total));
    if r.change.0 > 0 {
        s.push_str(&format!(", cambio {}", rd(r.change)));
    }
    if r.fiado.0 > 0 {
        s.push_str(&format!(", fiado {}", rd(r.fiado)));
        if let Some(left) = credit_left {
            s.push_str(&format!(" (crédito disponible: {})", rd(left)));
        }
    }
    if let Some(n) = &r.fiscal_number {
        s.push_str(&format!(". Comprobante {n}"));
    }
    s.push_str(". Recibo enviado a la impresora.");
    if let (Some(n), Some(left)) = (&r.fiscal_number, r.fiscal_low) {
        s.push_str(&format!(
            " ¡Atención: quedan {left} números fiscales de la serie {}!",
            &n[..3.min(n.len())]
        ));
    }
    s
}

/// A shift opened from the screen.
pub fn ui_shift_opened(cashier: &str) -> String {
    format!("Turno abierto para {cashier}. Puede vender.")
}

/// A void done.
pub fn ui_voided(sale: &str) -> String {
    format!("Venta {sale} anulada.")
}

/// A reprint queued.
pub fn ui_reprinted() -> String {
    "Copia del recibo enviada a la impresora (marcada COPIA).".into()
}

/// A cash movement done.
pub fn ui_cash_moved(kind: caja_shared::kind::CashMovement, amount: Money) -> String {
    let what = match kind {
        caja_shared::kind::CashMovement::PaidIn => "Entrada de efectivo",
        caja_shared::kind::CashMovement::PaidOut => "Salida de efectivo",
        caja_shared::kind::CashMovement::Drop => "Retiro a la caja fuerte",
    };
    format!("{what} de {} registrada.", rd(amount))
}

/// One part of the status bar: its text and how worrying it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusItem {
    /// Which part (`net`, `sync`, `fiscal`, `quota`, `printer`, `scale`, `shift`).
    pub key: &'static str,
    /// The sentence.
    pub text: String,
    /// `ok`, `warn` or `bad`.
    pub level: &'static str,
}

fn item(key: &'static str, level: &'static str, text: String) -> StatusItem {
    StatusItem { key, text, level }
}

/// "hace 3 min" for an age in ms.
pub fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("hace {s} s"),
        60..=3599 => format!("hace {} min", s / 60),
        _ => format!("hace {} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The status bar of the cashier's screen, from the register's status and
/// one look at the scale (`None`: no scale configured; `Some(None)`: the
/// scale is busy weighing).
pub fn ui_status_bar(
    s: &Status,
    scale: Option<Option<&crate::devices::ScaleReport>>,
    quota_low_milli: i64,
    now_ms: i64,
) -> Vec<StatusItem> {
    let mut out = Vec::new();
    // The last sync as `caja-node status` shows moments: local time and age.
    let last = s
        .sync
        .last_success_ms
        .map(|ms| format!("última sincronización {}", moment(ms, now_ms)));
    out.push(if s.sync.quarantined {
        item("net", "bad", "En cuarentena: llame a soporte".into())
    } else if s.sync.online {
        item(
            "net",
            "ok",
            match &last {
                Some(l) => format!("En línea ({l})"),
                None => "En línea".into(),
            },
        )
    } else {
        item(
            "net",
            "warn",
            match &last {
                Some(l) => format!("Sin conexión (se sigue vendiendo; {l})"),
                None => "Sin conexión (se sigue vendiendo)".into(),
            },
        )
    });
    out.push(match (s.unsynced, s.sync.oldest_unsynced_ms) {
        (0, _) => item("sync", "ok", "Todo sincronizado".into()),
        (n, Some(ms)) => item(
            "sync",
            if now_ms - ms > 3_600_000 {
                "bad"
            } else {
                "warn"
            },
            format!(
                "{n} sin sincronizar (el más antiguo de {})",
                moment(ms, now_ms)
            ),
        ),
        (n, None) => item("sync", "warn", format!("{n} sin sincronizar")),
    });
    if s.fiscal.is_empty() {
        out.push(item("fiscal", "ok", "Sin comprobantes fiscales".into()));
    }
    for f in &s.fiscal {
        let level = if f.left == 0 {
            "bad"
        } else if f.low {
            "warn"
        } else {
            "ok"
        };
        let mut t = format!("{}: quedan {}", f.series, f.left);
        if f.low {
            t.push_str(" (¡pocos!)");
        }
        out.push(item("fiscal", level, t));
    }
    if let Some(quotas) = &s.quotas {
        let low: Vec<String> = quotas
            .iter()
            .filter(|q| q.left_milli < quota_low_milli)
            .map(|q| {
                format!(
                    "{} {}",
                    q.product,
                    qty(caja_shared::money::QtyMilli(q.left_milli))
                )
            })
            .collect();
        out.push(if low.is_empty() {
            item("quota", "ok", "Cuotas de inventario bien".into())
        } else {
            item("quota", "warn", format!("Cuota baja: {}", low.join(", ")))
        });
    }
    out.push(match &s.printer {
        None => item("printer", "warn", "Impresora: no configurada".into()),
        Some(_) if s.print.failed > 0 => item(
            "printer",
            "bad",
            format!(
                "Impresora detenida: {} recibo(s) sin imprimir{}",
                s.print.failed,
                s.print
                    .last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" — {e}"))
            ),
        ),
        Some(_) if s.print.pending + s.print.printing > 0 => item(
            "printer",
            if s.print.last_error.is_some() {
                "bad"
            } else {
                "warn"
            },
            match &s.print.last_error {
                Some(e) => format!(
                    "Impresora: {e} — {} recibo(s) quedaron en cola",
                    s.print.pending + s.print.printing
                ),
                None => format!(
                    "Impresora: {} recibo(s) en cola",
                    s.print.pending + s.print.printing
                ),
            },
        ),
        Some(_) => item("printer", "ok", "Impresora lista".into()),
    });
    out.push(match scale {
        None => item("scale", "warn", "Balanza: no configurada".into()),
        Some(None) => item("scale", "ok", "Balanza: pesando…".into()),
        Some(Some(r)) => match (&r.problem, r.grams) {
            (None, g) => item(
                "scale",
                "ok",
                format!("Balanza lista ({})", weight(g.unwrap_or(0))),
            ),
            (Some(p), _) => item("scale", "warn", format!("Balanza: {p}")),
        },
    });
    out
}

/// The screen is being served.
pub fn ui_serving(addr: &str) -> String {
    format!("Pantalla de caja en http://{addr}/ (ábrala en el navegador de esta caja).")
}

/// The screen could not be served.
pub fn ui_failed(detail: &str) -> String {
    format!("No se pudo abrir la pantalla de caja: {detail}.")
}

/// What a supervisor approves, in words (the action names of
/// `Register::approval_for`); an unknown name is shown as it is.
pub fn approval_action(action: &str) -> &str {
    match action {
        "void" => "la anulación de la venta",
        "return" => "la devolución",
        "return_unknown_original" => "la devolución de una venta que esta caja no conoce",
        "paid_out" => "la salida de efectivo",
        "discount" => "el descuento",
        "price_override" => "el cambio de precio",
        "drawer_open" => "abrir la gaveta sin venta",
        "close_shift" => "cerrar el turno de otra persona",
        other => other,
    }
}

/// The first letter in upper case.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Why an electronic (e-CF) sale cannot be made now, for the cashier.
pub fn ecf_unavailable(why: &crate::ecf::EcfUnavailable) -> String {
    use crate::ecf::EcfUnavailable as U;
    match why {
        U::NoIssuer => "No se puede emitir un comprobante electrónico: falta la configuración del emisor ([ecf] en config.toml). No se registró nada.".into(),
        U::NoCertificate => "No se puede emitir un comprobante electrónico: no hay certificado digital instalado (caja-node fiscal certificate install). No se registró nada.".into(),
        U::CertificateNotValid { .. } => "No se puede emitir un comprobante electrónico: el certificado digital está vencido o aún no es válido. Instale uno vigente. No se registró nada.".into(),
        U::Broken(e) => format!("No se puede emitir un comprobante electrónico: {e}. No se registró nada."),
    }
}

// — RESTORE —

/// The warning shown while head office has not acknowledged a restore of the
/// hub from a backup.
pub fn hub_restored_warning(epoch: u64, tree_size: u64) -> String {
    format!(
        "AVISO: la oficina central fue restaurada de un respaldo (época {epoch}; su registro de auditoría continúa desde {tree_size} entradas). Esta caja le devolvió lo que faltaba. Pendiente de confirmación de la oficina central."
    )
}

/// `caja-node rekey` done.
pub fn rekey_done(device: &str, key_id: &str) -> String {
    format!("Clave nueva instalada para la caja {device} (id {key_id}). Sincronice ahora.")
}

/// `caja-node rekey` could not read or use its key file.
pub fn rekey_bad_key_file(path: &str, why: &str) -> String {
    format!("--key-file {path}: no se pudo usar la clave ({why}).")
}

/// `caja-node restore` on a machine without the register's key file.
pub fn restored_needs_key(seq: u64) -> String {
    format!(
        "Respaldo restaurado (hasta el evento #{seq}). Falta la llave de la caja: pida una nueva a la oficina central (caja-hub admin rotate) e instálela con `caja-node rekey`; luego sincronice antes de emitir comprobantes fiscales."
    )
}

// — FAULT —

/// The disk of this register could not write (full, or an I/O error): the
/// operation was not recorded, selling resumes when the disk does.
pub fn disk_fault() -> String {
    "No se pudo guardar en el disco de esta caja (disco lleno o con fallas): la operación NO se registró. Libere espacio o llame a soporte y vuelva a intentarlo; las ventas ya confirmadas están a salvo.".into()
}

#[cfg(test)]
mod approval_words {
    use super::*;

    #[test]
    fn approvals_are_named_in_spanish() {
        let m = error(&OpError::Refused(Refusal::ApprovalRequired(
            "price_override",
        )));
        assert_eq!(
            m,
            "El cambio de precio necesita la autorización de un supervisor (su PIN)."
        );
        assert!(!m.contains("price_override"));
        assert_eq!(
            approval_action("close_shift"),
            "cerrar el turno de otra persona"
        );
        assert_eq!(approval_action("nuevo"), "nuevo");
    }
}
