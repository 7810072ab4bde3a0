//! The durable print queue: receipts of this register's sales, kept in SQLite
//! (`print_jobs`) and sent to the configured printer through `caja_hardware`.
//!
//! - The sale's `original` job is inserted by [`enqueue_original`] inside the
//!   sale's own transaction ([`crate::register::Register::sell`]): a sale the
//!   cashier saw as done always has its receipt queued. A partial unique index
//!   allows one original per sale.
//! - [`print_pending`] runs after commit. Each job moves through the pure state
//!   machine [`caja_hardware::queue::PrintJob`]; every transition is written back
//!   (compare-and-set on the state, so two processes never take the same job)
//!   before the next step: the job is marked `printing` before any byte leaves,
//!   so a crash mid-print is recovered as "may have printed" and the retry says
//!   COPIA — never a second original.
//! - A printer that reports paper out / cover open, or cannot be reached, leaves
//!   the job `pending` with the queue's backoff; once it is back the job prints
//!   exactly once.
//! - A cash sale's original receipt job starts with the drawer kick
//!   ([`job_bytes`]): the drawer opens when its receipt prints, once; a COPIA
//!   (reprint, or a retry that may have printed) never opens it.
//! - [`enqueue_copy`] queues a reprint, always rendered "COPIA"
//!   ([`Receipt::into_copy`]).
//! - [`receipt_text`] is what `caja-node receipt show` prints: the receipt
//!   rendered to ESC/POS and decoded back ([`caja_hardware::render::preview`]).
//!
//! Receipts are built from the journaled `SaleCreated` event, never from the
//! projections, so a reprint says what was sold.

use std::collections::BTreeMap;
use std::time::Duration;

use caja_hardware::codepage::CodePage;
use caja_hardware::device::PrinterAddress;
use caja_hardware::escpos_ext::{drawer_kick, DrawerPulse};
use caja_hardware::localtime::{LocalDateTime, UtcOffset};
use caja_hardware::printer::{PrinterConfig, ReceiptPrinter};
use caja_hardware::queue::{FailReason, JobId, JobKind, JobState, PrintJob, RetryPolicy};
use caja_hardware::receipt::{Receipt, ReceiptContext, StoreHeader, Width};
use caja_hardware::transport::Transport;
use caja_shared::ids::{SaleId, Sku};
use caja_shared::kind::{EventBody, PaymentMethod, SaleCreated, SoldBy};
use caja_shared::money::Money;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::config::{ConfigError, NodeConfig};
use crate::error::{Failure, OpError, Refusal};
use crate::journal::{self, Journal};

/// How long an attempt may stay `printing` before it is taken as interrupted
/// (a crash) and recovered: well above connect + status + write timeouts.
pub const ATTEMPT_LEASE_MS: i64 = 60_000;
/// Most jobs one [`print_pending`] call takes.
pub const MAX_JOBS_PER_RUN: usize = 100;
/// Default TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a receipt needs beyond the sale: header, paper, zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptSettings {
    /// The store's header.
    pub store: StoreHeader,
    /// Paper width.
    pub width: Width,
    /// Code page.
    pub page: CodePage,
    /// The store's offset from UTC.
    pub offset: UtcOffset,
}

impl ReceiptSettings {
    /// From the node's configuration.
    pub fn from_config(cfg: &NodeConfig) -> Result<ReceiptSettings, ConfigError> {
        Ok(ReceiptSettings {
            store: StoreHeader {
                name: cfg
                    .store_name
                    .clone()
                    .unwrap_or_else(|| crate::messages::receipt::DEFAULT_STORE_NAME.to_owned()),
                rnc: cfg.store_rnc.clone().unwrap_or_default(),
                lines: Vec::new(),
            },
            width: cfg.receipt_paper()?,
            page: CodePage::default(),
            offset: UtcOffset::default(),
        })
    }
}

/// The printer and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterSettings {
    /// Where it is.
    pub address: PrinterAddress,
    /// Timeouts and the status check.
    pub config: PrinterConfig,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Backoff and give-up rules.
    pub policy: RetryPolicy,
    /// Paper width in columns (a folder printer's text copies).
    pub columns: usize,
}

impl PrinterSettings {
    /// Default timeouts and retry policy for `address`.
    pub fn new(address: PrinterAddress) -> PrinterSettings {
        PrinterSettings {
            address,
            config: PrinterConfig::default(),
            connect_timeout: CONNECT_TIMEOUT,
            policy: RetryPolicy::default(),
            columns: caja_hardware::device::DEFAULT_FOLDER_COLUMNS,
        }
    }

    /// The configured printer, if any.
    pub fn from_config(cfg: &NodeConfig) -> Result<Option<PrinterSettings>, ConfigError> {
        let columns = cfg.receipt_paper()?.columns();
        Ok(cfg.printer_address()?.map(|a| PrinterSettings {
            columns,
            ..PrinterSettings::new(a)
        }))
    }
}

