//! Every sentence the head-office dashboard shows, in Spanish (es-DO), in one
//! place. Codes stay in English in the code and in the API; here they get
//! the words head office reads.

use crate::conflict::ConflictReason;
use caja_shared::fiscal::NumberStatus;

// ---- Shell and navigation ----------------------------------------------------

/// The product's name in the header and titles.
pub const APP_NAME: &str = "Caja — Oficina central";
/// Skip link.
pub const SKIP_TO_CONTENT: &str = "Saltar al contenido";
/// Before the operator's name.
pub const SIGNED_IN_AS: &str = "Sesión de";
/// Logout button.
pub const LOGOUT: &str = "Cerrar sesión";
/// The button that ends every dashboard session.
pub const LOGOUT_EVERYONE: &str = "Cerrar todas las sesiones";
/// Its explanation (tooltip).
pub const LOGOUT_EVERYONE_HINT: &str =
    "Cierra la sesión de todas las personas conectadas al panel, también la suya.";
/// The navigation's accessible name.
pub const NAV_LABEL: &str = "Secciones del panel";
/// Navigation.
pub const NAV_OVERVIEW: &str = "Resumen";
/// Navigation.
pub const NAV_STORES: &str = "Tiendas y cajas";
/// Navigation.
pub const NAV_SYNC: &str = "Sincronización";
/// Navigation.
pub const NAV_HELD: &str = "Retenidos y cuarentenas";
/// Navigation.
pub const NAV_CONFLICTS: &str = "Conflictos";
/// Navigation.
pub const NAV_STOCK: &str = "Alertas de inventario";
/// Navigation.
pub const NAV_FISCAL: &str = "Comprobantes fiscales";
/// Navigation.
pub const NAV_OUTBOX: &str = "Envíos a la DGII";
/// Navigation.
pub const NAV_AUDIT: &str = "Auditoría";
/// Error pages.
pub const ERROR_TITLE: &str = "No se pudo completar";
/// Link on error pages.
pub const BACK_TO_OVERVIEW: &str = "Volver al resumen";
/// The hub's writer queue is full or it is stopping.
pub const BUSY: &str = "El hub está ocupado en este momento. Intente de nuevo en unos segundos.";
/// A storage failure (details in the hub's log).
pub const STORAGE_FAILED: &str =
    "El hub no pudo leer o guardar los datos. No se cambió nada; el detalle está en el registro del hub.";
/// A body that is not a form.
pub const FORM_MALFORMED: &str =
    "El formulario llegó dañado. Recargue la página e intente de nuevo.";
/// A form without the session's anti-forgery token.
pub const CSRF_REFUSED: &str =
    "El formulario no lleva el código de seguridad de su sesión (o es de otra sesión). No se cambió nada. Recargue la página e intente de nuevo.";

// ---- Login --------------------------------------------------------------------

/// Login page title.
pub const LOGIN_TITLE: &str = "Entrar al panel de la oficina central";
/// Login field.
pub const LOGIN_NAME: &str = "Su nombre (queda en el registro de auditoría)";
/// Login field.
pub const LOGIN_SECRET: &str = "Clave de administración del hub";
/// Under the secret field.
pub const LOGIN_SECRET_HINT: &str =
    "Es el admin_token de hub.toml (o CAJA_HUB_ADMIN_TOKEN), el mismo que usa «caja-hub admin».";
/// Login button.
pub const LOGIN_BUTTON: &str = "Entrar";
/// Wrong admin token.
pub const LOGIN_WRONG: &str = "La clave no es correcta.";
/// The login form's token is missing or stale.
pub const LOGIN_FORM_EXPIRED: &str =
    "El formulario de entrada venció o no es de este navegador. Intente de nuevo.";

/// Too many attempts.
pub fn login_limited(wait_s: i64) -> String {
    format!("Demasiados intentos de entrada. Espere {wait_s} segundos e intente de nuevo.")
}

// ---- Forms ---------------------------------------------------------------------

/// The name of a form field for a person.
pub fn field_label(field: &str) -> &'static str {
    match field {
        "name" => "Nombre",
        "token" => "Clave",
        "note" => "Nota",
        "reason" => "Motivo",
        "store" => "Tienda",
        "time_zone" => "Zona horaria",
        "winner" => "Ganador",
        "by" => "Responsable",
        "key" => "Alerta",
        "state" => "Decisión",
        "csrf" => "Código de seguridad",
        _ => "Campo",
    }
}

/// A required field left blank.
pub fn field_required(label: &str) -> String {
    format!("Falta el campo «{label}». No se cambió nada.")
}

