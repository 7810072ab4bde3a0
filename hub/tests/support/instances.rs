//! Several `caja-hub serve` processes on one PostgreSQL database (the
//! multi-instance tests): starting them, signed requests to any one of
//! them, enrolling a register through two of them, and counting rows in
//! the shared database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use caja_hub::admin_client::AdminClient;
use caja_hub::storage::Conn;
use caja_hub::workload::Register;
use caja_shared::ids::StoreId;
use caja_shared::key::HubPublicKey;
use serde_json::{json, Value};

use super::{now_ms, reply, retry_429, sign, Reply, ADMIN_TOKEN};

/// The `caja-hub` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_caja-hub");

/// One `caja-hub serve` process.
pub struct Instance {
    pub dir: PathBuf,
    child: Option<Child>,
    pub url: String,
}

impl Instance {
    /// `caja-hub serve` on `dir`, once it prints where it listens.
    pub fn start(dir: &Path) -> Instance {
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir)
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
        Instance {
            dir: dir.to_owned(),
            child: Some(child),
            url: format!("http://{addr}"),
        }
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.url, ADMIN_TOKEN).unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` instances of one hub on `database` under `root` (`hub0`, `hub1`, …):
/// `caja-hub init` of the first, the others with its key and configuration
/// copied (every instance signs with the one hub key the database records),
/// all started at once (they migrate and check the audit log one after the
/// other, under the writers' lock). Their data directories and the running
/// instances.
pub fn start_instances(root: &Path, database: &str, n: usize) -> (Vec<PathBuf>, Vec<Instance>) {
    let dirs: Vec<PathBuf> = (0..n).map(|i| root.join(format!("hub{i}"))).collect();
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&dirs[0])
        .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["--listen", "127.0.0.1:0", "--database", database])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "caja-hub init: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for dir in &dirs[1..] {
        std::fs::create_dir_all(dir).unwrap();
        for f in [caja_hub::datadir::KEY_FILE, caja_hub::config::CONFIG_FILE] {
            std::fs::copy(dirs[0].join(f), dir.join(f)).unwrap();
        }
    }
    let hubs = std::thread::scope(|s| {
        let started: Vec<_> = dirs
            .iter()
            .map(|d| s.spawn(|| Instance::start(d)))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (dirs, hubs)
}

/// A request signed by `reg` to the instance at `url`.
pub async fn signed_to(
    http: &reqwest::Client,
    url: &str,
    reg: &Register,
    method: &str,
    path: &str,
    body: &[u8],
) -> Reply {
    let h = sign(reg, method, path, body, now_ms());
    let mut req = http
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .body(body.to_vec());
    for (k, v) in h.pairs() {
        req = req.header(k, v);
    }
    reply(req.send().await.unwrap()).await
}

/// Enrolls a register of `store`: the token from one instance, the
/// enrollment at another (the same one is fine). The register and the hub
/// key it was given.
pub async fn enroll_via(
    http: &reqwest::Client,
    token_at: &Instance,
    enroll_at: &Instance,
    store: StoreId,
) -> (Register, HubPublicKey) {
    let store = store.to_string();
    let admin = token_at.admin();
    let t = retry_429(|| admin.create_token(&store, "caja", None)).await;
    let v: Value = http
        .post(format!("{}/v1/devices/enroll", enroll_at.url))
        .json(&json!({ "token": t["token"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        Register::new(
            v["device"].as_str().unwrap().parse().unwrap(),
            caja_shared::key::DeviceKey::from_hex(v["key"].as_str().unwrap()).unwrap(),
            v["key_id"].as_str().unwrap().parse().unwrap(),
        ),
        HubPublicKey::from_hex(v["hub_key"].as_str().unwrap()).unwrap(),
    )
}

/// `f` on a connection to the PostgreSQL `db`, off the executor.
pub async fn query<T: Send + 'static>(db: &str, f: impl FnOnce(&Conn) -> T + Send + 'static) -> T {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || f(&Conn::connect_postgres(&db).unwrap()))
        .await
        .unwrap()
}

/// One integer `sql` answers on `db`.
pub async fn count(db: &str, sql: &str) -> i64 {
    let sql = sql.to_owned();
    query(db, move |c| c.query_row(&sql, [], |r| r.get(0)).unwrap()).await
}
