//! Authentication decisions: request signatures of registers and the admin token.
//!
//! Given the signing headers of a request, what the hub holds about the device
//! (its store, whether it is revoked, its keys and their validity) and the hub's
//! time, decide whether the request is authentic, and if not, which of DESIGN.md's
//! 401 codes applies. The nonce check needs the store (a nonce is remembered
//! durably) and is done there, after these checks.
//!
//! Two steps, so that an unauthenticated request costs no parsing and no
//! writer job: [`admit`] checks everything but the nonce against a read of
//! the device (off the writer, before the body is parsed) and is the only
//! maker of an [`Authentic`]; the writer then takes an [`Authentic`] only,
//! re-checks the key's standing at that moment ([`recheck`]: rotated past
//! its grace, revoked), and remembers the nonce. Key bytes never change for a
//! key id (ids are never reused), so the signature need not be verified twice.
//!
//! Order of checks: headers (`bad_signature`), device and key id (`unknown_key`),
//! revocation or a rotated key past its grace period (`revoked_key`), signature
//! (`bad_signature`), timestamp (`stale_timestamp`). The signature is checked
//! before the timestamp so that only the key's holder learns the hub's time.
//!
//! Architecture invariant: pure decisions; no SQL, no HTTP, no clock (the time
//! is passed in).

use std::sync::Arc;

use caja_shared::ids::{DeviceId, KeyId, StoreId};
use caja_shared::key::DeviceKey;
use caja_shared::request::{
    self, RequestAuthError, RequestParts, HEADER_DEVICE, HEADER_KEY_ID, HEADER_NONCE,
    HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use ring::hmac;

use crate::wire::ApiError;

/// The five signing headers of a request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeaders {
    /// `X-Caja-Device`.
    pub device: DeviceId,
    /// `X-Caja-Key-Id`.
    pub key_id: KeyId,
    /// `X-Caja-Timestamp`.
    pub timestamp_ms: i64,
    /// `X-Caja-Nonce`.
    pub nonce: String,
    /// `X-Caja-Signature`, still as sent (verified in constant time later).
    pub signature: String,
}

/// A signed request as the hub received it.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// Upper-case method.
    pub method: String,
    /// The request target exactly as sent.
    pub path_and_query: String,
    /// The parsed headers.
    pub headers: AuthHeaders,
    /// The raw body (empty for none), shared so the writer thread can hash it.
    pub body: Arc<[u8]>,
}

/// One key of a device and how long it is valid.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// Its id.
    pub key_id: KeyId,
    /// The secret.
    pub key: DeviceKey,
    /// `None` for the current key; for a rotated key, the end of its grace period.
    pub valid_until_ms: Option<i64>,
}

impl KeyRecord {
    /// Whether the key may still be used at `now_ms`.
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// What the hub holds about a device, as far as authentication needs it.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// The device.
    pub device: DeviceId,
    /// Its store.
    pub store: StoreId,
    /// Revoked by head office (every key refused).
    pub revoked: bool,
    /// Quarantined after a chain mismatch (pushes refused).
    pub quarantined: bool,
    /// Its keys.
    pub keys: Vec<KeyRecord>,
}

impl DeviceRecord {
    /// The key with this id that is valid at `now_ms`.
    pub fn valid_key(&self, key_id: &KeyId, now_ms: i64) -> Option<&DeviceKey> {
        self.keys
            .iter()
            .find(|k| &k.key_id == key_id && k.is_valid_at(now_ms) && !self.revoked)
            .map(|k| &k.key)
    }
}

/// Why a request is not authentic. Each maps to one DESIGN.md 401 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// Missing or malformed header, or a signature that does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The timestamp is outside ±5 min of the hub's clock.
    #[error("timestamp is {skew_ms} ms away from the hub's clock")]
    StaleTimestamp {
        /// Request time minus hub time.
        skew_ms: i64,
    },
    /// The nonce was seen before.
    #[error("nonce already used")]
    ReplayedNonce,
    /// No such device, or no such key for it.
    #[error("unknown device or key id")]
    UnknownKey,
    /// The device is revoked or the key is past its grace period.
    #[error("the key is revoked")]
    RevokedKey,
    /// A key rotated out (inside its grace period) asked for a rotation:
    /// only the current key may rotate (DESIGN "Sync protocol").
    #[error("only the device's current key may rotate it; this key was rotated out")]
    KeyNotCurrent,
}

impl AuthFailure {
    /// DESIGN.md's code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::BadSignature(_) => "bad_signature",
            AuthFailure::StaleTimestamp { .. } => "stale_timestamp",
            AuthFailure::ReplayedNonce => "replayed_nonce",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::RevokedKey => "revoked_key",
            AuthFailure::KeyNotCurrent => "key_not_current",
        }
    }

    /// The 401 answer.
    pub fn to_api(&self, now_ms: i64) -> ApiError {
        ApiError::unauthorized(self.code(), self.to_string(), now_ms)
    }
}

