//! The real `caja-hub` and `caja-node` binaries as child processes, for tests
//! that kill them (SIGKILL) and start them again on the same data directories.
//!
//! Cargo gives `CARGO_BIN_EXE_*` only to a binary's own package, so this
//! crate finds the binaries beside its own test executable
//! (`<target>/<profile>/deps/…` → `<target>/<profile>/`) and first asks cargo
//! to build them there (`cargo build -p caja-hub -p caja-node --bins`, a no-op
//! when they are fresh), so a test never runs a stale binary. They are built
//! with the test-only features this crate's own dependencies enable
//! ([`TEST_FEATURES`]: the node's crash points, the hub's test support), so
//! the libraries are the ones already built for the test and the crash-point
//! sweep finds its points armed.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use caja_node::datadir::DataDir;

/// Why a process could not be started or answered badly.
#[derive(Debug, thiserror::Error)]
#[error("process: {0}")]
pub struct ProcError(pub String);

fn perr(what: &str) -> impl Fn(String) -> ProcError + '_ {
    move |e| ProcError(format!("{what}: {e}"))
}

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The features the driven binaries are built with (the same as this crate's
/// dependencies on `caja-node` and `caja-hub` enable): `crashpoints` of
/// caja-node, `testkit` of caja-hub. Not spelled `caja-hub/testkit`: caja-hub
/// has itself as a dev-dependency, and cargo reads that spelling as the
/// feature of the dependency, which a build of the binaries does not use.
pub const TEST_FEATURES: &str = "testkit,crashpoints";

/// The directory holding `caja-hub` and `caja-node`, built for this profile.
pub fn bin_dir() -> Result<PathBuf, ProcError> {
    BUILT.get_or_init(build_binaries).clone().map_err(ProcError)
}

fn build_binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or("test executable has no directory")?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let profile_dir = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("no profile directory")?
        .to_owned();
    let target = dir.parent().ok_or("no target directory")?.to_path_buf();
    let profile = if profile_dir == "debug" {
        "dev".to_owned()
    } else {
        profile_dir
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?
        .join("Cargo.toml");
    let mut build = Command::new(&cargo);
    // The variables cargo set for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*…)
    // must not reach the inner build: build scripts that watch them (ring's
    // does) would rebuild, and the next outer build would rebuild them back.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k == "OUT_DIR"
            || k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_MANIFEST_PATH"
            || k == "CARGO_MANIFEST_LINKS"
            || k == "CARGO_CRATE_NAME"
            || k == "CARGO_BIN_NAME"
            || k == "CARGO_PRIMARY_PACKAGE"
            || k == "CARGO_TARGET_TMPDIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
        {
            build.env_remove(&k);
        }
    }
    let out = build
        .args([
            "build",
            "--quiet",
            "-p",
            "caja-hub",
            "-p",
            "caja-node",
            "--bins",
            "--features",
            TEST_FEATURES,
        ])
        .arg("--profile")
        .arg(&profile)
        .arg("--manifest-path")
        .arg(&workspace)
        .arg("--target-dir")
        .arg(&target)
        .output()
        .map_err(|e| format!("running {cargo:?} build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build of caja-hub and caja-node failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for bin in ["caja-hub", "caja-node"] {
        if !dir.join(bin).exists() {
            return Err(format!(
                "{} missing after the build",
                dir.join(bin).display()
            ));
        }
    }
    Ok(dir)
}

/// The path of one of the binaries (`caja-hub`, `caja-node`).
pub fn binary(name: &str) -> Result<PathBuf, ProcError> {
    Ok(bin_dir()?.join(name))
}

/// A loopback port free right now (bound, read, released), so that a hub can
/// be restarted on the same address its registers were enrolled with.
pub fn free_port() -> Result<u16, ProcError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| perr("bind")(e.to_string()))?;
    let port = l
        .local_addr()
        .map_err(|e| perr("local addr")(e.to_string()))?
        .port();
    Ok(port)
}

