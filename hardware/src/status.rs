//! Printer status from the real-time status answers (`DLE EOT n`).
//!
//! Three requests are asked: `n = 1` (printer: online/offline), `n = 2` (offline
//! cause: cover open, paper end stop, error) and `n = 4` (roll paper sensor: near
//! end, end). Each answer is one byte of the form `0xx1xx10`, decoded by the
//! `escpos` crate ([`escpos::utils::RealTimeStatusResponse`]), which also checks
//! the fixed bits. The requests are encoded by hand
//! ([`crate::escpos_ext::status_request`]).
//!
//! **Architecture invariant: "unknown" is never "ready".** A transport that cannot
//! read, a printer that does not answer in time or an answer that is not a status
//! byte gives [`PrinterStatus::Unknown`], with the reason.

use escpos::utils::{RealTimeStatusRequest, RealTimeStatusResponse as R};

use crate::messages::printer as msg;

/// The status requests asked, in order: printer, offline cause, roll paper sensor.
pub const REQUESTS: [StatusRequest; 3] = [
    StatusRequest::Printer,
    StatusRequest::OfflineCause,
    StatusRequest::RollPaper,
];

/// One real-time status request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusRequest {
    /// `DLE EOT 1`.
    Printer,
    /// `DLE EOT 2`.
    OfflineCause,
    /// `DLE EOT 4`.
    RollPaper,
}

impl StatusRequest {
    /// The `n` of `DLE EOT n`.
    pub const fn n(self) -> u8 {
        match self {
            StatusRequest::Printer => 1,
            StatusRequest::OfflineCause => 2,
            StatusRequest::RollPaper => 4,
        }
    }

    fn escpos(self) -> RealTimeStatusRequest {
        match self {
            StatusRequest::Printer => RealTimeStatusRequest::Printer,
            StatusRequest::OfflineCause => RealTimeStatusRequest::OfflineCause,
            StatusRequest::RollPaper => RealTimeStatusRequest::RollPaperSensor,
        }
    }

    /// The request's bytes, `DLE EOT n` (hand-encoded, see [`crate::escpos_ext`]).
    pub fn bytes(self) -> [u8; 3] {
        crate::escpos_ext::status_request(self.n())
    }
}

/// What is wrong with a printer that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Problems {
    /// Paper end: the roll is empty.
    pub paper_out: bool,
    /// The cover is open.
    pub cover_open: bool,
    /// An error (cutter jam, head overheated, unrecoverable…).
    pub error: bool,
    /// The printer says it is offline (for one of the reasons above, or while the
    /// feed button is held).
    pub offline: bool,
}

/// Why the status is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnknownReason {
    /// The transport cannot read (a plain file, a one-way connection).
    OneWay,
    /// No answer within the status timeout.
    NoAnswer,
    /// An answer that is not a status byte.
    BadAnswer {
        /// The `n` asked.
        request: u8,
        /// The byte received.
        byte: u8,
    },
    /// The printer could not be reached or the connection failed.
    Unreachable(String),
}

/// A printer's state, as the register shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterStatus {
    /// Online, paper present, cover closed, no error.
    Ready {
        /// The near-end sensor says the roll is running out.
        paper_low: bool,
    },
    /// It answered and cannot print.
    NotReady(Problems),
    /// Not known; never treated as ready.
    Unknown(UnknownReason),
}

impl PrinterStatus {
    /// Decodes the three answers, in the order of [`REQUESTS`].
    pub fn from_answers(printer: u8, offline_cause: u8, roll_paper: u8) -> PrinterStatus {
        let parse = |request: StatusRequest, byte: u8| {
            R::parse(request.escpos(), byte).map_err(|_| {
                PrinterStatus::Unknown(UnknownReason::BadAnswer {
                    request: request.n(),
                    byte,
                })
            })
        };
        let answers = (
            parse(StatusRequest::Printer, printer),
            parse(StatusRequest::OfflineCause, offline_cause),
            parse(StatusRequest::RollPaper, roll_paper),
        );
        let (p, o, r) = match answers {
            (Ok(p), Ok(o), Ok(r)) => (p, o, r),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        };
        let flag = |map: &std::collections::HashMap<R, bool>, key: R| map.get(&key).copied();
        let problems = Problems {
            offline: flag(&p, R::Online) == Some(false),
            cover_open: flag(&o, R::CoverClosed) == Some(false),
            paper_out: flag(&o, R::PrintingStopsDueToPaperEnd) == Some(true)
                || flag(&r, R::RollPaperEndSensorPaperPresent) == Some(false),
            error: flag(&o, R::ErrorOccurred) == Some(true),
        };
        if problems == Problems::default() {
            PrinterStatus::Ready {
                paper_low: flag(&r, R::RollPaperNearEndSensorPaperAdequate) == Some(false),
            }
        } else {
            PrinterStatus::NotReady(problems)
        }
    }