/// The print queue as `caja-node status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Waiting (including backoff).
    pub pending: u64,
    /// An attempt under way (or interrupted).
    pub printing: u64,
    /// Given up until a person retries (`caja-node print --retry-failed`).
    pub failed: u64,
    /// Printed.
    pub printed: u64,
    /// When the oldest unfinished job was queued.
    pub oldest_unprinted_ms: Option<i64>,
    /// The latest failure among unfinished jobs.
    pub last_error: Option<String>,
}

/// One job handled by [`print_pending`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOutcome {
    /// The job.
    pub job: JobId,
    /// Its sale.
    pub sale: SaleId,
    /// Original or copy.
    pub kind: JobKind,
    /// Printed "COPIA".
    pub as_copy: bool,
    /// Its state after the attempt.
    pub state: JobState,
    /// Why it did not print.
    pub error: Option<String>,
    /// What happened to the cash drawer of a job that did not print.
    pub drawer: Option<DrawerNote>,
}

/// The cash drawer of a job that opens one (a cash sale's original, a drawer
/// job) when its receipt could not print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrawerNote {
    /// The printer answered but cannot print (paper end, cover open): the
    /// drawer was opened with the real-time pulse, once, and it is recorded.
    Pulsed,
    /// The real-time pulse could not be sent.
    PulseFailed(String),
    /// The printer cannot be reached: the drawer did not open; the cashier
    /// opens it with the key and records it (`caja-node drawer manual`).
    Unreachable,
}

/// A drawer opening recorded by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManualOpening {
    /// The job whose drawer it was.
    pub job: JobId,
    /// Its sale (or drawer opening, or return).
    pub sale: SaleId,
    /// The job's kind: a return's slip is a refund's drawer.
    pub kind: JobKind,
    /// When it was recorded.
    pub opened_ms: i64,
}

/// What one [`print_pending`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrintRun {
    /// Jobs attempted, in order.
    pub jobs: Vec<JobOutcome>,
    /// Jobs interrupted by an earlier crash, put back in the queue.
    pub recovered: usize,
    /// For a run a person asked for ([`Due::Now`]): the queue after it, so the
    /// answer says what stays queued and why.
    pub left: Option<QueueStatus>,
}

/// Which pending jobs a run takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Those whose backoff is over (the automatic runs).
    Scheduled,
    /// Every pending job, whatever its backoff: a person pressed print.
    Now,
}

impl PrintRun {
    /// Jobs printed.
    pub fn printed(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state == JobState::Printed)
            .count()
    }

    /// The first failure, if any.
    pub fn first_error(&self) -> Option<&str> {
        self.jobs.iter().find_map(|j| j.error.as_deref())
    }
}

fn bad_row(what: &str) -> OpError {
    OpError::Refused(Refusal::Invalid {
        field: "print_jobs",
        reason: format!("stored {what} unreadable"),
    })
}

const JOB_COLUMNS: &str = "job_id, sale_id, kind, state, attempts, transport_failures, \
     may_have_printed, next_attempt_ms, last_error, created_ms, printed_ms";

type JobRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    Option<i64>,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn to_job(row: JobRow) -> Result<PrintJob, OpError> {
    let (id, sale, kind, state, attempts, failures, may, next, error, created, printed) = row;
    Ok(PrintJob {
        id: JobId(u64::try_from(id).map_err(|_| bad_row("job id"))?),
        sale: sale.parse().map_err(|_| bad_row("sale id"))?,
        kind: JobKind::parse(&kind).ok_or_else(|| bad_row("kind"))?,
        state: JobState::parse(&state).ok_or_else(|| bad_row("state"))?,
        created_ms: created,
        not_before_ms: next,
        attempts: u32::try_from(attempts).map_err(|_| bad_row("attempts"))?,
        transport_failures: u32::try_from(failures).map_err(|_| bad_row("failures"))?,
        may_have_printed: may != 0,
        last_error: error,
        printed_ms: printed,
    })
}

/// Every job of a sale, oldest first.
pub fn jobs_of_sale(conn: &Connection, sale: SaleId) -> Result<Vec<PrintJob>, OpError> {
    let rows: Vec<JobRow> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_jobs WHERE sale_id = ?1 ORDER BY job_id"
        ))?
        .query_map([sale.to_string()], read_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(to_job).collect()
}

/// One job.
pub fn job(conn: &Connection, id: JobId) -> Result<Option<PrintJob>, OpError> {
    let id = i64::try_from(id.0).map_err(|_| bad_row("job id"))?;
    let row = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_jobs WHERE job_id = ?1"
        ))?
        .query_row([id], read_row)
        .optional()?;
    row.map(to_job).transpose()
}

fn insert(conn: &Connection, sale: SaleId, kind: JobKind, now_ms: i64) -> Result<JobId, OpError> {
    conn.prepare_cached(
        "INSERT INTO print_jobs (sale_id, kind, state, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![
        sale.to_string(),
        kind.as_str(),
        JobState::Pending.as_str(),
        now_ms
    ])?;
    let id = u64::try_from(conn.last_insert_rowid()).map_err(|_| bad_row("job id"))?;
    Ok(JobId(id))
}

