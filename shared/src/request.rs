//! Request signing, node → hub (DESIGN.md "Request signing").
//!
//! `X-Caja-Signature` = hex HMAC-SHA256(device_key, string_to_sign) where
//! `string_to_sign = "caja/request/v1\n{METHOD}\n{path_and_query}\n{timestamp_ms}\n{nonce}\n{hex sha256(body)}"`.
//! `path_and_query` is exactly the request target as sent (no re-encoding), and a
//! request without a body hashes the empty string.

use crate::digest::{Hash256, Mac};
use crate::entropy::RandomSource;
use crate::ids::{DeviceId, KeyId};
use crate::key::DeviceKey;

/// Header carrying the device id.
pub const HEADER_DEVICE: &str = "X-Caja-Device";
/// Header carrying the key id.
pub const HEADER_KEY_ID: &str = "X-Caja-Key-Id";
/// Header carrying the request time in ms.
pub const HEADER_TIMESTAMP: &str = "X-Caja-Timestamp";
/// Header carrying the random nonce (hex).
pub const HEADER_NONCE: &str = "X-Caja-Nonce";
/// Header carrying the signature (hex).
pub const HEADER_SIGNATURE: &str = "X-Caja-Signature";

/// The hub accepts request timestamps within this many ms of its own clock.
pub const MAX_REQUEST_SKEW_MS: i64 = 5 * 60 * 1000;
/// Random bytes in a nonce (written as twice as many hex characters).
pub const NONCE_BYTES: usize = 16;
/// Longest nonce accepted, in hex characters.
pub const MAX_NONCE_LEN: usize = 128;

/// Why a request's authentication fails. The variants map one to one onto the
/// 401 error codes of DESIGN.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// A header is missing or malformed.
    #[error("header {header} is missing or malformed")]
    BadHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The signature does not verify (`bad_signature`).
    #[error("request signature does not verify")]
    BadSignature,
    /// The timestamp is outside the accepted window (`stale_timestamp`).
    #[error("request timestamp {timestamp_ms} is {skew_ms} ms away from the hub's clock (limit ±{MAX_REQUEST_SKEW_MS} ms)")]
    StaleTimestamp {
        /// The request's timestamp.
        timestamp_ms: i64,
        /// Request time minus hub time.
        skew_ms: i64,
    },
}

impl RequestAuthError {
    /// The wire error code of DESIGN.md.
    pub fn code(&self) -> &'static str {
        match self {
            RequestAuthError::BadHeader { .. } | RequestAuthError::BadSignature => "bad_signature",
            RequestAuthError::StaleTimestamp { .. } => "stale_timestamp",
        }
    }
}

/// The parts of a request that are signed.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method in upper case, e.g. `POST`.
    pub method: &'a str,
    /// The request target exactly as sent, e.g. `/v1/sync/pull?after=0&limit=500`.
    pub path_and_query: &'a str,
    /// Request time, UTC ms.
    pub timestamp_ms: i64,
    /// Random hex nonce.
    pub nonce: &'a str,
    /// The raw body bytes (empty for none).
    pub body: &'a [u8],
}

/// The string to sign, exactly as DESIGN.md fixes it.
pub fn string_to_sign(p: &RequestParts<'_>) -> String {
    format!(
        "caja/request/v1\n{}\n{}\n{}\n{}\n{}",
        p.method,
        p.path_and_query,
        p.timestamp_ms,
        p.nonce,
        Hash256::of(p.body)
    )
}

/// The signature header value for a request.
pub fn sign_request(key: &DeviceKey, p: &RequestParts<'_>) -> Mac {
    Mac::from_bytes(key.mac(string_to_sign(p).as_bytes()))
}

