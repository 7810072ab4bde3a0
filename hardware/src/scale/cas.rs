//! CAS PD-II, ECR mode with the `ENQ`/`ACK`/`DC1` handshake.
//!
//! Source: the CAS PD-II user's manual, section 3.1.6 "TYPE-6 interface"
//! (the Samsung ECR ER-670 protocol; manual page 23, public copies online),
//! read for the frame below; `docs/hardware.md` quotes what it says.
//!
//! Line: 9600 baud, 8 data bits, no parity, 1 stop bit (as set on the scale;
//! the manual's page on the frame does not give the line settings).
//!
//! ```text
//! host → scale   ENQ                              0x05: are you ready?
//! scale → host   ACK | NAK                        0x06 ready, 0x15 busy
//! host → scale   DC1                              0x11: send the weight
//! scale → host   SOH STX STA SIGN W5…W0 UN1 UN0 BCC ETX EOT     (15 bytes)
//! ```
//!
//! - `SOH` 0x01, `STX` 0x02, `ETX` 0x03, `EOT` 0x04.
//! - `STA`: `S` stable, `U` not stable (in motion).
//! - `SIGN`: `' '` at or above zero (`+` accepted too), `-` below zero, `F`
//!   over load — and then `W5…W0` are all `F` as well. An over-load frame is
//!   read as an over-capacity status, never as a garbled frame.
//! - `W5…W0`: the weight in kilograms, six characters, ASCII digits with one
//!   `.` (`01.250` = 1 250 g); leading spaces accepted.
//! - `UN1 UN0`: the unit, `Kg` or `Lb` in the manual (any letter case is
//!   accepted). `Lb` is refused: the register sells by the gram.
//! - `BCC`: the block check character; XOR of the ten bytes `STA` through
//!   `UN0` (guessed: the manual names it without its formula; an XOR of the
//!   data block is the usual ECR block check). It can take any value, so the
//!   frame is read by length, not by looking for `ETX`.
//! - `DC2` ("all data") is not used by the PD-II (the manual says so).
//!
//! Bit 7 of every byte is masked off: some PD-II units are set to 7 data bits
//! with even parity (public driver notes list the first byte as `0x01` or
//! `0x81`, which is `SOH` with its parity bit), and the frame is all ASCII.

use caja_shared::money::QtyMilli;

use super::{format_kg, parse_kg, Frame, FrameError, Reading, StatusFlags};

/// Start of heading.
pub const SOH: u8 = 0x01;
/// Start of text.
pub const STX: u8 = 0x02;
/// End of text.
pub const ETX: u8 = 0x03;
/// End of transmission.
pub const EOT: u8 = 0x04;
/// Enquiry: the host asks whether the scale is ready.
pub const ENQ: u8 = 0x05;
/// Acknowledge: the scale is ready.
pub const ACK: u8 = 0x06;
/// Negative acknowledge: the scale is busy.
pub const NAK: u8 = 0x15;
/// Device control 1: the host asks for the weight.
pub const DC1: u8 = 0x11;

/// Bytes from `STA` to `U2`.
pub const DATA_LEN: usize = 10;
/// Bytes after `STX`: data, `BCC`, `ETX`, `EOT`.
const BODY_LEN: usize = DATA_LEN + 3;

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Idle,
    SawSoh,
    Body(Vec<u8>),
}

/// Splits a byte stream into CAS handshake bytes and weight frames.
#[derive(Debug, Clone, Default)]
pub struct Framer {
    state: State,
    skipped: usize,
}

impl Framer {
    /// A framer waiting for `ACK`, `NAK` or `SOH`.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Bytes skipped as garbage so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Forgets a partial frame.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Feeds one byte; returns `ACK`, `NAK`, a reading, or an error when a frame
    /// ends.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        // Every byte of the frame is ASCII (and so is the XOR of ASCII bytes):
        // bit 7 is a parity bit when a 7E1 scale is read as 8N1 (`SOH` arrives
        // as 0x81), never data.
        let byte = byte & 0x7F;
        match &mut self.state {
            State::Idle => {
                match byte {
                    ACK => return Some(Ok(Frame::Ack)),
                    NAK => return Some(Ok(Frame::Nak)),
                    SOH => self.state = State::SawSoh,
                    _ => self.skipped = self.skipped.saturating_add(1),
                }
                None
            }
            State::SawSoh => match byte {
                STX => {
                    self.state = State::Body(Vec::with_capacity(BODY_LEN));
                    None
                }
                SOH => None,
                _ => {
                    self.state = State::Idle;
                    Some(Err(FrameError::Malformed("SOH not followed by STX")))
                }
            },
            State::Body(body) => {
                body.push(byte);
                if body.len() < BODY_LEN {
                    return None;
                }
                let body = std::mem::take(body);
                self.state = State::Idle;
                Some(parse_body(&body).map(Frame::Reading))
            }
        }
    }
}