/// Queues the sale's original receipt. Call inside the sale's transaction; a
/// second original for the same sale is refused by the database.
pub fn enqueue_original(tx: &Connection, sale: SaleId, now_ms: i64) -> Result<JobId, OpError> {
    insert(tx, sale, JobKind::Original, now_ms)
}

/// Queues the drawer kick of a drawer opening without a sale (kind
/// `drawer`, keyed by the opening's movement id). Call inside the opening's
/// transaction; a second job for the same opening is refused by the database.
pub fn enqueue_drawer(
    tx: &Connection,
    opening: caja_shared::ids::MovementId,
    now_ms: i64,
) -> Result<JobId, OpError> {
    let as_key: SaleId = opening
        .to_string()
        .parse()
        .map_err(|_| bad_row("movement id"))?;
    insert(tx, as_key, JobKind::Drawer, now_ms)
}

/// Queues a reprint of one of this register's sales (always "COPIA").
pub fn enqueue_copy(tx: &Connection, sale: SaleId, now_ms: i64) -> Result<JobId, OpError> {
    own_sale_seq(tx, sale)?;
    insert(tx, sale, JobKind::Copy, now_ms)
}

/// Queues a return's slip (kind `return`, keyed by the return's id) and
/// records where its `SaleReturned` is in the journal. Call inside the
/// return's transaction: the slip is queued with the return or not at all; a
/// second slip original for the same return is refused by the database.
pub fn enqueue_return(
    tx: &Connection,
    ret: caja_shared::ids::ReturnId,
    seq: u64,
    now_ms: i64,
) -> Result<JobId, OpError> {
    let as_key: SaleId = ret.to_string().parse().map_err(|_| bad_row("return id"))?;
    tx.prepare_cached("INSERT INTO return_slips (return_id, seq) VALUES (?1, ?2)")?
        .execute(params![
            ret.to_string(),
            i64::try_from(seq).map_err(|_| bad_row("seq"))?
        ])?;
    insert(tx, as_key, JobKind::Return, now_ms)
}

/// The journaled `SaleReturned` of a return slip's job (keyed by the
/// return's id), and its HLC time (ms).
fn sale_returned(
    conn: &Connection,
    ret: SaleId,
) -> Result<(caja_shared::kind::SaleReturned, i64), OpError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM return_slips WHERE return_id = ?1")?
        .query_row([ret.to_string()], |r| r.get(0))
        .optional()?;
    let seq = seq.ok_or_else(|| OpError::Failed(Failure::Receipt(format!("no return {ret}"))))?;
    let seq = u64::try_from(seq).map_err(|_| bad_row("seq"))?;
    let event = Journal::event(conn, seq)?
        .ok_or_else(|| OpError::Failed(Failure::Receipt(format!("no event #{seq}"))))?;
    let body = event
        .body()
        .map_err(|e| OpError::Failed(Failure::Receipt(format!("event #{seq}: {e}"))))?;
    let EventBody::SaleReturned(r) = body else {
        return Err(OpError::Failed(Failure::Receipt(format!(
            "event #{seq} is no return"
        ))));
    };
    Ok((r, event.envelope().hlc.ms()))
}

/// Writes a job's new state if the row is still in `from` (compare-and-set):
/// false when another process moved it first.
fn save(conn: &Connection, job: &PrintJob, from: JobState, now_ms: i64) -> Result<bool, OpError> {
    let id = i64::try_from(job.id.0).map_err(|_| bad_row("job id"))?;
    let started = (job.state == JobState::Printing).then_some(now_ms);
    let changed = conn
        .prepare_cached(
            "UPDATE print_jobs SET state = ?1, attempts = ?2, transport_failures = ?3,
                 may_have_printed = ?4, next_attempt_ms = ?5, last_error = ?6,
                 printed_ms = ?7, attempt_started_ms = ?8
             WHERE job_id = ?9 AND state = ?10",
        )?
        .execute(params![
            job.state.as_str(),
            i64::from(job.attempts),
            i64::from(job.transport_failures),
            i64::from(job.may_have_printed),
            job.not_before_ms,
            job.last_error,
            job.printed_ms,
            started,
            id,
            from.as_str(),
        ])?;
    Ok(changed == 1)
}

/// The journal seq of one of this register's sales.
fn own_sale_seq(conn: &Connection, sale: SaleId) -> Result<u64, OpError> {
    let device = journal::load_device(conn)?.ok_or(crate::journal::JournalError::NotInitialized)?;
    let seq = crate::queries::device_sale_seq(conn, sale, &device.device.to_string())?;
    let seq = seq.ok_or(OpError::Refused(Refusal::UnknownSale(sale)))?;
    u64::try_from(seq).map_err(|_| bad_row("sale seq"))
}