/// Parses the signing headers; `get` returns a header's value by name.
pub fn parse_headers<'a>(
    get: impl Fn(&'static str) -> Option<&'a str>,
) -> Result<AuthHeaders, AuthFailure> {
    let header = |name: &'static str| {
        get(name).ok_or_else(|| AuthFailure::BadSignature(format!("header {name} is missing")))
    };
    let malformed =
        |name: &'static str| AuthFailure::BadSignature(format!("header {name} is malformed"));
    let device: DeviceId = header(HEADER_DEVICE)?
        .parse()
        .map_err(|_| malformed(HEADER_DEVICE))?;
    let key_id: KeyId = header(HEADER_KEY_ID)?
        .parse()
        .map_err(|_| malformed(HEADER_KEY_ID))?;
    let ts = header(HEADER_TIMESTAMP)?;
    let timestamp_ms: i64 =
        if !ts.is_empty() && ts.len() <= 19 && ts.bytes().all(|b| b.is_ascii_digit()) {
            ts.parse().map_err(|_| malformed(HEADER_TIMESTAMP))?
        } else {
            return Err(malformed(HEADER_TIMESTAMP));
        };
    let nonce = header(HEADER_NONCE)?;
    request::check_nonce(nonce).map_err(|_| malformed(HEADER_NONCE))?;
    let signature = header(HEADER_SIGNATURE)?;
    if signature.len() != 64 {
        return Err(malformed(HEADER_SIGNATURE));
    }
    Ok(AuthHeaders {
        device,
        key_id,
        timestamp_ms,
        nonce: nonce.to_owned(),
        signature: signature.to_owned(),
    })
}

/// Decides whether a request is authentic, except for the nonce (checked by the
/// store afterwards). `device` is what the hub holds for the header's device.
pub fn verify(
    req: &SignedRequest,
    device: Option<&DeviceRecord>,
    now_ms: i64,
) -> Result<(), AuthFailure> {
    let h = &req.headers;
    let device = device.ok_or(AuthFailure::UnknownKey)?;
    let record = device
        .keys
        .iter()
        .find(|k| k.key_id == h.key_id)
        .ok_or(AuthFailure::UnknownKey)?;
    if device.revoked || !record.is_valid_at(now_ms) {
        return Err(AuthFailure::RevokedKey);
    }
    let parts = RequestParts {
        method: &req.method,
        path_and_query: &req.path_and_query,
        timestamp_ms: h.timestamp_ms,
        nonce: &h.nonce,
        body: &req.body,
    };
    request::verify_request(&record.key, &parts, &h.signature)
        .map_err(|_| AuthFailure::BadSignature("the signature does not verify".into()))?;
    request::check_timestamp(h.timestamp_ms, now_ms).map_err(|e| match e {
        RequestAuthError::StaleTimestamp { skew_ms, .. } => AuthFailure::StaleTimestamp { skew_ms },
        other => AuthFailure::BadSignature(other.to_string()),
    })
}

/// A request whose headers, key, signature and timestamp verified ([`admit`]).
/// Only [`admit`] makes one, so a writer job that takes it cannot run for an
/// unauthenticated request.
#[derive(Debug, Clone)]
pub struct Authentic {
    req: SignedRequest,
    /// The device's store, as the admitting read found it.
    store: Option<StoreId>,
}

impl Authentic {
    /// The request.
    pub fn request(&self) -> &SignedRequest {
        &self.req
    }

    /// Its signing headers.
    pub fn headers(&self) -> &AuthHeaders {
        &self.req.headers
    }

    /// The device's store as the admitting read found it (a device never
    /// moves to another store): what the writer locks on PostgreSQL without
    /// reading it again.
    pub fn store(&self) -> Option<StoreId> {
        self.store
    }
}

/// [`verify`], keeping the proof: everything but the nonce, checked against
/// `device` as a read (off the writer) found it.
pub fn admit(
    req: SignedRequest,
    device: Option<&DeviceRecord>,
    now_ms: i64,
) -> Result<Authentic, AuthFailure> {
    verify(&req, device, now_ms)?;
    Ok(Authentic {
        req,
        store: device.map(|d| d.store),
    })
}