/// A field over its length.
pub fn field_too_long(label: &str, max: usize) -> String {
    format!("El campo «{label}» admite a lo sumo {max} caracteres. No se cambió nada.")
}

/// The hub refused an operation (an API error), in the person's words.
pub fn refusal(code: &str, field: Option<&str>, message: &str) -> String {
    match (code, field) {
        ("already_resolved", _) => {
            "Ese conflicto ya estaba resuelto (quizás por otra persona). No se cambió nada.".into()
        }
        ("too_many_candidates", _) => {
            "El conflicto tiene demasiados candidatos para resolverlo de una vez. No se cambió nada."
                .into()
        }
        ("not_found", _) => "No existe lo que se buscaba (¿ya fue borrado o el enlace es viejo?). No se cambió nada.".into(),
        ("invalid", Some(f)) => format!(
            "El campo «{}» no es válido. No se cambió nada.{}",
            field_label(f),
            if message.is_empty() { String::new() } else { format!(" ({message})") }
        ),
        _ => format!("El hub rechazó la operación ({code}). No se cambió nada. Detalle: {message}"),
    }
}

/// The notice shown after a form (`?ok=<code>`); unknown codes show nothing.
pub fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "store_created" => "Tienda creada.",
        "revoked" => "Caja revocada: sus claves ya no se aceptan.",
        "released" => "Cuarentena levantada. La caja puede volver a sincronizar.",
        "resolved" => {
            "Conflicto resuelto. La decisión llegará a las cajas con la próxima sincronización."
        }
        "decided" => "Decisión sobre la alerta guardada.",
        "signed" => "Se firmó una nueva cabeza del registro de auditoría.",
        _ => return None,
    })
}

// ---- Overview ------------------------------------------------------------------

/// Overview title.
pub const OVERVIEW_TITLE: &str = "Resumen";
/// Before the overall badge.
pub const OVERALL_TITLE: &str = "Estado general:";
/// `healthy`.
pub const OVERALL_HEALTHY: &str = "Saludable";
/// `degraded`.
pub const OVERALL_DEGRADED: &str = "Degradado";
/// `critical`.
pub const OVERALL_CRITICAL: &str = "Crítico";
/// Nothing to report.
pub const ALL_HEALTHY: &str = "Todo en orden: nada necesita atención.";
/// Card.
pub const CARD_STORES: &str = "Tiendas";
/// Card.
pub const CARD_REGISTERS: &str = "Cajas activas";
/// Card.
pub const CARD_SILENT: &str = "Cajas sin contacto";
/// Card.
pub const CARD_CONFLICTS: &str = "Conflictos abiertos";
/// Card.
pub const CARD_HELD: &str = "Eventos retenidos";
/// Card.
pub const CARD_STOCK_ALERTS: &str = "Alertas de inventario abiertas";
/// Card.
pub const CARD_FISCAL_DUPLICATES: &str = "Números fiscales duplicados";
/// Link to the raw report.
pub const HEALTH_JSON_LINK: &str = "Informe de salud completo (JSON)";
/// Sales section.
pub const SALES_TITLE: &str = "Ventas por hora (últimas 24 horas)";
/// Under the sales title.
pub const SALES_NOTE: &str =
    "Ventas netas (sin las anuladas) que el hub ya recibió, por la hora de la venta en la zona de cada tienda. Una caja desconectada aparece cuando sincroniza.";
/// No store yet.
pub const NO_STORES: &str = "Todavía no hay tiendas.";
/// Chart column head.
pub const CHART_HOUR: &str = "Hora";

/// One store's sales chart.
pub fn sales_chart_title(store: &str, total: &str) -> String {
    format!("{store}: {total} en 24 horas")
}

/// One hour's bar.
pub fn sales_in_hour(total: &str, count: u64) -> String {
    match count {
        1 => format!("{total} (1 venta)"),
        n => format!("{total} ({n} ventas)"),
    }
}

/// Reason: quarantined registers.
pub fn reason_quarantined(n: usize) -> String {
    format!("{n} caja(s) en cuarentena: su historial no coincide con lo que el hub tiene.")
}

/// Reason: duplicated fiscal numbers.
pub fn reason_fiscal_duplicates(n: u64) -> String {
    format!("{n} número(s) fiscal(es) usados más de una vez.")
}

/// Reason: clock skew.
pub fn reason_skew(register: &str, skew: &str) -> String {
    format!("El reloj de «{register}» está desfasado {skew}.")
}

/// Reason: events held long.
pub fn reason_held(n: u64, age: &str) -> String {
    format!("{n} evento(s) retenidos esperando sus dependencias; el más viejo desde hace {age}.")
}

