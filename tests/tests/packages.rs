//! The Debian packages: built with `scripts/package.sh` from the binaries
//! the tests already built (`--no-build --profile dev`: no release build in
//! CI), their control data and contents checked with `dpkg-deb`, every
//! systemd unit verified with `systemd-analyze verify` in a root made of the
//! extracted packages (no systemd runs here: `--root` works without it) and
//! scored with `systemd-analyze security --offline=yes`, and then the
//! README's "Install a store" followed with the packaged binaries: the hub
//! initialized with TLS as the postinst does, its readiness announced to a
//! `NOTIFY_SOCKET` as systemd's `Type=notify` expects, the packaged example
//! catalog loaded, a register enrolled by pinning the printed fingerprint,
//! its screen served on loopback after `READY=1`, and its backup made as the
//! timer makes it.
//!
//! Needs cargo-deb (pinned in `scripts/package.sh`, installed by
//! `scripts/test.sh`), `dpkg-deb` and `systemd-analyze`: without them the
//! test prints why and passes, unless `CAJA_REQUIRE_EXTERNAL=1`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use caja_tests::browser::external_required;
use caja_tests::procs::{bin_dir, free_port};

const UNITS: &[&str] = &[
    "caja-hub.service",
    "caja-hub-backup.service",
    "caja-hub-backup.timer",
    "caja-node.service",
    "caja-node-backup.service",
    "caja-node-backup.timer",
];

/// Highest `systemd-analyze security` exposure accepted for the services
/// (systemd calls up to 1.9 "OK", 2.0 and above "MEDIUM").
const MAX_EXPOSURE: f64 = 2.0;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run(cmd: &mut Command, what: &str) -> String {
    ok(cmd.output().unwrap(), what)
}

/// The cargo test environment must not reach the nested cargo (see
/// `caja_tests::procs`).
fn clean_cargo_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k == "OUT_DIR"
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || matches!(
                k.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            cmd.env_remove(&k);
        }
    }
    cmd
}

