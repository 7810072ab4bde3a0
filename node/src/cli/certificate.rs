//! `caja-node fiscal certificate install|show`: the e-CF signing certificate
//! of this register (stored by `caja_node::fiscal::certificate`).
//!
//! Invariant: the password never comes from an argument (it would sit in
//! the shell history and in `ps`): a file readable by its owner only, the
//! environment (`CAJA_CERT_PASSWORD`, for unattended installs), or a prompt
//! with the terminal's echo off. The PKCS#12 bytes and the password are
//! held in zeroizing buffers; a failed install writes nothing.

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;

use caja_node::fiscal::certificate::{self as store, CertStoreError, CertSummary};
use caja_node::messages::certificate as msg;
use caja_node::system::SystemClock;
use caja_shared::clock::Clock;
use zeroize::Zeroizing;

use super::args::CertInstallArgs;
use super::common::{emit, Ctx, Failure, EXIT_NOT_READY, EXIT_REFUSED};

/// The environment variable that may carry the PKCS#12 password.
pub(crate) const PASSWORD_ENV: &str = "CAJA_CERT_PASSWORD";

fn refused(message: String) -> Failure {
    Failure {
        code: EXIT_REFUSED,
        error: "refused",
        message,
    }
}

fn store_failure(e: &CertStoreError) -> Failure {
    refused(msg::install_failed(&msg::store_error(e)))
}

/// One line without its line ending.
fn strip_newline(mut s: Zeroizing<String>) -> Zeroizing<String> {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s
}

fn password(args: &CertInstallArgs) -> Result<Zeroizing<String>, Failure> {
    if let Some(path) = &args.password_file {
        let bytes = store::read_owner_only(path).map_err(|e| store_failure(&e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| refused(msg::install_failed("the password file is not UTF-8")))?;
        return Ok(strip_newline(Zeroizing::new(text.to_owned())));
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(p));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(refused(msg::no_password()));
    }
    prompt(&stdin).map_err(|e| refused(msg::install_failed(&format!("terminal: {e}"))))
}

/// Reads a line from the terminal with echo off (restored afterwards, also
/// on error).
fn prompt(stdin: &std::io::Stdin) -> std::io::Result<Zeroizing<String>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let fd = stdin.as_raw_fd();
    let saved = tcgetattr(fd).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("{}", msg::prompt());
    std::io::stderr().flush()?;
    tcsetattr(fd, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = Zeroizing::new(String::with_capacity(256));
    let read = stdin.lock().read_line(&mut line);
    let restored = tcsetattr(fd, SetArg::TCSANOW, &saved).map_err(std::io::Error::from);
    eprintln!();
    read?;
    restored?;
    Ok(strip_newline(line))
}

/// `caja-node fiscal certificate install FILE`.
pub(crate) fn install(cx: &Ctx, args: CertInstallArgs) -> Result<(), Failure> {
    if !cx.dir.db_path().exists() {
        return Err(Failure {
            code: EXIT_NOT_READY,
            error: "not_ready",
            message: msg::install_failed(
                "the data directory is not initialized (`caja-node init`)",
            ),
        });
    }
    let p12 = read_p12(&args.file)?;
    let password = password(&args)?;
    let now = SystemClock.now_ms();
    let info =
        store::install(&cx.dir, &args.file, &p12, &password, now).map_err(|e| store_failure(&e))?;
    emit(cx.json, &CertSummary::of(&info, now), msg::installed)
}

fn read_p12(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    use std::io::Read;
    let max = caja_shared::ecf::certificate::MAX_PKCS12_BYTES;
    let file = std::fs::File::open(path)
        .map_err(|e| refused(msg::install_failed(&format!("{}: {e}", path.display()))))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(16 * 1024));
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| refused(msg::install_failed(&format!("{}: {e}", path.display()))))?;
    Ok(buf)
}

/// `caja-node fiscal certificate show`.
pub(crate) fn show(cx: &Ctx) -> Result<(), Failure> {
    let s = store::summary(&cx.dir, SystemClock.now_ms())
        .map_err(|e| refused(msg::unreadable(&msg::store_error(&e))))?;
    emit(cx.json, &s, msg::show)
}