/// Reason: open conflicts.
pub fn reason_conflicts(n: u64) -> String {
    format!("{n} conflicto(s) esperan una decisión.")
}

/// Reason: a series about to expire.
pub fn reason_series_expiring(prefix: &str, days: i64) -> String {
    format!("La serie {prefix} vence en {days} día(s).")
}

/// Reason: the hub's e-CF certificate expires soon.
pub fn reason_certificate_expiring(days: i64) -> String {
    match days {
        0 => "El certificado de firma e-CF del hub vence hoy: renuévelo.".into(),
        1 => "El certificado de firma e-CF del hub vence mañana: renuévelo.".into(),
        d => format!("El certificado de firma e-CF del hub vence en {d} días: renuévelo."),
    }
}

/// Reason: no certificate while electronic series are loaded.
pub const REASON_CERTIFICATE_MISSING: &str =
    "No hay certificado de firma e-CF instalado en el hub \
     y hay series electrónicas cargadas (`caja-hub fiscal certificate install`).";

/// Reason: the certificate cannot be used.
pub fn reason_certificate_unusable(status: &str) -> String {
    let what = match status {
        "expired" => "está vencido",
        "not_yet_valid" => "aún no es válido",
        _ => "no se puede leer",
    };
    format!("El certificado de firma e-CF del hub {what}: no se pueden firmar anulaciones.")
}

/// Card: the hub's e-CF certificate.
pub const CARD_CERTIFICATE: &str = "Certificado e-CF (días)";

/// Reason: stock alerts.
pub fn reason_stock_alerts(n: u64) -> String {
    format!("{n} alerta(s) de inventario sin revisar.")
}

/// Reason: negative stock.
pub fn reason_negative_stock(n: u64) -> String {
    format!("{n} producto(s) con existencia negativa.")
}

/// Reason: other open alerts.
pub fn reason_open_alerts(n: u64) -> String {
    format!("{n} alerta(s) abiertas (historial que no coincide, tokens reusados u otras).")
}

// ---- Charts --------------------------------------------------------------------

/// The data table under a chart.
pub const CHART_SHOW_DATA: &str = "Ver datos";
/// Its value column.
pub const CHART_VALUE: &str = "Valor";
/// A chart with no data.
pub const CHART_EMPTY: &str = "Sin datos todavía.";

// ---- Stores and registers ------------------------------------------------------

/// Page title.
pub const STORES_TITLE: &str = "Tiendas y cajas";
/// Section.
pub const ENROLL_TITLE: &str = "Inscribir una caja nueva";
/// Field.
pub const FIELD_STORE: &str = "Tienda";
/// Field.
pub const FIELD_REGISTER_NAME: &str = "Nombre de la caja";
/// Button.
pub const ENROLL_BUTTON: &str = "Crear código de inscripción";
/// Section.
pub const NEW_STORE_TITLE: &str = "Crear una tienda";
/// Field.
pub const FIELD_STORE_NAME: &str = "Nombre de la tienda";
/// Field.
pub const FIELD_TIME_ZONE: &str = "Zona horaria";
/// Button.
pub const NEW_STORE_BUTTON: &str = "Crear tienda";
/// A zone not in the list.
pub const UNKNOWN_ZONE: &str = "no es una zona que el hub conozca";
/// A store id that does not parse.
pub const NOT_A_STORE: &str = "no es una tienda";
/// Store line.
pub const STORE_ID: &str = "Identificador:";
/// Store line.
pub const STORE_ZONE: &str = "zona:";
/// A store without registers.
pub const NO_REGISTERS: &str = "Esta tienda no tiene cajas inscritas.";
/// Column.
pub const COL_REGISTER: &str = "Caja";
/// Column.
pub const COL_STATUS: &str = "Estado";
/// Column.
pub const COL_ENROLLED: &str = "Inscrita";
/// Column.
pub const COL_KEYS: &str = "Claves vigentes";
/// Column.
pub const COL_ACTIONS: &str = "Acciones";
/// Badge.
pub const STATUS_ACTIVE: &str = "Activa";
/// Badge.
pub const STATUS_QUARANTINED: &str = "En cuarentena";
/// Badge.
pub const STATUS_REVOKED: &str = "Revocada";
/// Button.
pub const ROTATE_BUTTON: &str = "Rotar clave";
/// Confirmation.
pub const CONFIRM_ROTATE: &str =
    "¿Rotar la clave de esta caja? La clave nueva se muestra una sola vez.";