#[test]
fn packages_build_units_verify_and_the_install_section_runs() {
    let tools = [
        (
            "cargo",
            "deb",
            "cargo-deb (scripts/package.sh --ensure-tool)",
        ),
        ("dpkg-deb", "--version", "dpkg-deb"),
        (
            "systemd-analyze",
            "--version",
            "systemd-analyze (Debian: systemd)",
        ),
    ];
    for (program, arg, name) in tools {
        let found = if program == "cargo" {
            Command::new("cargo")
                .args(["deb", "--version"])
                .output()
                .is_ok_and(|o| o.status.success())
        } else {
            have(program, arg)
        };
        if !found {
            assert!(
                !external_required(),
                "{name} is missing and CAJA_REQUIRE_EXTERNAL=1"
            );
            eprintln!("SKIPPED packages test: {name} is missing (scripts/test.sh installs it)");
            return;
        }
    }
    let bins = bin_dir().unwrap();
    let profile = match bins.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => panic!("no profile directory"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let debs = tmp.path().join("debs");
    run(
        clean_cargo_env(
            Command::new(workspace().join("scripts/package.sh"))
                .args(["--no-build", "--profile", &profile, "--out"])
                .arg(&debs)
                .current_dir(workspace()),
        ),
        "scripts/package.sh",
    );
    let hub_deb = debs.join(format!(
        "caja-hub_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));
    let node_deb = debs.join(format!(
        "caja-node_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    ));

    // Control data: the maintainer scripts, conffiles and dependencies.
    for (deb, conf, extra) in [
        (&hub_deb, "/etc/caja/hub.env", "util-linux"),
        (&node_deb, "/etc/caja/node.env", "passwd"),
    ] {
        let info = run(Command::new("dpkg-deb").arg("-I").arg(deb), "dpkg-deb -I");
        for want in ["postinst", "prerm", "postrm", "conffiles", "libc6", extra] {
            assert!(info.contains(want), "{}: no {want}\n{info}", deb.display());
        }
        let conffiles = run(
            Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"),
            "dpkg-deb -I conffiles",
        );
        assert_eq!(conffiles.trim(), conf);
    }
    let listing = |deb: &Path| run(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c");
    let hub_files = listing(&hub_deb);
    for f in [
        "./usr/bin/caja-hub",
        "./usr/lib/systemd/system/caja-hub.service",
        "./usr/lib/systemd/system/caja-hub-backup.service",
        "./usr/lib/systemd/system/caja-hub-backup.timer",
        "./etc/caja/hub.env",
        "./usr/share/doc/caja-hub/catalog.example.json",
        "./usr/share/doc/caja-hub/alerts/caja.rules.yml",
        "./usr/share/doc/caja-hub/operations.md",
    ] {
        assert!(
            hub_files.contains(f),
            "caja-hub package lacks {f}\n{hub_files}"
        );
    }
    let node_files = listing(&node_deb);
    for f in [
        "./usr/bin/caja-node",
        "./usr/bin/caja-kiosk",
        "./usr/lib/systemd/system/caja-node.service",
        "./usr/lib/systemd/system/caja-node-backup.service",
        "./usr/lib/systemd/system/caja-node-backup.timer",
        "./etc/caja/node.env",
        "./usr/share/applications/caja-kiosk.desktop",
    ] {
        assert!(
            node_files.contains(f),
            "caja-node package lacks {f}\n{node_files}"
        );
    }

    // A root made of both packages, the host's own units (the targets ours
    // name) and the programs the units run besides ours.
    let root = tmp.path().join("root");
    for deb in [&hub_deb, &node_deb] {
        run(
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root),
            "dpkg-deb -x",
        );
    }
    let units = root.join("usr/lib/systemd/system");
    for dir in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let to = units.join(e.file_name());
            if !to.exists() && e.path().is_file() {
                std::fs::copy(e.path(), to).unwrap();
            }
        }
    }
    for (prog, to) in [
        ("/bin/sh", "bin/sh"),
        ("/bin/kill", "bin/kill"),
        ("/usr/bin/find", "usr/bin/find"),
    ] {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(prog).unwrap(), to).unwrap();
    }
    let mut scores = Vec::new();
    for unit in UNITS {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no", "--generators=no"])
            .arg(format!("--root={}", root.display()))
            .arg(unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Unknown or misspelt settings are only warnings: none is accepted.
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {unit}: {}\n{stderr}",
            out.status
        );
        if unit.ends_with(".service") {
            let out = Command::new("systemd-analyze")
                .args(["security", "--offline=yes", "--no-pager"])
                .arg(format!("--root={}", root.display()))
                .arg(unit)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let score: f64 = text
                .lines()
                .find_map(|l| {
                    l.split_once("Overall exposure level for ")?
                        .1
                        .split_once(": ")?
                        .1
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{text}"));
            assert!(score <= MAX_EXPOSURE, "{unit}: exposure {score}\n{text}");
            scores.push(format!("{unit} {score}"));
        }
    }
    eprintln!("systemd-analyze security --offline: {}", scores.join(", "));
    for script in ["hub", "node"] {
        for s in ["postinst", "prerm", "postrm"] {
            let f = workspace().join(format!("packaging/{script}/debian/{s}"));
            run(Command::new("sh").arg("-n").arg(&f), "sh -n");
        }
    }

    follow_the_install_section(&root, tmp.path());
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn new(dir: &Path, name: &str) -> Notify {
        let path = dir.join(name);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Notify { sock, path }
    }

    /// Waits for a message holding `READY=1`.
    fn ready(&self, what: &str) {
        let mut buf = [0u8; 4096];
        let n = self
            .sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{what} sent nothing to NOTIFY_SOCKET: {e}"));
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.lines().any(|l| l == "READY=1"), "{what}: {msg:?}");
    }
}

/// A unit's `key=` command as a shell line: `/bin/sh -c '…'` unwrapped,
/// systemd's `%%` made `%`, `${VAR}` of `env` substituted.
fn unit_command(unit: &Path, key: &str, env: &[(&str, PathBuf)]) -> String {
    let text = std::fs::read_to_string(unit).unwrap();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{} has no {key}", unit.display()));
    let mut line = value
        .strip_prefix("/bin/sh -c '")
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value)
        .replace("%%", "%");
    for (k, v) in env {
        line = line.replace(&format!("${{{k}}}"), v.to_str().unwrap());
    }
    // systemd passes `-name hub-*.db` unglobbed; keep the shell from globbing.
    line.replace(" -name ", " -name '")
        .replace(".db -mtime", ".db' -mtime")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// docs/operations.md "Install a store", with the packaged binaries and
/// files, every path in a temporary directory instead of the system's.
fn follow_the_install_section(root: &Path, tmp: &Path) {
    let hub_bin = root.join("usr/bin/caja-hub");
    let node_bin = root.join("usr/bin/caja-node");
    let hub_dir = tmp.join("var-lib-caja-hub");
    let port = free_port().unwrap();
    // As the postinst: init with TLS; it prints the fingerprint to pin.
    let printed = run(
        Command::new(&hub_bin)
            .args(["init", "--data-dir"])
            .arg(&hub_dir)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--tls-self-signed",
                "--tls-name",
                "localhost",
            ])
            .env_remove("CAJA_HUB_ADMIN_TOKEN"),
        "caja-hub init",
    );
    let fingerprint = printed
        .lines()
        .find_map(|l| l.strip_prefix("TLS certificate SHA-256: "))
        .unwrap_or_else(|| panic!("no fingerprint in {printed}"))
        .to_owned();
    // caja-hub.service: `serve`, ready to systemd once listening.
    let notify = Notify::new(tmp, "hub.notify");
    let mut child = Command::new(&hub_bin)
        .args(["serve", "--data-dir"])
        .arg(&hub_dir)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("CAJA_HUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _hub = Killed(child);
    notify.ready("caja-hub serve");
    // The admin token from hub.toml, as the section reads it.
    let toml = std::fs::read_to_string(hub_dir.join("hub.toml")).unwrap();
    let token = toml
        .lines()
        .find_map(|l| l.strip_prefix("admin_token = \""))
        .and_then(|t| t.strip_suffix('"'))
        .expect("admin_token in hub.toml")
        .to_owned();
    let url = format!("https://127.0.0.1:{port}");
    let admin = |args: &[&str]| -> serde_json::Value {
        let out = run(
            Command::new(&hub_bin)
                .arg("admin")
                .arg("--hub-ca")
                .arg(hub_dir.join("tls/cert.pem"))
                .args(args)
                .env("CAJA_HUB_URL", &url)
                .env("CAJA_HUB_ADMIN_TOKEN", &token),
            &format!("caja-hub admin {args:?}"),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    let store = admin(&["create-store", "Colmado La Esquina"])["store"]
        .as_str()
        .unwrap()
        .to_owned();
    let catalog = root.join("usr/share/doc/caja-hub/catalog.example.json");
    let loaded = admin(&["load-catalog", catalog.to_str().unwrap()]);
    assert_eq!(loaded["stores"][0]["store"], store.as_str(), "{loaded}");
    let token_answer = admin(&["create-token", &store, "caja 1"]);
    let enroll_token = token_answer["token"].as_str().unwrap().to_owned();

    // The register: enrolled by pinning the fingerprint, then
    // caja-node.service (`run` with the screen on loopback).
    let node_dir = tmp.join("var-lib-caja-node");
    let node = |args: &[&str]| -> String {
        run(
            Command::new(&node_bin)
                .arg("--data-dir")
                .arg(&node_dir)
                .args(args),
            &format!("caja-node {args:?}"),
        )
    };
    node(&[
        "enroll",
        "--hub",
        &url,
        "--hub-cert-sha256",
        &fingerprint,
        "--token",
        &enroll_token,
    ]);
    assert!(
        node_dir.join("device.key").exists(),
        "the unit's condition file"
    );
    node(&["sync"]);
    let ui_port = free_port().unwrap();
    let notify = Notify::new(tmp, "node.notify");
    let child = Command::new(&node_bin)
        .arg("--data-dir")
        .arg(&node_dir)
        .arg("run")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("CAJA_NODE_UI_LISTEN", format!("127.0.0.1:{ui_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = Killed(child);
    notify.ready("caja-node run");
    // Ready means the screen answers (what caja-kiosk waits for).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", ui_port)).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page:.200}");
    // caja-node-backup.service's own commands, while `run` runs: a backup
    // named by the time, then old ones pruned (one made 30 days old goes).
    let backups = tmp.join("var-backups-caja-node");
    std::fs::create_dir_all(&backups).unwrap();
    let old = backups.join("caja-node-20200101T000000Z.db");
    std::fs::write(&old, b"old").unwrap();
    run(
        Command::new("touch").args(["-d", "30 days ago"]).arg(&old),
        "touch",
    );
    let unit = root.join("usr/lib/systemd/system/caja-node-backup.service");
    let env = [
        ("CAJA_NODE_DATA_DIR", node_dir.clone()),
        ("CAJA_NODE_BACKUP_DIR", backups.clone()),
        ("CAJA_NODE_BACKUP_KEEP_DAYS", PathBuf::from("14")),
    ];
    for key in ["ExecStart", "ExecStartPost"] {
        let line = unit_command(&unit, key, &env)
            .replace("/usr/bin/caja-node", node_bin.to_str().unwrap());
        run(
            Command::new("sh")
                .arg("-c")
                .arg(&line)
                .envs(env.iter().map(|(k, v)| (k, v))),
            &line,
        );
    }
    let made: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(
        made[0].starts_with("caja-node-2") && made[0].ends_with("Z.db"),
        "{made:?}"
    );
    // The hub's timer command, once `caja-hub backup` is in this tree: its
    // stamp becomes the backup-age gauge.
    let help = run(Command::new(&hub_bin).arg("--help"), "caja-hub --help");
    if help.lines().any(|l| l.trim_start().starts_with("backup ")) {
        let hub_backups = tmp.join("var-backups-caja-hub");
        std::fs::create_dir_all(&hub_backups).unwrap();
        let unit = root.join("usr/lib/systemd/system/caja-hub-backup.service");
        let env = [
            ("CAJA_HUB_DATA_DIR", hub_dir.clone()),
            ("CAJA_HUB_BACKUP_DIR", hub_backups.clone()),
            ("CAJA_HUB_BACKUP_KEEP_DAYS", PathBuf::from("35")),
        ];
        for key in ["ExecStart", "ExecStartPost"] {
            let line = unit_command(&unit, key, &env)
                .replace("/usr/bin/caja-hub", hub_bin.to_str().unwrap());
            run(
                Command::new("sh")
                    .arg("-c")
                    .arg(&line)
                    .envs(env.iter().map(|(k, v)| (k, v))),
                &line,
            );
        }
        assert_eq!(std::fs::read_dir(&hub_backups).unwrap().count(), 1);
        assert!(
            hub_dir.join("backup-stamp").exists(),
            "caja-hub backup wrote no backup-stamp"
        );
    } else {
        eprintln!(
            "caja-hub backup is not in this tree: the hub's backup timer command was not run"
        );
    }
    // A shift and a sale of the packaged example catalog, pushed by the
    // running service: the hub sees the register.
    node(&["shift", "open", "--cashier", "ana", "--float", "500.00"]);
    node(&["sell", "--item", "ARROZ:2", "--cash", "100.00"]);
    let started = Instant::now();
    loop {
        let health = admin(&["health"]);
        let pushed = health["sync"]["devices"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["acked_seq"].as_u64() >= Some(2)));
        if pushed {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{health}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
