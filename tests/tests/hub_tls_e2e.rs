//! A register and a real `caja-hub` process serving HTTPS with the
//! certificate `caja-hub init --tls-self-signed` made, both driven through
//! their binaries: enrollment and sync over TLS trusting the hub's CA file
//! (`hub_ca`) or its pinned fingerprint (`hub_cert_sha256`); a wrong pin is
//! refused with the Spanish sentence before anything is sent (the enrollment
//! token stays unused); plain `http://` to another machine is refused naming
//! `hub_url`, at enrollment and at start.

use std::path::Path;

use caja_node::testkit;
use caja_shared::kind::EventBody;
use caja_tests::procs::{free_port, HubProcess, NodeProcess};

const ADMIN_TOKEN: &str = "caja-test-admin-token-0123456789";

fn catalog_file(path: &Path) {
    let mut items = Vec::new();
    let mut prices = Vec::new();
    for b in testkit::sample_catalog_bodies() {
        let v = b.to_value().expect("catalog body").to_serde();
        match b {
            EventBody::CatalogItemUpserted(_) => items.push(v),
            EventBody::PriceSet(_) => prices.push(v),
            _ => {}
        }
    }
    let body = serde_json::json!({ "items": items, "prices": prices });
    std::fs::write(path, body.to_string()).expect("catalog file");
}

/// A TLS hub with a store and its catalog; the fingerprint init printed.
fn tls_hub(tmp: &Path) -> (HubProcess, String, String) {
    let port = free_port().expect("port");
    let (hub, printed) = HubProcess::init_and_serve_with(
        &tmp.join("hub"),
        port,
        ADMIN_TOKEN,
        &["--tls-self-signed"],
    )
    .expect("hub with TLS");
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let fingerprint = printed
        .lines()
        .find_map(|l| l.strip_prefix("TLS certificate SHA-256: "))
        .expect("init prints the fingerprint")
        .trim()
        .to_owned();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    let store = hub
        .admin(&["create-store", "Colmado La Esquina"])
        .expect("store")["store"]
        .as_str()
        .expect("store id")
        .to_owned();
    let catalog = tmp.join("catalog.json");
    catalog_file(&catalog);
    hub.admin(&["load-catalog", catalog.to_str().expect("path")])
        .expect("catalog");
    (hub, fingerprint, store)
}

fn token(hub: &HubProcess, store: &str, name: &str) -> String {
    hub.admin(&["create-token", store, name]).expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Runs a command that must fail: its exit code and everything it printed.
fn fails(node: &NodeProcess, args: &[&str]) -> (i32, String) {
    let out = node.output(args).expect("run caja-node");
    assert!(!out.status.success(), "{args:?} succeeded");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn sell_and_sync(node: &NodeProcess) {
    node.json(&["sync"]).expect("first sync brings the catalog");
    node.json(&["shift", "open", "--cashier", "ana", "--float", "0"])
        .expect("shift");
    node.json(&["sell", "--item", "ARROZ", "--cash", "100.00"])
        .expect("sale");
    node.json(&["sync"]).expect("sync over TLS");
    let status = node.json(&["status"]).expect("status");
    assert_eq!(status["unsynced"], 0, "{status}");
    assert_eq!(status["sync"]["hub_log"]["trust"], "ok", "{status}");
}

#[test]
fn enroll_and_sync_over_tls_with_the_hubs_ca_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, _, store) = tls_hub(tmp.path());
    let node = NodeProcess::new(&tmp.path().join("caja-1"));
    let ca = hub.dir.join("tls/cert.pem");
    let t = token(&hub, &store, "caja 1");
    node.json(&[
        "enroll",
        "--hub",
        &hub.url,
        "--hub-ca",
        ca.to_str().expect("path"),
        "--token",
        &t,
    ])
    .expect("enroll over TLS trusting hub_ca");
    let config = std::fs::read_to_string(tmp.path().join("caja-1/config.toml")).expect("config");
    assert!(config.contains("hub_ca = "), "{config}");
    sell_and_sync(&node);

    // The same hub without the CA: the system's roots do not know it.
    let other = NodeProcess::new(&tmp.path().join("caja-2"));
    let t2 = token(&hub, &store, "caja 2");
    let (code, text) = fails(&other, &["enroll", "--hub", &hub.url, "--token", &t2]);
    assert_eq!(code, 7, "{text}");
    assert!(text.contains("no es de confianza"), "{text}");
}

#[test]
fn enroll_and_sync_with_the_pinned_fingerprint_and_a_wrong_pin_gets_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, fingerprint, store) = tls_hub(tmp.path());
    let t = token(&hub, &store, "caja 1");
    let node = NodeProcess::new(&tmp.path().join("caja-1"));

    // A wrong pin: refused before anything is sent, with the sentence for
    // the cashier; the token is not used up.
    let wrong = "00".repeat(32);
    let (code, text) = fails(
        &node,
        &[
            "enroll",
            "--hub",
            &hub.url,
            "--hub-cert-sha256",
            &wrong,
            "--token",
            &t,
        ],
    );
    assert_eq!(code, 7, "{text}");
    assert!(
        text.contains("El certificado de la oficina central no es el configurado"),
        "{text}"
    );

    // The right pin, written the way openssl prints it: enrolls with the same
    // token (it never reached the hub), then syncs.
    let colons: Vec<String> = fingerprint
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    node.json(&[
        "enroll",
        "--hub",
        &hub.url,
        "--hub-cert-sha256",
        &colons.join(":"),
        "--token",
        &t,
    ])
    .expect("enroll with the pin and the untouched token");
    sell_and_sync(&node);

    // The hub's certificate is no longer the pinned one (as if someone else
    // answered at its address): sync refuses with the same sentence.
    let path = tmp.path().join("caja-1/config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    assert!(config.contains("hub_cert_sha256"), "{config}");
    std::fs::write(&path, config.replace(&colons.join(":"), &wrong)).expect("edit");
    let (code, text) = fails(&node, &["sync"]);
    assert_eq!(code, 7, "{text}");
    assert!(text.contains("no es el configurado"), "{text}");
}

#[test]
fn plain_http_to_another_machine_is_refused_at_enroll_and_at_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let node = NodeProcess::new(&tmp.path().join("caja-1"));
    let (code, text) = fails(
        &node,
        &[
            "enroll",
            "--hub",
            "http://192.0.2.10:7878",
            "--token",
            "x-token-0123456789",
        ],
    );
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("hub_url"), "{text}");
    assert!(text.contains("https://"), "{text}");

    // A data directory whose config.toml names such a hub does not start.
    let (hub, _, store) = tls_hub(tmp.path());
    let t = token(&hub, &store, "caja 1");
    let ca = hub.dir.join("tls/cert.pem");
    node.json(&[
        "enroll",
        "--hub",
        &hub.url,
        "--hub-ca",
        ca.to_str().expect("path"),
        "--token",
        &t,
    ])
    .expect("enroll");
    let path = tmp.path().join("caja-1/config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        config.replace(&hub.url, "http://hub.example.do:7878"),
    )
    .expect("edit");
    for cmd in [&["sync"][..], &["status"][..]] {
        let (code, text) = fails(&node, cmd);
        assert_eq!(code, 4, "{cmd:?}: {text}");
        assert!(text.contains("hub_url"), "{cmd:?}: {text}");
    }
}