/// Field.
pub const REVOKE_REASON: &str = "Motivo de la revocación";
/// Button.
pub const REVOKE_BUTTON: &str = "Revocar";
/// Confirmation.
pub const CONFIRM_REVOKE: &str =
    "¿Revocar esta caja? Sus claves dejarán de aceptarse y no se puede deshacer.";
/// Unknown register.
pub const NO_SUCH_REGISTER: &str = "Esa caja no existe.";
/// Token page title.
pub const TOKEN_TITLE: &str = "Código de inscripción";
/// Copy button.
pub const COPY: &str = "Copiar";
/// The QR code's accessible name.
pub const QR_LABEL: &str = "Código QR con el código de inscripción";
/// Under the QR code.
pub const QR_CAPTION: &str =
    "El código QR contiene solo el código de inscripción: un lector de la caja lo escribe en el campo de inscripción.";
/// Before the command.
pub const ENROLL_COMMAND: &str = "En la caja, con la línea de comandos:";
/// Warning.
pub const TOKEN_SHOWN_ONCE: &str =
    "Este código se muestra una sola vez y sirve para una sola caja. Si se pierde, cree otro.";
/// Link.
pub const BACK_TO_STORES: &str = "Volver a tiendas y cajas";
/// Rotation page title.
pub const ROTATED_TITLE: &str = "Clave rotada";
/// Rotation intro.
pub const ROTATED_INTRO: &str =
    "La caja tiene una clave nueva. Instálela en la caja; la clave anterior sigue aceptándose hasta la fecha indicada.";
/// Label.
pub const KEY_ID: &str = "Identificador de la clave";
/// Label.
pub const NEW_KEY: &str = "Clave nueva";
/// Label.
pub const OLD_KEY_UNTIL: &str = "La clave anterior vale hasta";
/// Warning.
pub const KEY_SHOWN_ONCE: &str =
    "La clave se muestra una sola vez. No la envíe por correo ni mensajería.";

/// Table caption.
pub fn registers_of(store: &str) -> String {
    format!("Cajas de {store}")
}

/// Token page intro.
pub fn token_for(register: &str) -> String {
    format!("Código de inscripción de «{register}»:")
}

/// Token expiry.
pub fn token_expires(when: &str) -> String {
    format!("Vence el {when} (hora de Santo Domingo).")
}

// ---- Sync ------------------------------------------------------------------------

/// Page title.
pub const SYNC_TITLE: &str = "Sincronización de las cajas";
/// Table caption.
pub const SYNC_TABLE: &str = "Estado de sincronización por caja";
/// Column.
pub const COL_LINK: &str = "Enlace";
/// Column.
pub const COL_LAST_PUSH: &str = "Último envío";
/// Column.
pub const COL_BACKLOG: &str = "Pendientes en la caja";
/// Column.
pub const COL_SKEW: &str = "Desfase del reloj";
/// Column.
pub const COL_ACKED: &str = "Eventos recibidos";
/// Badge: the register pushes.
pub const LINK_UP: &str = "En línea";
/// Badge: silent.
pub const LINK_DOWN: &str = "Sin contacto";
/// Never pushed.
pub const NEVER_PUSHED: &str = "Nunca ha enviado";
/// Not heard from in the last minutes.
pub const NEVER_SEEN: &str = "Sin contacto reciente";
/// Column.
pub const COL_LAST_CONTACT: &str = "Último contacto";
/// Chart.
pub const LAG_CHART: &str =
    "Retraso de sincronización por caja (tiempo desde su último contacto con el hub)";
/// Chart.
pub const BACKLOG_CHART: &str = "Eventos pendientes por caja (según su último envío)";

/// Under the sync title.
pub fn sync_note(silent: &str) -> String {
    format!(
        "Una caja está «sin contacto» si el hub no recibe nada de ella (ni ventas ni consultas) en {silent}. «Pendientes» es lo que la caja dijo tener sin enviar en su último envío. La página se actualiza sola cada 15 segundos."
    )
}

/// `hace 3 min`.
pub fn ago(duration: &str) -> String {
    format!("hace {duration}")
}

/// A count of events.
pub fn events_count(n: u64) -> String {
    match n {
        1 => "1 evento".into(),
        n => format!("{n} eventos"),
    }
}

// ---- Held events and quarantines ---------------------------------------------

/// Page title.
pub const HELD_PAGE_TITLE: &str = "Eventos retenidos y cajas en cuarentena";
/// Section.
pub const QUARANTINE_TITLE: &str = "Cajas en cuarentena";
/// Under it.
pub const QUARANTINE_NOTE: &str =
    "Una caja entra en cuarentena cuando envía un historial distinto del que el hub ya tiene. Revise la caja (¿restaurada de una copia vieja? ¿alterada?) antes de levantarla; la decisión queda en el registro de auditoría.";