/// The receipt of one of this register's sales, from its journaled event.
pub fn receipt(
    conn: &Connection,
    sale: SaleId,
    settings: &ReceiptSettings,
) -> Result<Receipt, OpError> {
    let (created, sold_at_ms) = sale_created(conn, sale)?;
    let register = journal::load_device(conn)?
        .map(|d| d.device.to_string())
        .unwrap_or_default();
    let (customer_name, fiado_balance) = customer_lines(conn, &created)?;
    let ctx = ReceiptContext {
        store: settings.store.clone(),
        register,
        sold_at_ms,
        offset: settings.offset,
        fiscal_valid_until: created
            .fiscal
            .as_ref()
            .and_then(|f| f.valid_until.as_deref())
            .and_then(caja_hardware::localtime::LocalDate::parse_iso),
        customer_name,
        fiado_balance,
        qr_base_url: None,
        footer: Vec::new(),
        // An e-CF signed here: the original receipt carries its security
        // code, signing time (GMT-4) and QR code, offline too. Otherwise,
        // phase two: once the hub relayed the tax authority's acceptance, the
        // receipt (a reprint) carries its security code and QR code.
        fiscal_confirmation: match (&created.fiscal, crate::ecf::store::of_sale(conn, sale)?) {
            (Some(_), Some(own)) => Some(caja_hardware::receipt::FiscalConfirmation {
                security_code: own.security_code,
                verify_url: own.qr_url,
                signed_at: Some(LocalDateTime::from_utc_ms(
                    own.signed_at_ms,
                    UtcOffset::SANTO_DOMINGO,
                )),
            }),
            (Some(f), None) => crate::projection::fiscal_confirmation(conn, &f.number)?.map(
                |(security_code, verify_url)| caja_hardware::receipt::FiscalConfirmation {
                    security_code,
                    verify_url,
                    signed_at: None,
                },
            ),
            (None, _) => None,
        },
    };
    let weighed = weighed_skus(conn, &created)?;
    Receipt::from_sale(&created, &ctx, |sku| {
        weighed.get(sku).copied().unwrap_or(SoldBy::Unit)
    })
    .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))
}

/// The journaled `SaleCreated` of one of this register's sales, and its HLC
/// time (ms).
fn sale_created(conn: &Connection, sale: SaleId) -> Result<(SaleCreated, i64), OpError> {
    let seq = own_sale_seq(conn, sale)?;
    let event = Journal::event(conn, seq)?.ok_or(OpError::Refused(Refusal::UnknownSale(sale)))?;
    let body = event
        .body()
        .map_err(|e| OpError::Failed(Failure::Receipt(format!("event #{seq}: {e}"))))?;
    let EventBody::SaleCreated(created) = body else {
        return Err(OpError::Failed(Failure::Receipt(format!(
            "event #{seq} is not a sale"
        ))));
    };
    Ok((created, event.envelope().hlc.ms()))
}

/// Whether printing this job opens the cash drawer: only the first printing of
/// a sale's original receipt (not a copy, not a retry that may have printed
/// already), and only when the sale took cash; never when the drawer was
/// already opened apart from the receipt (`drawer_openings`).
fn opens_drawer(conn: &Connection, job: &PrintJob, as_copy: bool) -> Result<bool, OpError> {
    if as_copy || job.kind == JobKind::Copy || drawer_opened(conn, job.id)? {
        return Ok(false);
    }
    if job.kind == JobKind::Drawer {
        return Ok(true);
    }
    if job.kind == JobKind::Return {
        let (returned, _) = sale_returned(conn, job.sale)?;
        return Ok(returned.refund == PaymentMethod::Cash);
    }
    let (created, _) = sale_created(conn, job.sale)?;
    Ok(created
        .payments
        .iter()
        .any(|p| p.method == PaymentMethod::Cash))
}

/// The bytes of one print job: the receipt (marked COPIA when `as_copy`), led
/// by the drawer kick (`ESC p`) when [`opens_drawer`] says so. The kick is part
/// of the job, so it is sent exactly when the original receipt is: once, and
/// never by a reprint or a retry printed as a copy.
pub fn job_bytes(
    conn: &Connection,
    job: &PrintJob,
    settings: &ReceiptSettings,
    as_copy: bool,
    now_ms: i64,
) -> Result<Vec<u8>, OpError> {
    let receipt = if job.kind == JobKind::Drawer {
        render_drawer_slip(conn, job, settings, as_copy.then_some(now_ms))?
    } else if job.kind == JobKind::Return {
        render_return_slip(conn, job.sale, settings, as_copy.then_some(now_ms))?
    } else {
        render_receipt(conn, job.sale, settings, as_copy.then_some(now_ms))?
    };
    if !opens_drawer(conn, job, as_copy)? {
        return Ok(receipt);
    }
    let mut bytes = drawer_kick(DrawerPulse::default()).to_vec();
    bytes.extend_from_slice(&receipt);
    Ok(bytes)
}

