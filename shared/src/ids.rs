//! Identifiers as newtypes: a `StoreId` can never be passed where a `DeviceId`
//! is expected.
//!
//! On the wire every UUID is lowercase and hyphenated (36 characters). Parsing
//! is strict: upper case, braces, `urn:uuid:` and the 32-character simple form are
//! rejected with a typed error, because the same id written two ways would hash
//! two ways.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::entropy::RandomSource;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not of the form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex.
    #[error("expected a lowercase hyphenated UUID, got {0:?}")]
    NotLowerHyphenated(String),
    /// A UUID, but not version 7 (event ids must be time-ordered v7 UUIDs).
    #[error("expected a UUID version 7, got version {0}")]
    NotV7(u8),
    /// A sequence number of zero (sequences start at 1).
    #[error("seq must be at least 1")]
    ZeroSeq,
    /// A key id with characters outside `[A-Za-z0-9._-]` or a bad length.
    #[error("key id must be 1 to 64 characters of [A-Za-z0-9._-], got {0:?}")]
    BadKeyId(String),
    /// A product code with characters outside `[A-Za-z0-9._-]` or a bad length.
    #[error("product code must be 1 to 64 characters of [A-Za-z0-9._-], got {0:?}")]
    BadSku(String),
    /// A millisecond timestamp that does not fit the 48 bits of a UUID v7.
    #[error("timestamp {0} ms cannot be encoded in a UUID v7")]
    BadTimestamp(i64),
}

/// Parses a lowercase hyphenated UUID and nothing else.
pub fn parse_lower_uuid(s: &str) -> Result<Uuid, IdError> {
    let bytes = s.as_bytes();
    let well_formed = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if !well_formed {
        return Err(IdError::NotLowerHyphenated(truncate_for_error(s)));
    }
    Uuid::parse_str(s).map_err(|_| IdError::NotLowerHyphenated(truncate_for_error(s)))
}