fn check(out: Output, what: &str) -> Result<String, ProcError> {
    if !out.status.success() {
        return Err(ProcError(format!(
            "{what} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    String::from_utf8(out.stdout).map_err(|e| perr(what)(e.to_string()))
}

/// Keeps reading a child's pipe so it never blocks on a full one.
fn drain(mut r: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// A `caja-hub serve` process on a fixed loopback port.
#[derive(Debug)]
pub struct HubProcess {
    /// The data directory.
    pub dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin token.
    pub token: String,
    child: Option<Child>,
    /// How many times it was started.
    pub starts: u32,
    /// Extra environment for the next `serve` (e.g. a crash point armed).
    pub serve_env: Vec<(String, String)>,
}

impl HubProcess {
    /// `caja-hub init` on `dir` listening on `port`, then `serve`.
    pub fn init_and_serve(dir: &Path, port: u16, token: &str) -> Result<HubProcess, ProcError> {
        HubProcess::init_and_serve_with(dir, port, token, &[]).map(|(hub, _)| hub)
    }

    /// `caja-hub init` with `extra` arguments (e.g. `--tls-self-signed`,
    /// `--tls-name NAME`), then `serve`; also init's output. With
    /// `--tls-self-signed` the URL is `https://127.0.0.1:<port>` and the
    /// output holds `TLS certificate SHA-256: <hex>`. The admin token goes
    /// through the environment, never the command line.
    pub fn init_and_serve_with(
        dir: &Path,
        port: u16,
        token: &str,
        extra: &[&str],
    ) -> Result<(HubProcess, String), ProcError> {
        let out = Command::new(binary("caja-hub")?)
            .args(["init", "--data-dir"])
            .arg(dir)
            .env("CAJA_HUB_ADMIN_TOKEN", token)
            .args(["--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .output()
            .map_err(|e| perr("caja-hub init")(e.to_string()))?;
        let printed = check(out, "caja-hub init")?;
        let scheme = if extra.contains(&"--tls-self-signed") {
            "https"
        } else {
            "http"
        };
        let mut hub = HubProcess {
            dir: dir.to_path_buf(),
            url: format!("{scheme}://127.0.0.1:{port}"),
            token: token.to_owned(),
            child: None,
            starts: 0,
            serve_env: Vec::new(),
        };
        hub.serve()?;
        Ok((hub, printed))
    }

    /// Starts `caja-hub serve` and waits for its "listening" line.
    pub fn serve(&mut self) -> Result<(), ProcError> {
        if self.child.is_some() {
            return Err(ProcError("the hub is already running".into()));
        }
        // The port may still be held for a moment by the killed process's
        // sockets: try again briefly.
        for attempt in 0..50 {
            let mut child = Command::new(binary("caja-hub")?)
                .args(["serve", "--data-dir"])
                .arg(&self.dir)
                .env("CAJA_HUB_LOG", "warn")
                .envs(self.serve_env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| perr("caja-hub serve")(e.to_string()))?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| ProcError("no stdout".into()))?;
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            if line.starts_with("caja-hub listening on ") {
                drain(reader);
                self.child = Some(child);
                self.starts += 1;
                return Ok(());
            }
            let status = child.wait().map_err(|e| perr("wait")(e.to_string()))?;
            if attempt == 49 {
                return Err(ProcError(format!(
                    "caja-hub serve did not start ({status}): {line:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(ProcError("caja-hub serve did not start".into()))
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill(&mut self) -> Result<(), ProcError> {
        if let Some(mut c) = self.child.take() {
            c.kill().map_err(|e| perr("kill hub")(e.to_string()))?;
            c.wait().map_err(|e| perr("wait hub")(e.to_string()))?;
        }
        Ok(())
    }

    /// SIGTERM, and waits for the graceful exit; its status code.
    pub fn terminate(&mut self) -> Result<Option<i32>, ProcError> {
        let Some(mut c) = self.child.take() else {
            return Ok(None);
        };
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .map_err(|e| perr("kill -TERM")(e.to_string()))?;
        if !sent.success() {
            return Err(ProcError("kill -TERM failed".into()));
        }
        let status = c.wait().map_err(|e| perr("wait hub")(e.to_string()))?;
        Ok(status.code())
    }

    /// Waits up to `timeout` for `serve` to exit by itself (a crash point
    /// aborted it); its exit status, or `None` if it still runs (then it is
    /// left running).
    pub fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, ProcError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let Some(c) = self.child.as_mut() else {
                return Ok(None);
            };
            if let Some(status) = c.try_wait().map_err(|e| perr("wait hub")(e.to_string()))? {
                self.child = None;
                return Ok(Some(status));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `serve` is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `caja-hub admin …` against this hub; its JSON answer.
    pub fn admin(&self, args: &[&str]) -> Result<serde_json::Value, ProcError> {
        let mut cmd = Command::new(binary("caja-hub")?);
        cmd.env("CAJA_HUB_ADMIN_TOKEN", &self.token)
            .env_remove("CAJA_HUB_CA");
        if self.url.starts_with("https://") {
            // The hub's own self-signed certificate.
            cmd.env("CAJA_HUB_CA", self.dir.join("tls/cert.pem"));
        }
        let out = cmd
            .args(["admin", "--url", &self.url])
            .args(args)
            .output()
            .map_err(|e| perr("caja-hub admin")(e.to_string()))?;
        let text = check(out, &format!("caja-hub admin {args:?}"))?;
        serde_json::from_str(&text).map_err(|e| perr("admin answer")(format!("{e}: {text}")))
    }

    /// `caja-hub rebuild` (the hub must be stopped); digests before and after.
    pub fn rebuild(&self) -> Result<(String, String), ProcError> {
        let out = Command::new(binary("caja-hub")?)
            .args(["rebuild", "--data-dir"])
            .arg(&self.dir)
            .output()
            .map_err(|e| perr("caja-hub rebuild")(e.to_string()))?;
        let text = check(out, "caja-hub rebuild")?;
        let digest = |label: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|d| d.trim().to_owned())
                .ok_or_else(|| ProcError(format!("no {label:?} in {text:?}")))
        };
        Ok((digest("digest before:")?, digest("digest after:")?))
    }

    /// A read connection to the hub's database (also while it runs: WAL).
    pub fn db(&self) -> Result<rusqlite::Connection, ProcError> {
        let c = rusqlite::Connection::open(self.dir.join(caja_hub::datadir::DB_FILE))
            .map_err(|e| perr("hub db")(e.to_string()))?;
        c.busy_timeout(Duration::from_secs(10))
            .map_err(|e| perr("busy timeout")(e.to_string()))?;
        Ok(c)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A register's data directory driven through the `caja-node` binary.
#[derive(Debug)]
pub struct NodeProcess {
    /// The data directory.
    pub dir: PathBuf,
    run: Option<Child>,
    /// How many times `caja-node run` was started.
    pub starts: u32,
}

impl NodeProcess {
    /// A register in `dir` (not created yet).
    pub fn new(dir: &Path) -> NodeProcess {
        NodeProcess {
            dir: dir.to_path_buf(),
            run: None,
            starts: 0,
        }
    }

    fn command(&self) -> Result<Command, ProcError> {
        let mut c = Command::new(binary("caja-node")?);
        c.env("CAJA_NODE_DATA_DIR", &self.dir)
            .env_remove("CAJA_NODE_HUB_URL")
            .env_remove("CAJA_NODE_PRINTER");
        Ok(c)
    }

    /// Runs one command with `--json` and returns its output (any exit code).
    pub fn output(&self, args: &[&str]) -> Result<Output, ProcError> {
        self.command()?
            .arg("--json")
            .args(args)
            .output()
            .map_err(|e| perr("caja-node")(e.to_string()))
    }

    /// Runs one command that must succeed; its stdout's last JSON line.
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value, ProcError> {
        let text = check(self.output(args)?, &format!("caja-node {args:?}"))?;
        let last = text.lines().last().unwrap_or_default();
        serde_json::from_str(last).map_err(|e| perr("caja-node answer")(format!("{e}: {text}")))
    }

    /// Starts `caja-node run` (the sync engine), output to `log`.
    pub fn start_run(&mut self, log: &Path) -> Result<(), ProcError> {
        if self.run.is_some() {
            return Err(ProcError("caja-node run is already running".into()));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| perr("log")(e.to_string()))?;
        let err = file.try_clone().map_err(|e| perr("log")(e.to_string()))?;
        let child = self
            .command()?
            .arg("--json")
            .arg("run")
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| perr("caja-node run")(e.to_string()))?;
        self.run = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// SIGKILL of `caja-node run`.
    pub fn kill_run(&mut self) -> Result<(), ProcError> {
        if let Some(mut c) = self.run.take() {
            c.kill().map_err(|e| perr("kill node")(e.to_string()))?;
            c.wait().map_err(|e| perr("wait node")(e.to_string()))?;
        }
        Ok(())
    }

    /// Whether `caja-node run` is running.
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// A read connection to the register's database (also while it runs).
    pub fn db(&self) -> Result<rusqlite::Connection, ProcError> {
        let c = rusqlite::Connection::open(DataDir::new(&self.dir).db_path())
            .map_err(|e| perr("node db")(e.to_string()))?;
        c.busy_timeout(Duration::from_secs(10))
            .map_err(|e| perr("busy timeout")(e.to_string()))?;
        Ok(c)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.kill_run();
    }
}
