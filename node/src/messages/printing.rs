//! What the register says about its printer, drawer and print queue, and how
//! it shows a moment to a person: in the store's time zone with its age
//! (`06/12/2026 12:42, hace 5 s`), never raw milliseconds. Spanish (es-DO),
//! like the rest of `messages`.

/// A moment in the store's time zone with its age: `06/12/2026 12:42, hace 5 s`.
pub fn moment(at_ms: i64, now_ms: i64) -> String {
    let local = caja_hardware::localtime::LocalDateTime::from_utc_ms(
        at_ms,
        caja_hardware::localtime::UtcOffset::default(),
    );
    let age_ms = now_ms.saturating_sub(at_ms);
    if age_ms < 0 {
        format!("{local}, dentro de {}", span(age_ms.saturating_neg()))
    } else {
        format!("{local}, hace {}", span(age_ms))
    }
}

/// A span of time in the largest unit that fits: `5 s`, `3 min`, `2 h`, `4 días`.
fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        ..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => {
            let d = s / 86_400;
            format!("{d} {}", if d == 1 { "día" } else { "días" })
        }
    }
}

/// A signed duration for the cashier: `0.25 s`, `-1.5 s`, `12 min`.
pub fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    if abs < 60_000 {
        let cents = abs / 10;
        format!("{sign}{}.{:02} s", cents / 100, cents % 100)
    } else {
        format!("{sign}{}", span(i64::try_from(abs).unwrap_or(i64::MAX)))
    }
}

/// A moment in the store's time zone, without its age: `06/12/2026 12:42`.
pub fn local_time(at_ms: i64) -> String {
    caja_hardware::localtime::LocalDateTime::from_utc_ms(
        at_ms,
        caja_hardware::localtime::UtcOffset::default(),
    )
    .to_string()
}

/// The print queue line of `status`.
pub fn print_queue(q: &crate::print::QueueStatus, now_ms: i64) -> String {
    let waiting = q.pending + q.printing;
    let mut s = format!("Recibos en cola: {waiting}");
    if q.failed > 0 {
        s.push_str(&format!(
            ", {} detenidos (revise la impresora y ejecute `caja-node print --retry-failed`)",
            q.failed
        ));
    }
    if let Some(ms) = q.oldest_unprinted_ms {
        s.push_str(&format!(" (el más antiguo de {})", moment(ms, now_ms)));
    }
    s
}

