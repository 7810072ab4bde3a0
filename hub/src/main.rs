//! `caja-hub`: head office's service and admin command-line interface.
//!
//! Commands arrive with their issues (service and admin API, audit log,
//! PostgreSQL). What exists today: `version` and `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Caja hub: receives every register's events exactly once and in causal order,
/// resolves conflicts, accounts for fiscal numbers and keeps a verifiable audit log.
#[derive(Debug, Parser)]
#[command(name = "caja-hub", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this binary and of the formats it speaks.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("{}", caja_hub::version_text());
            ExitCode::SUCCESS
        }
    }
}
