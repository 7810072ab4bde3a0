//! A receipt printer on a [`Transport`]: status, delivery of a job, drawer kick.
//!
//! [`ReceiptPrinter::deliver`] asks the status first when the transport can read:
//! a printer that answers "paper out" or "cover open" gets nothing (the job stays
//! queued and nothing can come out half-printed); a printer whose status is
//! unknown is printed to anyway (many printers cannot answer), but the status is
//! never reported as ready. ESC/POS has no acknowledgement per job, so a job the
//! printer accepted is taken as printed.
//!
//! **Architecture invariant: bounded time.** Every call returns within its
//! configured timeouts ([`PrinterConfig`]); nothing here retries — retries belong
//! to the print queue ([`crate::queue`]), which persists them.

use std::time::Duration;

use crate::escpos_ext::{drawer_kick, drawer_pulse_realtime, DrawerPin, DrawerPulse};
use crate::queue::FailReason;
use crate::status::{PrinterStatus, Problems, UnknownReason, REQUESTS};
use crate::transport::{Transport, TransportError};

/// Timeouts and checks of a printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterConfig {
    /// Deadline for writing one whole job.
    pub write_timeout: Duration,
    /// How long to wait for each status answer.
    pub status_timeout: Duration,
    /// Ask the status before sending a job (when the transport can read).
    pub check_before_print: bool,
}

impl Default for PrinterConfig {
    /// 10 s per job (a long receipt is a few KiB; a printer takes that in well
    /// under a second), 500 ms per status answer, status checked before printing.
    fn default() -> Self {
        PrinterConfig {
            write_timeout: Duration::from_secs(10),
            status_timeout: Duration::from_millis(500),
            check_before_print: true,
        }
    }
}

/// Why a job was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The printer answered that it cannot print; nothing was sent.
    #[error("printer not ready: {problems:?}")]
    NotReady {
        /// What it reported.
        problems: Problems,
    },
    /// The transport failed (connection, timeout, closed), maybe mid-job.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl DeliveryError {
    /// How the print queue should record this failure.
    pub fn fail_reason(&self) -> FailReason {
        match self {
            DeliveryError::NotReady { problems } => FailReason::NotReady {
                detail: PrinterStatus::NotReady(*problems).message().to_string(),
            },
            DeliveryError::Transport(e) => FailReason::Transport {
                bytes_sent: e.bytes_sent(),
                detail: e.to_string(),
            },
        }
    }
}

/// A receipt printer on a transport.
#[derive(Debug)]
pub struct ReceiptPrinter<T: Transport> {
    transport: T,
    config: PrinterConfig,
}

impl<T: Transport> ReceiptPrinter<T> {
    /// A printer on an open transport.
    pub fn new(transport: T, config: PrinterConfig) -> ReceiptPrinter<T> {
        ReceiptPrinter { transport, config }
    }

    /// The transport, back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// Asks `DLE EOT 1, 2, 4` and decodes the answers. Unknown (never ready) when
    /// the transport cannot read, the printer does not answer in time, answers
    /// something else, or the connection fails.
    pub fn status(&mut self) -> PrinterStatus {
        if !self.transport.is_bidirectional() {
            return PrinterStatus::Unknown(UnknownReason::OneWay);
        }
        match self.query() {
            Ok(Some([a, b, c])) => PrinterStatus::from_answers(a, b, c),
            Ok(None) => PrinterStatus::Unknown(UnknownReason::NoAnswer),
            Err(e) => PrinterStatus::Unknown(UnknownReason::Unreachable(e.to_string())),
        }
    }

    fn query(&mut self) -> Result<Option<[u8; 3]>, TransportError> {
        self.transport.discard_input()?;
        let mut answers = [0u8; 3];
        for (answer, request) in answers.iter_mut().zip(REQUESTS) {
            self.transport
                .write_all(&request.bytes(), self.config.status_timeout)?;
            match self.transport.read_byte(self.config.status_timeout)? {
                Some(b) => *answer = b,
                None => return Ok(None),
            }
        }
        Ok(Some(answers))
    }

    /// Sends one job. With [`PrinterConfig::check_before_print`] and a readable
    /// transport, a printer that reports a problem gets nothing.
    pub fn deliver(&mut self, job: &[u8]) -> Result<(), DeliveryError> {
        if self.config.check_before_print && self.transport.is_bidirectional() {
            if let PrinterStatus::NotReady(problems) = self.status() {
                return Err(DeliveryError::NotReady { problems });
            }
        }
        self.transport.write_all(job, self.config.write_timeout)?;
        Ok(())
    }

    /// Pulses the cash drawer (`ESC p m t1 t2`) on its own (a "open drawer"
    /// key). The node's print queue instead puts the kick at the head of a cash
    /// sale's original receipt job, which prints once; copies carry none.
    pub fn open_drawer(&mut self, pulse: DrawerPulse) -> Result<(), TransportError> {
        self.transport
            .write_all(&drawer_kick(pulse), self.config.write_timeout)
    }

    /// Pulses the drawer with the real-time command (`DLE DC4 1 m t`), which a
    /// printer executes even while offline for paper end or an open cover: the
    /// drawer of a cash sale opens although its receipt cannot print yet.
    pub fn pulse_drawer_now(&mut self, pulse: DrawerPulse) -> Result<(), TransportError> {
        let t = u8::try_from(pulse.on_ms.div_ceil(100)).unwrap_or(u8::MAX);
        let pin: DrawerPin = pulse.pin;
        self.transport
            .write_all(&drawer_pulse_realtime(pin, t), self.config.write_timeout)
    }

    /// Sends raw bytes (tests, diagnostics).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.transport.write_all(bytes, self.config.write_timeout)
    }
}
