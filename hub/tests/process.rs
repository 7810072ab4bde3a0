//! The real `caja-hub` binary: `init`, `serve`, `admin`, a SIGKILL in the middle
//! of a large push (DESIGN invariant 1: exactly once), and a graceful SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caja_hub::admin_client::AdminClient;
use caja_hub::workload::{Register, Workload};
use caja_shared::event::Event;
use caja_shared::ids::StoreId;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_caja-hub");

fn init(dir: &Path) {
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("hub public key: "), "{text}");
}

/// Starts `caja-hub serve` and returns it with its base URL.
fn serve(dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .env("CAJA_HUB_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("caja-hub listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, format!("http://{addr}"))
}

struct Hub {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Hub {
    fn start(dir: &Path) -> Hub {
        let (child, url) = serve(dir);
        Hub {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    fn admin(&self) -> AdminClient {
        AdminClient::new(&self.url, ADMIN_TOKEN).unwrap()
    }

    async fn push(&self, reg: &Register, events: &[Event]) -> Result<Reply, reqwest::Error> {
        push_to(&self.http, &self.url, reg, events).await
    }

    async fn enroll(&self, store: StoreId) -> Register {
        let t = self
            .admin()
            .create_token(&store.to_string(), "caja", None)
            .await
            .unwrap();
        let v: serde_json::Value = self
            .http
            .post(format!("{}/v1/devices/enroll", self.url))
            .json(&serde_json::json!({ "token": t["token"] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Register::new(
            v["device"].as_str().unwrap().parse().unwrap(),
            caja_shared::key::DeviceKey::from_hex(v["key"].as_str().unwrap()).unwrap(),
            v["key_id"].as_str().unwrap().parse().unwrap(),
        )
    }
}

async fn push_to(
    http: &reqwest::Client,
    url: &str,
    reg: &Register,
    events: &[Event],
) -> Result<Reply, reqwest::Error> {
    let body = push_body(reg, events);
    let h = sign(reg, "POST", "/v1/sync/push", &body, now_ms());
    let mut req = http.post(format!("{url}/v1/sync/push")).body(body);
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    Ok(reply(req.send().await?).await)
}

fn count(dir: &Path, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("hub.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

const BIG: usize = 4000;

#[tokio::test]
async fn sigkill_during_a_large_push_then_resend_stores_it_exactly_once() {
    caja_hub::admin_client::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    init(&dir);
    let hub = Hub::start(&dir);
    let v = hub.admin().create_store("s", None).await.unwrap();
    let store: StoreId = v["store"].as_str().unwrap().parse().unwrap();
    let calibration = hub.enroll(store).await;
    let victim = hub.enroll(store).await;
    let mut w = Workload::new(21, store, vec![calibration, victim]);
    let cal: Vec<Event> = (0..BIG).map(|_| w.next_sale(0, now_ms())).collect();
    let big: Vec<Event> = (0..BIG).map(|_| w.next_sale(1, now_ms())).collect();
    let (calibration, victim) = (w.registers[0].clone(), w.registers[1].clone());
    // How long a push of this size takes here, to kill the next one midway.
    let started = Instant::now();
    let r = hub.push(&calibration, &cal).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let full = started.elapsed();
    let mut hub = hub;
    let mut outcomes = Vec::new();
    // Killed during parsing, during the writer's transaction, near and after
    // its commit.
    for (num, den) in [(1u32, 4u32), (1, 2), (9, 10), (6, 5)] {
        // Send, kill the process (SIGKILL) part of the way through, restart.
        let http = hub.http.clone();
        let url = hub.url.clone();
        let (reg, events) = (victim.clone(), big.clone());
        let sender =
            tokio::spawn(
                async move { push_to(&http, &url, &reg, &events).await.map(|r| r.status) },
            );
        tokio::time::sleep(full * num / den).await;
        hub.child.kill().unwrap();
        hub.child.wait().unwrap();
        let answered = sender.await.unwrap();
        let stored = count(
            &dir,
            &format!(
                "SELECT COUNT(*) FROM events WHERE device_id = '{}'",
                victim.device
            ),
        );
        // Never half a push: all of it or none of it.
        assert!(
            stored == 0 || stored == BIG as i64,
            "a killed push left {stored} of {BIG} events"
        );
        if matches!(answered, Ok(200)) {
            assert_eq!(stored, BIG as i64, "acknowledged but not durable");
        }
        outcomes.push((format!("{num}/{den}"), answered.ok(), stored));
        hub = Hub::start(&dir);
    }
    // Resend until acknowledged: the events are there exactly once.
    let r = hub.push(&victim, &big).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let accepted = r.body["accepted"].as_u64().unwrap();
    let duplicates = r.body["duplicates"].as_u64().unwrap();
    assert_eq!(accepted + duplicates, BIG as u64);
    assert_eq!(r.body["acked_seq"], BIG as u64);
    let stored = count(
        &dir,
        &format!(
            "SELECT COUNT(*) FROM events WHERE device_id = '{}'",
            victim.device
        ),
    );
    assert_eq!(stored, BIG as i64);
    let audited = count(
        &dir,
        &format!(
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'event_accepted' AND entry LIKE '%{}%'",
            victim.device
        ),
    );
    assert_eq!(audited, BIG as i64, "one audit entry per event, never two");
    eprintln!(
        "push of {BIG} events took {full:?}; kill outcomes (at, answer, stored): {outcomes:?}"
    );
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_push_finish_and_the_admin_cli_works() {
    caja_hub::admin_client::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    init(&dir);
    let mut hub = Hub::start(&dir);
    // The admin CLI against the running hub.
    // The token from the environment, never from an argument (`ps` shows those).
    let out = Command::new(BIN)
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args([
            "admin",
            "--url",
            &hub.url,
            "create-store",
            "Farmacia Central",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let store: StoreId = created["store"].as_str().unwrap().parse().unwrap();
    // Or from an owner-only file: a wrong token there is refused by the hub (1);
    // a file others may read is refused before anything is sent (3).
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "wrong-token-wrong-token\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let with_file = || {
        Command::new(BIN)
            .env_remove("CAJA_HUB_ADMIN_TOKEN")
            .args(["admin", "--url", &hub.url, "--admin-token-file"])
            .arg(&token_file)
            .arg("stores")
            .output()
            .unwrap()
    };
    assert_eq!(with_file().status.code(), Some(1));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let out = with_file();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg = hub.enroll(store).await;
    let mut w = Workload::new(22, store, vec![reg]);
    let events: Vec<Event> = (0..BIG).map(|_| w.next_sale(0, now_ms())).collect();
    let reg = w.registers[0].clone();
    let (http, url) = (hub.http.clone(), hub.url.clone());
    let sender = tokio::spawn(async move {
        push_to(&http, &url, &reg, &events)
            .await
            .map(|r| (r.status, r.body))
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let term = Command::new("kill")
        .args(["-TERM", &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = hub.child.wait().unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
    let answered = sender.await.unwrap();
    let stored = count(
        &dir,
        "SELECT COUNT(*) FROM events WHERE device_id NOT IN (SELECT hub_device FROM stores)",
    );
    match answered {
        Ok((200, body)) => assert_eq!(
            (body["accepted"].as_u64(), stored),
            (Some(BIG as u64), BIG as i64)
        ),
        // The request had not reached the hub before it stopped listening.
        other => assert_eq!(stored, 0, "{other:?}"),
    }
    // `caja-hub rebuild` recomputes the projections to the same digest.
    let out = Command::new(BIN)
        .args(["rebuild", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let digest = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|d| d.trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(digest("digest before:"), digest("digest after:"), "{text}");
    assert_eq!(digest("digest after:").len(), 64, "{text}");
}

/// `caja-hub fiscal …` against a running hub: load a series (a bad one is
/// refused with exit 1), list it, account for it as JSON and CSV.
#[tokio::test]
async fn the_fiscal_cli_loads_lists_and_reports_a_series() {
    caja_hub::admin_client::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hub");
    init(&dir);
    let mut hub = Hub::start(&dir);
    let fiscal = |args: &[&str]| {
        Command::new(BIN)
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["fiscal", "--url", &hub.url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = fiscal(&[
        "load-series",
        "--prefix",
        "B02",
        "--digits",
        "8",
        "--first",
        "1",
        "--last",
        "500",
        "--valid-until",
        "2099-12-31",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = fiscal(&[
        "load-series",
        "--prefix",
        "B02",
        "--digits",
        "8",
        "--first",
        "400",
        "--last",
        "900",
        "--valid-until",
        "2099-12-31",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("series_overlap"));
    let list: serde_json::Value = serde_json::from_slice(&fiscal(&["series"]).stdout).unwrap();
    assert_eq!(list["series"][0]["prefix"], "B02");
    let rep: serde_json::Value =
        serde_json::from_slice(&fiscal(&["report", "--series", "B02"]).stdout).unwrap();
    assert_eq!(rep["reports"][0]["totals"]["never_allocated"], 500);
    let csv = String::from_utf8(fiscal(&["report", "--series", "B02", "--format", "csv"]).stdout)
        .unwrap();
    assert_eq!(
        csv,
        "first,last,count,status,device,grant,sale,sale_event,at_ms\nB0200000001,B0200000500,500,never_allocated,,,,,\n"
    );
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
}
