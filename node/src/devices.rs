//! The register's devices beyond the print queue ([`crate::print`]): the scale
//! wired into selling, the running node's printer loop, and the virtual scale.
//!
//! - [`weigh_line`] turns "sell this weighed item" into a sale line whose
//!   quantity is the scale's certified weight (stable, positive, within
//!   capacity — [`caja_hardware::scale::certify`]). It runs *before* the sale's
//!   transaction: a scale problem (motion, overload, under zero, no answer) is a
//!   typed [`DeviceError`] and no sale is attempted, so nothing changes.
//! - [`scale_report`] is one poll for `caja-node scale read` and `status`;
//!   [`printer_report`] one status query of the printer for `status`.
//! - [`print_loop`] is the printer thread of `caja-node run`: it prints due jobs
//!   on its own database connection, so sales and sync never wait for a
//!   printer; an unreachable printer backs off through the queue's retry policy
//!   (each job's `next_attempt_ms`), and the loop itself only sleeps.
//! - [`run_virtual_scale`] serves a simulated scale on a pseudo-terminal whose
//!   weight is read from a file, for demos and trials without hardware.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use caja_hardware::device::ScaleAddress;
use caja_hardware::scale::reader::ScaleError;
use caja_hardware::scale::sim::{Answer, SimError, SimScale};
use caja_hardware::scale::{certify, Protocol, Reading};
use caja_shared::clock::Clock;
use caja_shared::entropy::RandomSource;
use caja_shared::money::QtyMilli;
use rusqlite::Connection;
use serde::Serialize;

use crate::config::NodeConfig;
use crate::error::{Failure, OpError};
use crate::print::PrinterSettings;
use crate::register::Register;
use crate::sale::LineRequest;

/// How often the running node looks for due print jobs.
pub const PRINT_POLL: Duration = Duration::from_secs(1);
/// Longest pause of the printer loop after a database error.
pub const PRINT_LOOP_MAX_PAUSE: Duration = Duration::from_secs(30);
/// How often the virtual scale rereads its weight file.
pub const VIRTUAL_SCALE_REFRESH: Duration = Duration::from_millis(50);

/// Why a device operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No `scale` in the configuration.
    #[error("no scale is configured (key `scale` in config.toml)")]
    NoScale,
    /// The scale gave no weight that may be sold.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// The item is sold by the piece: it is not weighed.
    #[error("{0} is not sold by weight")]
    NotSoldByWeight(String),
    /// No item with that SKU or barcode.
    #[error("unknown product {0}")]
    UnknownProduct(String),
    /// The register refused (configuration, database).
    #[error(transparent)]
    Op(#[from] OpError),
}

impl DeviceError {
    /// Whether the cause is the cashier's situation (scale, item), not the
    /// machine: the operation is refused and nothing changed.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, DeviceError::Op(e) if !e.is_validation())
    }
}

impl From<rusqlite::Error> for DeviceError {
    fn from(e: rusqlite::Error) -> Self {
        DeviceError::Op(OpError::Failed(Failure::Sql(e)))
    }
}

/// The configured scale and how long a sale waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSettings {
    /// Where it is.
    pub address: ScaleAddress,
    /// How long to wait for a stable weight.
    pub timeout: Duration,
}

impl ScaleSettings {
    /// The configured scale, if any.
    pub fn from_config(cfg: &NodeConfig) -> Result<Option<ScaleSettings>, OpError> {
        Ok(cfg.scale_address()?.map(|address| ScaleSettings {
            address,
            timeout: Duration::from_millis(cfg.scale_timeout_ms),
        }))
    }
}

/// Whether `code` (SKU or barcode) is sold by weight.
fn sold_by_weight(conn: &Connection, code: &str) -> Result<bool, DeviceError> {
    let sold_by = crate::queries::sold_by(conn, code)?;
    match sold_by {
        None => Err(DeviceError::UnknownProduct(code.to_owned())),
        Some(s) => Ok(s == "weight"),
    }
}

/// Reads a certified weight from the scale (waiting up to its timeout for the
/// weight to settle).
pub fn weigh(scale: &ScaleSettings) -> Result<QtyMilli, DeviceError> {
    let mut reader = scale.address.open()?;
    let grams = reader.read_stable(scale.timeout)?;
    tracing::info!(grams = grams.milli(), scale = %scale.address.path, "weighed");
    Ok(grams)
}

