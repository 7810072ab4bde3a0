//! Attacks on device authentication, each against the real router over
//! loopback HTTP: forged pushes that must cost no parse and no writer job,
//! a rotated-out key that tries to rotate again, an admin rotation without
//! grace for a compromised key, a quarantined register on every signed
//! endpoint, and a writer job that panics.

mod support;

use caja_hub::workload::{Register, Workload};
use caja_shared::key::DeviceKey;
use serde_json::json;
use support::router::{events, registers, router_hub};
use support::*;

/// Sends `body` to `path` with the given headers, no signature of ours.
async fn raw(hub: &TestHub, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut req = hub.http.post(format!("{}{path}", hub.url)).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    reply(req.send().await.unwrap()).await
}

/// The register with another key (same device, same key id): what an
/// attacker who knows the device id forges.
fn forger(reg: &Register) -> Register {
    let mut r = reg.clone();
    r.key = DeviceKey::from_bytes([0x5a; 32]);
    r
}

/// A body of almost 8 MB that would take real work to parse: a JSON push
/// shape whose events array is full of filler.
fn big_body(reg: &Register) -> Vec<u8> {
    let mut b = format!("{{\"device\":\"{}\",\"events\":[", reg.device).into_bytes();
    let filler = format!("{{\"v\":1,\"pad\":\"{}\"}},", "x".repeat(1000));
    while b.len() < 7_900_000 {
        b.extend_from_slice(filler.as_bytes());
    }
    b.extend_from_slice(b"{}],\"backlog\":0}");
    b
}

#[tokio::test]
async fn a_forged_8_mb_push_costs_no_parse_and_no_writer_job() {
    let (hub, state) = router_hub(test_config()).await;
    let mut w = registers(&hub, 21, 1).await;
    let reg = w.registers[0].clone();
    let body = big_body(&reg);
    let stranger = Register::new(
        "01935f4e-8a00-7000-8000-0000000000ee".parse().unwrap(),
        DeviceKey::from_bytes([1; 32]),
        "k1".parse().unwrap(),
    );
    let before = (
        state.metrics.pushes_parsed.get(),
        state.store.writer_jobs(),
        hub.business_state(),
    );
    // Unsigned.
    let r = raw(&hub, "/v1/sync/push", &[], body.clone()).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("bad_signature")),
        "{:?}",
        r.body
    );
    // Signed with a key that is not the device's.
    let r = hub
        .signed(&forger(&reg), "POST", "/v1/sync/push", &body, now_ms())
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("bad_signature")),
        "{:?}",
        r.body
    );
    // A device the hub does not know.
    let r = hub
        .signed(&stranger, "POST", "/v1/sync/push", &body, now_ms())
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("unknown_key")),
        "{:?}",
        r.body
    );
    // The right key but a signature over other bytes.
    let h = sign(&reg, "POST", "/v1/sync/push", b"{}", now_ms());
    let r = hub.send_signed("POST", "/v1/sync/push", &body, &h).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("bad_signature")),
        "{:?}",
        r.body
    );
    let after = (
        state.metrics.pushes_parsed.get(),
        state.store.writer_jobs(),
        hub.business_state(),
    );
    assert_eq!(
        after, before,
        "a forged push was parsed or reached the writer"
    );
    // The counters do count: a genuine push is parsed once and is one job.
    let batch = events(&mut w, 0, 3);
    let r = hub.push(&reg, &batch).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(state.metrics.pushes_parsed.get(), before.0 + 1);
    assert_eq!(state.store.writer_jobs(), before.1 + 1);
    let text = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("caja_hub_pushes_parsed_total 1"), "{text}");
    assert!(text.contains("caja_hub_writer_panics 0"), "{text}");
}

