//! SHA-256 digests as a newtype, written as lowercase hex on the wire.

use std::fmt;
use std::str::FromStr;

use ring::digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length in bytes of a SHA-256 digest.
pub const HASH_LEN: usize = 32;

/// A SHA-256 digest. On the wire it is 64 lowercase hex characters; parsing
/// rejects upper case, other lengths and anything that is not hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash256(pub [u8; HASH_LEN]);

/// Why a string is not a [`Hash256`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// Not exactly 64 characters.
    #[error("expected lowercase hex of the right length, got {0} characters")]
    Length(usize),
    /// A character other than `0-9a-f`.
    #[error("expected lowercase hex, found {0:?}")]
    NotLowerHex(char),
}

impl Hash256 {
    /// The all-zero hash: the `prev` of a chain's first event.
    pub const ZERO: Hash256 = Hash256([0; HASH_LEN]);

    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Hash256 {
        let d = digest::digest(&digest::SHA256, data);
        let mut out = [0u8; HASH_LEN];
        out.copy_from_slice(d.as_ref());
        Hash256(out)
    }

    /// SHA-256 of the concatenation of `parts`, without allocating.
    pub fn of_parts(parts: &[&[u8]]) -> Hash256 {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for p in parts {
            ctx.update(p);
        }
        let d = ctx.finish();
        let mut out = [0u8; HASH_LEN];
        out.copy_from_slice(d.as_ref());
        Hash256(out)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Checks that `s` is lowercase hex of exactly `len` characters.
pub(crate) fn check_lower_hex(s: &str, len: usize) -> Result<(), HashParseError> {
    if s.len() != len {
        return Err(HashParseError::Length(s.chars().count()));
    }
    match s.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        Some(c) => Err(HashParseError::NotLowerHex(c)),
        None => Ok(()),
    }
}

impl FromStr for Hash256 {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_lower_hex(s, HASH_LEN * 2)?;
        let mut out = [0u8; HASH_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError::Length(s.len()))?;
        Ok(Hash256(out))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({})", self.to_hex())
    }
}

impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Fixed-length bytes written as lowercase hex: an HMAC tag (`N = 32`) or an
/// Ed25519 signature (`N = 64`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

/// An HMAC-SHA256 tag.
pub type Mac = HexBytes<32>;
/// An Ed25519 signature.
pub type Signature = HexBytes<64>;

impl<const N: usize> HexBytes<N> {
    /// Wraps raw bytes.
    pub fn from_bytes(b: [u8; N]) -> Self {
        HexBytes(b)
    }

    /// Lowercase hex of the bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl<const N: usize> FromStr for HexBytes<N> {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_lower_hex(s, N * 2)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError::Length(s.len()))?;
        Ok(HexBytes(out))
    }
}

impl<const N: usize> fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexBytes<{N}>({})", self.to_hex())
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_hash_is_the_known_constant() {
        assert_eq!(
            Hash256::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Hash256::of_parts(&[b"ab", b"c"]), Hash256::of(b"abc"));
    }

    #[test]
    fn parse_rejects_upper_case_and_wrong_length() {
        let h = Hash256::of(b"x").to_hex();
        assert_eq!(h.parse::<Hash256>().unwrap().to_hex(), h);
        assert!(matches!(
            h.to_uppercase().parse::<Hash256>(),
            Err(HashParseError::NotLowerHex(_))
        ));
        assert_eq!("abc".parse::<Hash256>(), Err(HashParseError::Length(3)));
    }
}