    /// True only for [`PrinterStatus::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, PrinterStatus::Ready { .. })
    }

    /// The cashier's one-line description (the most pressing problem first).
    pub fn message(&self) -> &'static str {
        match self {
            PrinterStatus::Ready { paper_low: false } => msg::READY,
            PrinterStatus::Ready { paper_low: true } => msg::PAPER_LOW,
            PrinterStatus::NotReady(p) if p.cover_open => msg::COVER_OPEN,
            PrinterStatus::NotReady(p) if p.paper_out => msg::PAPER_OUT,
            PrinterStatus::NotReady(p) if p.error => msg::ERROR,
            PrinterStatus::NotReady(_) => msg::OFFLINE,
            PrinterStatus::Unknown(UnknownReason::OneWay) => msg::UNKNOWN_ONE_WAY,
            PrinterStatus::Unknown(UnknownReason::Unreachable(_)) => msg::UNREACHABLE,
            PrinterStatus::Unknown(_) => msg::UNKNOWN_NO_ANSWER,
        }
    }
}

/// Answers a printer would give, for simulators and tests: `(n=1, n=2, n=4)`.
pub fn answers_for(problems: Problems, paper_low: bool) -> (u8, u8, u8) {
    const FIXED: u8 = 0b0001_0010;
    let offline = problems.offline || problems.cover_open || problems.paper_out || problems.error;
    let printer = FIXED | if offline { 0b1000 } else { 0 };
    let cause = FIXED
        | if problems.cover_open { 0b0100 } else { 0 }
        | if problems.paper_out { 0b10_0000 } else { 0 }
        | if problems.error { 0b100_0000 } else { 0 };
    let roll = FIXED
        | if paper_low { 0b1100 } else { 0 }
        | if problems.paper_out { 0b110_0000 } else { 0 };
    (printer, cause, roll)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_dle_eot_n() {
        assert_eq!(StatusRequest::Printer.bytes(), [0x10, 0x04, 1]);
        assert_eq!(StatusRequest::OfflineCause.bytes(), [0x10, 0x04, 2]);
        assert_eq!(StatusRequest::RollPaper.bytes(), [0x10, 0x04, 4]);
    }

    #[test]
    fn answers_decode() {
        let ok = answers_for(Problems::default(), false);
        assert_eq!(ok, (0x12, 0x12, 0x12));
        assert_eq!(
            PrinterStatus::from_answers(ok.0, ok.1, ok.2),
            PrinterStatus::Ready { paper_low: false }
        );
        let low = answers_for(Problems::default(), true);
        assert_eq!(
            PrinterStatus::from_answers(low.0, low.1, low.2).message(),
            "Impresora lista (papel por acabarse)"
        );
        let paper_out = Problems {
            paper_out: true,
            ..Problems::default()
        };
        let (a, b, c) = answers_for(paper_out, false);
        assert_eq!((a, b, c), (0x1A, 0x32, 0x72));
        let status = PrinterStatus::from_answers(a, b, c);
        assert_eq!(
            status,
            PrinterStatus::NotReady(Problems {
                paper_out: true,
                offline: true,
                ..Problems::default()
            })
        );
        assert_eq!(status.message(), "Impresora sin papel");
        let cover = answers_for(
            Problems {
                cover_open: true,
                ..Problems::default()
            },
            false,
        );
        assert_eq!(
            PrinterStatus::from_answers(cover.0, cover.1, cover.2).message(),
            "Tapa de la impresora abierta"
        );
    }

    #[test]
    fn a_byte_that_is_not_a_status_is_unknown_not_ready() {
        let status = PrinterStatus::from_answers(0x12, 0xFF, 0x12);
        assert_eq!(
            status,
            PrinterStatus::Unknown(UnknownReason::BadAnswer {
                request: 2,
                byte: 0xFF
            })
        );
        assert!(!status.is_ready());
        for byte in 0..=255u8 {
            let s = PrinterStatus::from_answers(byte, 0x12, 0x12);
            if byte & 0b1001_0011 != 0b0001_0010 {
                assert!(matches!(s, PrinterStatus::Unknown(_)), "{byte:08b}");
            }
        }
    }
}
