//! Mettler Toledo 8217, polled ("demand") mode, as 8217-mode scales and the
//! widely used drivers speak it (Odoo's Toledo driver: `weightRegexp`
//! `STX \s*([0-9.]+)N? CR`, `statusRegexp` `STX \s*(\?.) CR`, status bits as
//! below, probe `E` … `F`; the Mettler Toledo service manual it cites). Sources
//! and what is guessed: `docs/hardware.md`.
//!
//! Line: 9600 baud, 7 data bits, even parity, 1 stop bit. Every byte is 7-bit
//! ASCII; bit 7 (the parity bit when a port is read as 8 bits) is masked off.
//!
//! ```text
//! host → scale   'W'                         0x57, request the weight
//! scale → host   STX w w . w w w CR          valid gross weight, kilograms
//!                STX w w . w w w N CR        valid net weight (a tare is set)
//!                STX '?' s CR                no valid weight: status byte s
//! host → scale   'E' text                    echo: the scale answers STX E CR
//!                                            and echoes text until 'F'
//! host → scale   'F'                         end of echo
//! ```
//!
//! - The weight record is sent only for a valid weight (stable, within range, not
//!   below zero): ASCII digits with at most one `.`, in kilograms with at most
//!   three decimals (`01.250` = 1 250 g), leading spaces allowed, an `N` after the
//!   digits when the weight is net of a tare. The net weight is the weight sold.
//! - The status byte `s`, one byte taken as it comes (it may be `0x02` or `0x0D`,
//!   the values of `STX` and `CR`): bit 0 motion, bit 1 over capacity, bit 2
//!   under zero, bit 3 outside the zero capture range, bit 4 center of zero,
//!   bit 5 net weight, bit 6 bad command from the host. No bit is required to be
//!   set: real scales answer `0x02` for over capacity.
//! - No checksum. Bytes before `STX` are skipped; a frame longer than
//!   [`MAX_FRAME`] bytes without `CR`, or cut by a new `STX` (except as a status
//!   byte), is an error.

use caja_shared::money::QtyMilli;

use super::{format_kg, parse_kg, Frame, FrameError, Reading, StatusFlags};

/// Start of text.
pub const STX: u8 = 0x02;
/// Carriage return, end of a record.
pub const CR: u8 = 0x0D;
/// The weight request.
pub const REQUEST: u8 = b'W';
/// The echo request (probe of the line), followed by the text to echo.
pub const ECHO: u8 = b'E';
/// Ends the echo.
pub const ECHO_END: u8 = b'F';
/// Marks a status record.
pub const STATUS_MARK: u8 = b'?';
/// Marks a net weight.
pub const NET_MARK: u8 = b'N';
/// Most bytes between `STX` and `CR` (leading spaces, seven weight characters,
/// `N`).
pub const MAX_FRAME: usize = 12;

/// Splits a byte stream into Toledo records.
#[derive(Debug, Clone, Default)]
pub struct Framer {
    frame: Option<Vec<u8>>,
    skipped: usize,
}

impl Framer {
    /// A framer waiting for `STX`.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Bytes skipped as garbage so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Forgets a partial frame.
    pub fn reset(&mut self) {
        self.frame = None;
    }

    /// Feeds one byte; returns a record or an error when one ends.
    pub fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        let byte = byte & 0x7F;
        match &mut self.frame {
            None => {
                if byte == STX {
                    self.frame = Some(Vec::with_capacity(MAX_FRAME));
                } else {
                    self.skipped = self.skipped.saturating_add(1);
                }
                None
            }
            Some(frame) => {
                if awaits_status_byte(frame) {
                    // The status byte is data, whatever its value.
                    frame.push(byte);
                    return None;
                }
                if byte == STX {
                    frame.clear();
                    return Some(Err(FrameError::Truncated));
                }
                if byte == CR {
                    let content = self.frame.take().unwrap_or_default();
                    return Some(parse_record(&content).map(Frame::Reading));
                }
                if frame.len() == MAX_FRAME {
                    self.frame = None;
                    return Some(Err(FrameError::TooLong));
                }
                frame.push(byte);
                None
            }
        }
    }
}