fn truncate_for_error(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Makes a UUID v7 from a millisecond timestamp and 10 random bytes (RFC 9562 §5.7).
pub fn uuid_v7(ms: i64, rng: &mut impl RandomSource) -> Result<Uuid, IdError> {
    if !(0..(1i64 << 48)).contains(&ms) {
        return Err(IdError::BadTimestamp(ms));
    }
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    rng.fill_bytes(&mut b[6..]);
    b[6] = 0x70 | (b[6] & 0x0f); // version 7
    b[8] = 0x80 | (b[8] & 0x3f); // RFC 4122 variant
    Ok(Uuid::from_bytes(b))
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }

            /// The UUID inside.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// A fresh time-ordered id (UUID v7) from an injected clock value and
            /// random source.
            pub fn new_v7(now_ms: i64, rng: &mut impl RandomSource) -> Result<Self, IdError> {
                uuid_v7(now_ms, rng).map(Self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_lower_uuid(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// A store of the chain.
    StoreId
);
uuid_id!(
    /// A device: a register (node) or a store's hub chain.
    DeviceId
);
uuid_id!(
    /// A work shift at a register.
    ShiftId
);
uuid_id!(
    /// A sale.
    SaleId
);
uuid_id!(
    /// A customer (for fiado / store credit).
    CustomerId
);
uuid_id!(
    /// A debt (fiado) opened by a sale on credit.
    DebtId
);
uuid_id!(
    /// A payment (on a sale or on a debt).
    PaymentId
);
uuid_id!(
    /// A conflict the hub detected and recorded.
    ConflictId
);
uuid_id!(
    /// An operation id chosen by the UI or the CLI; a retry with the same id is
    /// applied once (DESIGN invariant 9).
    OpId
);
uuid_id!(
    /// A request id for idempotent hub requests (fiscal ranges, escrow grants).
    RequestId
);
uuid_id!(
    /// A grant of fiscal numbers or escrow quota.
    GrantId
);
uuid_id!(
    /// A member of staff (cashier, supervisor, manager).
    StaffId
);
uuid_id!(
    /// A return of (part of) a sale.
    ReturnId
);
uuid_id!(
    /// A cash movement: paid in, paid out, drop to the safe.
    MovementId
);
uuid_id!(
    /// A payment intent at the hub (a card or QR payment confirmed by a
    /// payment provider).
    IntentId
);

/// The id of an event: a UUID v7 whose time part is the event's `hlc.ms`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh event id whose time part is `hlc_ms`.
    pub fn new_v7(hlc_ms: i64, rng: &mut impl RandomSource) -> Result<EventId, IdError> {
        uuid_v7(hlc_ms, rng).map(EventId)
    }

    /// The millisecond timestamp in the UUID's first 48 bits.
    pub fn time_ms(&self) -> i64 {
        let b = self.0.as_bytes();
        let mut ms = [0u8; 8];
        ms[2..].copy_from_slice(&b[..6]);
        i64::from_be_bytes(ms)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for EventId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let u = parse_lower_uuid(s)?;
        let version = u.as_bytes()[6] >> 4;
        if version != 7 || (u.as_bytes()[8] >> 6) != 0b10 {
            return Err(IdError::NotV7(version));
        }
        Ok(EventId(u))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.hyphenated())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A position in a device's chain: 1, 2, 3, … gapless.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Seq(u64);

impl Seq {
    /// The first event of a chain.
    pub const FIRST: Seq = Seq(1);

    /// A sequence number; zero is rejected.
    pub fn new(n: u64) -> Result<Seq, IdError> {
        if n == 0 {
            Err(IdError::ZeroSeq)
        } else {
            Ok(Seq(n))
        }
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next position, or `None` on overflow (a chain never gets there).
    pub fn next(self) -> Option<Seq> {
        self.0.checked_add(1).map(Seq)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Seq::new(n).map_err(serde::de::Error::custom)
    }
}

/// The id of a key (a device's HMAC key or the hub's Ed25519 key): 1 to 64
/// characters of `[A-Za-z0-9._-]`, e.g. `k1` or `hub-2026-1`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(IdError::BadKeyId(truncate_for_error(s)))
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRandom;

    #[test]
    fn uuid_parsing_accepts_only_lowercase_hyphenated() {
        let good = "01935f4e-8a00-7000-8000-000000000001";
        assert_eq!(good.parse::<StoreId>().unwrap().to_string(), good);
        for bad in [
            "01935F4E-8A00-7000-8000-000000000001",
            "{01935f4e-8a00-7000-8000-000000000001}",
            "urn:uuid:01935f4e-8a00-7000-8000-000000000001",
            "01935f4e8a0070008000000000000001",
            "01935f4e-8a00-7000-8000-00000000000",
            "01935f4e-8a00-7000-8000-00000000000g",
            "",
        ] {
            assert!(
                matches!(bad.parse::<DeviceId>(), Err(IdError::NotLowerHyphenated(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn event_ids_must_be_v7_and_carry_their_time() {
        let id: EventId = "019aaf70-da00-7000-8000-0000000e0000".parse().unwrap();
        assert_eq!(id.time_ms(), 1_763_880_000_000);
        assert_eq!(
            "01935f4e-8a00-4000-8000-000000000001".parse::<EventId>(),
            Err(IdError::NotV7(4))
        );
        let mut rng = SeededRandom::new(7);
        let fresh = EventId::new_v7(1_763_880_000_123, &mut rng).unwrap();
        assert_eq!(fresh.time_ms(), 1_763_880_000_123);
        assert_eq!(fresh.to_string().parse::<EventId>().unwrap(), fresh);
        assert!(EventId::new_v7(-1, &mut rng).is_err());
        assert!(EventId::new_v7(1 << 48, &mut rng).is_err());
    }

    #[test]
    fn seq_and_key_id_validate() {
        assert_eq!(Seq::new(0), Err(IdError::ZeroSeq));
        assert_eq!(Seq::FIRST.next().unwrap().get(), 2);
        assert!(serde_json::from_str::<Seq>("0").is_err());
        assert!("hub-2026-1".parse::<KeyId>().is_ok());
        assert!("k 1".parse::<KeyId>().is_err());
        assert!("".parse::<KeyId>().is_err());
        assert!("x".repeat(65).parse::<KeyId>().is_err());
    }
}

/// A product code (SKU or barcode): 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Sku {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Sku(s.to_owned()))
        } else {
            Err(IdError::BadSku(truncate_for_error(s)))
        }
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sku({})", self.0)
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
