//! `caja-hub fiscal certificate install|show`: the hub's own e-CF signing
//! certificate, installed into the data directory
//! (`caja_hub::certificate`), without a running hub.
//!
//! Invariant: the password never comes from an argument: `--password-file`
//! (owner-only), the environment (`CAJA_CERT_PASSWORD`), or a prompt with
//! the terminal's echo off. The PKCS#12 bytes and the password are held in
//! zeroizing buffers; a failed install writes nothing.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, Context};
use caja_hub::certificate::{self as store, CertificateState};
use caja_shared::clock::Clock;
use zeroize::Zeroizing;

/// The environment variable that may carry the PKCS#12 password.
pub const PASSWORD_ENV: &str = "CAJA_CERT_PASSWORD";

fn strip_newline(mut s: Zeroizing<String>) -> Zeroizing<String> {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s
}

fn password(password_file: Option<&Path>) -> anyhow::Result<Zeroizing<String>> {
    if let Some(path) = password_file {
        let bytes = store::read_owner_only(path)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("{}: the password file is not UTF-8", path.display()))?;
        return Ok(strip_newline(Zeroizing::new(text.to_owned())));
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Zeroizing::new(p));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(anyhow!(
            "no password for the PKCS#12 file: set {PASSWORD_ENV}, use --password-file FILE \
             (owner-only) or run on a terminal"
        ));
    }
    prompt(&stdin).context("reading the password from the terminal")
}

fn prompt(stdin: &std::io::Stdin) -> std::io::Result<Zeroizing<String>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let fd = stdin.as_raw_fd();
    let saved = tcgetattr(fd).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("PKCS#12 password: ");
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

fn read_p12(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let max = caja_shared::ecf::certificate::MAX_PKCS12_BYTES;
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(16 * 1024));
    file.take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(|| format!("{}", path.display()))?;
    Ok(buf)
}

fn print_state(state: &CertificateState, now_ms: i64, json: bool) -> anyhow::Result<()> {
    let h = state.health(now_ms);
    if json {
        println!("{}", serde_json::to_string(&h)?);
        return Ok(());
    }
    match state {
        CertificateState::Missing => println!("no e-CF certificate installed"),
        CertificateState::Unreadable(e) => println!("e-CF certificate unreadable: {e}"),
        CertificateState::Installed(info) => {
            println!("subject:    {}", info.subject);
            println!("issuer:     {}", info.issuer);
            println!("serial:     {}", info.serial_hex);
            if let Some(t) = &info.subject_tax_id {
                println!("tax id:     {t}");
            }
            println!(
                "not after:  {} ms UTC ({} day(s) left, {})",
                info.not_after_ms,
                h.days_left.unwrap_or(0),
                h.status
            );
        }
    }
    Ok(())
}

/// `caja-hub fiscal certificate install FILE`.
pub fn install(
    data_dir: &Path,
    file: &Path,
    password_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    if !data_dir.join(caja_hub::datadir::KEY_FILE).exists() {
        return Err(anyhow!(
            "{} holds no hub; run `caja-hub init` first",
            data_dir.display()
        ));
    }
    let p12 = read_p12(file)?;
    let password = password(password_file)?;
    let now = caja_hub::system::SystemClock.now_ms();
    let info = store::install(data_dir, file, &p12, &password, now)
        .context("certificate not installed (nothing was changed)")?;
    if !json {
        println!("installed in {}", store::cert_path(data_dir).display());
    }
    print_state(&CertificateState::Installed(info), now, json)
}

/// `caja-hub fiscal certificate show`.
pub fn show(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let now = caja_hub::system::SystemClock.now_ms();
    print_state(&CertificateState::read(data_dir), now, json)
}