#[tokio::test]
async fn guessed_enrollment_tokens_cost_no_writer_job() {
    let (hub, state) = router_hub(test_config()).await;
    let store = hub.create_store("s").await;
    let short = hub
        .admin
        .create_token(&store.to_string(), "late", Some(1))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let jobs = state.store.writer_jobs();
    for token in [
        json!("0".repeat(64)),
        json!("not a token"),
        short["token"].clone(),
    ] {
        let (status, v) = hub
            .post_json("/v1/devices/enroll", &json!({ "token": token }))
            .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (401, Some("invalid_token")),
            "{v}"
        );
    }
    assert_eq!(
        state.store.writer_jobs(),
        jobs,
        "a guessed token reached the writer"
    );
    // A real token still enrolls (one job).
    let token = hub.token(store).await;
    let jobs = state.store.writer_jobs();
    let (status, v) = hub
        .post_json("/v1/devices/enroll", &json!({ "token": token }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(state.store.writer_jobs(), jobs + 1);
}

/// The register installs a key handed to it (by head office or a rotation).
fn with_key(reg: &Register, answer: &serde_json::Value) -> Register {
    let mut r = reg.clone();
    r.key = DeviceKey::from_hex(answer["key"].as_str().unwrap()).unwrap();
    r.key_id = answer["key_id"].as_str().unwrap().parse().unwrap();
    r
}

on_both_backends! {
#[tokio::test]
async fn a_leaked_key_rotated_out_by_head_office_cannot_rotate_again() {
    let hub = TestHub::start().await;
    let mut w = registers(&hub, 22, 1).await;
    let register = w.registers[0].clone();
    // The key leaks: the attacker holds a copy of k1.
    let attacker = register.clone();
    // Head office rotates; the register gets k2 (k1 keeps its grace period).
    let rotated = hub.admin.rotate(&register.device.to_string()).await.unwrap();
    assert_eq!(rotated["key_id"], "k2");
    let register = with_key(&register, &rotated);
    w.registers[0] = register.clone();
    // The attacker tries to rotate with k1 to take the device over.
    let r = hub
        .signed(&attacker, "POST", "/v1/devices/rotate", b"{}", now_ms())
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("key_not_current")),
        "{:?}",
        r.body
    );
    assert!(r.body["key"].is_null(), "no key handed out: {:?}", r.body);
    // The register's key keeps working, and only it may rotate.
    let batch = events(&mut w, 0, 2);
    assert_eq!(hub.push(&register, &batch).await.status, 200);
    let r = hub
        .signed(&register, "POST", "/v1/devices/rotate", b"{}", now_ms())
        .await;
    assert_eq!((r.status, r.body["key_id"].as_str()), (200, Some("k3")), "{:?}", r.body);
    let register = with_key(&register, &r.body);
    assert_eq!(hub.pull(&register, "").await.status, 200);
    let rotations: Vec<String> = hub
        .db()
        .prepare("SELECT entry FROM audit_log WHERE kind = 'key_rotated' ORDER BY idx")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap()).unwrap())
        .collect();
    assert_eq!(rotations.len(), 2, "{rotations:?}");
    assert!(rotations[0].contains("\"by\":\"admin\""), "{rotations:?}");
    assert!(rotations[1].contains("\"by\":\"device\""), "{rotations:?}");
}

#[tokio::test]
async fn an_admin_rotation_without_grace_refuses_every_old_key_at_once() {
    let hub = TestHub::start().await;
    let mut w = registers(&hub, 23, 1).await;
    let k1 = w.registers[0].clone();
    let device = k1.device.to_string();
    let k2 = with_key(&k1, &hub.admin.rotate(&device).await.unwrap());
    // Both keys work before: k2 current, k1 in its grace period.
    assert_eq!(hub.pull(&k1, "").await.status, 200);
    assert_eq!(hub.pull(&k2, "").await.status, 200);
    let answer = hub.admin.rotate_with(&device, true).await.unwrap();
    assert_eq!(answer["no_grace"], true);
    let k3 = with_key(&k1, &answer);
    for old in [&k1, &k2] {
        let r = hub.pull(old, "").await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("revoked_key")), "{:?}", r.body);
        let r = hub
            .signed(old, "POST", "/v1/devices/rotate", b"{}", now_ms())
            .await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("revoked_key")), "{:?}", r.body);
        let batch = events(&mut w, 0, 1);
        let r = hub.push(old, &batch).await;
        assert_eq!((r.status, r.body["error"].as_str()), (401, Some("revoked_key")), "{:?}", r.body);
    }
    assert_eq!(hub.pull(&k3, "").await.status, 200);
    let audit: Vec<u8> = hub
        .db()
        .query_row(
            "SELECT entry FROM audit_log WHERE kind = 'key_rotated' ORDER BY idx DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let audit = String::from_utf8(audit).unwrap();
    assert!(audit.contains("\"no_grace\":true"), "{audit}");
}
}