/// The slip of a drawer opening without a sale: store, register, when, why
/// and who approved (from the journaled `DrawerOpened`), "COPIA" on a retry
/// that may have printed (which kicks no drawer).
fn render_drawer_slip(
    conn: &Connection,
    job: &PrintJob,
    settings: &ReceiptSettings,
    copy_at_ms: Option<i64>,
) -> Result<Vec<u8>, OpError> {
    use caja_hardware::receipt::{Align, Block, Layout, Line, Style};
    let seq = crate::queries::drawer_open_seq(conn, &job.sale.to_string())?;
    let seq = seq.ok_or_else(|| {
        OpError::Failed(Failure::Receipt(format!("no drawer opening {}", job.sale)))
    })?;
    let event = Journal::event(conn, u64::try_from(seq).map_err(|_| bad_row("seq"))?)?
        .ok_or_else(|| OpError::Failed(Failure::Receipt(format!("no event #{seq}"))))?;
    let at = LocalDateTime::from_utc_ms(event.envelope().hlc.ms(), settings.offset);
    let EventBody::DrawerOpened(d) = event
        .body()
        .map_err(|e| OpError::Failed(Failure::Receipt(format!("event #{seq}: {e}"))))?
    else {
        return Err(OpError::Failed(Failure::Receipt(format!(
            "event #{seq} is no drawer opening"
        ))));
    };
    let register = journal::load_device(conn)?
        .map(|d| d.device.to_string())
        .unwrap_or_default();
    let cols = settings.width.columns();
    let mut unmappable = caja_hardware::codepage::Unmappable::default();
    let mut blocks = Vec::new();
    let texts = crate::messages::receipt::drawer_slip(
        &settings.store.name,
        &register,
        &at.to_string(),
        &d,
        copy_at_ms.map(|ms| LocalDateTime::from_utc_ms(ms, settings.offset).to_string()),
    );
    for (i, t) in texts.into_iter().enumerate() {
        let fitted = settings.page.fit(&t, &mut unmappable);
        for chunk in fitted.chars().collect::<Vec<_>>().chunks(cols) {
            blocks.push(Block::Line(Line {
                text: chunk.iter().collect(),
                align: if i == 0 { Align::Center } else { Align::Left },
                style: if i == 0 { Style::BOLD } else { Style::PLAIN },
            }));
        }
    }
    blocks.push(Block::Cut);
    let layout = Layout {
        width: settings.width,
        page: settings.page,
        blocks,
        unmappable,
    };
    Ok(caja_hardware::render::render(&layout)
        .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))?
        .bytes)
}

/// The slip of a return (from its journaled `SaleReturned`): what
/// `messages::receipt::return_slip` says, the title bold and centered,
/// "COPIA" on a reprint or a retry that may have printed.
pub fn render_return_slip(
    conn: &Connection,
    ret: SaleId,
    settings: &ReceiptSettings,
    copy_at_ms: Option<i64>,
) -> Result<Vec<u8>, OpError> {
    render_slip(
        settings,
        &return_slip_lines(conn, ret, settings, copy_at_ms)?,
    )
}

/// The text lines of a return's slip, before layout.
fn return_slip_lines(
    conn: &Connection,
    ret: SaleId,
    settings: &ReceiptSettings,
    copy_at_ms: Option<i64>,
) -> Result<Vec<String>, OpError> {
    let (r, at_ms) = sale_returned(conn, ret)?;
    let register = journal::load_device(conn)?
        .map(|d| d.device.to_string())
        .unwrap_or_default();
    // The original's fiscal number: the sale's own, else what the credit
    // note modifies, else the reference given for an unknown original.
    let known_number = match r.sale_id {
        Some(sale) => {
            crate::queries::sale_by_ref(conn, &sale.to_string())?.and_then(|row| row.fiscal_number)
        }
        None => None,
    };
    let original_number = known_number
        .or_else(|| r.credit_note.as_ref().and_then(|c| c.modifies.clone()))
        .or_else(|| {
            r.original_unknown
                .as_ref()
                .map(|u| u.reference.clone())
                .filter(|reference| reference.parse::<SaleId>().is_err())
        });
    let mut lines = Vec::new();
    for l in &r.lines {
        let item = crate::queries::lookup_item(conn, l.product.as_str())?;
        let weighed = item.as_ref().is_some_and(|i| i.sold_by == SoldBy::Weight);
        let name = item.map_or_else(|| l.product.to_string(), |i| i.name);
        lines.push(crate::messages::receipt::ReturnSlipLine {
            name,
            qty_milli: l.qty_milli.0,
            weighed,
            total: l.total,
            damaged: l.damaged,
        });
    }
    let slip = crate::messages::receipt::ReturnSlip {
        store: &settings.store.name,
        rnc: &settings.store.rnc,
        register: &register,
        at: &LocalDateTime::from_utc_ms(at_ms, settings.offset).to_string(),
        return_id: &r.return_id.to_string(),
        sale: r.sale_id.map(|s| s.to_string()),
        original_number,
        credit_note: r.credit_note.as_ref().map(|c| c.number.clone()),
        lines,
        total: r.total,
        tax: r.tax,
        refund: r.refund,
        cashier: &r.cashier,
        approved_by: r.approval.as_ref().map(|a| a.name.clone()),
        copy_at: copy_at_ms.map(|ms| LocalDateTime::from_utc_ms(ms, settings.offset).to_string()),
    };
    Ok(crate::messages::receipt::return_slip(
        &slip,
        settings.width.columns(),
    ))
}

