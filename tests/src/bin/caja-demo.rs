//! `caja-demo`: the main job of README.md. Today it runs the foundation demo (the
//! shared core, in memory); the Sync issue turns it into a hub and registers on
//! embedded SQLite.

use std::process::ExitCode;

fn main() -> ExitCode {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    let stdout = std::io::stdout();
    match caja_tests::demo::run(seed, &mut stdout.lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caja-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