/// None.
pub const NO_QUARANTINE: &str = "Ninguna caja está en cuarentena.";
/// Label.
pub const QUARANTINED_SINCE: &str = "En cuarentena desde";
/// Label.
pub const QUARANTINE_REASON: &str = "Motivo:";
/// Field.
pub const RELEASE_NOTE: &str = "Nota de la revisión (obligatoria)";
/// Button.
pub const RELEASE_BUTTON: &str = "Levantar la cuarentena";
/// Section.
pub const HELD_TITLE: &str = "Eventos retenidos";
/// Under it.
pub const HELD_NOTE: &str =
    "Un evento se retiene (guardado y confirmado a la caja) hasta que llegan los eventos de los que depende; entonces el hub lo aplica solo. Aquí se ve qué espera cada uno.";
/// Table caption.
pub const HELD_TABLE: &str = "Los eventos retenidos más viejos";
/// Column.
pub const COL_EVENT: &str = "Evento";
/// Column.
pub const COL_SEQ: &str = "N.º";
/// Column.
pub const COL_KIND: &str = "Tipo";
/// Column.
pub const COL_AGE: &str = "Retenido desde hace";
/// Column.
pub const COL_MISSING: &str = "Espera a";

/// How many are held.
pub fn held_total(n: u64) -> String {
    match n {
        0 => "No hay eventos retenidos.".into(),
        1 => "Hay 1 evento retenido.".into(),
        n => format!("Hay {n} eventos retenidos."),
    }
}

// ---- Conflicts ---------------------------------------------------------------

/// Page title.
pub const CONFLICTS_TITLE: &str = "Conflictos";
/// Under it.
pub const CONFLICTS_NOTE: &str =
    "Lo que necesita una persona: el hub guarda todos los candidatos hasta que alguien decide. La decisión es un evento del hub que llega a las cajas y queda en el registro de auditoría.";
/// None open.
pub const NO_OPEN_CONFLICTS: &str = "No hay conflictos abiertos.";
/// Section and caption.
pub const RESOLVED_CONFLICTS: &str = "Conflictos resueltos (los más recientes)";
/// Column.
pub const COL_REASON: &str = "Motivo";
/// Column.
pub const COL_STORE: &str = "Tienda";
/// Column.
pub const COL_SUBJECT: &str = "Sobre";
/// Column.
pub const COL_CANDIDATES: &str = "Candidatos";
/// Column.
pub const COL_DETECTED: &str = "Detectado";
/// Column.
pub const COL_RESOLUTION: &str = "Resolución";
/// Label.
pub const COL_STRATEGY: &str = "Estrategia";
/// Badge.
pub const CONFLICT_OPEN: &str = "Abierto";
/// Badge.
pub const CONFLICT_RESOLVED: &str = "Resuelto";
/// Label.
pub const WINNER: &str = "ganador:";
/// Section.
pub const CANDIDATES_TITLE: &str = "Candidatos, lado a lado";
/// Label.
pub const WHEN_MADE: &str = "Hecho (hora de la caja)";
/// Label.
pub const WHEN_RECEIVED: &str = "Recibido por el hub";
/// Label.
pub const FACT_TOTAL: &str = "Total";
/// Label.
pub const FACT_AMOUNT: &str = "Monto";
/// Label.
pub const FACT_REASON: &str = "Motivo";
/// Label.
pub const FACT_SALE: &str = "Venta";
/// Label.
pub const FACT_DEBT: &str = "Deuda";
/// Label.
pub const FACT_CASHIER: &str = "Cajero";
/// Label.
pub const FACT_FISCAL: &str = "Número fiscal";
/// A candidate still held.
pub const HELD_EVENT: &str = "Retenido (esperando dependencias)";
/// Details.
pub const SHOW_BODY: &str = "Ver el evento completo";
/// Field.
pub const RESOLVE_NOTE: &str = "Nota para la auditoría (obligatoria)";
/// Button.
pub const RESOLVE_FOR_THIS: &str = "Resolver a favor de este";
/// Section.
pub const RESOLVE_WITHOUT_WINNER_TITLE: &str = "Resolver sin un ganador único";
/// Button.
pub const RESOLVE_WITHOUT_WINNER: &str = "Resolver sin ganador";
/// Link.
pub const BACK_TO_CONFLICTS: &str = "Volver a la lista de conflictos";
/// Unknown conflict.
pub const NO_SUCH_CONFLICT: &str = "Ese conflicto no existe.";
/// Events of a store's hub chain.
pub const HEAD_OFFICE: &str = "Oficina central";

