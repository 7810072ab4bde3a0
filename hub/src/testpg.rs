//! A throwaway PostgreSQL server for tests and the benchmark: test support
//! behind the `testkit` feature, like `workload` and `provider_emulator`, so
//! the hub's tests, the end-to-end tests and the benchmark share it (never in
//! a release build).
//!
//! `initdb` into a fresh directory under the system's temporary directory,
//! `postgres` on a free loopback port with its unix socket in that directory
//! and `fsync` on, trust authentication for the loopback only. The binaries
//! come from `CAJA_PG_BIN`, else `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`. PostgreSQL refuses to run as root: as root the
//! server runs as the user `caja-pg` (created with `useradd` when missing)
//! through `setpriv`. The server is stopped (fast shutdown) and its directory
//! removed when the handle is dropped — or, for the process-wide server of
//! [`shared`], by a watchdog shell as soon as the test process is gone.
//!
//! No test depends on a database someone started by hand. When no server
//! binary is found, [`available`] says why: tests fail when
//! `CAJA_REQUIRE_EXTERNAL=1` (CI, `scripts/test.sh`) and otherwise print a
//! loud skip line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The user the server runs as when the tests run as root.
pub const PG_USER: &str = "caja-pg";
/// The database superuser `initdb` creates.
pub const SUPERUSER: &str = "caja";

/// A PostgreSQL server of a test.
#[derive(Debug)]
pub struct TestPostgres {
    dir: PathBuf,
    port: u16,
    watchdog: Option<Child>,
    databases: AtomicU64,
}

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TestPgError {
    /// No PostgreSQL server binaries on this machine.
    #[error("no PostgreSQL server binaries (set CAJA_PG_BIN to the directory of initdb and postgres, or install the distribution's postgresql package; scripts/test.sh does)")]
    NotInstalled,
    /// A step failed.
    #[error("{0}")]
    Failed(String),
}

fn fail(what: impl std::fmt::Display) -> TestPgError {
    TestPgError::Failed(what.to_string())
}

/// The directory holding `initdb` and `postgres`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CAJA_PG_BIN") {
        let d = PathBuf::from(d);
        if d.join("initdb").exists() && d.join("postgres").exists() {
            return Some(d);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").exists() && d.join("postgres").exists() {
                return Some(d);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

/// Whether tests must fail rather than skip without PostgreSQL.
pub fn required() -> bool {
    std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// The process-wide server (started on first use), or `None` with a loud
/// skip line when PostgreSQL is not installed and not required. Panics when it
/// is required and missing, or when it cannot start.
pub fn shared() -> Option<&'static TestPostgres> {
    static SERVER: OnceLock<Option<TestPostgres>> = OnceLock::new();
    SERVER
        .get_or_init(|| match TestPostgres::start() {
            Ok(pg) => Some(pg),
            Err(TestPgError::NotInstalled) if !required() => {
                eprintln!(
                    "SKIPPED (PostgreSQL): {} — set CAJA_REQUIRE_EXTERNAL=1 to make this a failure",
                    TestPgError::NotInstalled
                );
                None
            }
            Err(e) => panic!("PostgreSQL for the tests: {e}"),
        })
        .as_ref()
}

/// A fresh database on the process-wide server (see [`shared`]).
pub fn fresh_database() -> Option<String> {
    shared().map(|pg| pg.create_database().expect("CREATE DATABASE"))
}

/// Whether a server can be started here: `Err` says why not.
pub fn available() -> Result<PathBuf, TestPgError> {
    bin_dir().ok_or(TestPgError::NotInstalled)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &mut Command, what: &str) -> Result<(), TestPgError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Makes sure the user `caja-pg` exists (as root).
fn ensure_user() -> Result<(), TestPgError> {
    let exists = || {
        Command::new("id")
            .arg(PG_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if exists() {
        return Ok(());
    }
    // Several test processes may race here: whoever loses finds the user.
    let made = run(
        Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(PG_USER),
        "useradd",
    );
    if exists() {
        Ok(())
    } else {
        made
    }
}

/// `cmd` run as `caja-pg` when we are root (`setpriv` execs it directly, so
/// the pid is the server's).
fn as_pg_user(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            PG_USER,
            "--regid",
            PG_USER,
            "--clear-groups",
            "--",
        ])
        .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn free_port() -> Result<u16, TestPgError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    Ok(l.local_addr().map_err(fail)?.port())
}

static SERVERS: AtomicU64 = AtomicU64::new(0);

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// How a test server differs from the default one.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `ssl=on` with this certificate and key (PEM files, copied into the
    /// data directory as `server.crt` / `server.key`, owner-only).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The whole `pg_hba.conf` (default: `initdb`'s, trust on loopback).
    pub hba: Option<String>,
}

impl TestPostgres {
    /// Starts a new server (a few seconds: `initdb`, then start-up).
    pub fn start() -> Result<TestPostgres, TestPgError> {
        TestPostgres::start_with(&StartOptions::default())
    }

    /// Starts a new server with `ssl=on` and the certificate `cert` (PEM) and
    /// its key `key`, its `pg_hba.conf` replaced by `hba` when given.
    pub fn start_tls(
        cert: &Path,
        key: &Path,
        hba: Option<String>,
    ) -> Result<TestPostgres, TestPgError> {
        TestPostgres::start_with(&StartOptions {
            tls: Some((cert.to_owned(), key.to_owned())),
            hba,
        })
    }

