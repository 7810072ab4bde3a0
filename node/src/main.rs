//! `caja-node`: the register's command-line interface.
//!
//! Commands arrive with their issues (journal and operations, sync, fiscal,
//! escrow, hardware). What exists today: `version` and `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Caja register node: sells offline, keeps a durable hash-chained journal and
/// syncs with the hub when the network allows.
#[derive(Debug, Parser)]
#[command(name = "caja-node", version, about, long_about = None)]
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
            println!("{}", caja_node::version_text());
            ExitCode::SUCCESS
        }
    }
}
