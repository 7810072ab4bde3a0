//! Secret keys: a register's HMAC device key and the hub's Ed25519 signing key.
//!
//! Both zeroize their bytes on drop and never print themselves (`Debug` shows only
//! a redaction marker), so a key cannot leak into a log line by accident.
//! (ring's `hmac::Key` and `Ed25519KeyPair` keep their own expanded copies while a
//! call runs; those are dropped at the end of the call.)

use std::fmt;

use ring::{hmac, signature};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::entropy::RandomSource;

/// Length of a device key in bytes.
pub const DEVICE_KEY_LEN: usize = 32;

/// Why key material is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not lowercase hex of the expected length.
    #[error("key must be {expected} lowercase hex characters")]
    BadHex {
        /// Expected number of hex characters.
        expected: usize,
    },
    /// An Ed25519 public key or signature that ring refuses.
    #[error("invalid Ed25519 key material")]
    BadEd25519,
}

/// A register's 32-byte secret, shared with the hub at enrollment. It signs
/// requests and checkpoints with HMAC-SHA256.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DeviceKey([u8; DEVICE_KEY_LEN]);

impl DeviceKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; DEVICE_KEY_LEN]) -> DeviceKey {
        DeviceKey(bytes)
    }

    /// A new key from a random source. In production the source is the OS random
    /// source (in the IO crates); tests pass a seeded one.
    pub fn generate(rng: &mut impl RandomSource) -> DeviceKey {
        let mut b = [0u8; DEVICE_KEY_LEN];
        rng.fill_bytes(&mut b);
        let key = DeviceKey(b);
        b.zeroize();
        key
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<DeviceKey, KeyError> {
        let err = KeyError::BadHex {
            expected: DEVICE_KEY_LEN * 2,
        };
        crate::digest::check_lower_hex(s, DEVICE_KEY_LEN * 2).map_err(|_| err.clone())?;
        let mut b = Zeroizing::new([0u8; DEVICE_KEY_LEN]);
        hex::decode_to_slice(s, &mut b[..]).map_err(|_| err)?;
        Ok(DeviceKey(*b))
    }

    /// The key as lowercase hex, in a buffer that zeroizes on drop. Only for
    /// writing the key file and the enrollment answer.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// HMAC-SHA256 of `msg` under this key.
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&k, msg);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Constant-time check of an HMAC-SHA256 tag.
    pub fn verify_mac(&self, msg: &[u8], tag: &[u8]) -> bool {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hmac::verify(&k, msg, tag).is_ok()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey(<redacted>)")
    }
}

/// The hub's Ed25519 signing key, kept as its 32-byte seed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HubSigningKey([u8; 32]);

impl HubSigningKey {
    /// Wraps a 32-byte Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> HubSigningKey {
        HubSigningKey(seed)
    }

    /// A new key from a random source.
    pub fn generate(rng: &mut impl RandomSource) -> HubSigningKey {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        let key = HubSigningKey(b);
        b.zeroize();
        key
    }

    /// Parses the seed from 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<HubSigningKey, KeyError> {
        DeviceKey::from_hex(s).map(|k| HubSigningKey(k.0))
    }

    /// The seed as hex, zeroized on drop (for the hub's key file only).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    fn pair(&self) -> signature::Ed25519KeyPair {
        // `from_seed_unchecked` cannot fail for a 32-byte seed.
        match signature::Ed25519KeyPair::from_seed_unchecked(&self.0) {
            Ok(p) => p,
            Err(e) => unreachable!("ring refused a 32-byte Ed25519 seed: {e}"),
        }
    }

    /// The public half, given to registers at enrollment and to auditors.
    pub fn public_key(&self) -> HubPublicKey {
        use ring::signature::KeyPair;
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair().public_key().as_ref());
        HubPublicKey(out)
    }

    /// Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair().sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for HubSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubSigningKey(<redacted>)")
    }
}

/// The hub's Ed25519 public key (32 bytes, lowercase hex on the wire).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HubPublicKey(pub [u8; 32]);

impl HubPublicKey {
    /// Parses 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Result<HubPublicKey, KeyError> {
        let mut b = [0u8; 32];
        crate::digest::check_lower_hex(s, 64).map_err(|_| KeyError::BadHex { expected: 64 })?;
        hex::decode_to_slice(s, &mut b).map_err(|_| KeyError::BadHex { expected: 64 })?;
        Ok(HubPublicKey(b))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `sig` is a valid Ed25519 signature of `msg` by this key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }
}

impl fmt::Debug for HubPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubPublicKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRandom;

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = DeviceKey::from_bytes([0xab; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains("ab"), "{shown}");
        let h = HubSigningKey::from_seed([0xcd; 32]);
        assert!(!format!("{h:?}").contains("cd"));
    }

    #[test]
    fn hex_round_trip_and_rejection() {
        let mut rng = SeededRandom::new(1);
        let k = DeviceKey::generate(&mut rng);
        let back = DeviceKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(k.mac(b"m"), back.mac(b"m"));
        assert!(DeviceKey::from_hex(&"AB".repeat(32)).is_err());
        assert!(DeviceKey::from_hex("00").is_err());
    }

    #[test]
    fn mac_verification_rejects_a_flipped_bit() {
        let k = DeviceKey::from_bytes([7; 32]);
        let mut tag = k.mac(b"hello");
        assert!(k.verify_mac(b"hello", &tag));
        tag[31] ^= 1;
        assert!(!k.verify_mac(b"hello", &tag));
        assert!(!k.verify_mac(b"hello", &tag[..16]));
    }

    #[test]
    fn hub_signatures_verify_only_for_the_signed_message() {
        let h = HubSigningKey::from_seed([9; 32]);
        let sig = h.sign(b"head");
        assert!(h.public_key().verify(b"head", &sig));
        assert!(!h.public_key().verify(b"head2", &sig));
    }
}
