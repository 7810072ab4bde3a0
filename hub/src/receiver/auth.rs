//! URL Autenticación of the receiver services: a seed (`SemillaModel`, DGII
//! `Semilla.xsd`) the caller signs with its certificate, and a short-lived
//! bearer token for the signed seed.
//!
//! Source: DGII "Descripción técnica de facturación electrónica" v1.6,
//! "Autenticación" (seed XML `SemillaModel` with `valor` and `fecha`, signed
//! enveloped XMLDSig with the certificate in `KeyInfo`, the answer
//! `{"token","expira","expedido"}`) and "Comunicación Emisor-Receptor" (the
//! receiver exposes the same exchange at `/fe/autenticacion/api/semilla` and
//! `/fe/autenticacion/api/validacioncertificado`).
//!
//! Guessed (DGII does not say how a receiver keeps them): seeds and tokens
//! are stateless, signed with the hub's Ed25519 key (so every instance of a
//! hub sharing a database accepts them): a seed is `nonce.expiry.signature`,
//! valid [`SEED_TTL_MS`]; it is usable once — its first use is recorded in
//! the database and a second one refused. A token is `expiry.nonce.signature`,
//! valid `receiver_token_ttl_ms` (one hour, as DGII's own). The signed seed
//! must verify ([`xmldsig::verify`]: any serialization, canonicalized) and its
//! certificate chain to a trusted CA at the time of the check.
//!
//! Invariant: pure; a seed or token is accepted only when its signature by
//! the hub key verifies and it has not expired at the given time.

use caja_shared::ecf::certificate::{verify_chain, TrustStore};
use caja_shared::ecf::xml::{self, Node};
use caja_shared::ecf::xmldsig;
use caja_shared::key::{HubPublicKey, HubSigningKey};
use caja_shared::localtime::{LocalDateTime, UtcOffset};

/// How long a seed may wait to be signed and presented.
pub const SEED_TTL_MS: i64 = 120_000;

const SEED_DOMAIN: &str = "caja-fe-seed\n";
const TOKEN_DOMAIN: &str = "caja-fe-token\n";