/// The writer's re-check of an admitted request against the device as it is
/// now: the device still exists and is not revoked, and the key is still
/// valid (an admin rotation without grace, or a revocation, may have
/// happened in between).
pub fn recheck(
    a: &Authentic,
    device: Option<&DeviceRecord>,
    now_ms: i64,
) -> Result<(), AuthFailure> {
    let device = device.ok_or(AuthFailure::UnknownKey)?;
    let record = device
        .keys
        .iter()
        .find(|k| k.key_id == a.headers().key_id)
        .ok_or(AuthFailure::UnknownKey)?;
    if device.revoked || !record.is_valid_at(now_ms) {
        return Err(AuthFailure::RevokedKey);
    }
    Ok(())
}

/// Whether the key that signed `a` is the device's current key (not one
/// rotated out and inside its grace period): a rotation needs it.
pub fn check_current_key(a: &Authentic, device: &DeviceRecord) -> Result<(), AuthFailure> {
    let current = device
        .keys
        .iter()
        .any(|k| k.key_id == a.headers().key_id && k.valid_until_ms.is_none());
    if current {
        Ok(())
    } else {
        Err(AuthFailure::KeyNotCurrent)
    }
}

/// 403 `quarantined`: DESIGN's code for a device quarantined after a chain
/// mismatch, refused on every signed request until head office releases it.
pub fn quarantined() -> ApiError {
    ApiError::forbidden(
        "quarantined",
        "this device is quarantined after a chain mismatch; head office must review and release it",
    )
}

/// 401 `invalid_token`: an enrollment token that is malformed, unknown,
/// expired or already used (one answer for all, so a guess learns nothing).
pub fn invalid_token(now_ms: i64) -> ApiError {
    ApiError::unauthorized(
        "invalid_token",
        "the enrollment token is unknown, expired or already used",
        now_ms,
    )
}

/// The admin token check: `Authorization: Bearer <token>` compared in constant
/// time (HMAC of the presented token verified against the HMAC of the expected
/// one under a per-process random key, so neither length nor content leaks).
#[derive(Debug)]
pub struct AdminToken {
    key: hmac::Key,
    expected: hmac::Tag,
    session_binding: [u8; 32],
}

