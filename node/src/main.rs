//! `caja-node`: the register's command-line interface.
//!
//! Every command works on a data directory (`--data-dir`, env
//! `CAJA_NODE_DATA_DIR`, default `$HOME/.caja/node`). Several processes may use
//! the same directory at once (a long-running node and this CLI): SQLite in WAL
//! mode lets readers run beside the one writer, and each operation takes the
//! write lock with `BEGIN IMMEDIATE`, waiting up to the busy timeout.
//!
//! Output is Spanish text for people by default, JSON with `--json`. Exit codes:
//! 0 done; 1 unexpected failure; 2 usage; 3 operation refused (bad input, no
//! shift open, credit limit, …: nothing was changed); 4 data directory not
//! initialized or unusable; 5 the journal's history was changed (the register
//! refuses to sell); 6 storage failure; 7 the hub is unreachable or refused.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use caja_node::datadir::{DataDir, InitParams};
use caja_node::devices;
use caja_node::error::{self as op, OpError};
use caja_node::journal::{Journal, JournalError};
use caja_node::keyfile;
use caja_node::messages;
use caja_node::register::{CustomerRequest, Register};
use caja_node::sale::{LineRequest, PaymentRequest, SaleRequest};
use caja_node::system::{OsRandom, SystemClock};
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::clock::Clock;
use caja_shared::event::Event;
use caja_shared::ids::{CustomerId, DeviceId, OpId, SaleId, ShiftId, StoreId};
use caja_shared::key::HubPublicKey;
use caja_shared::kind::PaymentMethod;
use caja_shared::money::{Money, QtyMilli};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

/// Exit code: the operation was refused; nothing changed.
const EXIT_REFUSED: u8 = 3;
/// Exit code: the data directory is not initialized or unusable.
const EXIT_NOT_READY: u8 = 4;
/// Exit code: the journal's history was changed.
const EXIT_TAMPERED: u8 = 5;
/// Exit code: storage failure.
const EXIT_STORAGE: u8 = 6;
/// Exit code: the hub is unreachable or refused (sync, enroll).
const EXIT_HUB: u8 = 7;

