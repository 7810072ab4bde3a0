//! What the commands share: the failure type and its exit codes (the
//! operation errors map onto them), printing a result as text or JSON,
//! opening the register, op ids, staff credentials, the sync engine's
//! settings and printing after a committed operation.
//!
//! Invariant: no command lives here; the exit codes are the ones the crate
//! documentation lists and change only with it.

use std::io::Write;

use caja_node::datadir::DataDir;
use caja_node::devices;
use caja_node::error::{self as op, OpError};
use caja_node::journal::JournalError;
use caja_node::messages;
use caja_node::register::Register;
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::clock::Clock;
use caja_shared::ids::OpId;
use serde::Serialize;

use super::args::{ApproverArg, OpArg};

/// What every command works on: the data directory and the output format.
pub(crate) struct Ctx {
    /// The register's data directory.
    pub(crate) dir: DataDir,
    /// JSON output instead of text.
    pub(crate) json: bool,
}

/// Exit code: the operation was refused; nothing changed.
pub(crate) const EXIT_REFUSED: u8 = 3;

/// Exit code: the data directory is not initialized or unusable.
pub(crate) const EXIT_NOT_READY: u8 = 4;

/// Exit code: the journal's history was changed.
pub(crate) const EXIT_TAMPERED: u8 = 5;

/// Exit code: storage failure.
pub(crate) const EXIT_STORAGE: u8 = 6;

/// Exit code: the hub is unreachable or refused (sync, enroll).
pub(crate) const EXIT_HUB: u8 = 7;

/// A failure with its exit code and a sentence for the person.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: &'static str,
    pub(crate) message: String,
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Failure {
        use op::Failure as F;
        let (code, error) = match &e {
            OpError::Refused(_) => (EXIT_REFUSED, "refused"),
            OpError::Failed(f) => match f {
                F::Journal(JournalError::Broken(_)) => (EXIT_TAMPERED, "journal_broken"),
                F::Journal(JournalError::NotInitialized | JournalError::AlreadyInitialized(_))
                | F::KeyFile(_)
                | F::Config(_) => (EXIT_NOT_READY, "not_ready"),
                F::Db(_) | F::Sql(_) | F::Journal(_) | F::Projection(_) => {
                    (EXIT_STORAGE, "storage")
                }
                F::Receipt(_) | F::ZReport(_) | F::Json(_) => (1, "failed"),
            },
        };
        Failure {
            code,
            error,
            message: messages::error(&e),
        }
    }
}

pub(crate) fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_REFUSED,
        error: "refused",
        message: message.into(),
    }
}

pub(crate) type Node = Register<SystemClock, OsRandom>;

pub(crate) fn os_random() -> Result<OsRandom, Failure> {
    OsRandom::new().map_err(|e| Failure {
        code: 1,
        error: "failed",
        message: format!("Fuente aleatoria del sistema no disponible: {e}."),
    })
}

pub(crate) fn open(dir: &DataDir) -> Result<Node, Failure> {
    Ok(Register::open(dir, SystemClock, os_random()?)?)
}

pub(crate) fn op_id(op: &OpArg) -> Result<OpId, Failure> {
    match op.op {
        Some(id) => Ok(id),
        None => Ok(OpId::new_v7(SystemClock.now_ms(), &mut os_random()?)
            .map_err(|e| refused(e.to_string()))?),
    }
}

/// Prints a result: JSON with `--json`, else the sentence.
pub(crate) fn emit<T: Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let line = if json {
        serde_json::to_string(value).map_err(|e| refused(e.to_string()))?
    } else {
        text(value)
    };
    // Flushed per result: a caller reading our stdout sees each acknowledged
    // operation as soon as it is durable.
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // The reader went away (`caja-node status | head -1`): what was asked
        // is done; nothing more to say, and nowhere to say it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure {
            code: 1,
            error: "failed",
            message: format!("No se pudo escribir la salida: {e}."),
        }),
    }
}

/// What the running node's printer thread reports on the console.
pub(crate) fn print_report(r: &Result<caja_node::print::PrintRun, OpError>, json: bool) {
    match r {
        Ok(run) => match run.first_error() {
            Some(e) => {
                eprintln!("{}", messages::print_loop_error(e));
                for j in &run.jobs {
                    if let Some(d) = &j.drawer {
                        eprintln!("{}", messages::drawer_note(j.kind, j.sale, d));
                    }
                }
            }
            None => {
                let _ = emit(json, run, messages::print_run);
            }
        },
        Err(e) => eprintln!("{}", messages::print_loop_error(&messages::error(e))),
    }
}

