//! Dashboard sessions and anti-forgery tokens, the pure part: the signed-in
//! [`Operator`], secrets, what is stored of them, cookie headers,
//! constant-time comparison.
//!
//! A session id is 32 random bytes (hex) held by the browser in the
//! `caja_sesion` cookie (`HttpOnly`, `SameSite=Strict`, `Path=/ui`, `Secure`
//! unless configured off for loopback HTTP); the hub stores only
//! SHA-256("caja/ui-session/v2\n" ‖ binding ‖ id), where the binding is
//! derived from the admin token ([`crate::auth::AdminToken::session_binding`]):
//! a new admin token finds no session, so changing it signs everyone out. Every form carries the session's
//! CSRF token (another 32 random bytes, stored with the session). The login
//! form, before any session exists, is protected by a double-submit token:
//! the same random value in the `caja_login` cookie and in the form.
//!
//! Architecture invariant: pure; the random source is passed in.

use caja_shared::digest::Hash256;
use caja_shared::entropy::RandomSource;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The name they signed in with.
    pub name: String,
    /// Their session's CSRF token.
    pub csrf: String,
    /// Their session (its stored hash).
    pub session: Hash256,
}

/// The session cookie.
pub const SESSION_COOKIE: &str = "caja_sesion";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "caja_login";
/// Where the cookies are sent.
pub const COOKIE_PATH: &str = "/ui";
/// Lifetime of the login form's cookie (seconds).
pub const LOGIN_COOKIE_MAX_AGE_S: i64 = 3600;

/// A new random secret: 32 bytes as 64 lowercase hex characters.
pub fn new_secret(rng: &mut dyn RandomSource) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the hub stores of a session id, bound to the admin token's
/// `binding`.
pub fn session_hash(binding: &[u8; 32], session_id: &str) -> Hash256 {
    Hash256::of_parts(&[b"caja/ui-session/v2\n", binding, session_id.as_bytes()])
}

/// Whether a value has the shape of a secret made by [`new_secret`].
pub fn is_secret(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` header values.
pub fn cookie<'h>(headers: impl IntoIterator<Item = &'h str>, name: &str) -> Option<&'h str> {
    headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` when `secure`.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::entropy::SeededRandom;

    #[test]
    fn secrets_hashes_and_comparison() {
        let mut rng = SeededRandom::new(1);
        let a = new_secret(&mut rng);
        let b = new_secret(&mut rng);
        assert!(is_secret(&a) && is_secret(&b) && a != b);
        assert!(!is_secret("ABC") && !is_secret(&a.to_uppercase()));
        assert_ne!(session_hash(&[0; 32], &a), Hash256::of(a.as_bytes()));
        assert_ne!(session_hash(&[0; 32], &a), session_hash(&[1; 32], &a));
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &a[..63]));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn cookies_are_found_and_written_with_their_flags() {
        let headers = ["a=1; caja_sesion=abc ; b=2", "caja_login=x"];
        assert_eq!(cookie(headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(headers, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(headers, "c"), None);
        assert_eq!(
            set_cookie(SESSION_COOKIE, "v", "/ui", 60, true),
            "caja_sesion=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!clear_cookie(SESSION_COOKIE, "/ui", false).contains("Secure"));
        assert!(clear_cookie(SESSION_COOKIE, "/ui", false).contains("Max-Age=0"));
    }
}