/// Caja register node: sells offline, keeps a durable hash-chained journal and
/// syncs with the hub when the network allows.
#[derive(Debug, Parser)]
#[command(name = "caja-node", version, about, long_about = None)]
struct Cli {
    /// The register's data directory.
    #[arg(long, global = true, env = "CAJA_NODE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print results as JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary and of the formats it speaks.
    Version,
    /// Create the data directory: database, device identity and device key.
    Init {
        /// The store this register belongs to.
        #[arg(long)]
        store: StoreId,
        /// The device id (a new one by default).
        #[arg(long)]
        device: Option<DeviceId>,
        /// The hub's Ed25519 public key (hex), to verify catalog and prices.
        #[arg(long)]
        hub_key: Option<String>,
    },
    /// Open or close a shift.
    #[command(subcommand)]
    Shift(ShiftCmd),
    /// Make a sale (lines and payments as options, or JSON on stdin).
    Sell(SellArgs),
    /// Void a sale.
    Void {
        /// The sale.
        #[arg(long)]
        sale: SaleId,
        /// Why (required).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        approver: ApproverArg,
        #[command(flatten)]
        op: OpArg,
    },
    /// Return (part of) a sale of this store: `--line INDEX:QTY` (pieces, or
    /// kg for weighed items; add `:damaged` to keep it out of stock). A sale
    /// this register does not know is returned by product (`--product`): a
    /// supervisor approves and the hub reviews it.
    Return {
        /// The sale's id or its fiscal number.
        #[arg(long)]
        sale: String,
        /// A line to return: INDEX:QTY[:damaged].
        #[arg(long = "line", required_unless_present = "products")]
        lines: Vec<String>,
        /// A product of a sale unknown here: CODE:QTY[@PRICE][:damaged]
        /// (the price paid, per unit or kg; the shelf price by default).
        #[arg(long = "product")]
        products: Vec<String>,
        /// cash, card, transfer or store_credit (with --customer, or the
        /// sale's customer).
        #[arg(long, default_value = "cash")]
        refund: String,
        /// The customer credited, for a store-credit refund.
        #[arg(long)]
        customer: Option<CustomerId>,
        #[command(flatten)]
        approver: ApproverArg,
        #[command(flatten)]
        op: OpArg,
    },
    /// Open the cash drawer without a sale (a supervisor approves).
    #[command(subcommand)]
    Drawer(DrawerCmd),
    /// A customer's store-credit balance.
    Credit {
        /// The customer.
        #[arg(long)]
        customer: CustomerId,
    },
    /// Cash in, out (a supervisor approves) or dropped to the safe.
    Cash {
        /// in, out or drop.
        kind: String,
        /// Amount, e.g. 500.00.
        #[arg(long)]
        amount: Money,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        approver: ApproverArg,
        #[command(flatten)]
        op: OpArg,
    },
    /// Fiado: take a payment on a customer's debt.
    #[command(subcommand)]
    Debt(DebtCmd),
    /// Receive or count stock.
    #[command(subcommand)]
    Stock(StockCmd),
    /// Create or update a customer.
    Customer {
        /// Existing customer to update.
        #[arg(long)]
        id: Option<CustomerId>,
        /// Name.
        #[arg(long)]
        name: String,
        /// Phone.
        #[arg(long)]
        phone: Option<String>,
        /// RNC or cédula.
        #[arg(long)]
        tax_id: Option<String>,
        /// Credit limit, e.g. 500.00.
        #[arg(long, default_value = "0")]
        credit_limit: Money,
        #[command(flatten)]
        op: OpArg,
    },
    /// Receipts: show one as printed, or queue a reprint ("COPIA").
    #[command(subcommand)]
    Receipt(ReceiptCmd),
    /// Fiscal numbers: what is left, or give back the unused ones.
    #[command(subcommand)]
    Fiscal(FiscalCmd),
    /// Print the receipts that are due on the configured printer now.
    Print {
        /// First put the receipts that were given up back in the queue.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Shift, journal, sync, printer and scale state.
    Status,
    /// The scale: read the weight now, or run a virtual scale.
    #[command(subcommand)]
    Scale(ScaleCmd),
    /// The Z report of the open shift (or of --shift).
    ZReport {
        /// A closed shift.
        #[arg(long)]
        shift: Option<ShiftId>,
    },
    /// Verify the whole journal chain and its checkpoints.
    Verify,
    /// Write the journal as JSON lines (one canonical envelope per line).
    Export {
        /// Output file (stdout by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Copy the database to a file (consistent while the node runs).
    Backup {
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the database with a backup file.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Rebuild every projection from the journal and hub chain.
    Rebuild,
    /// Import hub events (a pull page saved as JSON: {"events", "hub_checkpoint"}).
    #[command(subcommand)]
    Hub(HubCmd),
    /// Enroll this register with a hub (one-time token from head office).
    Enroll {
        /// The hub's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        hub: String,
        /// The one-time enrollment token.
        #[arg(long)]
        token: String,
    },
    /// Sync once with the hub: recover own events if needed, push, pull.
    Sync,
    /// Run the sync engine until stopped (Ctrl-C): the long-running node.
    /// It also prints receipts, and serves the cashier's screen when
    /// `ui_listen` is set in config.toml.
    Run,
    /// Serve the cashier's screen (and print receipts, and sync when a hub is
    /// configured) until stopped: open http://127.0.0.1:8080/ in the
    /// register's browser.
    Ui {
        /// Loopback address to serve on (default: `ui_listen` in
        /// config.toml, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Try a register without a hub: write a sample catalog as a hub-chain page
    /// signed by a new throw-away hub key, and print that key for `init`.
    SampleCatalog {
        /// The store the page is for.
        #[arg(long)]
        store: StoreId,
        /// The page file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ScaleCmd {
    /// Poll the configured scale once and show the weight and whether it may
    /// be sold.
    Read,
    /// Run a simulated scale on a new pseudo-terminal until stopped: prints the
    /// port to configure, answers with the weight written in --weight-file
    /// (grams, "motion" or "silent").
    Virtual {
        /// toledo or cas.
        #[arg(long, default_value = "toledo")]
        protocol: String,
        /// The file holding the current weight.
        #[arg(long)]
        weight_file: PathBuf,
        /// Also make a symbolic link to the port here (a stable path for
        /// config.toml).
        #[arg(long)]
        link: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ReceiptCmd {
    /// Print a sale's receipt as text (rendered to ESC/POS and decoded back).
    Show {
        /// The sale.
        #[arg(long)]
        sale: SaleId,
    },
    /// Queue a reprint of a sale's receipt, marked "COPIA", and try to print it.
    Reprint {
        /// The sale.
        #[arg(long)]
        sale: SaleId,
    },
}

#[derive(Debug, Args)]
struct OpArg {
    /// Client operation id: retrying with the same id applies the operation once.
    #[arg(long = "op")]
    op: Option<OpId>,
}

#[derive(Debug, Subcommand)]
enum ShiftCmd {
    /// Open a shift (with staff on the register: `--cashier` names a member
    /// of staff and `--pin` signs them in).
    Open {
        /// The cashier.
        #[arg(long)]
        cashier: String,
        /// The cashier's PIN (registers with staff).
        #[arg(long, env = "CAJA_NODE_PIN", hide_env_values = true)]
        pin: Option<String>,
        /// Opening cash float, e.g. 5000.00.
        #[arg(long = "float", default_value = "0")]
        opening_float: Money,
        #[command(flatten)]
        op: OpArg,
    },
    /// Close the open shift and print its Z report (with staff: `--by` and
    /// `--pin`; a supervisor may close another person's shift).
    Close {
        /// Cash counted in the drawer, e.g. 5350.00.
        #[arg(long)]
        counted: Money,
        /// Who closes (name or staff id), on a register with staff.
        #[arg(long)]
        by: Option<String>,
        /// Their PIN.
        #[arg(long, env = "CAJA_NODE_PIN", hide_env_values = true)]
        pin: Option<String>,
        #[command(flatten)]
        op: OpArg,
    },
}

#[derive(Debug, Args)]
struct SellArgs {
    /// An item: CODE or CODE:QTY (pieces, or kg for weighed items: 0.455),
    /// and @PRICE to sell it at another price than the shelf's (a price
    /// override: a supervisor approves), e.g. ARROZ:2@60.00.
    #[arg(long = "item")]
    items: Vec<String>,
    /// Cash tendered.
    #[arg(long)]
    cash: Option<Money>,
    /// Card amount (with --card-ref).
    #[arg(long)]
    card: Option<Money>,
    /// Card terminal reference.
    #[arg(long)]
    card_ref: Option<String>,
    /// Transfer/QR amount (with --transfer-ref).
    #[arg(long)]
    transfer: Option<Money>,
    /// Transfer reference.
    #[arg(long)]
    transfer_ref: Option<String>,
    /// Amount on fiado (with --customer).
    #[arg(long)]
    fiado: Option<Money>,
    /// Amount paid with the customer's store credit (with --customer).
    #[arg(long)]
    store_credit: Option<Money>,
    /// The customer.
    #[arg(long)]
    customer: Option<CustomerId>,
    /// Discount on the whole sale.
    #[arg(long)]
    discount: Option<Money>,
    /// Fiscal document type (series prefix, e.g. B01); default from config.
    #[arg(long)]
    doc: Option<String>,
    /// The buyer's RNC or cédula (required for B01/E31).
    #[arg(long)]
    buyer: Option<String>,
    /// A weighed item (CODE), its weight read from the configured scale: the
    /// sale is made only with a stable weight within the scale's capacity.
    #[arg(long = "weigh")]
    weigh: Vec<String>,
    #[command(flatten)]
    approver: ApproverArg,
    /// Read the sale as JSON from stdin instead.
    #[arg(long)]
    stdin: bool,
    /// Make the same sale N times, each with a new op id, printing each
    /// acknowledged sale as soon as it is durable (demos and crash tests).
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    #[command(flatten)]
    op: OpArg,
}

/// A supervisor's approval: who and their PIN.
#[derive(Debug, Args)]
struct ApproverArg {
    /// The supervisor (name or staff id), on a register with staff.
    #[arg(long)]
    approver: Option<String>,
    /// The supervisor's PIN.
    #[arg(
        long = "approver-pin",
        env = "CAJA_NODE_APPROVER_PIN",
        hide_env_values = true
    )]
    approver_pin: Option<String>,
}

#[derive(Debug, Subcommand)]
enum DrawerCmd {
    /// Kick the drawer open through the printer and record why.
    Open {
        /// Why (required), e.g. "cambio para otra caja".
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        approver: ApproverArg,
        #[command(flatten)]
        op: OpArg,
    },
}

#[derive(Debug, Subcommand)]
enum FiscalCmd {
    /// Numbers left per series.
    Status,
    /// Give back every unused number (e.g. before retiring the register).
    Release {
        #[command(flatten)]
        op: OpArg,
    },
}

#[derive(Debug, Subcommand)]
enum DebtCmd {
    /// Take a payment on a customer's fiado (oldest debts first).
    Pay {
        /// The customer.
        #[arg(long)]
        customer: CustomerId,
        /// Amount, e.g. 150.00.
        #[arg(long)]
        amount: Money,
        /// cash, card or transfer.
        #[arg(long, default_value = "cash")]
        method: String,
        #[command(flatten)]
        op: OpArg,
    },
}

#[derive(Debug, Subcommand)]
enum StockCmd {
    /// Stock arrived.
    Receive {
        /// SKU or barcode.
        #[arg(long)]
        product: String,
        /// Quantity (pieces, or kg for weighed items).
        #[arg(long)]
        qty: QtyMilli,
        /// Supplier invoice.
        #[arg(long)]
        reference: Option<String>,
        #[command(flatten)]
        op: OpArg,
    },
    /// Stock counted on the shelf.
    Count {
        /// SKU or barcode.
        #[arg(long)]
        product: String,
        /// Quantity counted.
        #[arg(long)]
        qty: QtyMilli,
        #[command(flatten)]
        op: OpArg,
    },
}

#[derive(Debug, Subcommand)]
enum HubCmd {
    /// Import a page of hub events.
    Import {
        /// The page file.
        #[arg(long)]
        file: PathBuf,
    },
    /// After support confirmed why the hub's audit log changed (status shows
    /// it as critical), forget the heads seen so far and trust the hub's
    /// current log again; the next sync verifies from there.
    TrustLog,
}

/// A failure with its exit code and a sentence for the person.
struct Failure {
    code: u8,
    error: &'static str,
    message: String,
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

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_REFUSED,
        error: "refused",
        message: message.into(),
    }
}

type Node = Register<SystemClock, OsRandom>;

fn os_random() -> Result<OsRandom, Failure> {
    OsRandom::new().map_err(|e| Failure {
        code: 1,
        error: "failed",
        message: format!("Fuente aleatoria del sistema no disponible: {e}."),
    })
}

fn open(dir: &DataDir) -> Result<Node, Failure> {
    Ok(Register::open(dir, SystemClock, os_random()?)?)
}

fn op_id(op: &OpArg) -> Result<OpId, Failure> {
    match op.op {
        Some(id) => Ok(id),
        None => Ok(OpId::new_v7(SystemClock.now_ms(), &mut os_random()?)
            .map_err(|e| refused(e.to_string()))?),
    }
}

/// Prints a result: JSON with `--json`, else the sentence.
fn emit<T: Serialize>(
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
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure {
            code: 1,
            error: "failed",
            message: format!("No se pudo escribir la salida: {e}."),
        })
}

fn parse_item(s: &str) -> Result<LineRequest, Failure> {
    let (s, unit_price) = match s.split_once('@') {
        Some((item, price)) => (
            item,
            Some(
                price
                    .parse::<Money>()
                    .map_err(|e| refused(format!("Precio inválido en «{s}»: {e}.")))?
                    .0,
            ),
        ),
        None => (s, None),
    };
    let (code, qty) = match s.split_once(':') {
        Some((c, q)) => (
            c,
            q.parse::<QtyMilli>()
                .map_err(|e| refused(format!("Cantidad inválida en «{s}»: {e}.")))?,
        ),
        None => (s, QtyMilli::ONE),
    };
    Ok(LineRequest {
        code: code.to_owned(),
        qty_milli: qty.0,
        discount: None,
        unit_price,
    })
}

fn sale_request(a: &SellArgs) -> Result<SaleRequest, Failure> {
    if a.stdin {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| refused(format!("No se pudo leer la venta de stdin: {e}.")))?;
        return serde_json::from_str(&buf)
            .map_err(|e| refused(format!("La venta en JSON es inválida: {e}.")));
    }
    let lines = a
        .items
        .iter()
        .map(|s| parse_item(s))
        .collect::<Result<_, _>>()?;
    let mut payments = Vec::new();
    let mut push = |method, amount: Option<Money>, reference: Option<String>| {
        if let Some(m) = amount {
            payments.push(PaymentRequest {
                method,
                amount: m.0,
                reference,
            });
        }
    };
    push(PaymentMethod::Cash, a.cash, None);
    push(PaymentMethod::Card, a.card, a.card_ref.clone());
    push(PaymentMethod::Transfer, a.transfer, a.transfer_ref.clone());
    push(PaymentMethod::Fiado, a.fiado, None);
    push(PaymentMethod::StoreCredit, a.store_credit, None);
    Ok(SaleRequest {
        lines,
        payments,
        discount: a.discount.map(|d| d.0),
        customer: a.customer,
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    let root = cli.data_dir.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".caja").join("node"))
            .unwrap_or_else(|| PathBuf::from("caja-node-data"))
    });
    let dir = DataDir::new(root);
    let json = cli.json;
    match cli.command {
        Command::Version => emit(json, &caja_node::version_text(), Clone::clone),
        Command::Init {
            store,
            device,
            hub_key,
        } => {
            let hub_public_key = hub_key
                .map(|h| HubPublicKey::from_hex(&h))
                .transpose()
                .map_err(|e| {
                    refused(format!(
                        "Llave pública de la oficina central inválida: {e}."
                    ))
                })?;
            let rec = caja_node::datadir::init(
                &dir,
                &InitParams {
                    store,
                    device,
                    hub_public_key,
                },
                &SystemClock,
                &mut os_random()?,
            )?;
            let v = serde_json::json!({"store": rec.store, "device": rec.device, "data_dir": dir.root()});
            emit(json, &v, |_| {
                format!(
                    "Caja inicializada: tienda {}, caja {}, datos en {}.",
                    rec.store,
                    rec.device,
                    dir.root().display()
                )
            })
        }
        Command::Shift(ShiftCmd::Open {
            cashier,
            pin,
            opening_float,
            op,
        }) => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let r = match pin {
                Some(pin) => {
                    let cred = credentials(&node, &cashier, pin)?;
                    node.open_shift_signed(id, &cred, opening_float)?
                }
                None => node.open_shift(id, &cashier, opening_float)?,
            };
            emit(json, &r, messages::shift_opened)
        }
        Command::Return {
            sale,
            lines,
            products,
            refund,
            customer,
            approver,
            op,
        } => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let mut parsed = Vec::new();
            for l in &lines {
                parsed.push(return_line(l)?);
            }
            let mut unknown = Vec::new();
            for p in &products {
                unknown.push(return_product(p)?);
            }
            let refund = match refund.as_str() {
                "cash" | "efectivo" => PaymentMethod::Cash,
                "card" | "tarjeta" => PaymentMethod::Card,
                "transfer" | "transferencia" => PaymentMethod::Transfer,
                "store_credit" | "credito" => PaymentMethod::StoreCredit,
                other => {
                    return Err(refused(format!(
                        "Forma de reembolso desconocida: {other} (cash, card, transfer o store_credit)."
                    )))
                }
            };
            let cred = approver_credentials(&node, approver)?;
            let r = node.return_sale(
                id,
                &caja_node::register::ReturnRequest {
                    sale,
                    lines: parsed,
                    refund,
                    customer,
                    unknown_original: unknown,
                },
                cred.as_ref(),
            )?;
            emit(json, &r, messages::return_done)
        }
        Command::Drawer(DrawerCmd::Open {
            reason,
            approver,
            op,
        }) => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let cred = approver_credentials(&node, approver)?;
            let r = node.open_drawer(id, &reason, cred.as_ref())?;
            emit(json, &r, messages::drawer_opened)?;
            // Committed: the kick goes out with the print queue (a printer
            // problem is a warning; the job stays queued).
            print_after(&mut node, json);
            Ok(())
        }
        Command::Credit { customer } => {
            let balance = open(&dir)?.store_credit_balance(customer)?;
            emit(
                json,
                &serde_json::json!({"customer": customer, "store_credit": balance}),
                |_| messages::store_credit(customer, balance),
            )
        }
        Command::Cash {
            kind,
            amount,
            reason,
            approver,
            op,
        } => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let kind = match kind.as_str() {
                "in" => caja_shared::kind::CashMovement::PaidIn,
                "out" => caja_shared::kind::CashMovement::PaidOut,
                "drop" => caja_shared::kind::CashMovement::Drop,
                other => {
                    return Err(refused(format!(
                        "Movimiento desconocido: {other} (in, out o drop)."
                    )))
                }
            };
            let cred = approver_credentials(&node, approver)?;
            let r = node.cash_move(id, kind, amount, &reason, cred.as_ref())?;
            emit(json, &r, |r| messages::written("Movimiento de efectivo", r))
        }
        Command::Shift(ShiftCmd::Close {
            counted,
            by,
            pin,
            op,
        }) => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let cred = approver_credentials(
                &node,
                ApproverArg {
                    approver: by,
                    approver_pin: pin,
                },
            )?;
            let r = node.close_shift_as(id, counted, cred.as_ref())?;
            emit(json, &r, |r| {
                format!(
                    "{}\n{}",
                    messages::shift_closed(r),
                    messages::z_report(&r.z)
                )
            })
        }
        Command::Sell(a) => {
            let mut req = sale_request(&a)?;
            let mut node = open(&dir)?;
            // Weighed before the sale: a scale problem refuses it, unchanged.
            weigh_lines(&node, &a.weigh, &mut req, json)?;
            if a.repeat > 1 && a.op.op.is_some() {
                return Err(refused(
                    "--repeat hace ventas distintas: no se combina con --op.",
                ));
            }
            let doc = caja_node::register::Document {
                series: a.doc.clone(),
                buyer_tax_id: a.buyer.clone(),
            };
            let cred = approver_credentials(
                &node,
                ApproverArg {
                    approver: a.approver.approver.clone(),
                    approver_pin: a.approver.approver_pin.clone(),
                },
            )?;
            for _ in 0..a.repeat.max(1) {
                let id = op_id(&a.op)?;
                let r = node.sell_approved(id, &req, &doc, cred.as_ref())?;
                emit(json, &r, messages::sale_done)?;
            }
            // The sale is committed: a printer problem is only a warning, the
            // receipt stays queued.
            print_after(&mut node, json);
            Ok(())
        }
        Command::Fiscal(FiscalCmd::Status) => {
            // JSON: the series left, as before; the documents' verdicts are
            // in `caja-node status --json` (`fiscal_documents`).
            let st = open(&dir)?.status()?;
            let docs = st.fiscal_documents.clone();
            emit(json, &st.fiscal, |f| messages::status_fiscal(f, &docs))
        }
        Command::Fiscal(FiscalCmd::Release { op }) => {
            let id = op_id(&op)?;
            let r = open(&dir)?.release_fiscal(id)?;
            emit(json, &r, |r| messages::fiscal_released(r))
        }
        Command::Receipt(ReceiptCmd::Show { sale }) => {
            let text = open(&dir)?.receipt_text(sale)?;
            if json {
                emit(
                    json,
                    &serde_json::json!({"sale": sale, "text": text}),
                    |_| String::new(),
                )
            } else {
                emit(json, &text, |t| t.trim_end().to_owned())
            }
        }
        Command::Receipt(ReceiptCmd::Reprint { sale }) => {
            let mut node = open(&dir)?;
            let job = node.reprint(sale)?;
            emit(
                json,
                &serde_json::json!({"sale": sale, "job": job.0}),
                |_| messages::reprint_queued(sale, job),
            )?;
            print_after(&mut node, json);
            Ok(())
        }
        Command::Print { retry_failed } => {
            let mut node = open(&dir)?;
            if retry_failed {
                let n = node.retry_failed_prints()?;
                if !json {
                    emit(json, &n, |n| messages::prints_retried(*n))?;
                }
            }
            let r = node.print_pending()?;
            emit(json, &r, messages::print_run)
        }
        Command::Void {
            sale,
            reason,
            approver,
            op,
        } => {
            let id = op_id(&op)?;
            let mut node = open(&dir)?;
            let cred = approver_credentials(&node, approver)?;
            let r = node.void_approved(id, sale, &reason, cred.as_ref())?;
            emit(json, &r, |r| messages::written("Anulación", r))
        }
        Command::Debt(DebtCmd::Pay {
            customer,
            amount,
            method,
            op,
        }) => {
            let method = match method.as_str() {
                "cash" | "efectivo" => PaymentMethod::Cash,
                "card" | "tarjeta" => PaymentMethod::Card,
                "transfer" | "transferencia" => PaymentMethod::Transfer,
                other => return Err(refused(format!("Método de pago desconocido: {other}."))),
            };
            let id = op_id(&op)?;
            let r = open(&dir)?.pay_debt(id, customer, amount, method)?;
            emit(json, &r, messages::debt_paid)
        }
        Command::Stock(StockCmd::Receive {
            product,
            qty,
            reference,
            op,
        }) => {
            let id = op_id(&op)?;
            let r = open(&dir)?.receive_stock(id, &product, qty, reference.as_deref())?;
            emit(json, &r, |r| {
                messages::written("Recepción de inventario", r)
            })
        }
        Command::Stock(StockCmd::Count { product, qty, op }) => {
            let id = op_id(&op)?;
            let r = open(&dir)?.count_stock(id, &product, qty)?;
            emit(json, &r, |r| messages::written("Conteo de inventario", r))
        }
        Command::Customer {
            id,
            name,
            phone,
            tax_id,
            credit_limit,
            op,
        } => {
            let op = op_id(&op)?;
            let r = open(&dir)?.upsert_customer(
                op,
                &CustomerRequest {
                    customer_id: id,
                    name,
                    phone,
                    tax_id,
                    credit_limit: credit_limit.0,
                },
            )?;
            emit(json, &r, messages::customer_saved)
        }
        Command::Status => {
            let node = open(&dir)?;
            let s = node.status()?;
            let scale = scale_settings(&node)?.map(|sc| devices::scale_report(&sc));
            if json {
                let mut v = serde_json::to_value(&s).map_err(|e| refused(e.to_string()))?;
                v["scale_reading"] =
                    serde_json::to_value(&scale).map_err(|e| refused(e.to_string()))?;
                emit(json, &v, |_| String::new())
            } else {
                emit(json, &s, |s| match &scale {
                    Some(r) => format!("{}\n{}", messages::status(s), messages::scale_report(r)),
                    None => messages::status(s),
                })
            }
        }
        Command::Scale(ScaleCmd::Read) => {
            let node = open(&dir)?;
            let scale = scale_settings(&node)?
                .ok_or_else(|| device_failure(&devices::DeviceError::NoScale))?;
            let r = devices::scale_report(&scale);
            if r.sellable {
                emit(json, &r, messages::scale_report)
            } else {
                // Not a weight that may be sold: said once, as the refusal.
                Err(Failure {
                    code: EXIT_REFUSED,
                    error: "scale",
                    message: messages::scale_report(&r),
                })
            }
        }
        Command::Scale(ScaleCmd::Virtual {
            protocol,
            weight_file,
            link,
        }) => virtual_scale(&protocol, &weight_file, link.as_deref(), json),
        Command::ZReport { shift } => {
            let z = open(&dir)?.z_report(shift)?;
            emit(json, &z, messages::z_report)
        }
        Command::Verify => verify(&dir, json),
        Command::Export { out } => {
            let db = caja_node::db::Db::open(dir.db_path()).map_err(OpError::from)?;
            let n = match out {
                Some(path) => {
                    let f = std::fs::File::create(&path).map_err(|e| {
                        refused(format!("No se pudo crear {}: {e}.", path.display()))
                    })?;
                    Journal::export_jsonl(db.conn(), std::io::BufWriter::new(f))
                        .map_err(OpError::from)?
                }
                None => Journal::export_jsonl(db.conn(), std::io::stdout().lock())
                    .map_err(OpError::from)?,
            };
            if json {
                Ok(())
            } else {
                eprintln!("{n} eventos exportados.");
                Ok(())
            }
        }
        Command::Backup { out } => {
            let seq = caja_node::datadir::backup(&dir, &out)?;
            let v = serde_json::json!({"backup": out, "head_seq": seq});
            emit(json, &v, |_| {
                format!(
                    "Respaldo creado en {} (hasta el evento #{seq}).",
                    out.display()
                )
            })
        }
        Command::Restore { from } => {
            let seq = caja_node::datadir::restore(&dir, &from, SystemClock.now_ms())?;
            open(&dir)?;
            let v = serde_json::json!({"restored_from": from, "head_seq": seq});
            emit(json, &v, |_| {
                format!(
                    "Respaldo restaurado (hasta el evento #{seq}). Sincronice con la oficina central antes de emitir comprobantes fiscales."
                )
            })
        }
        Command::Rebuild => {
            let (before, after) = open(&dir)?.rebuild()?;
            let v = serde_json::json!({"before": before, "after": after, "equal": before == after});
            emit(json, &v, |_| {
                if before == after {
                    format!(
                        "Proyecciones reconstruidas: idénticas ({}).",
                        &after.to_hex()[..12]
                    )
                } else {
                    format!(
                        "Proyecciones reconstruidas: diferían ({} → {}).",
                        &before.to_hex()[..12],
                        &after.to_hex()[..12]
                    )
                }
            })
        }
        Command::SampleCatalog { store, out } => sample_catalog(store, &out, json),
        Command::Enroll { hub, token } => enroll(&dir, &hub, &token, json),
        Command::Sync => {
            let mut engine = sync_engine(&dir)?;
            let (r, _) = engine.tick();
            let r = r.map_err(sync_failure)?;
            let v = serde_json::json!({
                "recovered": r.recovered, "pushed": r.pushed, "duplicates": r.duplicates,
                "held": r.held, "hub_events": r.hub_events, "peer_events": r.peer_events,
                "skew_ms": engine.skew_ms(),
            });
            emit(json, &v, |_| {
                format!(
                    "Sincronizado: {} eventos enviados ({} ya estaban), {} de la oficina central, {} de otras cajas{}.",
                    r.pushed,
                    r.duplicates,
                    r.hub_events,
                    r.peer_events,
                    if r.recovered > 0 { format!(", {} propios recuperados", r.recovered) } else { String::new() }
                )
            })
        }
        Command::Run => run_node(&dir, json, None, false),
        Command::Ui { listen } => {
            let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
                .map_err(|e| Failure::from(OpError::from(e)))?;
            let text = listen
                .or(cfg.ui_listen)
                .unwrap_or_else(|| caja_node::config::DEFAULT_UI_LISTEN.to_owned());
            let addr = caja_node::config::parse_ui_listen(&text)
                .map_err(|e| Failure::from(OpError::from(e)))?;
            run_node(&dir, json, Some(addr), true)
        }
        Command::Hub(HubCmd::Import { file }) => {
            let text = std::fs::read(&file)
                .map_err(|e| refused(format!("No se pudo leer {}: {e}.", file.display())))?;
            let page: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| refused(format!("Página inválida: {e}.")))?;
            let events = page["events"]
                .as_array()
                .ok_or_else(|| refused("La página no tiene «events»."))?
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    caja_shared::canonical::Value::from_serde(e.clone())
                        .map_err(|err| refused(format!("events[{i}]: {err}")))
                        .and_then(|v| {
                            Event::from_value(v)
                                .map_err(|err| refused(format!("events[{i}].{err}")))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let cp: HubCheckpoint = serde_json::from_value(page["hub_checkpoint"].clone())
                .map_err(|e| refused(format!("hub_checkpoint inválido: {e}.")))?;
            let n = open(&dir)?.import_hub_events(&events, &cp)?;
            let v = serde_json::json!({"imported": n});
            emit(json, &v, |_| {
                format!("{n} eventos de la oficina central importados.")
            })
        }
        Command::Hub(HubCmd::TrustLog) => {
            let node = open(&dir)?;
            caja_node::sync::engine::reset_hub_trust(node.conn()).map_err(|e| Failure {
                code: EXIT_STORAGE,
                error: "storage",
                message: format!("No se pudo guardar: {e}."),
            })?;
            let v = serde_json::json!({"hub_log": "unverified"});
            emit(json, &v, |_| {
                "Registro de auditoría de la oficina central: se verificará de nuevo desde la próxima sincronización.".into()
            })
        }
    }
}