/// Text lines laid out as a slip: the first bold and centered, the others
/// left, each cut to the paper's width, then a cut.
fn render_slip(settings: &ReceiptSettings, texts: &[String]) -> Result<Vec<u8>, OpError> {
    use caja_hardware::receipt::{Align, Block, Layout, Line, Style};
    let cols = settings.width.columns();
    let mut unmappable = caja_hardware::codepage::Unmappable::default();
    let mut blocks = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let fitted = settings.page.fit(t, &mut unmappable);
        let chars: Vec<char> = fitted.chars().collect();
        if chars.is_empty() {
            blocks.push(Block::Line(Line {
                text: String::new(),
                align: Align::Left,
                style: Style::PLAIN,
            }));
        }
        for chunk in chars.chunks(cols) {
            blocks.push(Block::Line(Line {
                text: chunk.iter().collect(),
                align: if i == 0 { Align::Center } else { Align::Left },
                style: if i == 0 { Style::BOLD } else { Style::PLAIN },
            }));
        }
    }
    blocks.push(Block::Cut);
    let layout = Layout {
        width: settings.width,
        page: settings.page,
        blocks,
        unmappable,
    };
    Ok(caja_hardware::render::render(&layout)
        .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))?
        .bytes)
}

/// The customer's name, and for a fiado sale the customer's current balance.
fn customer_lines(
    conn: &Connection,
    sale: &SaleCreated,
) -> Result<(Option<String>, Option<Money>), OpError> {
    let Some(customer) = sale.customer else {
        return Ok((None, None));
    };
    let id = customer.to_string();
    let name = crate::queries::customer_name(conn, &id)?;
    let fiado = sale
        .payments
        .iter()
        .any(|p| p.method == PaymentMethod::Fiado);
    let balance = if fiado {
        Some(Money(crate::projection::customer_balance(conn, &id)?))
    } else {
        None
    };
    Ok((name, balance))
}

fn weighed_skus(conn: &Connection, sale: &SaleCreated) -> Result<BTreeMap<Sku, SoldBy>, OpError> {
    let mut out = BTreeMap::new();
    for line in &sale.lines {
        let sold_by = crate::queries::sku_sold_by(conn, line.product.as_str())?;
        let by = if sold_by.as_deref() == Some("weight") {
            SoldBy::Weight
        } else {
            SoldBy::Unit
        };
        out.insert(line.product.clone(), by);
    }
    Ok(out)
}

/// The receipt rendered to ESC/POS bytes; `copy_at_ms` marks it "COPIA".
pub fn render_receipt(
    conn: &Connection,
    sale: SaleId,
    settings: &ReceiptSettings,
    copy_at_ms: Option<i64>,
) -> Result<Vec<u8>, OpError> {
    let layout = layout(conn, sale, settings, copy_at_ms)?;
    Ok(caja_hardware::render::render(&layout)
        .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))?
        .bytes)
}

fn layout(
    conn: &Connection,
    sale: SaleId,
    settings: &ReceiptSettings,
    copy_at_ms: Option<i64>,
) -> Result<caja_hardware::receipt::Layout, OpError> {
    let mut r = receipt(conn, sale, settings)?;
    if let Some(ms) = copy_at_ms {
        r = r.into_copy(LocalDateTime::from_utc_ms(ms, settings.offset));
    }
    r.layout(settings.width, settings.page)
        .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))
}

/// The receipt as it comes out on paper (rendered, then decoded): what
/// `caja-node receipt show` prints.
pub fn receipt_text(
    conn: &Connection,
    sale: SaleId,
    settings: &ReceiptSettings,
) -> Result<String, OpError> {
    let layout = layout(conn, sale, settings, None)?;
    caja_hardware::render::preview(&layout)
        .map_err(|e| OpError::Failed(Failure::Receipt(e.to_string())))
}

/// Puts back jobs whose attempt was interrupted (found `printing` past the lease):
/// pending again, marked as possibly printed.
fn recover_interrupted(conn: &Connection, now_ms: i64) -> Result<usize, OpError> {
    let rows: Vec<JobRow> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_jobs
             WHERE state = 'printing' AND coalesce(attempt_started_ms, 0) <= ?1
             ORDER BY job_id"
        ))?
        .query_map([now_ms.saturating_sub(ATTEMPT_LEASE_MS)], read_row)?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for row in rows {
        let mut job = to_job(row)?;
        job.recover(now_ms);
        if save(conn, &job, JobState::Printing, now_ms)? {
            n += 1;
        }
    }
    Ok(n)
}

fn due_jobs(conn: &Connection, due_by_ms: i64) -> Result<Vec<PrintJob>, OpError> {
    let rows: Vec<JobRow> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_jobs
             WHERE state = 'pending' AND next_attempt_ms <= ?1
             ORDER BY job_id LIMIT ?2"
        ))?
        .query_map(
            params![
                due_by_ms,
                i64::try_from(MAX_JOBS_PER_RUN).unwrap_or(i64::MAX)
            ],
            read_row,
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(to_job).collect()
}

