//! The demo's devices: a simulated Toledo scale on a real pseudo-terminal that
//! a register weighs cheese on (and refuses a moving weight), and a folder
//! printer per register that receives every queued receipt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use caja_hardware::decode::{decode, Command};
use caja_hardware::device::{PrinterAddress, ScaleAddress};
use caja_hardware::scale::sim::{Answer, SimScale};
use caja_hardware::scale::Protocol;
use caja_node::devices::{self, DeviceError, ScaleSettings};
use caja_node::journal::Journal;
use caja_node::print::PrinterSettings;
use caja_node::sale::{PaymentRequest, SaleRequest};
use caja_shared::ids::OpId;
use caja_shared::kind::PaymentMethod;

use crate::cluster::Till;

/// A failed device step.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeviceDemoError(pub String);

fn fail<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> DeviceDemoError + '_ {
    move |e| DeviceDemoError(format!("{what}: {e}"))
}

/// The weighed item of the demo (queso de freír, sold by weight).
pub const CHEESE: &str = "2000000000017";

/// Weighs cheese on a simulated scale: first while it still moves (the sale is
/// refused and the register's journal does not move), then stable at 1.250 kg
/// (sold for cash). Returns the lines to print.
pub fn weighed_sale(till: &mut Till, op: OpId) -> Result<Vec<String>, DeviceDemoError> {
    let sim =
        SimScale::start(Protocol::Toledo8217, Answer::moving(1_250)).map_err(fail("scale"))?;
    let scale = ScaleSettings {
        address: ScaleAddress {
            protocol: Protocol::Toledo8217,
            path: sim.path().to_owned(),
            baud: None,
            capacity: None,
        },
        timeout: Duration::from_millis(400),
    };
    let mut out = vec![format!(
        "{}: a Toledo scale (simulated, on the pseudo-terminal {}) is wired to the register",
        till.name,
        sim.path()
    )];
    let head = |t: &Till| Journal::head(t.register.conn()).map(|h| h.seq);
    let before = head(till).map_err(fail("head"))?;
    match devices::weigh_line(till.register.conn(), CHEESE, Some(&scale)) {
        Err(e @ DeviceError::Scale(_)) => out.push(format!(
            "  cheese still swinging on the scale: «{}» (journal stays at #{before})",
            caja_node::messages::device_error(&e)
        )),
        other => {
            return Err(DeviceDemoError(format!(
                "a moving weight must be refused, got {other:?}"
            )))
        }
    }
    if head(till).map_err(fail("head"))? != before {
        return Err(DeviceDemoError(
            "a refused weighing changed the journal".into(),
        ));
    }
    sim.set(Answer::stable(1_250));
    let line =
        devices::weigh_line(till.register.conn(), CHEESE, Some(&scale)).map_err(fail("weigh"))?;
    let grams = line.qty_milli;
    let r = till
        .register
        .sell(
            op,
            &SaleRequest {
                lines: vec![line],
                payments: vec![PaymentRequest {
                    method: PaymentMethod::Cash,
                    amount: 50_000,
                    reference: None,
                }],
                discount: None,
                customer: None,
            },
        )
        .map_err(fail("weighed sale"))?;
    out.push(format!(
        "  stable at {}: sold for {} (cash), event #{}",
        caja_node::messages::weight(grams),
        caja_node::messages::rd(r.total),
        r.seq
    ));
    Ok(out)
}

/// What one register's folder printer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// The folder.
    pub folder: PathBuf,
    /// Receipts printed (one `.txt` and one `.bin` each).
    pub receipts: usize,
    /// Receipts that opened the cash drawer.
    pub drawer_kicks: usize,
    /// Print jobs the register has queued in all.
    pub jobs: usize,
}

/// Prints the register's queued receipts into `folder` and counts them.
pub fn print_to_folder(till: &mut Till, folder: &Path) -> Result<Printed, DeviceDemoError> {
    let printer = PrinterSettings::new(PrinterAddress::Folder {
        path: folder.to_path_buf(),
    });
    let run = till
        .register
        .print_pending_on(&printer)
        .map_err(fail("print"))?;
    if let Some(e) = run.first_error() {
        return Err(DeviceDemoError(format!("{}: print: {e}", till.name)));
    }
    let mut receipts = 0;
    let mut drawer_kicks = 0;
    for entry in std::fs::read_dir(folder).map_err(fail("receipts folder"))? {
        let path = entry.map_err(fail("receipts folder"))?.path();
        if path.extension().is_some_and(|e| e == "bin") {
            receipts += 1;
            let bytes = std::fs::read(&path).map_err(fail("receipt"))?;
            if decode(&bytes)
                .commands
                .iter()
                .any(|c| matches!(c, Command::DrawerKick { .. }))
            {
                drawer_kicks += 1;
            }
        }
    }
    let jobs: i64 = till
        .register
        .conn()
        .query_row("SELECT count(*) FROM print_jobs", [], |r| r.get(0))
        .map_err(fail("print jobs"))?;
    Ok(Printed {
        folder: folder.to_path_buf(),
        receipts,
        drawer_kicks,
        jobs: usize::try_from(jobs).unwrap_or(0),
    })
}