pub(crate) fn device_failure(e: &devices::DeviceError) -> Failure {
    let (code, error) = if e.is_refusal() {
        (EXIT_REFUSED, "refused")
    } else {
        (1, "failed")
    };
    Failure {
        code,
        error,
        message: messages::device_error(e),
    }
}

pub(crate) fn scale_settings(node: &Node) -> Result<Option<devices::ScaleSettings>, Failure> {
    Ok(devices::ScaleSettings::from_config(node.config())?)
}

/// After a committed operation: prints the due receipts when a printer is
/// configured. Never fails the command; problems are warnings on stderr.
pub(crate) fn print_after(node: &mut Node, json: bool) {
    let printer = match node.printer_settings() {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => {
            eprintln!("{}", messages::print_warning(&messages::error(&e)));
            return;
        }
    };
    match node.print_pending_on(&printer) {
        Ok(run) => {
            if let Some(e) = run.first_error() {
                eprintln!("{}", messages::print_warning(e));
                for j in &run.jobs {
                    if let Some(d) = &j.drawer {
                        eprintln!("{}", messages::drawer_note(j.kind, j.sale, d));
                    }
                }
            } else if !json && !run.jobs.is_empty() {
                eprintln!("{}", messages::print_run(&run));
            }
        }
        Err(e) => eprintln!("{}", messages::print_warning(&messages::error(&e))),
    }
}

/// A member of staff by name or id, with the PIN typed.
pub(crate) fn credentials(
    node: &Node,
    who: &str,
    pin: String,
) -> Result<caja_node::staff::Credentials, Failure> {
    let staff_id = caja_node::staff::find(node.conn(), who)
        .map_err(|e| Failure::from(OpError::from(e)))?
        .ok_or_else(|| refused(format!("Empleado desconocido en esta caja: {who}.")))?;
    Ok(caja_node::staff::Credentials { staff_id, pin })
}

pub(crate) fn approver_credentials(
    node: &Node,
    a: ApproverArg,
) -> Result<Option<caja_node::staff::Credentials>, Failure> {
    match (a.approver, a.approver_pin) {
        (Some(who), Some(pin)) => credentials(node, &who, pin).map(Some),
        (None, None) => Ok(None),
        _ => Err(refused("Indique --approver y --approver-pin juntos.")),
    }
}

pub(crate) fn hub_url(dir: &DataDir) -> Result<String, Failure> {
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    cfg.hub_url.ok_or_else(|| Failure {
        code: EXIT_NOT_READY,
        error: "not_ready",
        message: "No hay oficina central configurada: `caja-node enroll` o hub_url en config.toml."
            .into(),
    })
}

pub(crate) fn sync_engine(
    dir: &DataDir,
) -> Result<caja_node::sync::engine::SyncEngine<SystemClock, OsRandom>, Failure> {
    let url = hub_url(dir)?;
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    let settings = caja_node::sync::engine::SyncSettings {
        max_hlc_drift_ms: cfg.max_hlc_drift_ms,
        ..Default::default()
    };
    caja_node::sync::engine::SyncEngine::open(dir, &url, SystemClock, os_random()?, settings)
        .map_err(sync_failure)
}

pub(crate) fn sync_failure(e: caja_node::sync::engine::SyncError) -> Failure {
    use caja_node::sync::client::HubError;
    use caja_node::sync::engine::SyncError;
    let (code, error) = match &e {
        SyncError::Hub(HubError::Config { .. }) | SyncError::Config(_) => {
            (EXIT_NOT_READY, "config")
        }
        SyncError::Hub(HubError::Untrusted { .. }) => (EXIT_HUB, "hub_untrusted"),
        SyncError::Hub(_) => (EXIT_HUB, "hub"),
        SyncError::Quarantined(_) => (EXIT_HUB, "quarantined"),
        SyncError::BadHubData(_) => (EXIT_HUB, "bad_hub_data"),
        SyncError::HubLogRewritten(_) => (EXIT_HUB, "hub_log_rewritten"),
        SyncError::Journal(JournalError::Broken(_)) => (EXIT_TAMPERED, "journal_broken"),
        SyncError::Journal(JournalError::NotInitialized) | SyncError::KeyFile(_) => {
            (EXIT_NOT_READY, "not_ready")
        }
        _ => (EXIT_STORAGE, "storage"),
    };
    let message =
        messages::hub::trust_failure(&e).unwrap_or_else(|| format!("No se pudo sincronizar: {e}."));
    Failure {
        code,
        error,
        message,
    }
}