/// Prints the jobs that are due (with [`Due::Now`], every pending job, its
/// backoff waived), oldest first, each through the queue's state machine.
/// Stops at the first job the printer did not take (paper out, unreachable):
/// the others would fail the same way and keep their place. Database errors
/// are returned; printer errors are recorded on the job.
pub fn print_pending(
    conn: &Connection,
    printer: &PrinterSettings,
    receipt: &ReceiptSettings,
    now_ms: i64,
    due: Due,
) -> Result<PrintRun, OpError> {
    let mut run = PrintRun {
        recovered: recover_interrupted(conn, now_ms)?,
        ..PrintRun::default()
    };
    let mut device: Option<ReceiptPrinter<Box<dyn Transport>>> = None;
    let due_by_ms = match due {
        Due::Scheduled => now_ms,
        Due::Now => i64::MAX,
    };
    for mut job in due_jobs(conn, due_by_ms)? {
        if due == Due::Now {
            job.waive_backoff(now_ms);
        }
        let Ok(attempt) = job.start(now_ms) else {
            continue;
        };
        // Claimed durably before any byte leaves.
        if !save(conn, &job, JobState::Pending, now_ms)? {
            continue;
        }
        let outcome = match job_bytes(conn, &job, receipt, attempt.as_copy, now_ms) {
            Err(e) => Err(FailReason::Permanent {
                detail: e.to_string(),
            }),
            Ok(bytes) => deliver(&mut device, printer, &bytes),
        };
        let mut drawer = None;
        let stop = match &outcome {
            Ok(()) => {
                job.printed(now_ms).map_err(queue_bug)?;
                false
            }
            Err(reason) => {
                drawer =
                    drawer_after_failure(conn, &mut device, &job, attempt.as_copy, reason, now_ms)?;
                job.failed(now_ms, reason, &printer.policy)
                    .map_err(queue_bug)?;
                if !matches!(reason, FailReason::Permanent { .. }) {
                    // Reconnect next time; a broken connection is not reused.
                    device = None;
                }
                !matches!(reason, FailReason::Permanent { .. })
            }
        };
        save(conn, &job, JobState::Printing, now_ms)?;
        run.jobs.push(JobOutcome {
            job: job.id,
            sale: job.sale,
            kind: job.kind,
            as_copy: attempt.as_copy,
            state: job.state,
            error: outcome.err().map(|r| failure_detail(&r)),
            drawer,
        });
        if stop {
            break;
        }
    }
    if due == Due::Now {
        run.left = Some(queue_status(conn)?);
    }
    Ok(run)
}

fn job_key(id: JobId) -> Result<i64, OpError> {
    i64::try_from(id.0).map_err(|_| bad_row("job id"))
}