/// A fresh nonce: [`NONCE_BYTES`] random bytes as lowercase hex.
pub fn new_nonce(rng: &mut impl RandomSource) -> String {
    let mut b = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Checks a nonce's shape: 16 to [`MAX_NONCE_LEN`] lowercase hex characters.
pub fn check_nonce(nonce: &str) -> Result<(), RequestAuthError> {
    let ok = (16..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(RequestAuthError::BadHeader {
            header: HEADER_NONCE,
        })
    }
}

/// Checks the request time against the hub's clock (`now_ms` is passed in).
pub fn check_timestamp(timestamp_ms: i64, now_ms: i64) -> Result<(), RequestAuthError> {
    let skew_ms = timestamp_ms.saturating_sub(now_ms);
    if skew_ms.unsigned_abs() > MAX_REQUEST_SKEW_MS.unsigned_abs() {
        Err(RequestAuthError::StaleTimestamp {
            timestamp_ms,
            skew_ms,
        })
    } else {
        Ok(())
    }
}

/// Verifies a signature header value in constant time.
pub fn verify_request(
    key: &DeviceKey,
    p: &RequestParts<'_>,
    signature_hex: &str,
) -> Result<(), RequestAuthError> {
    let sig: Mac = signature_hex
        .parse()
        .map_err(|_| RequestAuthError::BadSignature)?;
    if key.verify_mac(string_to_sign(p).as_bytes(), &sig.0) {
        Ok(())
    } else {
        Err(RequestAuthError::BadSignature)
    }
}

/// The five signing headers of one request, as a node sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `X-Caja-Device`.
    pub device: DeviceId,
    /// `X-Caja-Key-Id`.
    pub key_id: KeyId,
    /// `X-Caja-Timestamp`.
    pub timestamp_ms: i64,
    /// `X-Caja-Nonce`.
    pub nonce: String,
    /// `X-Caja-Signature`.
    pub signature: Mac,
}

impl SignedHeaders {
    /// Signs a request: the node calls this with its clock and random source.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        key: &DeviceKey,
        device: DeviceId,
        key_id: KeyId,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ms: i64,
        rng: &mut impl RandomSource,
    ) -> SignedHeaders {
        let nonce = new_nonce(rng);
        let signature = sign_request(
            key,
            &RequestParts {
                method,
                path_and_query,
                timestamp_ms: now_ms,
                nonce: &nonce,
                body,
            },
        );
        SignedHeaders {
            device,
            key_id,
            timestamp_ms: now_ms,
            nonce,
            signature,
        }
    }

    /// The headers as (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, String); 5] {
        [
            (HEADER_DEVICE, self.device.to_string()),
            (HEADER_KEY_ID, self.key_id.to_string()),
            (HEADER_TIMESTAMP, self.timestamp_ms.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.to_hex()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRandom;

    #[test]
    fn timestamp_window_is_inclusive_and_symmetric() {
        let now = 1_763_880_000_000;
        assert!(check_timestamp(now + MAX_REQUEST_SKEW_MS, now).is_ok());
        assert!(check_timestamp(now - MAX_REQUEST_SKEW_MS, now).is_ok());
        assert!(matches!(
            check_timestamp(now + MAX_REQUEST_SKEW_MS + 1, now),
            Err(RequestAuthError::StaleTimestamp { skew_ms, .. }) if skew_ms == MAX_REQUEST_SKEW_MS + 1
        ));
        assert!(check_timestamp(i64::MIN, now).is_err());
        assert!(check_timestamp(i64::MAX, now).is_err());
    }

    #[test]
    fn signed_headers_verify_and_any_change_breaks_them() {
        let key = DeviceKey::from_bytes([3; 32]);
        let mut rng = SeededRandom::new(11);
        let device: DeviceId = "01935f4e-8a00-7000-8000-0000000000d1".parse().unwrap();
        let h = SignedHeaders::sign(
            &key,
            device,
            "k1".parse().unwrap(),
            "POST",
            "/v1/sync/push",
            b"{}",
            1000,
            &mut rng,
        );
        check_nonce(&h.nonce).unwrap();
        let parts = RequestParts {
            method: "POST",
            path_and_query: "/v1/sync/push",
            timestamp_ms: 1000,
            nonce: &h.nonce,
            body: b"{}",
        };
        verify_request(&key, &parts, &h.signature.to_hex()).unwrap();
        for changed in [
            RequestParts {
                method: "GET",
                ..parts
            },
            RequestParts {
                path_and_query: "/v1/sync/push?x",
                ..parts
            },
            RequestParts {
                timestamp_ms: 1001,
                ..parts
            },
            RequestParts {
                body: b"{ }",
                ..parts
            },
        ] {
            assert_eq!(
                verify_request(&key, &changed, &h.signature.to_hex()),
                Err(RequestAuthError::BadSignature)
            );
        }
        assert!(verify_request(&key, &parts, "zz").is_err());
        assert!(check_nonce("ABCDEF0123456789").is_err());
        assert!(check_nonce("abc").is_err());
    }
}
