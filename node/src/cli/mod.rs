//! The command line: `args` holds its shape (clap derive types), `ops` and
//! `admin` one function per command, `common` what they share (the failure
//! type, its exit codes, output). [`try_main`] picks the command's function.
//!
//! Invariant: exit codes and messages are the ones the binary's
//! documentation lists; a refused operation exits 3, never as a storage
//! failure.

mod admin;
pub(crate) mod args;
mod certificate;
mod common;
mod customer_edit;
mod ops;
mod rekey;

use std::path::PathBuf;

use caja_node::datadir::DataDir;

use args::{
    CertificateCmd, Cli, Command, DebtCmd, DrawerCmd, FiscalCmd, HubCmd, ReceiptCmd, ScaleCmd,
    ShiftCmd, StockCmd,
};
use common::Ctx;
pub(crate) use common::Failure;

/// Runs the command `cli` names; the error carries its exit code.
pub(crate) fn try_main(cli: Cli) -> Result<(), Failure> {
    let root = cli.data_dir.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".caja").join("node"))
            .unwrap_or_else(|| PathBuf::from("caja-node-data"))
    });
    let cx = Ctx {
        dir: DataDir::new(root),
        json: cli.json,
    };
    match cli.command {
        Command::Version => admin::version(&cx),
        Command::Init(args) => admin::init(&cx, args),
        Command::Shift(ShiftCmd::Open(args)) => ops::shift_open(&cx, args),
        Command::Return(args) => ops::return_sale(&cx, args),
        Command::Drawer(DrawerCmd::Open(args)) => ops::drawer_open(&cx, args),
        Command::Drawer(DrawerCmd::Manual(args)) => ops::drawer_manual(&cx, args),
        Command::Credit(args) => ops::credit(&cx, args),
        Command::Cash(args) => ops::cash(&cx, args),
        Command::Shift(ShiftCmd::Close(args)) => ops::shift_close(&cx, args),
        Command::Sell(a) => ops::sell(&cx, a),
        Command::Fiscal(FiscalCmd::Status) => ops::fiscal_status(&cx),
        Command::Fiscal(FiscalCmd::Release(args)) => ops::fiscal_release(&cx, args),
        Command::Fiscal(FiscalCmd::Certificate(CertificateCmd::Install(args))) => {
            certificate::install(&cx, args)
        }
        Command::Fiscal(FiscalCmd::Certificate(CertificateCmd::Show)) => certificate::show(&cx),
        Command::Receipt(ReceiptCmd::Show(args)) => ops::receipt_show(&cx, args),
        Command::Receipt(ReceiptCmd::Reprint(args)) => ops::receipt_reprint(&cx, args),
        Command::Print(args) => ops::print_due(&cx, args),
        Command::Void(args) => ops::void(&cx, args),
        Command::Debt(DebtCmd::Pay(args)) => ops::debt_pay(&cx, args),
        Command::Stock(StockCmd::Receive(args)) => ops::stock_receive(&cx, args),
        Command::Stock(StockCmd::Count(args)) => ops::stock_count(&cx, args),
        Command::Customer(args) => ops::customer(&cx, args),
        Command::CustomerEdit(args) => customer_edit::customer_edit(&cx, args),
        Command::Status => admin::status(&cx),
        Command::Scale(ScaleCmd::Read) => admin::scale_read(&cx),
        Command::Scale(ScaleCmd::Virtual(args)) => admin::scale_virtual(&cx, args),
        Command::ZReport(args) => ops::z_report(&cx, args),
        Command::Verify => admin::verify(&cx),
        Command::Export(args) => admin::export(&cx, args),
        Command::Backup(args) => admin::backup(&cx, args),
        Command::Rekey(args) => rekey::rekey(&cx, args),
        Command::Restore(args) => admin::restore(&cx, args),
        Command::Rebuild => admin::rebuild(&cx),
        Command::SampleCatalog(args) => admin::sample_catalog(&cx, args),
        Command::Enroll(args) => admin::enroll(&cx, args),
        Command::Sync => admin::sync(&cx),
        Command::Run => admin::run(&cx),
        Command::Ui(args) => admin::ui(&cx, args),
        Command::Hub(HubCmd::Import(args)) => admin::hub_import(&cx, args),
        Command::Hub(HubCmd::TrustLog) => admin::hub_trust_log(&cx),
    }
}