/// Whether the frame so far is (spaces and) `?`: the next byte is the status.
fn awaits_status_byte(frame: &[u8]) -> bool {
    frame.last() == Some(&STATUS_MARK) && frame.iter().rev().skip(1).all(|&b| b == b' ')
}

/// Decodes a status byte (bit 7 already masked).
pub fn status_flags(s: u8) -> StatusFlags {
    StatusFlags {
        motion: s & 0x01 != 0,
        over_capacity: s & 0x02 != 0,
        under_zero: s & 0x04 != 0,
        outside_zero_range: s & 0x08 != 0,
        center_of_zero: s & 0x10 != 0,
        net_weight: s & 0x20 != 0,
        bad_command: s & 0x40 != 0,
    }
}

/// Parses what lies between `STX` and `CR`.
pub fn parse_record(content: &[u8]) -> Result<Reading, FrameError> {
    let start = content
        .iter()
        .position(|&b| b != b' ')
        .unwrap_or(content.len());
    match &content[start..] {
        [STATUS_MARK, s] => Ok(Reading::Status(status_flags(*s))),
        [STATUS_MARK, ..] => Err(FrameError::Malformed("status record is not one byte")),
        [] => Err(FrameError::Malformed("empty record")),
        field => {
            // `N` after the digits: the net weight (a tare is set); it is sold.
            let digits = field.strip_suffix(&[NET_MARK]).unwrap_or(field);
            if !(1..=7).contains(&digits.len()) {
                return Err(FrameError::Malformed(
                    "weight field is not 1 to 7 characters",
                ));
            }
            Ok(Reading::Weight {
                grams: QtyMilli(parse_kg(digits)?),
                stable: true,
            })
        }
    }
}

/// A net weight record (`STX 01.250N CR`).
pub fn encode_net_weight(grams: QtyMilli) -> Vec<u8> {
    let mut out = encode_weight(grams);
    out.insert(out.len() - 1, NET_MARK);
    out
}

/// The scale's acknowledgement of an echo request (`STX E CR`), before the
/// echoed text.
pub const ECHO_ACK: [u8; 3] = [STX, ECHO, CR];

/// A weight record (`STX 01.250 CR`); the weight is clamped to `0..=999.999` kg.
pub fn encode_weight(grams: QtyMilli) -> Vec<u8> {
    let mut out = vec![STX];
    out.extend_from_slice(format_kg(grams.milli().clamp(0, 999_999), 6).as_bytes());
    out.push(CR);
    out
}