/// Caption of the open queue.
pub fn open_conflicts(n: usize) -> String {
    format!("Conflictos abiertos ({n})")
}

/// A conflict reason for a person (a reason without its own sentence shows
/// its stored name).
pub fn conflict_reason(reason: ConflictReason) -> String {
    match reason {
        ConflictReason::DuplicateFiscalNumber => "Número fiscal usado dos veces".into(),
        ConflictReason::DebtOverpaid => "Deuda pagada de más".into(),
        ConflictReason::PaymentOnVoidedDebt => "Abono a una deuda cuya venta fue anulada".into(),
        ConflictReason::StalePrice => "Venta con un precio viejo".into(),
        ConflictReason::HubKindFromRegister => {
            "Una caja escribió un evento que solo escribe el hub".into()
        }
        ConflictReason::OverReturn => "Se devolvió más de lo vendido".into(),
        ConflictReason::CardPaymentAmountMismatch => "Pago con tarjeta por otro monto".into(),
        ConflictReason::CardPaymentUnconfirmed => {
            "Pago con tarjeta sin confirmar por el proveedor".into()
        }
        ConflictReason::CardPaymentAmbiguous => {
            "Confirmación de tarjeta que podría ser de dos pagos".into()
        }
        ConflictReason::StoreCreditOverdrawn
        | ConflictReason::ReturnOriginalUnknown
        | ConflictReason::FiscalDocumentRejected => format!("Conflicto «{reason}»"),
        ConflictReason::FiscalDocumentInvalid => {
            "Documento fiscal firmado que no pasó la verificación: no se envió a la DGII".into()
        }
    }
}

/// A conflict page's title.
pub fn conflict_title(reason: ConflictReason) -> String {
    format!("Conflicto: {}", conflict_reason(reason))
}

/// An event kind for a person.
pub fn kind_label(kind: &str) -> String {
    match kind {
        "SaleCreated" => "Venta".into(),
        "SaleVoided" => "Anulación de venta".into(),
        "SaleReturned" => "Devolución".into(),
        "DebtOpened" => "Fiado abierto".into(),
        "DebtPaymentTaken" => "Abono a fiado".into(),
        "PaymentTaken" => "Pago".into(),
        "PriceSet" => "Precio".into(),
        "CatalogItemUpserted" => "Artículo del catálogo".into(),
        "CustomerUpserted" => "Cliente".into(),
        "ConflictResolved" => "Resolución de conflicto".into(),
        other => other.to_owned(),
    }
}

// ---- Stock --------------------------------------------------------------------

/// Page title.
pub const STOCK_TITLE: &str = "Alertas de inventario";
/// Under it.
pub const STOCK_NOTE: &str =
    "Una alerta por cada venta más allá de la cuota de una caja (política «avisar») y una por cada producto con existencia negativa. Acusar recibo la deja a la vista; resolverla la cierra.";
/// Caption.
pub const STOCK_TABLE: &str = "Alertas";
/// Column.
pub const COL_PRODUCT: &str = "Producto";
/// Column.
pub const COL_QUANTITY: &str = "Cantidad fuera de cuota o bajo cero";
/// Column.
pub const COL_REGISTERS: &str = "Cajas";
/// Field.
pub const ALERT_NOTE: &str = "Nota";
/// Button.
pub const ACKNOWLEDGE: &str = "Acusar recibo";
/// Button.
pub const RESOLVE_ALERT: &str = "Resolver";

/// Count of open alerts.
pub fn open_stock_alerts(n: usize) -> String {
    match n {
        0 => "No hay alertas abiertas.".into(),
        1 => "1 alerta abierta.".into(),
        n => format!("{n} alertas abiertas."),
    }
}

/// An alert kind.
pub fn stock_alert_kind(kind: &str) -> String {
    match kind {
        "oversell" => "Venta sin cuota".into(),
        "negative_stock" => "Existencia negativa".into(),
        other => other.to_owned(),
    }
}

/// An alert state.
pub fn alert_state(state: &str) -> String {
    match state {
        "open" => "Abierta".into(),
        "acknowledged" => "Recibida".into(),
        "resolved" => "Resuelta".into(),
        other => other.to_owned(),
    }
}

// ---- Fiscal ---------------------------------------------------------------------

/// Page title.
pub const FISCAL_TITLE: &str = "Comprobantes fiscales";
/// None.
pub const NO_SERIES: &str = "No hay series cargadas. Se cargan con «caja-hub fiscal load-series».";
/// Chart.
pub const NUMBERS_LEFT_CHART: &str =
    "Números que quedan por serie (libres en el hub y en manos de las cajas)";