#[tokio::test]
async fn the_admin_cli_rotates_without_grace() {
    let hub = TestHub::start().await;
    let w = registers(&hub, 24, 1).await;
    let k1 = w.registers[0].clone();
    let (url, device) = (hub.url.clone(), k1.device.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_caja-hub"))
            .args(["admin", "--url", &url, "rotate", &device, "--no-grace"])
            .env("CAJA_HUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = hub.pull(&k1, "").await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("revoked_key"))
    );
    assert_eq!(hub.pull(&with_key(&k1, &printed), "").await.status, 200);
}

/// Quarantines the register as a chain mismatch does.
fn quarantine(hub: &TestHub, reg: &Register) {
    let sql = format!(
        "UPDATE devices SET quarantined_at_ms = {}, quarantine_reason = 'chain mismatch at seq 1' WHERE device_id = '{}'",
        now_ms(),
        reg.device
    );
    hub.db().execute(&sql, []).unwrap();
}

/// One signed request of a register to one endpoint, with a body the
/// endpoint would otherwise take.
async fn request_of(hub: &TestHub, w: &mut Workload, endpoint: &str) -> Reply {
    let reg = w.registers[0].clone();
    let (method, path, body): (&str, String, Vec<u8>) = match endpoint {
        "push" => {
            let batch = events(w, 0, 1);
            ("POST", "/v1/sync/push".into(), push_body(&reg, &batch))
        }
        "pull" => ("GET", "/v1/sync/pull?after=".into(), Vec::new()),
        "own" => ("GET", "/v1/sync/own?after_seq=0".into(), Vec::new()),
        "rotate" => ("POST", "/v1/devices/rotate".into(), b"{}".to_vec()),
        "fiscal" => (
            "POST",
            "/v1/fiscal/ranges".into(),
            serde_json::to_vec(&json!({
                "request_id": "01935f4e-8a00-7000-8000-0000000000f1", "series": "B02", "count": 5
            }))
            .unwrap(),
        ),
        "escrow" => (
            "POST",
            "/v1/escrow/grants".into(),
            serde_json::to_vec(&json!({
                "request_id": "01935f4e-8a00-7000-8000-0000000000f2",
                "items": [{"product": "RICE", "qty_milli": 1000}]
            }))
            .unwrap(),
        ),
        "payment" => (
            "POST",
            "/v1/payments/intents".into(),
            serde_json::to_vec(&json!({
                "request_id": "01935f4e-8a00-7000-8000-0000000000f3",
                "sale_id": "01935f4e-8a00-7000-8000-0000000000f4",
                "provider": "azul", "method": "card", "amount": 1000
            }))
            .unwrap(),
        ),
        "audit_sth" => ("GET", "/v1/audit/sth".into(), Vec::new()),
        "audit_inclusion" => (
            "GET",
            "/v1/audit/inclusion?index=0&tree_size=1".into(),
            Vec::new(),
        ),
        "audit_consistency" => (
            "GET",
            "/v1/audit/consistency?first=1&second=1".into(),
            Vec::new(),
        ),
        other => panic!("no endpoint {other}"),
    };
    hub.signed(&reg, method, &path, &body, now_ms()).await
}

/// A quarantined register is refused 403 `quarantined` on `endpoint`, with
/// nothing stored and no writer job; released, it is served again.
async fn quarantined_on(endpoint: &str) {
    let (hub, state) = router_hub(test_config()).await;
    let mut w = registers(&hub, 25, 1).await;
    let reg = w.registers[0].clone();
    quarantine(&hub, &reg);
    let (state_before, jobs_before) = (hub.business_state(), state.store.writer_jobs());
    let r = request_of(&hub, &mut w, endpoint).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("quarantined")),
        "{endpoint}: {:?}",
        r.body
    );
    assert_eq!(hub.business_state(), state_before, "{endpoint}");
    assert_eq!(
        state.store.writer_jobs(),
        jobs_before,
        "{endpoint}: a writer job"
    );
    hub.admin
        .release(&reg.device.to_string(), "reviewed")
        .await
        .unwrap();
    let mut w = Workload::new(25, w.store, vec![reg]);
    let r = request_of(&hub, &mut w, endpoint).await;
    assert_ne!(r.status, 403, "{endpoint} after release: {:?}", r.body);
    assert!(r.status < 500, "{endpoint} after release: {:?}", r.body);
}

macro_rules! quarantine_tests {
    ($($name:ident => $endpoint:literal,)*) => {$(
        #[tokio::test]
        async fn $name() {
            quarantined_on($endpoint).await;
        }
    )*};
}

