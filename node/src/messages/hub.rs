//! What the register says when it will not talk to its hub because of how it
//! is reached (plain http:// to another machine, a certificate that is not
//! the configured one), in Spanish (es-DO). Each sentence names the key of
//! `config.toml` to look at.

use crate::sync::client::HubError;
use crate::sync::engine::SyncError;

/// The hub presented a certificate this register does not trust; `key` is
/// the trust setting it failed (`hub_cert_sha256`, `hub_ca`, `hub_url`).
pub fn untrusted(key: &str) -> String {
    match key {
        "hub_cert_sha256" => "El certificado de la oficina central no es el configurado (hub_cert_sha256): la caja no le envía nada, podría ser un impostor. Verifique la huella con soporte antes de cambiarla.".into(),
        "hub_ca" => "El certificado de la oficina central no está firmado por la autoridad configurada (hub_ca) o no corresponde a su dirección: la caja no le envía nada. Llame a soporte.".into(),
        _ => "El certificado de la oficina central no es de confianza para su dirección (hub_url): la caja no le envía nada. Configure hub_ca o hub_cert_sha256, o llame a soporte.".into(),
    }
}

/// A setting of the hub's address or trust cannot be used.
pub fn bad_setting(key: &str, detail: &str) -> String {
    match key {
        "hub_url" if detail.contains("http://") => format!(
            "hub_url: la oficina central está en otra máquina y la dirección usa http:// sin cifrar; use https:// (con hub_ca o hub_cert_sha256 si tiene su propio certificado). ({detail})"
        ),
        _ => format!("{key}: configuración de la oficina central no válida ({detail})."),
    }
}

/// The sentence for a failed sync or enrollment, when it is about trust in
/// the hub; `None` for other failures.
pub fn trust_failure(e: &SyncError) -> Option<String> {
    match e {
        SyncError::Hub(HubError::Untrusted { key, .. }) => Some(untrusted(key)),
        SyncError::Hub(HubError::Config { key, message }) => Some(bad_setting(key, message)),
        SyncError::Config(crate::config::ConfigError::Invalid { key, message })
            if key.starts_with("hub_") =>
        {
            Some(bad_setting(key, message))
        }
        _ => None,
    }
}