/// The long-running node: the sync engine (unless `hub_optional` and no hub
/// is configured), the printer thread, and the cashier's screen on `ui` (or
/// on `ui_listen` of config.toml), until the process is stopped.
fn run_node(
    dir: &DataDir,
    json: bool,
    ui: Option<std::net::SocketAddr>,
    hub_optional: bool,
) -> Result<(), Failure> {
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    let ui = match ui {
        Some(a) => Some(a),
        None => cfg
            .ui_address()
            .map_err(|e| Failure::from(OpError::from(e)))?,
    };
    let mut engine = if cfg.hub_url.is_none() && hub_optional {
        None
    } else {
        let engine = sync_engine(dir)?;
        eprintln!(
            "Caja en marcha: sincronizando con {} (Ctrl-C para detener).",
            hub_url(dir)?
        );
        Some(engine)
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Receipts print on their own thread and database connection: a
    // slow or absent printer never holds up sync, nor sales.
    let mut printing = open(dir)?;
    let mut ui_failed = None;
    std::thread::scope(|scope| {
        let stop_ref: &std::sync::atomic::AtomicBool = &stop;
        scope.spawn(|| {
            devices::print_loop(&mut printing, stop_ref, devices::PRINT_POLL, |r| {
                print_report(r, json);
            });
        });
        let screen = ui.map(|addr| {
            let stop = stop.clone();
            scope.spawn(move || {
                let r = caja_node::ui::serve(dir, addr, stop.clone(), |bound| {
                    eprintln!("{}", messages::ui_serving(&bound.to_string()));
                });
                // The screen could not be served: the node stops with it.
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                r
            })
        });
        match engine.as_mut() {
            Some(engine) => engine.run(stop_ref, |r| match r {
                Ok(r) if r.pushed + r.hub_events + r.peer_events + r.recovered > 0 => {
                    let v = serde_json::json!({"pushed": r.pushed, "hub_events": r.hub_events, "peer_events": r.peer_events, "recovered": r.recovered});
                    let _ = emit(json, &v, |_| format!(
                        "Sincronizado: {} enviados, {} de la oficina central, {} de otras cajas.",
                        r.pushed, r.hub_events, r.peer_events
                    ));
                }
                Ok(_) => {}
                Err(e) => eprintln!("Sin conexión con la oficina central: {e}"),
            }),
            None => {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = screen {
            if let Ok(Err(e)) = h.join() {
                ui_failed = Some(e);
            }
        }
    });
    match ui_failed {
        Some(e) => Err(Failure {
            code: 1,
            error: "failed",
            message: messages::ui_failed(&e.to_string()),
        }),
        None => Ok(()),
    }
}

fn hub_url(dir: &DataDir) -> Result<String, Failure> {
    let cfg = caja_node::config::NodeConfig::load(dir.root(), |k| std::env::var(k).ok())
        .map_err(|e| Failure::from(OpError::from(e)))?;
    cfg.hub_url.ok_or_else(|| Failure {
        code: EXIT_NOT_READY,
        error: "not_ready",
        message: "No hay oficina central configurada: `caja-node enroll` o hub_url en config.toml."
            .into(),
    })
}

fn sync_engine(
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

fn sync_failure(e: caja_node::sync::engine::SyncError) -> Failure {
    use caja_node::sync::engine::SyncError;
    let (code, error) = match &e {
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
    Failure {
        code,
        error,
        message: format!("No se pudo sincronizar: {e}."),
    }
}

fn enroll(dir: &DataDir, hub: &str, token: &str, json: bool) -> Result<(), Failure> {
    let client =
        caja_node::sync::client::HubClient::new(hub, caja_node::sync::client::DEFAULT_TIMEOUT_MS)
            .map_err(|e| sync_failure(e.into()))?;
    let e = client.enroll(token).map_err(|e| sync_failure(e.into()))?;
    let rec = caja_node::datadir::adopt_enrollment(
        dir,
        &caja_node::datadir::Adopted {
            store: e.store,
            device: e.device,
            key_id: e.key_id.clone(),
            key: e.key.clone(),
            hub_public_key: e.hub_key,
            hub_url: hub.to_owned(),
        },
        SystemClock.now_ms(),
    )?;
    let v = serde_json::json!({"store": rec.store, "device": rec.device, "hub": hub});
    emit(json, &v, |_| {
        format!(
            "Caja inscrita en la oficina central {hub}: tienda {}, caja {}.",
            rec.store, rec.device
        )
    })
}

fn sample_catalog(store: StoreId, out: &std::path::Path, json: bool) -> Result<(), Failure> {
    let mut rng = os_random()?;
    let key = caja_shared::key::HubSigningKey::generate(&mut rng);
    let chain =
        DeviceId::new_v7(SystemClock.now_ms(), &mut rng).map_err(|e| refused(e.to_string()))?;
    let key_id = "sample-hub".parse().map_err(|_| refused("key id"))?;
    let (events, cp) = caja_node::testkit::hub_chain_page(
        &key,
        &key_id,
        store,
        chain,
        1,
        caja_shared::digest::Hash256::ZERO,
        SystemClock.now_ms(),
        caja_node::testkit::sample_catalog_bodies(),
        &mut rng,
    )
    .map_err(|e| refused(e.to_string()))?;
    let cp = cp.ok_or_else(|| refused("empty catalog"))?;
    let page = caja_node::testkit::page_json(&events, &cp);
    let bytes = serde_json::to_vec_pretty(&page).map_err(|e| refused(e.to_string()))?;
    std::fs::write(out, bytes)
        .map_err(|e| refused(format!("No se pudo escribir {}: {e}.", out.display())))?;
    let public = key.public_key().to_hex();
    let v = serde_json::json!({"page": out, "hub_key": public, "events": events.len()});
    emit(json, &v, |_| {
        format!(
            "Catálogo de ejemplo ({} eventos) escrito en {}.\nLlave pública de la oficina central de ejemplo (para `init --hub-key`):\n{public}",
            events.len(),
            out.display()
        )
    })
}

/// What the running node's printer thread reports on the console.
fn print_report(r: &Result<caja_node::print::PrintRun, OpError>, json: bool) {
    match r {
        Ok(run) => match run.first_error() {
            Some(e) => eprintln!("{}", messages::print_loop_error(e)),
            None => {
                let _ = emit(json, run, messages::print_run);
            }
        },
        Err(e) => eprintln!("{}", messages::print_loop_error(&messages::error(e))),
    }
}

fn device_failure(e: &devices::DeviceError) -> Failure {
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

fn scale_settings(node: &Node) -> Result<Option<devices::ScaleSettings>, Failure> {
    Ok(devices::ScaleSettings::from_config(node.config())?)
}

/// Reads each `--weigh` item's weight from the scale and adds its line. Any
/// scale problem refuses the whole sale before it starts.
fn weigh_lines(
    node: &Node,
    codes: &[String],
    req: &mut SaleRequest,
    json: bool,
) -> Result<(), Failure> {
    if codes.is_empty() {
        return Ok(());
    }
    let scale = scale_settings(node)?;
    for code in codes {
        let line = devices::weigh_line(node.conn(), code, scale.as_ref())
            .map_err(|e| device_failure(&e))?;
        if !json {
            eprintln!("{}", messages::weighed(code, line.qty_milli));
        }
        req.lines.push(line);
    }
    Ok(())
}

/// `caja-node scale virtual`: serves a simulated scale until killed.
fn virtual_scale(
    protocol: &str,
    weight_file: &std::path::Path,
    link: Option<&std::path::Path>,
    json: bool,
) -> Result<(), Failure> {
    let protocol = caja_hardware::scale::Protocol::parse(protocol).ok_or_else(|| {
        refused(format!(
            "Protocolo de balanza desconocido: {protocol} (toledo o cas)."
        ))
    })?;
    let scale = devices::VirtualScale::start(protocol, weight_file, link).map_err(|e| Failure {
        code: 1,
        error: "failed",
        message: format!("No se pudo crear la balanza virtual: {e}."),
    })?;
    let port = link.map_or_else(|| scale.path().to_owned(), |l| l.display().to_string());
    // The port alone on stdout (scripts read it); the explanation on stderr.
    emit(
        json,
        &serde_json::json!({"port": port, "pty": scale.path(), "protocol": protocol.name()}),
        |_| port.clone(),
    )?;
    eprintln!("{}", messages::virtual_scale_started(&port, weight_file));
    let stop = std::sync::atomic::AtomicBool::new(false);
    devices::run_virtual_scale(&scale, &stop);
    Ok(())
}

/// After a committed operation: prints the due receipts when a printer is
/// configured. Never fails the command; problems are warnings on stderr.
fn print_after(node: &mut Node, json: bool) {
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
            } else if !json && !run.jobs.is_empty() {
                eprintln!("{}", messages::print_run(&run));
            }
        }
        Err(e) => eprintln!("{}", messages::print_warning(&messages::error(&e))),
    }
}

fn verify(dir: &DataDir, json: bool) -> Result<(), Failure> {
    let db = caja_node::db::Db::open(dir.db_path()).map_err(OpError::from)?;
    let key = keyfile::read_key_file(&dir.key_path()).map_err(OpError::from)?;
    let tty = std::io::stderr().is_terminal() && !json;
    let head = Journal::verify(db.conn(), &key, None, |done, total| {
        if tty && total > 0 {
            let pct = done.saturating_mul(100) / total;
            let filled = usize::try_from(pct / 5).unwrap_or(20);
            eprint!(
                "\rverificando [{}{}] {done}/{total} ({pct}%)",
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20))
            );
        }
    })
    .map_err(OpError::from)?;
    if tty {
        eprintln!();
    }
    let v = serde_json::json!({"ok": true, "head_seq": head.seq, "head_hash": head.hash});
    emit(json, &v, |_| {
        format!(
            "Diario íntegro: {} eventos, último hash {}.",
            head.seq,
            &head.hash.to_hex()[..16]
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"error": f.error, "message": f.message})
                );
            } else {
                eprintln!("{}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

/// A member of staff by name or id, with the PIN typed.
fn credentials(
    node: &Node,
    who: &str,
    pin: String,
) -> Result<caja_node::staff::Credentials, Failure> {
    let staff_id = caja_node::staff::find(node.conn(), who)
        .map_err(|e| Failure::from(OpError::from(e)))?
        .ok_or_else(|| refused(format!("Empleado desconocido en esta caja: {who}.")))?;
    Ok(caja_node::staff::Credentials { staff_id, pin })
}

fn approver_credentials(
    node: &Node,
    a: ApproverArg,
) -> Result<Option<caja_node::staff::Credentials>, Failure> {
    match (a.approver, a.approver_pin) {
        (Some(who), Some(pin)) => credentials(node, &who, pin).map(Some),
        (None, None) => Ok(None),
        _ => Err(refused("Indique --approver y --approver-pin juntos.")),
    }
}

/// `CODE:QTY[@PRICE][:damaged]` of `caja-node return --product`.
fn return_product(s: &str) -> Result<caja_node::register::ProductReturnRequest, Failure> {
    let bad = || {
        refused(format!(
            "Producto inválido: {s} (use CÓDIGO:CANTIDAD[@PRECIO][:damaged])."
        ))
    };
    let (rest, damaged) = match s.strip_suffix(":damaged") {
        Some(r) => (r, true),
        None => (s, false),
    };
    let (rest, unit_price) = match rest.split_once('@') {
        Some((r, p)) => (r, Some(p.parse::<Money>().map_err(|_| bad())?.0)),
        None => (rest, None),
    };
    let (code, qty) = rest.split_once(':').ok_or_else(bad)?;
    if code.is_empty() {
        return Err(bad());
    }
    Ok(caja_node::register::ProductReturnRequest {
        code: code.to_owned(),
        qty_milli: qty.parse::<QtyMilli>().map_err(|_| bad())?.0,
        unit_price,
        damaged,
    })
}

/// `INDEX:QTY[:damaged]` of `caja-node return --line`.
fn return_line(s: &str) -> Result<caja_node::register::ReturnLineRequest, Failure> {
    let bad = || {
        refused(format!(
            "Línea inválida: {s} (use ÍNDICE:CANTIDAD[:damaged])."
        ))
    };
    let mut parts = s.split(':');
    let line: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let qty = parts.next().ok_or_else(bad)?;
    let qty_milli = qty.parse::<QtyMilli>().map_err(|_| bad())?.0;
    let damaged = match parts.next() {
        None => false,
        Some("damaged") => true,
        Some(_) => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(caja_node::register::ReturnLineRequest {
        line,
        qty_milli,
        damaged,
    })
}
