//! What is printed on paper beside the receipt layout itself: the default
//! store name and the drawer-opening slip, in Spanish like the rest of
//! `messages`.
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