quarantine_tests! {
    a_quarantined_register_cannot_push => "push",
    a_quarantined_register_cannot_pull => "pull",
    a_quarantined_register_cannot_read_its_own_events => "own",
    a_quarantined_register_cannot_rotate_its_key => "rotate",
    a_quarantined_register_gets_no_fiscal_range => "fiscal",
    a_quarantined_register_gets_no_escrow_grant => "escrow",
    a_quarantined_register_creates_no_payment_intent => "payment",
    a_quarantined_register_reads_no_audit_head => "audit_sth",
    a_quarantined_register_reads_no_inclusion_proof => "audit_inclusion",
    a_quarantined_register_reads_no_consistency_proof => "audit_consistency",
}

#[tokio::test]
async fn a_writer_job_that_panics_is_rolled_back_answered_500_and_the_writer_goes_on() {
    let (hub, state) = router_hub(test_config()).await;
    let mut w = registers(&hub, 26, 1).await;
    let reg = w.registers[0].clone();
    let batch = events(&mut w, 0, 5);
    let before = hub.business_state();
    state.store.testkit_panic_next_job();
    let r = hub.push(&reg, &batch).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (500, Some("internal")),
        "{:?}",
        r.body
    );
    // Rolled back: the push ran to its end before the panic; nothing kept.
    assert_eq!(hub.business_state(), before);
    assert_eq!(state.store.writer_panics(), 1);
    let alerts = hub.admin_get("/v1/admin/alerts").await;
    assert!(alerts.to_string().contains("writer_panic"), "{alerts}");
    // The writer goes on: the same push now goes in.
    let r = hub.push(&reg, &batch).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (200, Some(5)),
        "{:?}",
        r.body
    );
    let text = hub
        .http
        .get(format!("{}/metrics", hub.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("caja_hub_writer_panics 1"), "{text}");
}

/// A request as the HTTP layer hands it to authentication.
fn signed_request(
    reg: &Register,
    method: &str,
    path: &str,
    body: &[u8],
) -> caja_hub::auth::SignedRequest {
    let h = sign(reg, method, path, body, now_ms());
    caja_hub::auth::SignedRequest {
        method: method.into(),
        path_and_query: path.into(),
        headers: caja_hub::auth::AuthHeaders {
            device: h.device,
            key_id: h.key_id,
            timestamp_ms: h.timestamp_ms,
            nonce: h.nonce,
            signature: h.signature.to_hex(),
        },
        body: body.to_vec().into(),
    }
}

#[tokio::test]
async fn what_changes_between_admission_and_the_writer_wins() {
    let (hub, state) = router_hub(test_config()).await;
    let w = registers(&hub, 27, 2).await;
    let (a, b) = (w.registers[0].clone(), w.registers[1].clone());
    // Admitted with a valid key; head office then rotates it without grace.
    let admitted = state
        .store
        .preauthenticate(signed_request(&a, "GET", "/v1/sync/pull", b""))
        .await
        .unwrap()
        .unwrap();
    hub.admin
        .rotate_with(&a.device.to_string(), true)
        .await
        .unwrap();
    let e = state
        .store
        .authenticate(admitted)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((e.status, e.error), (401, "revoked_key"));
    // Admitted, then quarantined (a chain mismatch in between).
    let admitted = state
        .store
        .preauthenticate(signed_request(&b, "GET", "/v1/sync/pull", b""))
        .await
        .unwrap()
        .unwrap();
    quarantine(&hub, &b);
    let e = state
        .store
        .authenticate(admitted)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((e.status, e.error), (403, "quarantined"));
}

#[tokio::test]
async fn a_full_disk_answers_503_with_retry_after_keeps_nothing_and_the_hub_recovers() {
    let (hub, state) = router_hub(test_config()).await;
    let mut w = registers(&hub, 27, 1).await;
    let reg = w.registers[0].clone();
    let batch = events(&mut w, 0, 200);
    let before = hub.business_state();
    state.store.testkit_disk_full(true).await.unwrap();
    let r = hub.push(&reg, &batch).await;
    assert_eq!(
        (r.status, r.body["error"].as_str(), r.retry_after.as_deref()),
        (503, Some("storage_unavailable"), Some("10")),
        "{:?}",
        r.body
    );
    // Nothing half-written: the push's transaction was rolled back whole.
    assert_eq!(hub.business_state(), before);
    // The same push once the disk has room again: all of it, once.
    state.store.testkit_disk_full(false).await.unwrap();
    let r = hub.push(&reg, &batch).await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64()),
        (200, Some(200)),
        "{:?}",
        r.body
    );
    let r = hub.push(&reg, &batch).await;
    assert_eq!(
        (r.status, r.body["duplicates"].as_u64()),
        (200, Some(200)),
        "{:?}",
        r.body
    );
}