/// Whether the job's drawer was opened apart from its receipt.
fn drawer_opened(conn: &Connection, job: JobId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM drawer_openings WHERE job_id = ?1")?
        .query_row([job_key(job)?], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Claims the job's drawer opening; false when it was already recorded.
fn claim_drawer(
    conn: &Connection,
    job: &PrintJob,
    how: &str,
    now_ms: i64,
) -> Result<bool, OpError> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO drawer_openings (job_id, sale_id, how, opened_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![job_key(job.id)?, job.sale.to_string(), how, now_ms],
    )?;
    Ok(n == 1)
}

/// The drawer of a job that opens one and did not print: the real-time pulse
/// when the printer answered (claimed durably first, so it is sent once; the
/// claim is withdrawn if the pulse cannot be sent), a note when the printer
/// cannot be reached. `None` when the drawer is not this attempt's concern.
fn drawer_after_failure(
    conn: &Connection,
    device: &mut Option<ReceiptPrinter<Box<dyn Transport>>>,
    job: &PrintJob,
    as_copy: bool,
    reason: &FailReason,
    now_ms: i64,
) -> Result<Option<DrawerNote>, OpError> {
    let unreachable = match reason {
        FailReason::NotReady { .. } => false,
        FailReason::Transport { bytes_sent: 0, .. } => true,
        // Part of the job (the kick leads it) may have gone out, or the job is
        // broken: nothing to add.
        FailReason::Transport { .. } | FailReason::Permanent { .. } => return Ok(None),
    };
    if !opens_drawer(conn, job, as_copy)? {
        return Ok(None);
    }
    if unreachable {
        return Ok(Some(DrawerNote::Unreachable));
    }
    let Some(printer) = device.as_mut() else {
        return Ok(Some(DrawerNote::Unreachable));
    };
    if !claim_drawer(conn, job, "pulse", now_ms)? {
        return Ok(None);
    }
    match printer.pulse_drawer_now(DrawerPulse::default()) {
        Ok(()) => Ok(Some(DrawerNote::Pulsed)),
        Err(e) => {
            conn.execute(
                "DELETE FROM drawer_openings WHERE job_id = ?1 AND how = 'pulse'",
                [job_key(job.id)?],
            )?;
            Ok(Some(DrawerNote::PulseFailed(e.to_string())))
        }
    }
}

/// Records that the cashier opened the drawer of `sale` by hand because the
/// printer could not be reached: its receipt, when it prints, kicks no drawer.
/// Refused when the sale has no unprinted job that would open the drawer.
pub fn record_manual_opening(
    conn: &Connection,
    sale: SaleId,
    now_ms: i64,
) -> Result<ManualOpening, OpError> {
    let refuse = |reason: &str| {
        OpError::Refused(Refusal::Invalid {
            field: "sale",
            reason: reason.to_owned(),
        })
    };
    let jobs = jobs_of_sale(conn, sale)?;
    let job = jobs
        .iter()
        .find(|j| j.kind != JobKind::Copy)
        .ok_or_else(|| refuse(crate::messages::receipt::DRAWER_NO_RECEIPT))?;
    if job.state == JobState::Printed || job.may_have_printed {
        return Err(refuse(crate::messages::receipt::DRAWER_ALREADY_KICKED));
    }
    if !opens_drawer(conn, job, false)? {
        return Err(refuse(crate::messages::receipt::DRAWER_NO_CASH));
    }
    if !claim_drawer(conn, job, "manual", now_ms)? {
        return Err(refuse(crate::messages::receipt::DRAWER_ALREADY_RECORDED));
    }
    Ok(ManualOpening {
        job: job.id,
        sale,
        kind: job.kind,
        opened_ms: now_ms,
    })
}

/// The recorded drawer opening of `sale` (a sale, a drawer opening or a
/// return), if any.
pub fn opening_of(conn: &Connection, sale: SaleId) -> Result<Option<ManualOpening>, OpError> {
    let row: Option<(i64, String, i64)> = conn
        .prepare_cached(
            "SELECT d.job_id, j.kind, d.opened_ms FROM drawer_openings d
             JOIN print_jobs j ON j.job_id = d.job_id WHERE d.sale_id = ?1",
        )?
        .query_row([sale.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    row.map(|(job, kind, opened_ms)| {
        Ok(ManualOpening {
            job: JobId(u64::try_from(job).map_err(|_| bad_row("job id"))?),
            sale,
            kind: JobKind::parse(&kind).ok_or_else(|| bad_row("kind"))?,
            opened_ms,
        })
    })
    .transpose()
}

fn queue_bug(e: caja_hardware::queue::QueueError) -> OpError {
    OpError::Failed(Failure::Receipt(format!("print queue: {e}")))
}

fn failure_detail(reason: &FailReason) -> String {
    match reason {
        FailReason::NotReady { detail }
        | FailReason::Transport { detail, .. }
        | FailReason::Permanent { detail } => detail.clone(),
    }
}

/// Opens the printer if needed and sends one job.
fn deliver(
    device: &mut Option<ReceiptPrinter<Box<dyn Transport>>>,
    printer: &PrinterSettings,
    bytes: &[u8],
) -> Result<(), FailReason> {
    if device.is_none() {
        let transport = printer
            .address
            .open_with(printer.connect_timeout, printer.columns)
            .map_err(|e| FailReason::Transport {
                bytes_sent: 0,
                detail: e.to_string(),
            })?;
        *device = Some(ReceiptPrinter::new(transport, printer.config));
    }
    match device.as_mut() {
        Some(p) => p.deliver(bytes).map_err(|e| e.fail_reason()),
        None => Err(FailReason::Transport {
            bytes_sent: 0,
            detail: "printer not open".into(),
        }),
    }
}

/// Failed jobs back to pending, due now (a person fixed the printer).
pub fn retry_failed(conn: &Connection, now_ms: i64) -> Result<usize, OpError> {
    let rows: Vec<JobRow> = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM print_jobs WHERE state = 'failed' ORDER BY job_id"
        ))?
        .query_map([], read_row)?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for row in rows {
        let mut job = to_job(row)?;
        if job.retry(now_ms).is_ok() && save(conn, &job, JobState::Failed, now_ms)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Counts for `caja-node status`.
pub fn queue_status(conn: &Connection) -> Result<QueueStatus, OpError> {
    let mut s = QueueStatus::default();
    let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM print_jobs GROUP BY state")?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (state, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        match JobState::parse(&state) {
            Some(JobState::Pending) => s.pending = n,
            Some(JobState::Printing) => s.printing = n,
            Some(JobState::Printed) => s.printed = n,
            Some(JobState::Failed) => s.failed = n,
            None => return Err(bad_row("state")),
        }
    }
    let oldest: Option<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT created_ms, last_error FROM print_jobs WHERE state != 'printed'
             ORDER BY job_id LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    s.oldest_unprinted_ms = oldest.as_ref().map(|o| o.0);
    s.last_error = conn
        .prepare_cached(
            "SELECT last_error FROM print_jobs
             WHERE state != 'printed' AND last_error IS NOT NULL
             ORDER BY job_id DESC LIMIT 1",
        )?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(s)
}