/// Caption.
pub const SERIES_TABLE: &str = "Series y el estado de sus números";
/// Column.
pub const COL_SERIES: &str = "Serie";
/// Column.
pub const COL_VALID_UNTIL: &str = "Vigente hasta";
/// Column.
pub const COL_LEFT: &str = "Quedan";
/// Column.
pub const COL_DUPLICATES: &str = "Duplicados";
/// Column.
pub const COL_REPORT: &str = "Informe por número";
/// Link.
pub const SEE_REPORT: &str = "Ver";
/// Link.
pub const DOWNLOAD_CSV: &str = "Descargar CSV";
/// Unknown series.
pub const NO_SUCH_SERIES: &str = "Esa serie no existe.";
/// Every store.
pub const ALL_STORES: &str = "todas las tiendas";
/// Label.
pub const SERVES: &str = "sirve a";
/// Caption.
pub const TOTALS_TABLE: &str = "Totales por estado (suman el tamaño de la serie)";
/// Column.
pub const COL_NUMBERS: &str = "Números";
/// Row.
pub const COL_TOTAL: &str = "Total de la serie";
/// Section.
pub const ANOMALIES: &str = "Anomalías encontradas";
/// Section.
pub const RUNS_TITLE: &str = "Cada número";
/// Caption.
pub const RUNS_TABLE: &str = "Tramos de números con el mismo estado";
/// Column.
pub const COL_FROM: &str = "Desde";
/// Column.
pub const COL_TO: &str = "Hasta";
/// Column.
pub const COL_SALES: &str = "Ventas";
/// A voided sale.
pub const VOIDED: &str = "anulada";
/// Link.
pub const BACK_TO_FISCAL: &str = "Volver a las series";

/// A number status.
pub fn number_status(s: NumberStatus) -> &'static str {
    match s {
        NumberStatus::Used => "Usados",
        NumberStatus::Voided => "Anulados",
        NumberStatus::ReleasedUnused => "Devueltos sin usar",
        NumberStatus::WrittenOff => "Dados de baja",
        NumberStatus::Outstanding => "En manos de cajas",
        NumberStatus::NeverAllocated => "Nunca asignados",
    }
}

/// A bar of the numbers-left chart.
pub fn numbers_left(left: &str, size: &str) -> String {
    format!("{left} de {size}")
}

/// Days to expiry.
pub fn days_left(days: i64) -> String {
    match days {
        d if d < 0 => "vencida".into(),
        0 => "vence hoy".into(),
        1 => "vence mañana".into(),
        d => format!("quedan {d} días"),
    }
}

/// A series page's title.
pub fn series_title(prefix: &str) -> String {
    format!("Serie {prefix}: informe por número")
}

/// A series page's summary.
pub fn series_summary(first: &str, last: &str, valid_until: &str) -> String {
    format!("Del {first} al {last}, vigente hasta el {valid_until}")
}

/// Runs cut.
pub fn runs_truncated(shown: usize, total: usize) -> String {
    format!("Se muestran los primeros {shown} de {total} tramos; el CSV los tiene todos.")
}

// ---- Outbox ---------------------------------------------------------------------

/// Page title.
pub const OUTBOX_TITLE: &str = "Envíos a la DGII";
/// Summary heading.
pub const OUTBOX_SUMMARY: &str = "Resumen";
/// Oldest undecided document.
pub const OUTBOX_OLDEST: &str = "El comprobante pendiente más antiguo entró en la cola el";
/// Counts per state.
pub const OUTBOX_BY_STATE: &str = "Comprobantes por estado";
/// Latest documents.
pub const OUTBOX_LATEST: &str = "Últimos comprobantes";
/// No document yet.
pub const OUTBOX_EMPTY: &str = "Todavía no hay comprobantes electrónicos en la cola.";
/// A lost answer being checked.
pub const OUTBOX_IN_DOUBT: &str = "(respuesta perdida: se consulta antes de reenviar)";
/// Column.
pub const COL_DOCUMENT: &str = "Comprobante";
/// Column.
pub const COL_DOCUMENTS: &str = "Comprobantes";
/// Column.
pub const COL_TRACK_ID: &str = "TrackId";
/// Column.
pub const COL_SECURITY_CODE: &str = "Código de seguridad";
/// Column.
pub const COL_ATTEMPTS: &str = "Intentos fallidos";
/// Column.
pub const COL_QUEUED: &str = "En cola desde";
/// Column.
pub const COL_MESSAGES: &str = "Mensajes de la DGII";