/// XOR of the data bytes.
pub fn bcc(data: &[u8]) -> u8 {
    data.iter().fold(0, |acc, b| acc ^ b)
}

/// Parses the 13 bytes after `STX`.
fn parse_body(body: &[u8]) -> Result<Reading, FrameError> {
    let [data @ .., check, etx, eot] = body else {
        return Err(FrameError::Truncated);
    };
    if data.len() != DATA_LEN || *etx != ETX || *eot != EOT {
        return Err(FrameError::Malformed("no ETX EOT after the checksum"));
    }
    let expected = bcc(data);
    if expected != *check {
        return Err(FrameError::BadChecksum {
            expected,
            got: *check,
        });
    }
    let stable = match data[0] {
        b'S' => true,
        b'U' => false,
        _ => return Err(FrameError::Malformed("status is neither S nor U")),
    };
    let over_load = data[1] == b'F' || data[2..8].iter().all(|&b| b == b'F');
    if over_load {
        return Ok(Reading::Status(StatusFlags {
            over_capacity: true,
            motion: !stable,
            ..StatusFlags::default()
        }));
    }
    let negative = match data[1] {
        b' ' | b'+' => false,
        b'-' => true,
        _ => return Err(FrameError::Malformed("sign is neither space, - nor F")),
    };
    let unit = &data[8..10];
    if !unit.eq_ignore_ascii_case(b"kg") {
        return Err(FrameError::UnsupportedUnit(
            String::from_utf8_lossy(unit).into_owned(),
        ));
    }
    let grams = parse_kg(&data[2..8])?;
    Ok(Reading::Weight {
        grams: QtyMilli(if negative { -grams } else { grams }),
        stable,
    })
}