    /// Writes `text` to `path` in the data directory, owner-only, owned by
    /// the server's user.
    fn data_file(path: &Path, bytes: &[u8], root: bool) -> Result<(), TestPgError> {
        std::fs::write(path, bytes).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        }
        if root {
            run(
                Command::new("chown")
                    .arg(format!("{PG_USER}:{PG_USER}"))
                    .arg(path),
                "chown",
            )?;
        }
        Ok(())
    }

    /// Starts a new server as `options` say.
    pub fn start_with(options: &StartOptions) -> Result<TestPostgres, TestPgError> {
        let bin = available()?;
        let root = is_root();
        if root {
            ensure_user()?;
        }
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("caja-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(fail)?;
        if root {
            run(
                Command::new("chown")
                    .arg(format!("{PG_USER}:{PG_USER}"))
                    .arg(&dir),
                "chown",
            )?;
        }
        let data = dir.join("data");
        run(
            as_pg_user(&bin.join("initdb"), root)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--no-locale",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]),
            "initdb",
        )?;
        if let Some((cert, key)) = &options.tls {
            let read =
                |p: &Path| std::fs::read(p).map_err(|e| fail(format!("{}: {e}", p.display())));
            TestPostgres::data_file(&data.join("server.crt"), &read(cert)?, root)?;
            TestPostgres::data_file(&data.join("server.key"), &read(key)?, root)?;
        }
        if let Some(hba) = &options.hba {
            TestPostgres::data_file(&data.join("pg_hba.conf"), hba.as_bytes(), root)?;
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut words: Vec<String> = Vec::new();
            if root {
                words.extend(
                    [
                        "setpriv",
                        "--reuid",
                        PG_USER,
                        "--regid",
                        PG_USER,
                        "--clear-groups",
                        "--",
                    ]
                    .map(str::to_owned),
                );
            }
            words.push(bin.join("postgres").display().to_string());
            words.extend(["-D".to_owned(), data.display().to_string()]);
            words.extend(["-p".to_owned(), port.to_string()]);
            words.extend(["-k".to_owned(), dir.display().to_string()]);
            for setting in [
                "listen_addresses=127.0.0.1",
                "fsync=on",
                "synchronous_commit=on",
                "max_connections=300",
                "shared_buffers=32MB",
            ] {
                words.extend(["-c".to_owned(), setting.to_owned()]);
            }
            // Diagnostics: more settings, e.g. `shared_preload_libraries=
            // pg_stat_statements` to see where a push's server time goes.
            if let Ok(extra) = std::env::var("CAJA_TESTPG_SETTINGS") {
                for setting in extra.split_whitespace() {
                    words.extend(["-c".to_owned(), setting.to_owned()]);
                }
            }
            if options.tls.is_some() {
                words.extend(["-c".to_owned(), "ssl=on".to_owned()]);
            }
            let cmdline = words
                .iter()
                .map(|w| sh_quote(Path::new(w)))
                .collect::<Vec<_>>()
                .join(" ");
            // The watchdog: the server runs under a shell that stops it (fast
            // shutdown) and removes the directory when told to (TERM) or when
            // this process is gone.
            let script = format!(
                "{cmd} >{log} 2>&1 & pg=$!\n\
                 trap 'kill -INT $pg 2>/dev/null' TERM\n\
                 while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; do sleep 0.3; done\n\
                 kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}\n",
                cmd = cmdline,
                log = sh_quote(&dir.join("server.log")),
                parent = std::process::id(),
                dir = sh_quote(&dir),
            );
            let watchdog = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(fail)?;
            let mut pg = TestPostgres {
                dir: dir.clone(),
                port,
                watchdog: Some(watchdog),
                databases: AtomicU64::new(0),
            };
            match pg.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return Ok(pg),
                Err(e) => {
                    last_error = format!(
                        "{e}; server log: {}",
                        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                    );
                    // Its watchdog ends with the server; try another port.
                    if let Some(mut w) = pg.watchdog.take() {
                        let _ = w.kill();
                        let _ = w.wait();
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(fail(format!(
            "the PostgreSQL server did not start: {last_error}"
        )))
    }

    fn wait_ready(&mut self, within: Duration) -> Result<(), TestPgError> {
        let started = Instant::now();
        loop {
            if let Some(w) = self.watchdog.as_mut() {
                if let Ok(Some(status)) = w.try_wait() {
                    return Err(fail(format!("the server exited ({status})")));
                }
            }
            match postgres::Client::connect(&self.admin_url(), postgres::NoTls) {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > within => {
                    return Err(fail(format!("not ready after {within:?}: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL to the `postgres` maintenance database.
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// A URL to database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database and returns its URL.
    pub fn create_database(&self) -> Result<String, TestPgError> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("caja_{n}");
        let mut c = postgres::Client::connect(&self.admin_url(), postgres::NoTls).map_err(fail)?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(fail)?;
        Ok(self.url(&name))
    }

    /// Stops the server now (fast shutdown: open transactions are rolled
    /// back) and removes its directory.
    pub fn stop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // TERM makes the watchdog stop the server and remove the directory.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(w.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = w.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throwaway_server_starts_serves_and_goes_away() {
        let mut pg = match TestPostgres::start() {
            Ok(pg) => pg,
            Err(TestPgError::NotInstalled) if !required() => {
                eprintln!("SKIPPED (PostgreSQL): {}", TestPgError::NotInstalled);
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let url = pg.create_database().unwrap();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let fsync: String = c.query_one("SHOW fsync", &[]).unwrap().get(0);
        assert_eq!(fsync, "on");
        let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
        drop(c);
        let dir = pg.dir().to_owned();
        pg.stop();
        assert!(!dir.exists(), "{} removed", dir.display());
        assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
    }
}
