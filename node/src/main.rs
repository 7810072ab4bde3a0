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

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    let json = cli.json;
    match cli::try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                // A closed stdout (a reader that went away) is not a panic.
                let _ = writeln!(
                    std::io::stdout(),
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
