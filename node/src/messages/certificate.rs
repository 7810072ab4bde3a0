//! What the register says about its e-CF signing certificate (install,
//! `fiscal certificate show`, the line of `status`), in Spanish (es-DO).

use caja_shared::localtime::{LocalDate, UtcOffset};

use crate::fiscal::certificate::CertSummary;

fn day(ms: i64) -> String {
    // Dates as DGII's printed documents write them: dd-mm-yyyy, Santo Domingo.
    let d = LocalDate::from_utc_ms(ms, UtcOffset::SANTO_DOMINGO);
    format!("{:02}-{:02}-{:04}", d.day, d.month, d.year)
}

/// The state of the certificate in one sentence (the `status` line).
pub fn state(s: &CertSummary) -> String {
    let (Some(subject), Some(not_after), Some(days)) = (&s.subject, s.not_after_ms, s.days_left)
    else {
        return "Certificado de firma e-CF: no instalado (`caja-node fiscal certificate install`)."
            .into();
    };
    let warning = match s.status {
        "expired" => " — VENCIDO: no se pueden emitir e-CF; instale uno vigente.".to_string(),
        "not_yet_valid" => " — AÚN NO VIGENTE: no se pueden emitir e-CF todavía.".to_string(),
        "expires_soon" if days == 0 => " — ATENCIÓN: vence hoy; renuévelo.".to_string(),
        "expires_soon" if days == 1 => " — ATENCIÓN: vence mañana; renuévelo.".to_string(),
        "expires_soon" => format!(" — ATENCIÓN: vence en {days} días; renuévelo."),
        _ => String::new(),
    };
    format!(
        "Certificado de firma e-CF: {subject}, vence el {}{warning}",
        day(not_after)
    )
}

/// `fiscal certificate show`: every fact of the installed certificate.
pub fn show(s: &CertSummary) -> String {
    let mut lines = vec![state(s)];
    if let Some(i) = &s.issuer {
        lines.push(format!("Emitido por: {i}"));
    }
    if let Some(t) = &s.subject_tax_id {
        lines.push(format!("Identificación del titular (serialNumber): {t}"));
    }
    if let Some(n) = &s.serial_hex {
        lines.push(format!("Número de serie: {n}"));
    }
    if let (Some(a), Some(b)) = (s.not_before_ms, s.not_after_ms) {
        lines.push(format!("Vigencia: {} a {}", day(a), day(b)));
    }
    lines.join("\n")
}

/// After `fiscal certificate install`.
pub fn installed(s: &CertSummary) -> String {
    format!("Certificado instalado.\n{}", show(s))
}

/// No password was given and there is no terminal to ask for one.
pub fn no_password() -> String {
    "Falta la contraseña del certificado: use la variable CAJA_CERT_PASSWORD, \
     --password-file ARCHIVO (solo legible por su dueño) o ejecútelo en una terminal."
        .into()
}

/// The prompt on the terminal.
pub fn prompt() -> &'static str {
    "Contraseña del certificado (.p12): "
}

/// Why installing failed, in Spanish for the usual causes (the technical
/// detail otherwise).
pub fn store_error(e: &crate::fiscal::certificate::CertStoreError) -> String {
    use crate::fiscal::certificate::CertStoreError as E;
    use caja_shared::ecf::certificate::CertError as C;
    match e {
        E::Cert { path, source: C::WrongPassword } => format!(
            "{}: contraseña incorrecta para el archivo PKCS#12",
            path.display()
        ),
        E::Expired { path, subject } => format!(
            "{}: el certificado está vencido ({subject}); instale uno vigente",
            path.display()
        ),
        E::TooOpen { path, mode, want } => format!(
            "{} tiene permisos {mode:04o}: otros usuarios pueden leerlo;              restrínjalo con `chmod {want:o} {}`",
            path.display(),
            path.display()
        ),
        other => other.to_string(),
    }
}

/// Installing failed; nothing was written.
pub fn install_failed(detail: &str) -> String {
    format!("No se instaló el certificado (no se cambió nada): {detail}.")
}

/// The installed certificate cannot be read.
pub fn unreadable(detail: &str) -> String {
    format!("Certificado de firma e-CF ilegible: {detail}.")
}
