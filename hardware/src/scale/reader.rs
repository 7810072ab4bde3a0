//! Reading a scale on a serial port: poll, parse, certify, with deadlines.
//!
//! [`ScaleReader::read_stable`] polls the scale (one request, one answer within
//! [`ScaleConfig::answer_timeout`]) every [`ScaleConfig::poll_interval`] until it
//! reports a weight that passes [`super::certify`], or until the caller's
//! deadline; then it returns the last problem seen (motion, overload, under zero,
//! garbled data, no answer) as a typed [`ScaleError`] with a Spanish message for
//! the cashier. A cable pulled out is [`ScaleError::Disconnected`] at once, not a
//! timeout.
//!
//! The port's line settings found before opening are put back when the reader
//! is dropped (tested on a pty), so the register leaves a shared serial line as
//! it found it. [`ScaleReader::probe`] asks a Toledo scale to echo a text,
//! recognising the scale without asking for a weight.
//!
//! **Architecture invariant: bounded.** Each poll reads at most
//! [`MAX_BYTES_PER_POLL`] bytes and ends by its own deadline; `read_stable` makes
//! at most [`MAX_POLLS`] polls and returns by the caller's deadline (plus one
//! write's scheduling slack).

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use caja_shared::money::QtyMilli;
use serialport::{ClearBuffer, DataBits, Parity, SerialPort, StopBits};

use super::{cas, certify, toledo, Frame, FrameError, Protocol, Reading, WeighError};
use crate::messages::scale as msg;

/// Most bytes read while waiting for one answer (a scale that streams noise).
pub const MAX_BYTES_PER_POLL: usize = 4096;
/// Most polls of one [`ScaleReader::read_stable`].
pub const MAX_POLLS: usize = 1000;
/// The text sent with the Toledo echo probe.
pub const PROBE_TEXT: &[u8] = b"caja";

/// How a scale is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleConfig {
    /// The protocol.
    pub protocol: Protocol,
    /// The scale's capacity (its "Max"): heavier is an overload.
    pub capacity: QtyMilli,
    /// How long to wait for each answer.
    pub answer_timeout: Duration,
    /// Pause between polls while the weight settles.
    pub poll_interval: Duration,
}