/// Backlog sentence.
pub fn outbox_backlog(backlog: u64, failing: u64, rejected: u64) -> String {
    format!(
        "{backlog} comprobante(s) sin respuesta final de la DGII ({failing} con el último intento fallido); {rejected} rechazado(s)."
    )
}

/// A document's state in words.
pub fn outbox_state(state: &str) -> &'static str {
    match state {
        "pending" => "Pendiente de envío",
        "submitted" => "Enviado, en proceso",
        "accepted" => "Aceptado",
        "accepted_conditional" => "Aceptado condicional",
        "rejected" => "Rechazado",
        _ => "Desconocido",
    }
}

// ---- Audit ----------------------------------------------------------------------

/// Page title.
pub const AUDIT_TITLE: &str = "Registro de auditoría";
/// Section.
pub const STH_TITLE: &str = "Última cabeza firmada del árbol";
/// None yet.
pub const NO_STH: &str = "Todavía no hay una cabeza firmada.";
/// Label.
pub const STH_SIZE: &str = "Entradas";
/// Label.
pub const STH_ROOT: &str = "Raíz (RFC 9162)";
/// Label.
pub const STH_AT: &str = "Firmada";
/// Label.
pub const STH_KEY_ID: &str = "Clave";
/// Label.
pub const STH_SIGNATURE: &str = "Firma Ed25519";
/// Label.
pub const HUB_KEY: &str = "Clave pública del hub:";
/// Under it.
pub const HUB_KEY_NOTE: &str =
    "Entréguela al auditor por un canal aparte: con ella verifica la exportación sin Caja.";
/// Section.
pub const AUDIT_ACTIONS: &str = "Verificar y exportar";
/// Button.
pub const VERIFY_BUTTON: &str = "Verificar ahora";
/// Button.
pub const SIGN_BUTTON: &str = "Firmar una cabeza nueva";
/// Button.
pub const EXPORT_BUTTON: &str = "Descargar la exportación (.tar)";
/// Under the buttons.
pub const EXPORT_NOTE: &str =
    "«Verificar» exporta el registro y lo comprueba como lo haría un auditor: cada entrada, la raíz del árbol y la firma. La descarga trae entries.jsonl, sth.json y hub_pubkey (y leaf_hashes.txt para diagnóstico).";
/// The export was signed by another key.
pub const VERIFY_WRONG_KEY: &str =
    "La exportación verifica, pero con una clave que no es la de este hub.";

/// Verification passed.
pub fn verified(entries: u64, root: &str) -> String {
    format!("El registro verifica: {entries} entradas llevan a la raíz firmada {root}.")
}

/// Verification failed.
pub fn verify_failed(why: &str) -> String {
    format!("¡El registro NO verifica! {why}")
}

/// Export failed.
pub fn export_failed(why: &str) -> String {
    format!("No se pudo exportar el registro: {why}")
}

// — RECV —
/// Navigation: supplier invoices and commercial approvals.
pub const NAV_PURCHASES: &str = "Compras";
/// Title of `/ui/purchases`.
pub const PURCHASES_TITLE: &str = "Compras y aprobaciones comerciales";
/// Heading: e-CF received from suppliers.
pub const PURCHASES_RECEIVED: &str = "Comprobantes recibidos de proveedores";
/// No supplier e-CF yet.
pub const PURCHASES_EMPTY: &str = "Todavía no se ha recibido ningún comprobante de un proveedor.";
/// Heading: buyers' approvals of our e-CF.
pub const APPROVALS_TITLE: &str = "Aprobaciones comerciales de nuestros comprobantes";
/// No approvals yet.
pub const APPROVALS_EMPTY: &str =
    "Ningún comprador ha aprobado ni rechazado todavía un comprobante.";
/// Column: supplier.
pub const COL_SUPPLIER: &str = "Proveedor";
/// Column: buyer.
pub const COL_BUYER: &str = "Comprador";
/// Column: issue date.
pub const COL_ISSUED: &str = "Emisión";
/// Column: a document's total.
pub const COL_DOC_TOTAL: &str = "Total";
/// Column: received at.
pub const COL_RECEIVED: &str = "Recibido";

/// A commercial decision in words.
pub fn purchase_decision(d: Option<&str>) -> &'static str {
    match d {
        Some("approved") => "Aprobado",
        Some("rejected") => "Rechazado",
        _ => "Pendiente de decisión",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_only_for_known_codes() {
        assert!(notice("resolved").is_some());
        assert!(notice("<script>").is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(refusal("invalid", Some("winner"), "not a candidate").contains("Ganador"));
        assert!(refusal("already_resolved", None, "").contains("ya estaba resuelto"));
        assert!(refusal("weird", None, "x").contains("weird"));
    }
}