/// A status record (`STX ? s CR`).
pub fn encode_status(flags: StatusFlags) -> [u8; 4] {
    let s = u8::from(flags.motion)
        | u8::from(flags.over_capacity) << 1
        | u8::from(flags.under_zero) << 2
        | u8::from(flags.outside_zero_range) << 3
        | u8::from(flags.center_of_zero) << 4
        | u8::from(flags.net_weight) << 5
        | u8::from(flags.bad_command) << 6;
    [STX, b'?', s, CR]
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
    fn records() {
        assert_eq!(encode_weight(QtyMilli(1250)), b"\x0201.250\r");
        assert_eq!(
            frames(b"\x0201.250\r"),
            [Ok(Frame::Reading(Reading::Weight {
                grams: QtyMilli(1250),
                stable: true
            }))]
        );
        let motion = StatusFlags {
            motion: true,
            ..StatusFlags::default()
        };
        assert_eq!(encode_status(motion), [STX, b'?', 0x01, CR]);
        assert_eq!(
            frames(&encode_status(motion)),
            [Ok(Frame::Reading(Reading::Status(motion)))]
        );
        // Parity bit set on every byte (read as 8N1): still decoded.
        let with_parity: Vec<u8> = b"\x0201.250\r".iter().map(|b| b | 0x80).collect();
        assert_eq!(frames(&with_parity).len(), 1);
        assert!(frames(&with_parity)[0].is_ok());
    }

    #[test]
    fn frames_as_real_scales_send_them() {
        let status = |s: u8| frames(&[STX, b'?', s, CR]);
        let over = StatusFlags {
            over_capacity: true,
            ..StatusFlags::default()
        };
        // The status byte may be the value of STX or CR: it is data.
        assert_eq!(status(0x02), [Ok(Frame::Reading(Reading::Status(over)))]);
        assert_eq!(
            status(0x0D),
            [Ok(Frame::Reading(Reading::Status(StatusFlags {
                motion: true,
                under_zero: true,
                outside_zero_range: true,
                ..StatusFlags::default()
            })))]
        );
        assert_eq!(
            status(0x40),
            [Ok(Frame::Reading(Reading::Status(StatusFlags {
                bad_command: true,
                ..StatusFlags::default()
            })))]
        );
        assert_eq!(
            frames(b"\x02 ?\x10\r"),
            [Ok(Frame::Reading(Reading::Status(StatusFlags {
                center_of_zero: true,
                ..StatusFlags::default()
            })))]
        );
        let net = Ok(Frame::Reading(Reading::Weight {
            grams: QtyMilli(1250),
            stable: true,
        }));
        assert_eq!(frames(b"\x0201.250N\r"), std::slice::from_ref(&net));
        assert_eq!(frames(b"\x02  1.250N\r"), std::slice::from_ref(&net));
        assert_eq!(frames(&encode_net_weight(QtyMilli(1250))), [net]);
        assert!(matches!(
            frames(b"\x0201.250NN\r")[..],
            [Err(FrameError::BadWeight(_))]
        ));
    }

    #[test]
    fn garbage_truncation_and_overlong_frames() {
        assert_eq!(
            frames(b"zz\x01\x0201.2\x0201.250\r"),
            [
                Err(FrameError::Truncated),
                Ok(Frame::Reading(Reading::Weight {
                    grams: QtyMilli(1250),
                    stable: true
                })),
            ]
        );
        assert_eq!(frames(b"\x021234567890123\r"), [Err(FrameError::TooLong)]);
        assert!(matches!(
            frames(b"\x02?\x01\x01\r")[..],
            [Err(FrameError::Malformed(_))]
        ));
        assert!(matches!(
            frames(b"\x0201,250\r")[..],
            [Err(FrameError::BadWeight(_))]
        ));
        let mut f = Framer::new();
        for &b in b"noise" {
            f.push(b);
        }
        assert_eq!(f.skipped(), 5);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut f = Framer::new();
            let mut out = 0;
            for &b in &bytes {
                if f.push(b).is_some() {
                    out += 1;
                }
                prop_assert!(f.frame.as_ref().map_or(0, Vec::len) <= MAX_FRAME);
            }
            prop_assert!(out <= bytes.len());
        }

        #[test]
        fn weights_round_trip_after_garbage(
            grams in 0i64..1_000_000,
            garbage in proptest::collection::vec(any::<u8>().prop_filter("no STX", |b| b & 0x7F != STX), 0..64),
        ) {
            let mut bytes = garbage;
            bytes.extend(encode_weight(QtyMilli(grams)));
            let got = frames(&bytes);
            let expected = Ok(Frame::Reading(Reading::Weight { grams: QtyMilli(grams), stable: true }));
            prop_assert_eq!(got.last(), Some(&expected));
        }

        #[test]
        fn status_flags_round_trip(bits in 0u8..128) {
            let flags = status_flags(bits);
            prop_assert_eq!(frames(&encode_status(flags)), vec![Ok(Frame::Reading(Reading::Status(flags)))]);
        }
    }
}
