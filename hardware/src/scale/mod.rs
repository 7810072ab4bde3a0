//! Serial scales: frame parsers for two polled protocols, the certification rule
//! that turns a reading into a weight the register may sell, a reader that polls a
//! real serial port, and a simulated scale on a pseudo-terminal.
//!
//! Protocols (exact frames in each module):
//! - [`toledo`] — Mettler Toledo 8217 (the protocol of NCR/Datalogic
//!   scanner-scales): host sends `W`, the scale answers `STX weight CR` or
//!   `STX ? status CR`. 9600 baud, 7 data bits, even parity, 1 stop bit.
//! - [`cas`] — CAS PD-II, ECR mode with `ENQ`/`ACK`/`DC1` handshake and a frame
//!   with an XOR checksum. 9600 baud, 8 data bits, no parity, 1 stop bit.
//!
//! Weights are integer grams ([`QtyMilli`]: thousandths of a kilogram); a weight
//! field like `01.250` (kg) is parsed digit by digit, never through a float.
//!
//! **Architecture invariant: parsers are total and bounded.** [`toledo::Framer`]
//! and [`cas::Framer`] take any byte stream one byte at a time, never panic, keep at
//! most one frame in memory and skip garbage until the next start byte
//! (property-tested). Only [`reader`] and [`sim`] do IO.

pub mod cas;
pub mod reader;
pub mod sim;
pub mod toledo;

use std::fmt;

use caja_shared::money::QtyMilli;

use crate::messages::scale as msg;

/// A scale protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Mettler Toledo 8217.
    Toledo8217,
    /// CAS PD-II (ECR mode, ENQ/ACK/DC1).
    CasPd2,
}

/// Serial line settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerialSettings {
    /// Bits per second.
    pub baud: u32,
    /// 7 or 8.
    pub data_bits: u8,
    /// Even parity (else none).
    pub even_parity: bool,
}

impl Protocol {
    /// The protocol's usual line settings.
    pub const fn serial_settings(self) -> SerialSettings {
        match self {
            Protocol::Toledo8217 => SerialSettings {
                baud: 9600,
                data_bits: 7,
                even_parity: true,
            },
            Protocol::CasPd2 => SerialSettings {
                baud: 9600,
                data_bits: 8,
                even_parity: false,
            },
        }
    }

    /// The name used in device addresses (`toledo`, `cas`).
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Toledo8217 => "toledo",
            Protocol::CasPd2 => "cas",
        }
    }

    /// Parses a device-address scheme.
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "toledo" | "toledo8217" => Some(Protocol::Toledo8217),
            "cas" | "caspd2" | "cas-pd2" => Some(Protocol::CasPd2),
            _ => None,
        }
    }
}

/// The status bits of a Toledo status record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags {
    /// Bit 0: the weight is moving.
    pub motion: bool,
    /// Bit 1: over capacity.
    pub over_capacity: bool,
    /// Bit 2: under zero.
    pub under_zero: bool,
    /// Bit 3: outside the zero capture range (needs re-zeroing).
    pub outside_zero_range: bool,
    /// Bit 4: at the center of zero.
    pub center_of_zero: bool,
    /// Bit 5: the scale shows a net weight (a tare is set).
    pub net_weight: bool,
    /// Bit 6: the scale did not understand the host's command.
    pub bad_command: bool,
}

/// What one answer of a scale says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reading {
    /// A weight, in grams (negative below zero), and whether it is stable.
    Weight {
        /// Grams.
        grams: QtyMilli,
        /// The scale reports it as stable.
        stable: bool,
    },
    /// A status with no weight (Toledo's answer when the weight is not valid).
    Status(StatusFlags),
}

/// A frame that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A new frame started before the previous one ended.
    #[error("truncated frame")]
    Truncated,
    /// No end byte where the frame had to end.
    #[error("frame too long")]
    TooLong,
    /// The frame's structure is wrong.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The weight field is not a decimal number.
    #[error("bad weight field {0:?}")]
    BadWeight(String),
    /// The checksum does not match.
    #[error("bad checksum: frame says 0x{got:02X}, data gives 0x{expected:02X}")]
    BadChecksum {
        /// Computed from the data.
        expected: u8,
        /// Carried by the frame.
        got: u8,
    },
    /// A unit other than kilograms.
    #[error("unsupported unit {0:?}")]
    UnsupportedUnit(String),
}

/// Why a reading cannot be sold by weight (certification rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WeighError {
    /// The weight is moving.
    #[error("the weight is not stable")]
    Motion,
    /// Over the scale's capacity.
    #[error("over capacity")]
    Overload,
    /// Below zero.
    #[error("below zero")]
    UnderZero,
    /// Zero: nothing on the scale.
    #[error("no weight on the scale")]
    NoWeight,
    /// The scale needs re-zeroing.
    #[error("outside the zero range")]
    ZeroError,
    /// The scale rests at the center of zero: nothing to weigh.
    #[error("the scale is at zero")]
    AtZero,
    /// The scale did not understand the request (wrong protocol set).
    #[error("the scale reports a bad command")]
    BadCommand,
}

impl WeighError {
    /// The cashier's message.
    pub fn message(self) -> &'static str {
        match self {
            WeighError::Motion => msg::MOTION,
            WeighError::Overload => msg::OVERLOAD,
            WeighError::UnderZero => msg::UNDER_ZERO,
            WeighError::NoWeight => msg::NO_WEIGHT,
            WeighError::ZeroError => msg::ZERO_ERROR,
            WeighError::AtZero => msg::AT_ZERO,
            WeighError::BadCommand => msg::BAD_COMMAND,
        }
    }
}