impl ScaleConfig {
    /// Defaults for a protocol: 15 kg capacity, 500 ms per answer, 100 ms between
    /// polls.
    pub fn new(protocol: Protocol) -> ScaleConfig {
        ScaleConfig {
            protocol,
            capacity: QtyMilli(15_000),
            answer_timeout: Duration::from_millis(500),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Why no weight could be read.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The port could not be opened.
    #[error("cannot open scale port {path}: {detail}")]
    Open {
        /// The port.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// The scale answered with a weight that may not be sold.
    #[error("scale: {0}")]
    Rejected(#[from] WeighError),
    /// The scale is not set to kilograms.
    #[error("scale reports unit {0:?}, kilograms required")]
    Unit(String),
    /// No answer in time.
    #[error("scale did not answer within {timeout_ms} ms")]
    NoAnswer {
        /// How long it was given.
        timeout_ms: u64,
    },
    /// Answers that cannot be read (noise, wrong settings, bad checksum).
    #[error("unreadable answer from the scale: {0}")]
    Garbled(FrameError),
    /// The port went away (cable or adapter pulled out).
    #[error("scale disconnected: {0}")]
    Disconnected(String),
}

impl ScaleError {
    /// The cashier's message.
    pub fn message(&self) -> &'static str {
        match self {
            ScaleError::Open { .. } => msg::CANNOT_OPEN,
            ScaleError::Rejected(w) => w.message(),
            ScaleError::Unit(_) => msg::UNIT,
            ScaleError::NoAnswer { .. } => msg::NO_ANSWER,
            ScaleError::Garbled(_) => msg::GARBLED,
            ScaleError::Disconnected(_) => msg::DISCONNECTED,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Either protocol's framer.
#[derive(Debug)]
enum AnyFramer {
    Toledo(toledo::Framer),
    Cas(cas::Framer),
}

impl AnyFramer {
    fn new(protocol: Protocol) -> AnyFramer {
        match protocol {
            Protocol::Toledo8217 => AnyFramer::Toledo(toledo::Framer::new()),
            Protocol::CasPd2 => AnyFramer::Cas(cas::Framer::new()),
        }
    }

    fn push(&mut self, byte: u8) -> Option<Result<Frame, FrameError>> {
        match self {
            AnyFramer::Toledo(f) => f.push(byte),
            AnyFramer::Cas(f) => f.push(byte),
        }
    }
}

/// A scale on a serial port.
pub struct ScaleReader {
    port: Box<dyn SerialPort>,
    name: String,
    config: ScaleConfig,
    restore: Option<LineRestore>,
}

/// The line settings found on the port before it was opened, put back when the
/// reader is dropped: another program on the same port (a label printer's
/// driver, a console) finds the line as it left it.
struct LineRestore {
    file: std::fs::File,
    saved: nix::sys::termios::Termios,
}

impl LineRestore {
    /// Reads the port's settings; `None` when the path is not a terminal.
    fn capture(path: &str) -> Option<LineRestore> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        let saved = nix::sys::termios::tcgetattr(file.as_raw_fd()).ok()?;
        Some(LineRestore { file, saved })
    }

    fn put_back(&self) {
        use std::os::unix::io::AsRawFd;
        // Best effort: a port that went away has no settings to restore.
        let _ = nix::sys::termios::tcsetattr(
            self.file.as_raw_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

impl Drop for ScaleReader {
    fn drop(&mut self) {
        if let Some(r) = &self.restore {
            r.put_back();
        }
    }
}

impl std::fmt::Debug for ScaleReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaleReader")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ScaleReader {
    /// Opens the scale's port with the protocol's line settings (`baud` overrides
    /// the speed).
    pub fn open(
        path: &str,
        baud: Option<u32>,
        config: ScaleConfig,
    ) -> Result<ScaleReader, ScaleError> {
        let line = config.protocol.serial_settings();
        // Before the port is opened (it is then held exclusively).
        let restore = LineRestore::capture(path);
        let port = serialport::new(path, baud.unwrap_or(line.baud))
            .data_bits(if line.data_bits == 7 {
                DataBits::Seven
            } else {
                DataBits::Eight
            })
            .parity(if line.even_parity {
                Parity::Even
            } else {
                Parity::None
            })
            .stop_bits(StopBits::One)
            .timeout(config.answer_timeout)
            .open()
            .map_err(|e| ScaleError::Open {
                path: path.to_string(),
                detail: e.to_string(),
            })?;
        Ok(ScaleReader {
            port,
            name: path.to_string(),
            config,
            restore,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ScaleConfig {
        &self.config
    }

    /// One request and its answer, waiting at most
    /// [`ScaleConfig::answer_timeout`] for each answer.
    pub fn poll(&mut self) -> Result<Reading, ScaleError> {
        self.poll_within(self.config.answer_timeout)
    }

    fn poll_within(&mut self, timeout: Duration) -> Result<Reading, ScaleError> {
        // Bytes left from an earlier exchange must not be taken for this answer.
        self.port
            .clear(ClearBuffer::Input)
            .map_err(|e| ScaleError::Disconnected(e.to_string()))?;
        let mut framer = AnyFramer::new(self.config.protocol);
        match self.config.protocol {
            Protocol::Toledo8217 => {
                self.send(&[toledo::REQUEST], timeout)?;
                self.answer(&mut framer, timeout)
            }
            Protocol::CasPd2 => {
                self.send(&[cas::ENQ], timeout)?;
                match self.next_frame(&mut framer, timeout)? {
                    Frame::Ack => {}
                    Frame::Nak => return Err(ScaleError::Rejected(WeighError::Motion)),
                    // A scale set to send without the handshake.
                    Frame::Reading(r) => return Ok(r),
                }
                self.send(&[cas::DC1], timeout)?;
                self.answer(&mut framer, timeout)
            }
        }
    }

    fn send(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), ScaleError> {
        self.port
            .set_timeout(timeout)
            .map_err(|e| ScaleError::Disconnected(e.to_string()))?;
        match self.port.write_all(bytes).and_then(|()| self.port.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(ScaleError::NoAnswer {
                timeout_ms: millis(timeout),
            }),
            Err(e) => Err(ScaleError::Disconnected(e.to_string())),
        }
    }

    fn answer(&mut self, framer: &mut AnyFramer, timeout: Duration) -> Result<Reading, ScaleError> {
        match self.next_frame(framer, timeout)? {
            Frame::Reading(r) => Ok(r),
            Frame::Ack | Frame::Nak => Err(ScaleError::Garbled(FrameError::Malformed(
                "handshake byte where a weight was expected",
            ))),
        }
    }

    /// Reads until the framer yields something or the answer deadline passes.
    fn next_frame(
        &mut self,
        framer: &mut AnyFramer,
        timeout: Duration,
    ) -> Result<Frame, ScaleError> {
        let deadline = Instant::now() + timeout;
        let mut read = 0;
        let mut buf = [0u8; 64];
        let mut pending: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
        loop {
            while let Some(b) = pending.pop_front() {
                if let Some(result) = framer.push(b) {
                    return match result {
                        Ok(frame) => Ok(frame),
                        Err(FrameError::UnsupportedUnit(u)) => Err(ScaleError::Unit(u)),
                        Err(e) => Err(ScaleError::Garbled(e)),
                    };
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || read >= MAX_BYTES_PER_POLL {
                return Err(ScaleError::NoAnswer {
                    timeout_ms: millis(timeout),
                });
            }
            self.port
                .set_timeout(remaining)
                .map_err(|e| ScaleError::Disconnected(e.to_string()))?;
            match self.port.read(&mut buf) {
                Ok(0) => {
                    return Err(ScaleError::Disconnected("end of file".into()));
                }
                Ok(n) => {
                    read += n;
                    pending.extend(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(ScaleError::NoAnswer {
                        timeout_ms: millis(timeout),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ScaleError::Disconnected(e.to_string())),
            }
        }
    }

    /// Probes the line: for Toledo the echo command (`E` and a short text; the
    /// scale answers `STX E CR` and echoes the text; `F` ends the echo), the way
    /// drivers recognise an 8217 scale without asking for a weight; for CAS one
    /// poll. `Ok` means a scale of this protocol answers on this line.
    pub fn probe(&mut self) -> Result<(), ScaleError> {
        let timeout = self.config.answer_timeout;
        if self.config.protocol != Protocol::Toledo8217 {
            return self.poll_within(timeout).map(|_| ());
        }
        self.port
            .clear(ClearBuffer::Input)
            .map_err(|e| ScaleError::Disconnected(e.to_string()))?;
        let mut request = vec![toledo::ECHO];
        request.extend_from_slice(PROBE_TEXT);
        self.send(&request, timeout)?;
        let mut expected = toledo::ECHO_ACK.to_vec();
        expected.extend_from_slice(PROBE_TEXT);
        let got = self.read_bytes(expected.len(), timeout);
        // Leave echo mode whatever came back, so the next `W` is a request.
        let ended = self.send(&[toledo::ECHO_END], timeout);
        let got = got?;
        ended?;
        if got != expected {
            return Err(ScaleError::Garbled(FrameError::Malformed(
                "the echo does not match the probe",
            )));
        }
        Ok(())
    }

    /// Reads exactly `n` bytes (7-bit) by `timeout`.
    fn read_bytes(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, ScaleError> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        let mut buf = [0u8; 64];
        while got.len() < n {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ScaleError::NoAnswer {
                    timeout_ms: millis(timeout),
                });
            }
            self.port
                .set_timeout(remaining)
                .map_err(|e| ScaleError::Disconnected(e.to_string()))?;
            let want = (n - got.len()).min(buf.len());
            match self.port.read(&mut buf[..want]) {
                Ok(0) => return Err(ScaleError::Disconnected("end of file".into())),
                Ok(k) => got.extend(buf[..k].iter().map(|b| b & 0x7F)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Err(ScaleError::NoAnswer {
                        timeout_ms: millis(timeout),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ScaleError::Disconnected(e.to_string())),
            }
        }
        Ok(got)
    }

    /// Polls until the scale reports a weight that may be sold, or `timeout`
    /// passes; then the last problem seen. Disconnection and a wrong unit end
    /// the wait at once. The last poll is shortened to end by the deadline; a
    /// silence in that shortened window does not replace what an earlier poll
    /// reported.
    pub fn read_stable(&mut self, timeout: Duration) -> Result<QtyMilli, ScaleError> {
        let deadline = Instant::now() + timeout;
        let mut last = ScaleError::NoAnswer {
            timeout_ms: millis(timeout),
        };
        for poll in 0..MAX_POLLS {
            let first = poll == 0;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let window = self.config.answer_timeout.min(remaining);
            match self.poll_within(window) {
                Ok(reading) => match certify(&reading, self.config.capacity) {
                    Ok(grams) => return Ok(grams),
                    Err(problem) => last = ScaleError::Rejected(problem),
                },
                Err(
                    e @ (ScaleError::Disconnected(_)
                    | ScaleError::Unit(_)
                    | ScaleError::Open { .. }),
                ) => return Err(e),
                Err(e @ ScaleError::NoAnswer { .. }) => {
                    if window == self.config.answer_timeout || first {
                        last = e;
                    }
                }
                Err(e) => last = e,
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            thread::sleep(self.config.poll_interval.min(remaining));
        }
        Err(last)
    }
}
