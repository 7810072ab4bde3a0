//! `caja-demo`: the main job of README.md. A real hub and three registers on
//! loopback HTTP play a day at a colmado, converge, and the invariants are
//! checked (exit 1 if one fails).
//!
//! ```text
//! caja-demo [--data-dir DIR] [--seed N]    # the day
//! caja-demo --foundation [N]               # the in-memory core demo
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seed = value("--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.iter().any(|a| a == "--foundation") {
        return match caja_tests::demo::run(seed, &mut out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("caja-demo: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = caja_tests::day::DayOptions {
        data_dir: value("--data-dir").map(Into::into),
        seed,
    };
    match caja_tests::day::run(&opts, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caja-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
