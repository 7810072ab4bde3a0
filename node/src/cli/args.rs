//! The command line's shape: `caja-node`'s arguments, subcommands and their
//! options, as clap derive types (the help text is their doc comments).
//!
//! Invariant: types only; no command runs here.

use std::path::PathBuf;

use caja_shared::ids::{CustomerId, DeviceId, OpId, SaleId, ShiftId, StoreId};
use caja_shared::money::{Money, QtyMilli};
use clap::{Args, Parser, Subcommand};

/// Caja register node: sells offline, keeps a durable hash-chained journal and
/// syncs with the hub when the network allows.
#[derive(Debug, Parser)]
#[command(name = "caja-node", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The register's data directory.
    #[arg(long, global = true, env = "CAJA_NODE_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print results as JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the version of this binary and of the formats it speaks.
    Version,
    /// Create the data directory: database, device identity and device key.
    Init(InitArgs),
    /// Open or close a shift.
    #[command(subcommand)]
    Shift(ShiftCmd),
    /// Make a sale (lines and payments as options, or JSON on stdin).
    Sell(SellArgs),
    /// Void a sale.
    Void(VoidArgs),
    /// Return (part of) a sale of this store: `--line INDEX:QTY` (pieces, or
    /// kg for weighed items; add `:damaged` to keep it out of stock). A sale
    /// this register does not know is returned by product (`--product`): a
    /// supervisor approves and the hub reviews it.
    Return(ReturnArgs),
    /// Open the cash drawer without a sale (a supervisor approves).
    #[command(subcommand)]
    Drawer(DrawerCmd),
    /// A customer's store-credit balance.
    Credit(CreditArgs),
    /// Cash in, out (a supervisor approves) or dropped to the safe.
    Cash(CashArgs),
    /// Fiado: take a payment on a customer's debt.
    #[command(subcommand)]
    Debt(DebtCmd),
    /// Receive or count stock.
    #[command(subcommand)]
    Stock(StockCmd),
    /// Create or update a customer.
    Customer(CustomerArgs),
    /// Edit a customer: only the fields given change.
    CustomerEdit(CustomerEditArgs),
    /// Receipts: show one as printed, or queue a reprint ("COPIA").
    #[command(subcommand)]
    Receipt(ReceiptCmd),
    /// Fiscal numbers: what is left, or give back the unused ones.
    #[command(subcommand)]
    Fiscal(FiscalCmd),
    /// Print the receipts that are due on the configured printer now.
    Print(PrintArgs),
    /// Shift, journal, sync, printer and scale state.
    Status,
    /// The scale: read the weight now, or run a virtual scale.
    #[command(subcommand)]
    Scale(ScaleCmd),
    /// The Z report of the open shift (or of --shift).
    ZReport(ZReportArgs),
    /// Verify the whole journal chain and its checkpoints.
    Verify,
    /// Write the journal as JSON lines (one canonical envelope per line).
    Export(ExportArgs),
    /// Copy the database to a file (consistent while the node runs).
    Backup(BackupArgs),
    /// Replace the database with a backup file.
    Restore(RestoreArgs),
    /// Install the key head office gave this register (after a hub restore
    /// or on new hardware).
    Rekey(RekeyArgs),
    /// Rebuild every projection from the journal and hub chain.
    Rebuild,
    /// Import hub events (a pull page saved as JSON: {"events", "hub_checkpoint"}).
    #[command(subcommand)]
    Hub(HubCmd),
    /// Enroll this register with a hub (one-time token from head office).
    Enroll(EnrollArgs),
    /// Sync once with the hub: recover own events if needed, push, pull.
    Sync,
    /// Run the sync engine until stopped (Ctrl-C): the long-running node.
    /// It also prints receipts, and serves the cashier's screen when
    /// `ui_listen` is set in config.toml.
    Run,
    /// Serve the cashier's screen (and print receipts, and sync when a hub is
    /// configured) until stopped: open http://127.0.0.1:8080/ in the
    /// register's browser.
    Ui(UiArgs),
    /// Try a register without a hub: write a sample catalog as a hub-chain page
    /// signed by a new throw-away hub key, and print that key for `init`.
    SampleCatalog(SampleCatalogArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScaleCmd {
    /// Poll the configured scale once and show the weight and whether it may
    /// be sold.
    Read,
    /// Run a simulated scale on a new pseudo-terminal until stopped: prints the
    /// port to configure, answers with the weight written in --weight-file
    /// (grams, "motion" or "silent").
    Virtual(ScaleVirtualArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReceiptCmd {
    /// Print a sale's receipt as text (rendered to ESC/POS and decoded back).
    Show(ReceiptShowArgs),
    /// Queue a reprint of a sale's receipt, marked "COPIA", and try to print it.
    Reprint(ReceiptReprintArgs),
}

#[derive(Debug, Args)]
pub(crate) struct OpArg {
    /// Client operation id: retrying with the same id applies the operation once.
    #[arg(long = "op")]
    pub(crate) op: Option<OpId>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShiftCmd {
    /// Open a shift (with staff on the register: `--cashier` names a member
    /// of staff and `--pin` signs them in).
    Open(ShiftOpenArgs),
    /// Close the open shift and print its Z report (with staff: `--by` and
    /// `--pin`; a supervisor may close another person's shift).
    Close(ShiftCloseArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SellArgs {
    /// An item: CODE or CODE:QTY (pieces, or kg for weighed items: 0.455),
    /// and @PRICE to sell it at another price than the shelf's (a price
    /// override: a supervisor approves), e.g. ARROZ:2@60.00.
    #[arg(long = "item")]
    pub(crate) items: Vec<String>,
    /// Cash tendered.
    #[arg(long)]
    pub(crate) cash: Option<Money>,
    /// Card amount (with --card-ref).
    #[arg(long)]
    pub(crate) card: Option<Money>,
    /// Card terminal reference: the authorization code the terminal printed.
    #[arg(long)]
    pub(crate) card_ref: Option<String>,
    /// The card terminal's id (printed on its slip): recorded with the code
    /// as `TERMINAL:CODE`, so the hub matches an offline card payment to its
    /// provider's confirmation by terminal, code, amount and time.
    #[arg(long)]
    pub(crate) card_terminal: Option<String>,
    /// Transfer/QR amount (with --transfer-ref; `--qr` is the same).
    #[arg(long, alias = "qr")]
    pub(crate) transfer: Option<Money>,
    /// Transfer or QR reference (`--qr-ref` is the same).
    #[arg(long, alias = "qr-ref")]
    pub(crate) transfer_ref: Option<String>,
    /// The payment provider for card and transfer/QR intents (default:
    /// `payment_provider` in config.toml). Online, the hub gets an intent
    /// per such payment; offline, the reference is what stays.
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Amount on fiado (with --customer).
    #[arg(long)]
    pub(crate) fiado: Option<Money>,
    /// Amount paid with the customer's store credit (with --customer).
    #[arg(long)]
    pub(crate) store_credit: Option<Money>,
    /// The customer.
    #[arg(long)]
    pub(crate) customer: Option<CustomerId>,
    /// Discount on the whole sale.
    #[arg(long)]
    pub(crate) discount: Option<Money>,
    /// Fiscal document type (series prefix, e.g. B01); default from config.
    #[arg(long)]
    pub(crate) doc: Option<String>,
    /// The buyer's RNC or cédula (required for B01/E31).
    #[arg(long)]
    pub(crate) buyer: Option<String>,
    /// The buyer's name (required with --buyer on E31 and on an E32 of
    /// RD$250,000 or more).
    #[arg(long)]
    pub(crate) buyer_name: Option<String>,
    /// A weighed item (CODE), its weight read from the configured scale: the
    /// sale is made only with a stable weight within the scale's capacity.
    #[arg(long = "weigh")]
    pub(crate) weigh: Vec<String>,
    #[command(flatten)]
    pub(crate) approver: ApproverArg,
    /// Read the sale as JSON from stdin instead.
    #[arg(long)]
    pub(crate) stdin: bool,
    /// Make the same sale N times, each with a new op id, printing each
    /// acknowledged sale as soon as it is durable (demos and crash tests).
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: u64,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

/// A supervisor's approval: who and their PIN.
#[derive(Debug, Args)]
pub(crate) struct ApproverArg {
    /// The supervisor (name or staff id), on a register with staff.
    #[arg(long)]
    pub(crate) approver: Option<String>,
    /// The supervisor's PIN.
    #[arg(
        long = "approver-pin",
        env = "CAJA_NODE_APPROVER_PIN",
        hide_env_values = true
    )]
    pub(crate) approver_pin: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DrawerCmd {
    /// Kick the drawer open through the printer and record why.
    Open(DrawerOpenArgs),
    /// Record that the drawer of a cash sale was opened with the key because
    /// the printer could not be reached (its receipt will not kick it again).
    Manual(DrawerManualArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DrawerManualArgs {
    /// The sale whose drawer was opened by hand.
    #[arg(long)]
    pub(crate) sale: SaleId,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FiscalCmd {
    /// Numbers left per series.
    Status,
    /// Give back every unused number (e.g. before retiring the register).
    Release(FiscalReleaseArgs),
    /// The e-CF signing certificate: install one from a PKCS#12 file, or show it.
    #[command(subcommand)]
    Certificate(CertificateCmd),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertificateCmd {
    /// Install the signing certificate from a PKCS#12 file (.p12/.pfx). The
    /// password comes from --password-file, else the environment variable
    /// CAJA_CERT_PASSWORD, else a prompt on the terminal; never an argument.
    /// The key is stored owner-only in the data directory.
    Install(CertInstallArgs),
    /// Show the installed certificate: subject, issuer, validity.
    Show,
}

#[derive(Debug, Args)]
pub(crate) struct CertInstallArgs {
    /// The PKCS#12 file.
    pub(crate) file: PathBuf,
    /// A file holding the password (one line), readable by its owner only.
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DebtCmd {
    /// Take a payment on a customer's fiado (oldest debts first).
    Pay(DebtPayArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum StockCmd {
    /// Stock arrived.
    Receive(StockReceiveArgs),
    /// Stock counted on the shelf.
    Count(StockCountArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum HubCmd {
    /// Import a page of hub events.
    Import(HubImportArgs),
    /// After support confirmed why the hub's audit log changed (status shows
    /// it as critical), forget the heads seen so far and trust the hub's
    /// current log again; the next sync verifies from there.
    TrustLog,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The store this register belongs to.
    #[arg(long)]
    pub(crate) store: StoreId,
    /// The device id (a new one by default).
    #[arg(long)]
    pub(crate) device: Option<DeviceId>,
    /// The hub's Ed25519 public key (hex), to verify catalog and prices.
    #[arg(long)]
    pub(crate) hub_key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct VoidArgs {
    /// The sale.
    #[arg(long)]
    pub(crate) sale: SaleId,
    /// Why (required).
    #[arg(long)]
    pub(crate) reason: String,
    #[command(flatten)]
    pub(crate) approver: ApproverArg,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct ReturnArgs {
    /// The sale's id or its fiscal number.
    #[arg(long)]
    pub(crate) sale: String,
    /// A line to return: INDEX:QTY[:damaged].
    #[arg(long = "line", required_unless_present = "products")]
    pub(crate) lines: Vec<String>,
    /// A product of a sale unknown here: CODE:QTY[@PRICE][:damaged]
    /// (the price paid, per unit or kg; the shelf price by default).
    #[arg(long = "product")]
    pub(crate) products: Vec<String>,
    /// cash, card, transfer or store_credit (with --customer, or the
    /// sale's customer).
    #[arg(long, default_value = "cash")]
    pub(crate) refund: String,
    /// The customer credited, for a store-credit refund.
    #[arg(long)]
    pub(crate) customer: Option<CustomerId>,
    /// For an electronic credit note (E34) of a document this register does
    /// not hold: that document's date (yyyy-mm-dd).
    #[arg(long)]
    pub(crate) modified_date: Option<String>,
    /// The buyer's RNC or cédula, for a credit note modifying a document
    /// that names its buyer (E31, E32 of RD$250,000 or more).
    #[arg(long)]
    pub(crate) buyer: Option<String>,
    /// The buyer's name, likewise.
    #[arg(long)]
    pub(crate) buyer_name: Option<String>,
    #[command(flatten)]
    pub(crate) approver: ApproverArg,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct CreditArgs {
    /// The customer.
    #[arg(long)]
    pub(crate) customer: CustomerId,
}

#[derive(Debug, Args)]
pub(crate) struct CashArgs {
    /// in, out or drop.
    pub(crate) kind: String,
    /// Amount, e.g. 500.00.
    #[arg(long)]
    pub(crate) amount: Money,
    /// Why.
    #[arg(long)]
    pub(crate) reason: String,
    #[command(flatten)]
    pub(crate) approver: ApproverArg,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct CustomerArgs {
    /// Existing customer to update.
    #[arg(long)]
    pub(crate) id: Option<CustomerId>,
    /// Name.
    #[arg(long)]
    pub(crate) name: String,
    /// Phone.
    #[arg(long)]
    pub(crate) phone: Option<String>,
    /// RNC or cédula.
    #[arg(long)]
    pub(crate) tax_id: Option<String>,
    /// Credit limit, e.g. 500.00.
    #[arg(long, default_value = "0")]
    pub(crate) credit_limit: Money,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct PrintArgs {
    /// First put the receipts that were given up back in the queue.
    #[arg(long)]
    pub(crate) retry_failed: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ZReportArgs {
    /// A closed shift.
    #[arg(long)]
    pub(crate) shift: Option<ShiftId>,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Output file (stdout by default).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The backup file to create, or an existing directory to create
    /// `caja-node-<ms>.db` in (for a timer writing to a second disk).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    pub(crate) from: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The hub's base URL: https://hub.example.do (http:// only for a hub on
    /// this machine, e.g. http://127.0.0.1:7878).
    #[arg(long)]
    pub(crate) hub: String,
    /// The one-time enrollment token.
    #[arg(long)]
    pub(crate) token: String,
    /// Trust only the CAs in this PEM file for the hub's certificate
    /// (written to config.toml as hub_ca).
    #[arg(long, conflicts_with = "hub_cert_sha256")]
    pub(crate) hub_ca: Option<PathBuf>,
    /// Trust only the hub certificate with this SHA-256 (as `caja-hub init
    /// --tls-self-signed` prints it; written to config.toml).
    #[arg(long)]
    pub(crate) hub_cert_sha256: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct UiArgs {
    /// Loopback address to serve on (default: `ui_listen` in
    /// config.toml, else 127.0.0.1:8080).
    #[arg(long)]
    pub(crate) listen: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SampleCatalogArgs {
    /// The store the page is for.
    #[arg(long)]
    pub(crate) store: StoreId,
    /// The page file to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ScaleVirtualArgs {
    /// toledo or cas.
    #[arg(long, default_value = "toledo")]
    pub(crate) protocol: String,
    /// The file holding the current weight.
    #[arg(long)]
    pub(crate) weight_file: PathBuf,
    /// Also make a symbolic link to the port here (a stable path for
    /// config.toml).
    #[arg(long)]
    pub(crate) link: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ReceiptShowArgs {
    /// The sale.
    #[arg(long)]
    pub(crate) sale: SaleId,
}

#[derive(Debug, Args)]
pub(crate) struct ReceiptReprintArgs {
    /// The sale.
    #[arg(long)]
    pub(crate) sale: SaleId,
}

#[derive(Debug, Args)]
pub(crate) struct ShiftOpenArgs {
    /// The cashier.
    #[arg(long)]
    pub(crate) cashier: String,
    /// The cashier's PIN (registers with staff).
    #[arg(long, env = "CAJA_NODE_PIN", hide_env_values = true)]
    pub(crate) pin: Option<String>,
    /// Opening cash float, e.g. 5000.00.
    #[arg(long = "float", default_value = "0")]
    pub(crate) opening_float: Money,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct ShiftCloseArgs {
    /// Cash counted in the drawer, e.g. 5350.00.
    #[arg(long)]
    pub(crate) counted: Money,
    /// Who closes (name or staff id), on a register with staff.
    #[arg(long)]
    pub(crate) by: Option<String>,
    /// Their PIN.
    #[arg(long, env = "CAJA_NODE_PIN", hide_env_values = true)]
    pub(crate) pin: Option<String>,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct DrawerOpenArgs {
    /// Why (required), e.g. "cambio para otra caja".
    #[arg(long)]
    pub(crate) reason: String,
    #[command(flatten)]
    pub(crate) approver: ApproverArg,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct FiscalReleaseArgs {
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct DebtPayArgs {
    /// The customer.
    #[arg(long)]
    pub(crate) customer: CustomerId,
    /// Amount, e.g. 150.00.
    #[arg(long)]
    pub(crate) amount: Money,
    /// cash, card or transfer.
    #[arg(long, default_value = "cash")]
    pub(crate) method: String,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct StockReceiveArgs {
    /// SKU or barcode.
    #[arg(long)]
    pub(crate) product: String,
    /// Quantity (pieces, or kg for weighed items).
    #[arg(long)]
    pub(crate) qty: QtyMilli,
    /// Supplier invoice.
    #[arg(long)]
    pub(crate) reference: Option<String>,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct StockCountArgs {
    /// SKU or barcode.
    #[arg(long)]
    pub(crate) product: String,
    /// Quantity counted.
    #[arg(long)]
    pub(crate) qty: QtyMilli,
    #[command(flatten)]
    pub(crate) op: OpArg,
}

#[derive(Debug, Args)]
pub(crate) struct HubImportArgs {
    /// The page file.
    #[arg(long)]
    pub(crate) file: PathBuf,
}

/// `caja-node rekey`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct RekeyArgs {
    /// The new key id (`key_id` of the rotation's answer).
    #[arg(long)]
    pub(crate) key_id: String,
    /// A file holding the new key in hex (`key` of the rotation's answer),
    /// one line, owner-only.
    #[arg(long)]
    pub(crate) key_file: PathBuf,
}

// — COUNTER —

/// `caja-node customer-edit`'s arguments: the fields given replace the
/// customer's; an empty `--phone ""` or `--tax-id ""` clears it.
#[derive(Debug, clap::Args)]
pub(crate) struct CustomerEditArgs {
    /// The customer.
    #[arg(long)]
    pub(crate) id: CustomerId,
    /// New name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// New phone ("" clears it).
    #[arg(long)]
    pub(crate) phone: Option<String>,
    /// New RNC or cédula ("" clears it), checked with its check digit.
    #[arg(long)]
    pub(crate) tax_id: Option<String>,
    /// New credit limit, e.g. 750.00.
    #[arg(long)]
    pub(crate) credit_limit: Option<Money>,
    #[command(flatten)]
    pub(crate) op: OpArg,
}