/// The certification rule: a weight is accepted only when stable, positive and
/// within `capacity`. Checked in this order: a bad command, under zero, over
/// capacity, motion, outside the zero range, center of zero, zero.
pub fn certify(reading: &Reading, capacity: QtyMilli) -> Result<QtyMilli, WeighError> {
    match *reading {
        Reading::Weight { grams, stable } => {
            if grams.milli() < 0 {
                Err(WeighError::UnderZero)
            } else if grams > capacity {
                Err(WeighError::Overload)
            } else if !stable {
                Err(WeighError::Motion)
            } else if grams.milli() == 0 {
                Err(WeighError::NoWeight)
            } else {
                Ok(grams)
            }
        }
        Reading::Status(s) => Err(if s.bad_command {
            WeighError::BadCommand
        } else if s.under_zero {
            WeighError::UnderZero
        } else if s.over_capacity {
            WeighError::Overload
        } else if s.motion {
            WeighError::Motion
        } else if s.outside_zero_range {
            WeighError::ZeroError
        } else if s.center_of_zero {
            WeighError::AtZero
        } else {
            WeighError::NoWeight
        }),
    }
}

/// Parses a weight field in kilograms (`01.250`, ` 1.25`, `12`) into grams:
/// optional leading spaces, ASCII digits with at most one `.`, at most three
/// decimals that matter (further decimals must be zeros: the register counts
/// grams).
pub fn parse_kg(field: &[u8]) -> Result<i64, FrameError> {
    let bad = || FrameError::BadWeight(String::from_utf8_lossy(field).into_owned());
    let start = field.iter().position(|&b| b != b' ').ok_or_else(bad)?;
    let digits = &field[start..];
    let (whole, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
        return Err(bad());
    }
    if frac.len() > 3 && frac[3..].iter().any(|&b| b != b'0') {
        return Err(bad());
    }
    let mut kg: i64 = 0;
    for &d in whole {
        kg = kg
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    let mut grams: i64 = 0;
    for i in 0..3 {
        grams = grams * 10 + frac.get(i).map_or(0, |&d| i64::from(d - b'0'));
    }
    kg.checked_mul(1000)
        .and_then(|v| v.checked_add(grams))
        .ok_or_else(bad)
}

/// Writes grams as a kilogram field with three decimals, at least `width`
/// characters, zero-padded (`1250`, 6 → `01.250`).
pub fn format_kg(grams: i64, width: usize) -> String {
    let g = grams.unsigned_abs();
    let text = format!("{}.{:03}", g / 1000, g % 1000);
    format!("{text:0>width$}")
}

/// A protocol exchange element a framer can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `ACK`: the scale is ready to send (CAS).
    Ack,
    /// `NAK`: the scale is not ready (CAS).
    Nak,
    /// A weight or status record.
    Reading(Reading),
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Weight { grams, stable } => {
                write!(f, "{grams} kg{}", if *stable { "" } else { " (unstable)" })
            }
            Reading::Status(s) => write!(f, "status {s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kilogram_fields_become_grams_without_floats() {
        let ok: &[(&[u8], i64)] = &[
            (b"01.250", 1250),
            (b" 1.25", 1250),
            (b"12", 12_000),
            (b".5", 500),
            (b"0.0050", 5),
            (b"00.000", 0),
            (b"150.000", 150_000),
        ];
        for (field, grams) in ok {
            assert_eq!(
                parse_kg(field),
                Ok(*grams),
                "{:?}",
                String::from_utf8_lossy(field)
            );
        }
        for bad in [
            &b""[..],
            b"   ",
            b"1.2.3",
            b"1,25",
            b"0.0001",
            b"-1.0",
            b"1 .0",
            b".",
        ] {
            assert!(parse_kg(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(
            parse_kg(b"99999999999999999999").is_err(),
            "overflow is an error"
        );
    }

    #[test]
    fn certification_accepts_only_stable_positive_weights_within_capacity() {
        let cap = QtyMilli(15_000);
        let w = |g: i64, stable: bool| Reading::Weight {
            grams: QtyMilli(g),
            stable,
        };
        assert_eq!(certify(&w(1250, true), cap), Ok(QtyMilli(1250)));
        assert_eq!(certify(&w(15_000, true), cap), Ok(QtyMilli(15_000)));
        assert_eq!(certify(&w(15_001, true), cap), Err(WeighError::Overload));
        assert_eq!(certify(&w(1250, false), cap), Err(WeighError::Motion));
        assert_eq!(certify(&w(-5, true), cap), Err(WeighError::UnderZero));
        assert_eq!(certify(&w(0, true), cap), Err(WeighError::NoWeight));
        let status = |f: StatusFlags| certify(&Reading::Status(f), cap);
        assert_eq!(
            status(StatusFlags {
                motion: true,
                ..StatusFlags::default()
            }),
            Err(WeighError::Motion)
        );
        assert_eq!(
            status(StatusFlags {
                motion: true,
                over_capacity: true,
                ..StatusFlags::default()
            }),
            Err(WeighError::Overload)
        );
        assert_eq!(
            status(StatusFlags {
                outside_zero_range: true,
                ..StatusFlags::default()
            }),
            Err(WeighError::ZeroError)
        );
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(grams in 0i64..10_000_000, width in 1usize..9) {
            prop_assert_eq!(parse_kg(format_kg(grams, width).as_bytes()), Ok(grams));
        }

        #[test]
        fn parse_kg_never_panics(field in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = parse_kg(&field);
        }
    }
}