impl AdminToken {
    /// Prepares the check for `token` with a random per-process `mac_key`.
    pub fn new(token: &str, mac_key: [u8; 32]) -> AdminToken {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &mac_key);
        let expected = hmac::sign(&key, token.as_bytes());
        let bound = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes()),
            b"caja/ui-session-binding/v1",
        );
        let mut session_binding = [0u8; 32];
        session_binding.copy_from_slice(bound.as_ref());
        AdminToken {
            key,
            expected,
            session_binding,
        }
    }

    /// A value derived from the token (HMAC-SHA256 keyed by it), the same
    /// across restarts: dashboard sessions are stored under a hash that
    /// includes it, so changing the admin token ends every session.
    pub fn session_binding(&self) -> &[u8; 32] {
        &self.session_binding
    }

    /// Whether an `Authorization` header value carries the admin token.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return false;
        };
        hmac::verify(&self.key, token.trim().as_bytes(), self.expected.as_ref()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caja_shared::entropy::SeededRandom;
    use caja_shared::request::SignedHeaders;
    use std::collections::HashMap;

    const NOW: i64 = 1_763_880_000_000;

    fn device() -> DeviceRecord {
        DeviceRecord {
            device: "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap(),
            store: "01935f4e-8a00-7000-8000-0000000000a1".parse().unwrap(),
            revoked: false,
            quarantined: false,
            keys: vec![
                KeyRecord {
                    key_id: "k1".parse().unwrap(),
                    key: DeviceKey::from_bytes([1; 32]),
                    valid_until_ms: Some(NOW + 1000),
                },
                KeyRecord {
                    key_id: "k2".parse().unwrap(),
                    key: DeviceKey::from_bytes([2; 32]),
                    valid_until_ms: None,
                },
            ],
        }
    }

    fn signed(key_id: &str, key_byte: u8, ts: i64, body: &[u8]) -> SignedRequest {
        let mut rng = SeededRandom::new(3);
        let h = SignedHeaders::sign(
            &DeviceKey::from_bytes([key_byte; 32]),
            device().device,
            key_id.parse().unwrap(),
            "POST",
            "/v1/sync/push",
            body,
            ts,
            &mut rng,
        );
        let map: HashMap<&str, String> = h.pairs().into_iter().collect();
        let headers = parse_headers(|n| map.get(n).map(String::as_str)).unwrap();
        SignedRequest {
            method: "POST".into(),
            path_and_query: "/v1/sync/push".into(),
            headers,
            body: body.to_vec().into(),
        }
    }

    #[test]
    fn each_failure_has_its_code() {
        let d = device();
        assert_eq!(verify(&signed("k2", 2, NOW, b"{}"), Some(&d), NOW), Ok(()));
        // Old key inside its grace period, then after it.
        assert_eq!(verify(&signed("k1", 1, NOW, b"{}"), Some(&d), NOW), Ok(()));
        let late = verify(&signed("k1", 1, NOW + 1000, b"{}"), Some(&d), NOW + 1000);
        assert_eq!(late.unwrap_err().code(), "revoked_key");
        let cases = [
            (
                verify(&signed("k2", 2, NOW, b"{}"), None, NOW),
                "unknown_key",
            ),
            (
                verify(&signed("k9", 2, NOW, b"{}"), Some(&d), NOW),
                "unknown_key",
            ),
            (
                verify(&signed("k2", 7, NOW, b"{}"), Some(&d), NOW),
                "bad_signature",
            ),
            (
                verify(&signed("k2", 2, NOW - 300_001, b"{}"), Some(&d), NOW),
                "stale_timestamp",
            ),
            (
                verify(
                    &signed("k2", 2, NOW, b"{}"),
                    Some(&DeviceRecord {
                        revoked: true,
                        ..device()
                    }),
                    NOW,
                ),
                "revoked_key",
            ),
        ];
        for (got, code) in cases {
            assert_eq!(got.unwrap_err().code(), code);
        }
        let mut tampered = signed("k2", 2, NOW, b"{}");
        tampered.body = b"{ }".to_vec().into();
        assert_eq!(
            verify(&tampered, Some(&d), NOW).unwrap_err().code(),
            "bad_signature"
        );
    }

    #[test]
    fn admitted_requests_are_rechecked_and_only_the_current_key_rotates() {
        let d = device();
        let a = admit(signed("k1", 1, NOW, b"{}"), Some(&d), NOW).unwrap();
        assert_eq!(recheck(&a, Some(&d), NOW), Ok(()));
        // Rotated out inside its grace period: may sync, may not rotate.
        assert_eq!(
            check_current_key(&a, &d).unwrap_err().code(),
            "key_not_current"
        );
        let current = admit(signed("k2", 2, NOW, b"{}"), Some(&d), NOW).unwrap();
        assert_eq!(check_current_key(&current, &d), Ok(()));
        // Between the admission and the writer: grace over, or revoked.
        assert_eq!(
            recheck(&a, Some(&d), NOW + 1000).unwrap_err().code(),
            "revoked_key"
        );
        let revoked = DeviceRecord {
            revoked: true,
            ..device()
        };
        assert_eq!(
            recheck(&current, Some(&revoked), NOW).unwrap_err().code(),
            "revoked_key"
        );
        assert_eq!(
            recheck(&current, None, NOW).unwrap_err().code(),
            "unknown_key"
        );
        assert_eq!(
            admit(signed("k2", 7, NOW, b"{}"), Some(&d), NOW)
                .unwrap_err()
                .code(),
            "bad_signature"
        );
        assert_eq!(quarantined().status, 403);
        assert_eq!(quarantined().error, "quarantined");
    }

    #[test]
    fn malformed_headers_are_bad_signatures() {
        let sig = "ab".repeat(32);
        let ok: HashMap<&str, &str> = [
            (HEADER_DEVICE, "01935f4e-8a00-7000-8000-0000000000d1"),
            (HEADER_KEY_ID, "k1"),
            (HEADER_TIMESTAMP, "1763880000000"),
            (HEADER_NONCE, "00112233445566778899aabbccddeeff"),
            (HEADER_SIGNATURE, sig.as_str()),
        ]
        .into_iter()
        .collect();
        assert!(parse_headers(|n| ok.get(n).copied()).is_ok());
        for (name, bad) in [
            (HEADER_DEVICE, "01935F4E-8A00-7000-8000-0000000000D1"),
            (HEADER_KEY_ID, "k 1"),
            (HEADER_TIMESTAMP, "-5"),
            (HEADER_TIMESTAMP, "99999999999999999999"),
            (HEADER_NONCE, "xyz"),
            (HEADER_SIGNATURE, "ab"),
        ] {
            let mut m = ok.clone();
            m.insert(name, bad);
            let err = parse_headers(|n| m.get(n).copied()).unwrap_err();
            assert_eq!(err.code(), "bad_signature", "{name}={bad}");
        }
        let mut m = ok.clone();
        m.remove(HEADER_NONCE);
        assert!(parse_headers(|n| m.get(n).copied()).is_err());
    }

    #[test]
    fn admin_token_needs_the_exact_bearer_token() {
        let t = AdminToken::new("s3cret", [9; 32]);
        assert!(t.check(Some("Bearer s3cret")));
        for bad in [
            None,
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
        ] {
            assert!(!t.check(bad), "{bad:?}");
        }
    }
}