/// What `caja-node print` (or the print after a sale) did; for `caja-node
/// print`, also what stays queued and why.
pub fn print_run(r: &crate::print::PrintRun) -> String {
    let left = r.left.as_ref();
    let waiting = left.map_or(0, |q| q.pending + q.printing);
    let stopped = left.map_or(0, |q| q.failed);
    if r.jobs.is_empty() && waiting == 0 && stopped == 0 {
        return "No hay recibos pendientes por imprimir.".into();
    }
    let mut lines = Vec::new();
    if r.jobs.is_empty() && waiting > 0 {
        lines.push(format!(
            "No se imprimió nada: {waiting} recibo(s) en impresión por otro proceso de esta caja."
        ));
    }
    for j in &r.jobs {
        let what = if j.as_copy {
            "Copia del recibo"
        } else {
            "Recibo"
        };
        if j.kind == caja_hardware::queue::JobKind::Drawer {
            lines.push(match &j.error {
                None => format!("Gaveta abierta (apertura {}).", j.sale),
                Some(e) => format!(
                    "No se pudo abrir la gaveta (apertura {}): {e}. Queda en cola (`caja-node print`).",
                    j.sale
                ),
            });
            continue;
        }
        if j.kind == caja_hardware::queue::JobKind::Return {
            let what = if j.as_copy {
                "Copia del comprobante"
            } else {
                "Comprobante"
            };
            lines.push(match &j.error {
                None => format!("{what} de la devolución {} impreso.", j.sale),
                Some(e) => format!(
                    "No se imprimió el comprobante de la devolución {}: {e}. Queda en cola (`caja-node print`).",
                    j.sale
                ),
            });
            if let Some(d) = &j.drawer {
                lines.push(drawer_note(j.kind, j.sale, d));
            }
            continue;
        }
        lines.push(match &j.error {
            None => format!("{what} de la venta {} impreso.", j.sale),
            Some(e) => print_failed(j.sale, j.state, e),
        });
        if let Some(d) = &j.drawer {
            lines.push(drawer_note(j.kind, j.sale, d));
        }
    }
    if let Some(q) = left {
        let untried = waiting.saturating_sub(
            r.jobs
                .iter()
                .filter(|j| j.state == caja_hardware::queue::JobState::Pending)
                .count() as u64,
        );
        if untried > 0 {
            lines.push(format!(
                "Quedan en cola {untried} recibo(s) más sin intentar: la impresora no aceptó el anterior{}.",
                q.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
        if stopped > 0 {
            lines.push(format!(
                "{stopped} recibo(s) detenido(s) tras varios intentos no se imprimieron: revise la impresora y ejecute `caja-node print --retry-failed`."
            ));
        }
    }
    lines.join("\n")
}

/// The printer's status bits as `status` shows them.
pub fn printer_state(r: &crate::devices::PrinterReport) -> String {
    format!("Estado de la impresora: {}", r.lines.join("; "))
}

/// Which document a drawer belonged to, as the cashier reads it: "la venta
/// <id>", or "la devolución <id>" for a cash refund's slip.
fn drawer_of(kind: caja_hardware::queue::JobKind, id: caja_shared::ids::SaleId) -> String {
    if kind == caja_hardware::queue::JobKind::Return {
        format!("la devolución {id}")
    } else {
        format!("la venta {id}")
    }
}

/// The drawer of a receipt (or a cash refund's slip) that did not print.
pub fn drawer_note(
    kind: caja_hardware::queue::JobKind,
    sale: caja_shared::ids::SaleId,
    note: &crate::print::DrawerNote,
) -> String {
    use crate::print::DrawerNote;
    let of = drawer_of(kind, sale);
    let paper = if kind == caja_hardware::queue::JobKind::Return {
        "el comprobante"
    } else {
        "el recibo"
    };
    match note {
        DrawerNote::Pulsed => format!(
            "Gaveta abierta ({of}) aunque {paper} no pudo imprimirse; {paper} saldrá sin volver a abrirla."
        ),
        DrawerNote::PulseFailed(e) => format!(
            "La gaveta de {of} no se pudo abrir: {e}. Ábrala con la llave y registre la apertura: `caja-node drawer manual --sale {sale}`."
        ),
        DrawerNote::Unreachable => format!(
            "La impresora no responde: la gaveta de {of} no se abrió. Ábrala con la llave y registre la apertura: `caja-node drawer manual --sale {sale}`."
        ),
    }
}

/// A drawer opened by hand, recorded.
pub fn drawer_manual(r: &crate::print::ManualOpening) -> String {
    let paper = if r.kind == caja_hardware::queue::JobKind::Return {
        "el comprobante"
    } else {
        "el recibo"
    };
    format!(
        "Apertura manual de la gaveta registrada ({}); {paper}, cuando se imprima, no volverá a abrirla.",
        drawer_of(r.kind, r.sale)
    )
}

/// One receipt that did not print.
pub fn print_failed(
    sale: caja_shared::ids::SaleId,
    state: caja_hardware::queue::JobState,
    error: &str,
) -> String {
    if state == caja_hardware::queue::JobState::Failed {
        format!(
            "No se pudo imprimir el recibo de la venta {sale}: {error}. Quedó detenido: revise la impresora y ejecute `caja-node print --retry-failed`."
        )
    } else {
        format!(
            "No se pudo imprimir el recibo de la venta {sale}: {error}. Queda en cola y se reintentará (`caja-node print`)."
        )
    }
}

/// Warning after a committed sale whose receipt could not be printed.
pub fn print_warning(detail: &str) -> String {
    format!("Aviso: la operación quedó registrada, pero el recibo no se imprimió: {detail}")
}

/// A reprint was queued.
pub fn reprint_queued(sale: caja_shared::ids::SaleId, job: caja_hardware::queue::JobId) -> String {
    format!("Copia del recibo de la venta {sale} en cola (trabajo {job}).")
}

/// Failed receipts put back in the queue.
pub fn prints_retried(n: usize) -> String {
    format!("{n} recibo(s) detenido(s) vuelven a la cola.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_in_the_store_zone_with_their_age() {
        // 2026-12-06 16:42:00 UTC is 12:42 in Santo Domingo (UTC−4).
        let at = 1_796_575_320_000;
        assert_eq!(moment(at, at + 5_000), "06/12/2026 12:42, hace 5 s");
        assert_eq!(moment(at, at + 180_000), "06/12/2026 12:42, hace 3 min");
        assert_eq!(moment(at, at + 7_200_000), "06/12/2026 12:42, hace 2 h");
        assert_eq!(moment(at, at + 86_400_000), "06/12/2026 12:42, hace 1 día");
        assert_eq!(moment(at, at - 2_000), "06/12/2026 12:42, dentro de 2 s");
        assert_eq!(duration(250), "0.25 s");
        assert_eq!(duration(-1_500), "-1.50 s");
        assert_eq!(duration(720_000), "12 min");
    }
}
