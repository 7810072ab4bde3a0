//! Why an operation did not happen, typed by whose it is.
//!
//! [`OpError`] is either [`Refused`](OpError::Refused) — the rules refused
//! what the cashier or operator asked (a field, the shift, the stock quota,
//! a PIN…): nothing was written and the person can act on it — or
//! [`Failed`](OpError::Failed) — the machine failed (storage, the journal,
//! the key file, the configuration). A new reason is a variant of
//! [`Refusal`] or of [`Failure`]: the compiler makes the choice, so a new
//! refusal cannot be reported as a storage failure by omission.
//!
//! Invariant: this module only names errors; it imports no operation,
//! storage routine or presentation module (the Spanish sentences live in
//! `messages`).

use caja_shared::ids::{CustomerId, OpId, SaleId};
use caja_shared::money::{Money, QtyMilli};

use crate::config::ConfigError;
use crate::db::DbError;
use crate::journal::JournalError;
use crate::keyfile::KeyFileError;
use crate::projection::ProjectionError;
use crate::sale::SaleError;
use crate::staff::StaffError;
use crate::zreport::ZReportError;

/// Why an operation was refused or failed. Its text is the one of the
/// refusal or failure it holds.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The rules refused the request; the database is as it was.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The machine failed (storage, journal, key file, configuration).
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// What the cashier or operator asked that the rules refuse. Each variant
/// names the field or the situation and leaves the database as it was.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A field is missing, empty or out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The sale itself is invalid.
    #[error(transparent)]
    Sale(#[from] SaleError),
    /// No shift is open.
    #[error("no shift is open: open one first")]
    ShiftNotOpen,
    /// A shift is already open.
    #[error("shift {0} is already open: close it first")]
    ShiftAlreadyOpen(String),
    /// The sale does not exist on this register.
    #[error("sale_id: unknown sale {0}")]
    UnknownSale(SaleId),
    /// The sale was voided already.
    #[error("sale_id: sale {0} is already voided")]
    AlreadyVoided(SaleId),
    /// The customer does not exist.
    #[error("customer: unknown customer {0}")]
    UnknownCustomer(CustomerId),
    /// The product does not exist in the catalog.
    #[error("product: unknown product {0}")]
    UnknownProduct(String),
    /// A debt payment beyond what the customer owes.
    #[error("amount: {amount} is more than the {balance} the customer owes")]
    DebtOverpaid {
        /// The payment.
        amount: Money,
        /// The balance.
        balance: Money,
    },
    /// This database was restored from a backup and has not yet fetched its own
    /// events back from the hub: making a new event now could fork its history.
    #[error("this register was restored from a backup: sync with the hub before selling")]
    RestoredNeedsSync,
    /// The register has no usable fiscal number of this series (none granted,
    /// used up, expired, or held before a restore).
    #[error("document: no fiscal numbers of series {0} left on this register; sync with the hub to get more")]
    FiscalExhausted(String),
    /// A PIN or role was refused (only the failure counter moved).
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// This register has staff: the action needs a supervisor's PIN.
    #[error("approval: {0} needs a supervisor's PIN")]
    ApprovalRequired(&'static str),
    /// This register has staff: a shift needs a signed-in member of staff.
    #[error("staff_id: sign in with your PIN to open a shift")]
    SignInRequired,
    /// No sale with that id or fiscal number on this register or its store.
    #[error("sale: no sale {0} known here (it may not have synced yet)")]
    UnknownSaleRef(String),
    /// A return beyond what is left of a line.
    #[error("lines[{index}].qty_milli: only {left:?} left to return of line {line}")]
    ReturnTooMuch {
        /// Index in the request.
        index: usize,
        /// The sale's line.
        line: u32,
        /// What is left to return.
        left: QtyMilli,
    },
    /// A `block` product beyond this register's stock quota.
    #[error("lines: {name} ({product}): {wanted:?} asked, only {left:?} left in this register's stock quota")]
    QuotaExceeded {
        /// The product.
        product: String,
        /// Its name.
        name: String,
        /// Quota left.
        left: QtyMilli,
        /// Asked for.
        wanted: QtyMilli,
    },
    /// A tax-credit document needs the buyer's RNC or cédula.
    #[error("buyer_tax_id: series {0} needs the buyer's RNC or cédula")]
    BuyerTaxIdRequired(String),
    /// The op id was used before for a different request.
    #[error("op_id: operation {0} was already used for a different request")]
    OpIdReused(OpId),
    /// No receipt printer is configured.
    #[error("no printer is configured (key `printer` in config.toml)")]
    NoPrinter,
    /// Hub events that do not verify.
    #[error("hub events: {0}")]
    HubEvents(String),
    /// An electronic series (`E…`) was asked but the register cannot sign:
    /// no `[ecf]` issuer configuration, no certificate, an expired one.
    #[error(transparent)]
    EcfUnavailable(crate::ecf::error::EcfUnavailable),
    /// The e-CF could not be built or signed from this sale or return.
    #[error("ecf: {0}")]
    EcfNotIssued(crate::ecf::error::IssueFailed),
    /// The document must name its buyer (RNC or cédula and name): `E31`, an
    /// `E32` of RD$250,000 or more, a credit note modifying one of them.
    #[error("buyer_name: series {0} needs the buyer's name and RNC or cédula")]
    BuyerNameRequired(String),
    /// A credit note modifies a document this register does not hold: the
    /// cashier types the date of the modified document.
    #[error("modified_date: the date of {0} is unknown here; give it (yyyy-mm-dd)")]
    ModifiedDateRequired(String),
}

/// What failed in the machine: storage, the journal, the key file, the
/// configuration, a receipt that could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A receipt could not be built or rendered.
    #[error("receipt: {0}")]
    Receipt(String),
    /// The Z report could not be computed.
    #[error("z report: {0}")]
    ZReport(#[from] ZReportError),
    /// The journal refused (including a broken chain: no selling).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The projections could not be updated.
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The database could not be opened or locked.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file could not be read or written.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored result could not be read back.
    #[error("stored result: {0}")]
    Json(#[from] serde_json::Error),
}

impl OpError {
    /// A refused field: `field` is missing, empty or out of range.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> OpError {
        OpError::Refused(Refusal::Invalid {
            field,
            reason: reason.into(),
        })
    }

    /// Whether the rules refused the request (as opposed to the machine
    /// failing).
    pub fn is_validation(&self) -> bool {
        matches!(self, OpError::Refused(_))
    }

    /// Whether the machine failed because the disk could not write: SQLite
    /// answered `SQLITE_FULL` (no space) or `SQLITE_IOERR*` (an I/O or fsync
    /// error) somewhere in the error's chain. The operation's transaction
    /// was rolled back: nothing of it was kept.
    pub fn is_disk_fault(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>()
            {
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
                ) {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }
}

/// `From` a cause into [`OpError`] through its refusal or failure variant.
macro_rules! into_op_error {
    ($($kind:ident :: $variant:ident ($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for OpError {
            fn from(e: $ty) -> OpError {
                OpError::from($kind::$variant(e))
            }
        })*
    };
}

into_op_error!(
    Refusal::Sale(SaleError),
    Refusal::Staff(StaffError),
    Refusal::EcfUnavailable(crate::ecf::error::EcfUnavailable),
    Failure::ZReport(ZReportError),
    Failure::Journal(JournalError),
    Failure::Projection(ProjectionError),
    Failure::Db(DbError),
    Failure::Config(ConfigError),
    Failure::KeyFile(KeyFileError),
    Failure::Sql(rusqlite::Error),
    Failure::Json(serde_json::Error),
);