/// A sale line for a weighed item: checks that `code` is sold by weight, then
/// reads its certified weight. Call before the sale; on error sell nothing.
pub fn weigh_line(
    conn: &Connection,
    code: &str,
    scale: Option<&ScaleSettings>,
) -> Result<LineRequest, DeviceError> {
    if !sold_by_weight(conn, code)? {
        return Err(DeviceError::NotSoldByWeight(code.to_owned()));
    }
    let scale = scale.ok_or(DeviceError::NoScale)?;
    let grams = weigh(scale)?;
    Ok(LineRequest {
        code: code.to_owned(),
        qty_milli: grams.milli(),
        discount: None,
        unit_price: None,
    })
}

/// One look at the scale, for `scale read` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScaleReport {
    /// The configured address.
    pub address: String,
    /// The weight shown, in grams, when the scale sent one.
    pub grams: Option<i64>,
    /// Whether that weight may be sold now.
    pub sellable: bool,
    /// Why not (the cashier's sentence), when it may not.
    pub problem: Option<String>,
    /// For a Toledo scale that sent no weight: whether the line answered the
    /// echo probe (the scale is there but not answering weight requests).
    pub echo: Option<bool>,
}

/// Polls the scale once (no waiting for it to settle).
pub fn scale_report(scale: &ScaleSettings) -> ScaleReport {
    let address = format!("{}://{}", scale.address.protocol.name(), scale.address.path);
    let mut echo = None;
    let poll = scale.address.open().and_then(|mut reader| {
        let polled = reader.poll().map(|r| (r, reader.config().capacity));
        if scale.address.protocol == Protocol::Toledo8217
            && matches!(
                polled,
                Err(ScaleError::NoAnswer { .. } | ScaleError::Garbled(_))
            )
        {
            echo = Some(reader.probe().is_ok());
        }
        polled
    });
    match poll {
        Ok((reading, capacity)) => {
            let grams = match reading {
                Reading::Weight { grams, .. } => Some(grams.milli()),
                Reading::Status(_) => None,
            };
            match certify(&reading, capacity) {
                Ok(_) => ScaleReport {
                    address,
                    grams,
                    sellable: true,
                    problem: None,
                    echo,
                },
                Err(w) => ScaleReport {
                    address,
                    grams,
                    sellable: false,
                    problem: Some(w.message().to_owned()),
                    echo,
                },
            }
        }
        Err(e) => ScaleReport {
            address,
            grams: None,
            sellable: false,
            problem: Some(match echo {
                Some(true) => format!(
                    "{}; {}",
                    e.message(),
                    caja_hardware::messages::scale::ECHO_ONLY
                ),
                _ => e.message().to_owned(),
            }),
            echo,
        },
    }
}

/// One look at the printer's status bits, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrinterReport {
    /// Ready to print (it answered, no problem).
    pub ready: bool,
    /// The near-end sensor says the roll is running out.
    pub paper_low: bool,
    /// Paper end.
    pub paper_out: bool,
    /// Cover open.
    pub cover_open: bool,
    /// Another error (cutter, head).
    pub error: bool,
    /// The status could not be read (one-way connection, no answer,
    /// unreachable): never taken as ready.
    pub unknown: bool,
    /// The cashier's sentences, in order.
    pub lines: Vec<String>,
}

/// Asks the printer its real-time status (`DLE EOT 1/2/4`) once, within the
/// printer's status timeout. A file or folder printer is not opened (opening
/// one would start a job): its status is unknown.
pub fn printer_report(printer: &PrinterSettings) -> PrinterReport {
    use caja_hardware::device::PrinterAddress;
    use caja_hardware::messages::printer as msg;
    use caja_hardware::status::{PrinterStatus, UnknownReason};
    let status = match &printer.address {
        PrinterAddress::File { .. } | PrinterAddress::Folder { .. } => {
            PrinterStatus::Unknown(UnknownReason::OneWay)
        }
        address => match address.open_with(printer.connect_timeout, printer.columns) {
            Ok(t) => caja_hardware::printer::ReceiptPrinter::new(t, printer.config).status(),
            Err(e) => PrinterStatus::Unknown(UnknownReason::Unreachable(e.to_string())),
        },
    };
    let mut r = PrinterReport {
        ready: false,
        paper_low: false,
        paper_out: false,
        cover_open: false,
        error: false,
        unknown: false,
        lines: Vec::new(),
    };
    match status {
        PrinterStatus::Ready { paper_low } => {
            r.ready = true;
            r.paper_low = paper_low;
            r.lines.push(
                if paper_low {
                    msg::PAPER_LOW
                } else {
                    msg::READY
                }
                .to_owned(),
            );
        }
        PrinterStatus::NotReady(p) => {
            r.paper_out = p.paper_out;
            r.cover_open = p.cover_open;
            r.error = p.error;
            for (on, line) in [
                (p.cover_open, msg::COVER_OPEN),
                (p.paper_out, msg::PAPER_OUT),
                (p.error, msg::ERROR),
            ] {
                if on {
                    r.lines.push(line.to_owned());
                }
            }
            if r.lines.is_empty() {
                r.lines.push(msg::OFFLINE.to_owned());
            }
        }
        unknown @ PrinterStatus::Unknown(_) => {
            r.unknown = true;
            r.lines.push(unknown.message().to_owned());
        }
    }
    r
}