/// A weight frame, for simulators and tests: `grams` clamped to ±99.999 kg,
/// `unit` normally `b"kg"`.
pub fn encode(grams: QtyMilli, stable: bool, unit: [u8; 2]) -> Vec<u8> {
    let g = grams.milli().clamp(-99_999, 99_999);
    let mut data = Vec::with_capacity(DATA_LEN);
    data.push(if stable { b'S' } else { b'U' });
    data.push(if g < 0 { b'-' } else { b' ' });
    data.extend_from_slice(format_kg(g, 6).as_bytes());
    data.extend_from_slice(&unit);
    let mut out = vec![SOH, STX];
    out.extend_from_slice(&data);
    out.extend_from_slice(&[bcc(&data), ETX, EOT]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        let mut f = Framer::new();
        bytes.iter().filter_map(|&b| f.push(b)).collect()
    }

    #[test]
    fn frame_layout() {
        let frame = encode(QtyMilli(1250), true, *b"kg");
        let data = b"S 01.250kg";
        let mut expected = vec![SOH, STX];
        expected.extend_from_slice(data);
        expected.extend_from_slice(&[bcc(data), ETX, EOT]);
        assert_eq!(frame, expected);
        assert_eq!(frame.len(), 15);
        assert_eq!(
            frames(&frame),
            [Ok(Frame::Reading(Reading::Weight {
                grams: QtyMilli(1250),
                stable: true
            }))]
        );
        assert_eq!(
            frames(&encode(QtyMilli(-20), false, *b"kg")),
            [Ok(Frame::Reading(Reading::Weight {
                grams: QtyMilli(-20),
                stable: false
            }))]
        );
        assert_eq!(frames(&[ACK, b'x', NAK]), [Ok(Frame::Ack), Ok(Frame::Nak)]);
    }

    #[test]
    fn bad_checksum_unit_and_structure_are_errors() {
        let mut frame = encode(QtyMilli(1250), true, *b"kg");
        frame[12] ^= 0x01;
        assert!(matches!(
            frames(&frame)[..],
            [Err(FrameError::BadChecksum { .. })]
        ));
        assert_eq!(
            frames(&encode(QtyMilli(1250), true, *b"lb")),
            [Err(FrameError::UnsupportedUnit("lb".into()))]
        );
        assert!(matches!(
            frames(&[SOH, b'x'])[..],
            [Err(FrameError::Malformed(_))]
        ));
        let mut no_eot = encode(QtyMilli(1250), true, *b"kg");
        no_eot[14] = b'!';
        assert!(matches!(
            frames(&no_eot)[..],
            [Err(FrameError::Malformed(_))]
        ));
    }

    /// A frame as the manual lays it out, built by hand.
    fn manual_frame(sta: u8, sign: u8, weight: &[u8; 6], unit: &[u8; 2]) -> Vec<u8> {
        let mut data = vec![sta, sign];
        data.extend_from_slice(weight);
        data.extend_from_slice(unit);
        let mut out = vec![SOH, STX];
        out.extend_from_slice(&data);
        out.extend_from_slice(&[bcc(&data), ETX, EOT]);
        out
    }

    #[test]
    fn the_manuals_over_load_frame_and_unit_spelling() {
        let over = StatusFlags {
            over_capacity: true,
            ..StatusFlags::default()
        };
        assert_eq!(
            frames(&manual_frame(b'S', b'F', b"FFFFFF", b"Kg")),
            [Ok(Frame::Reading(Reading::Status(over)))]
        );
        assert_eq!(
            frames(&manual_frame(b'U', b'F', b"FFFFFF", b"Kg")),
            [Ok(Frame::Reading(Reading::Status(StatusFlags {
                motion: true,
                ..over
            })))]
        );
        assert_eq!(
            super::super::certify(&Reading::Status(over), QtyMilli(15_000)),
            Err(super::super::WeighError::Overload)
        );
        assert_eq!(
            frames(&manual_frame(b'S', b' ', b"01.250", b"Kg")),
            [Ok(Frame::Reading(Reading::Weight {
                grams: QtyMilli(1250),
                stable: true
            }))]
        );
        assert_eq!(
            frames(&manual_frame(b'S', b' ', b"01.250", b"Lb")),
            [Err(FrameError::UnsupportedUnit("Lb".into()))]
        );
    }

    #[test]
    fn a_seven_bit_even_parity_line_read_as_eight_bits_still_frames() {
        let frame = encode(QtyMilli(1250), true, *b"kg");
        let with_parity: Vec<u8> = frame
            .iter()
            .map(|&b| if b.count_ones() % 2 == 1 { b | 0x80 } else { b })
            .collect();
        assert_eq!(with_parity[0], 0x81, "SOH with its parity bit");
        let mut f = Framer::new();
        let got: Vec<_> = with_parity.iter().filter_map(|&b| f.push(b)).collect();
        assert_eq!(
            got,
            [Ok(Frame::Reading(Reading::Weight {
                grams: QtyMilli(1250),
                stable: true
            }))]
        );
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut f = Framer::new();
            for &b in &bytes {
                let _ = f.push(b);
                if let State::Body(body) = &f.state {
                    prop_assert!(body.len() < BODY_LEN);
                }
            }
        }

        #[test]
        fn frames_round_trip_after_garbage(
            grams in -99_999i64..=99_999,
            stable in any::<bool>(),
            garbage in proptest::collection::vec(any::<u8>().prop_filter("no SOH/ACK/NAK, parity bit or not", |b| ![SOH, ACK, NAK].contains(&(b & 0x7F))), 0..64),
        ) {
            let mut bytes = garbage;
            bytes.extend(encode(QtyMilli(grams), stable, *b"kg"));
            let expected = Ok(Frame::Reading(Reading::Weight { grams: QtyMilli(grams), stable }));
            prop_assert_eq!(frames(&bytes), vec![expected]);
        }

        /// One corrupted byte never yields a different weight: it is caught by the
        /// checksum or the structure.
        #[test]
        fn a_corrupted_byte_never_gives_a_wrong_weight(
            grams in 0i64..=99_999, at in 2usize..15, flip in 1u8..=255
        ) {
            let original = encode(QtyMilli(grams), true, *b"kg");
            let mut bytes = original.clone();
            bytes[at] ^= flip;
            for r in frames(&bytes) {
                if let Ok(Frame::Reading(reading)) = r {
                    prop_assert_eq!(reading, Reading::Weight { grams: QtyMilli(grams), stable: true });
                }
            }
        }
    }
}