/// Why a signed seed or a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The signed seed is not a readable `SemillaModel`.
    #[error("the signed seed is not a SemillaModel document: {0}")]
    Malformed(String),
    /// The signature of the seed does not verify.
    #[error("the seed's signature does not verify: {0}")]
    Signature(String),
    /// The signer's certificate does not chain to a trusted CA.
    #[error("the signer's certificate is not trusted: {0}")]
    Certificate(String),
    /// The seed or token was not issued by this hub.
    #[error("the {0} was not issued by this receiver")]
    Forged(&'static str),
    /// The seed or token has expired.
    #[error("the {0} has expired")]
    Expired(&'static str),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A new seed value: `nonce.expiry.signature` (hex, ms, hex).
pub fn new_seed(key: &HubSigningKey, nonce: [u8; 16], now_ms: i64) -> String {
    let body = format!("{}.{}", hex(&nonce), now_ms.saturating_add(SEED_TTL_MS));
    let sig = key.sign(format!("{SEED_DOMAIN}{body}").as_bytes());
    format!("{body}.{}", hex(&sig))
}

/// `yyyy-mm-ddThh:mm:ss-04:00` (xs:dateTime, Santo Domingo time).
pub fn iso_local(ms: i64) -> String {
    let t = LocalDateTime::from_utc_ms(ms, UtcOffset::SANTO_DOMINGO);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}-04:00",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The seed document the caller signs (Caja's serialization, unsigned).
pub fn seed_document(valor: &str, now_ms: i64) -> Vec<u8> {
    xml::document(&Node::Parent(
        "SemillaModel",
        vec![
            Node::Text("valor", valor.to_owned()),
            Node::Text("fecha", iso_local(now_ms)),
        ],
    ))
}

/// Splits `a.b.sig` and checks the hub's signature over `domain + a.b`.
fn signed_parts<'a>(
    key: &HubPublicKey,
    domain: &str,
    value: &'a str,
    what: &'static str,
) -> Result<(&'a str, &'a str), AuthError> {
    let mut it = value.splitn(3, '.');
    let (Some(a), Some(b), Some(sig)) = (it.next(), it.next(), it.next()) else {
        return Err(AuthError::Forged(what));
    };
    let sig = unhex(sig).ok_or(AuthError::Forged(what))?;
    if !key.verify(format!("{domain}{a}.{b}").as_bytes(), &sig) {
        return Err(AuthError::Forged(what));
    }
    Ok((a, b))
}

/// Checks a seed value this hub issued and that it has not expired.
pub fn check_seed(key: &HubPublicKey, valor: &str, now_ms: i64) -> Result<(), AuthError> {
    let (_, exp) = signed_parts(key, SEED_DOMAIN, valor, "seed")?;
    let exp: i64 = exp.parse().map_err(|_| AuthError::Forged("seed"))?;
    if now_ms > exp {
        return Err(AuthError::Expired("seed"));
    }
    Ok(())
}

/// Checks a signed seed (see the module doc) and returns its seed value,
/// which the caller then marks used once.
pub fn validate_signed_seed(
    signed: &[u8],
    key: &HubPublicKey,
    trust: Option<&TrustStore>,
    now_ms: i64,
) -> Result<String, AuthError> {
    let root = caja_shared::ecf::c14n::parse_element(signed)
        .map_err(|e| AuthError::Malformed(e.to_string()))?;
    if root.name != "SemillaModel" {
        return Err(AuthError::Malformed(format!("root is {}", root.name)));
    }
    let valor = root
        .text_at("valor")
        .ok_or_else(|| AuthError::Malformed("no valor".into()))?
        .to_owned();
    let v = xmldsig::verify(signed).map_err(|e| AuthError::Signature(e.to_string()))?;
    let Some(trust) = trust else {
        return Err(AuthError::Certificate(
            "no trusted CAs are configured ([tax_authority] trusted_ca)".into(),
        ));
    };
    verify_chain(&v.certificate_der, &[], trust, now_ms)
        .map_err(|e| AuthError::Certificate(e.to_string()))?;
    check_seed(key, &valor, now_ms)?;
    Ok(valor)
}

/// A token valid until `now_ms + ttl_ms`.
pub fn issue_token(key: &HubSigningKey, nonce: [u8; 16], now_ms: i64, ttl_ms: i64) -> String {
    let body = format!("{}.{}", now_ms.saturating_add(ttl_ms), hex(&nonce));
    let sig = key.sign(format!("{TOKEN_DOMAIN}{body}").as_bytes());
    format!("{body}.{}", hex(&sig))
}

/// Checks a bearer token this hub issued and that it has not expired.
pub fn check_token(key: &HubPublicKey, token: &str, now_ms: i64) -> Result<(), AuthError> {
    let (exp, _) = signed_parts(key, TOKEN_DOMAIN, token, "token")?;
    let exp: i64 = exp.parse().map_err(|_| AuthError::Forged("token"))?;
    if now_ms > exp {
        return Err(AuthError::Expired("token"));
    }
    Ok(())
}

/// The token's expiry (ms), from a token this hub issued.
pub fn token_expiry(token: &str) -> Option<i64> {
    token.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_tokens_verify_until_they_expire_and_only_from_this_hub() {
        let key = HubSigningKey::from_seed([7; 32]);
        let other = HubSigningKey::from_seed([8; 32]);
        let seed = new_seed(&key, [1; 16], 1_000);
        assert_eq!(check_seed(&key.public_key(), &seed, 1_000), Ok(()));
        assert_eq!(
            check_seed(&key.public_key(), &seed, 1_000 + SEED_TTL_MS + 1),
            Err(AuthError::Expired("seed"))
        );
        assert_eq!(
            check_seed(&other.public_key(), &seed, 1_000),
            Err(AuthError::Forged("seed"))
        );
        // A seed is not a token, and a changed expiry breaks the signature.
        assert!(check_token(&key.public_key(), &seed, 1_000).is_err());
        let token = issue_token(&key, [2; 16], 5_000, 60_000);
        assert_eq!(check_token(&key.public_key(), &token, 65_000), Ok(()));
        assert_eq!(
            check_token(&key.public_key(), &token, 65_001),
            Err(AuthError::Expired("token"))
        );
        let forged = token.replacen("65000", "99999", 1);
        assert_eq!(
            check_token(&key.public_key(), &forged, 6_000),
            Err(AuthError::Forged("token"))
        );
        assert_eq!(token_expiry(&token), Some(65_000));
        for junk in ["", "a.b", "a.b.zz", "..."] {
            assert!(check_token(&key.public_key(), junk, 0).is_err());
        }
    }

    #[test]
    fn the_seed_document_is_in_caja_serialization() {
        let d = seed_document("abc", 0);
        assert_eq!(
            String::from_utf8(d).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><SemillaModel><valor>abc</valor><fecha>1969-12-31T20:00:00-04:00</fecha></SemillaModel>"
        );
    }
}