/// The printer thread of the running node: until `stop`, prints the due jobs
/// on the configured printer every `poll`. Each job's backoff lives in the
/// queue, so an unreachable printer is retried at the queue's pace; database
/// errors pause the loop with doubling pauses up to [`PRINT_LOOP_MAX_PAUSE`].
/// `on_run` sees every run that did something (for the console).
pub fn print_loop<C: Clock, R: RandomSource>(
    register: &mut Register<C, R>,
    stop: &AtomicBool,
    poll: Duration,
    mut on_run: impl FnMut(&Result<crate::print::PrintRun, OpError>),
) {
    let mut pause = poll;
    while !stop.load(Ordering::Relaxed) {
        let result = match register.printer_settings() {
            Ok(Some(printer)) => register.print_pending_on(&printer),
            Ok(None) => Ok(crate::print::PrintRun::default()),
            Err(e) => Err(e),
        };
        match &result {
            Ok(run) => {
                pause = poll;
                if !run.jobs.is_empty() || run.recovered > 0 {
                    tracing::info!(
                        printed = run.printed(),
                        attempted = run.jobs.len(),
                        "print run"
                    );
                    on_run(&result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "print loop");
                on_run(&result);
                pause = (pause * 2).min(PRINT_LOOP_MAX_PAUSE);
            }
        }
        sleep_unless_stopped(stop, pause);
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step.min(total - slept));
        slept += step;
    }
}

/// A running virtual scale.
#[derive(Debug)]
pub struct VirtualScale {
    sim: SimScale,
    weight_file: PathBuf,
    link: Option<PathBuf>,
}

impl VirtualScale {
    /// Starts a simulated `protocol` scale on a new pseudo-terminal. Its weight
    /// is whatever `weight_file` says ([`Answer::from_text`]; a missing file is
    /// an empty scale). With `link`, a symbolic link to the pty is (re)made
    /// there, so `config.toml` can name a stable path.
    pub fn start(
        protocol: Protocol,
        weight_file: &Path,
        link: Option<&Path>,
    ) -> Result<VirtualScale, SimError> {
        let sim = SimScale::start(protocol, read_answer(weight_file))?;
        if let Some(link) = link {
            let _ = std::fs::remove_file(link);
            std::os::unix::fs::symlink(sim.path(), link)
                .map_err(|e| SimError::new(format!("link {}: {e}", link.display())))?;
        }
        Ok(VirtualScale {
            sim,
            weight_file: weight_file.to_path_buf(),
            link: link.map(Path::to_path_buf),
        })
    }

    /// The port to configure (the pty's slave side).
    pub fn path(&self) -> &str {
        self.sim.path()
    }

    /// Rereads the weight file.
    pub fn refresh(&self) {
        self.sim.set(read_answer(&self.weight_file));
    }
}

impl Drop for VirtualScale {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// The answer the weight file asks for; unreadable text answers nothing (the
/// register then says the scale does not answer).
fn read_answer(weight_file: &Path) -> Answer {
    match std::fs::read_to_string(weight_file) {
        Ok(text) => Answer::from_text(&text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "virtual scale weight file");
            Answer::Silent
        }),
        Err(_) => Answer::stable(0),
    }
}

/// Serves `scale` until `stop`, rereading its weight file.
pub fn run_virtual_scale(scale: &VirtualScale, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        scale.refresh();
        std::thread::sleep(VIRTUAL_SCALE_REFRESH);
    }
}
