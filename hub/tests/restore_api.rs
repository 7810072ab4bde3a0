//! The restore epoch over loopback HTTP, on SQLite and PostgreSQL: the
//! `Caja-Restore-Epoch` header on every `/v1` answer (errors included) and
//! `restore_epoch` in push and pull bodies; a store gated (503
//! `restore_pending`) until its registers report through
//! `POST /v1/sync/hub-events`; hub events returned verified with the hub
//! key (duplicates counted, a forged checkpoint refused with nothing kept);
//! head office's acknowledgement and override audited, and the health
//! report's `restore` section (epoch, acknowledged, gated stores). While a store is
//! gated, its registers' payment intents get 503 `restore_pending` and every
//! provider webhook is answered 503 (the provider retries); the override
//! lifts both.

mod support;

use serde_json::{json, Value};
use support::*;

fn request_id(n: u64) -> String {
    format!("019aaf70-0000-7000-8000-{n:012x}")
}

/// The epoch header of an unsigned GET (a 401 for a device route).
async fn epoch_header(hub: &TestHub, path: &str) -> (u16, Option<String>) {
    let r = hub
        .http
        .get(format!("{}{path}", hub.url))
        .send()
        .await
        .unwrap();
    let h = r
        .headers()
        .get("caja-restore-epoch")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), h)
}

/// Marks the hub's database restored, as `caja-hub restore` does after the
/// copy (the hub stopped), then serves again.
async fn mark_restored(hub: &mut TestHub) {
    hub.stop().await;
    let dir = hub.data_dir();
    let db = hub.cfg.database(&dir);
    tokio::task::spawn_blocking(move || {
        let key = caja_hub::datadir::load_key(&dir).unwrap();
        let conn = caja_hub::storage::open_detached(&db).unwrap();
        caja_hub::storage::restore::record_restore(&conn, &key, now_ms()).unwrap()
    })
    .await
    .unwrap();
    hub.restart().await;
}

async fn audit_kinds(hub: &TestHub) -> Vec<String> {
    let conn = hub.db();
    tokio::task::spawn_blocking(move || {
        let mut stmt = conn
            .prepare("SELECT kind FROM audit_log ORDER BY idx")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            out.push(r.get::<_, String>(0).unwrap());
        }
        out
    })
    .await
    .unwrap()
}

crate::on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restored_hub_names_its_epoch_gates_grants_and_takes_back_signed_hub_events() {
        let mut hub = TestHub::start().await;
        let store = hub.create_store("Colmado").await;
        let (reg, _hub_key) = hub.enroll(store).await;
        hub.admin
            .post(
                "/v1/admin/fiscal/series",
                &json!({"prefix":"B02","digits":8,"first":1,"last":1000,"valid_until":"2099-12-31"}),
            )
            .await
            .unwrap();
        // Never restored: epoch 0 everywhere.
        let health = hub.admin_get("/v1/health").await;
        assert_eq!(health["restore"]["epoch"], 0, "{health}");
        assert_eq!(health["restore"]["acknowledged"], true);
        assert_eq!(epoch_header(&hub, "/v1/sync/pull").await, (401, Some("0".into())));
        let pulled = hub.pull(&reg, "").await;
        assert_eq!(pulled.body["restore_epoch"], 0, "{}", pulled.body);
        let ask = |rid: u64| {
            serde_json::to_vec(&json!({"request_id": request_id(rid), "series": "B02", "count": 10}))
                .unwrap()
        };
        let granted = hub
            .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(1), now_ms())
            .await;
        assert_eq!(granted.status, 200, "{}", granted.body);
        let events = granted.body["events"].clone();
        let checkpoint = granted.body["hub_checkpoint"].clone();

        mark_restored(&mut hub).await;
        assert_eq!(epoch_header(&hub, "/v1/sync/pull").await, (401, Some("1".into())));
        let pulled = hub.pull(&reg, "").await;
        assert_eq!(pulled.body["restore_epoch"], 1, "{}", pulled.body);
        assert_eq!(pulled.body["restore_acknowledged"], false);

        // Gated until the register reports.
        let refused = hub
            .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(2), now_ms())
            .await;
        assert_eq!(refused.status, 503, "{}", refused.body);
        assert_eq!(refused.body["error"], "restore_pending");
        assert!(refused.retry_after.is_some());
        let status = hub.admin_get("/v1/admin/restore").await;
        assert_eq!(status["epoch"], 1);
        assert_eq!(status["stores"][0]["gated"], true, "{status}");
        assert_eq!(status["stores"][0]["waiting"][0], reg.device.to_string());
        let health = hub.admin_get("/v1/health").await;
        assert_eq!(health["restore"]["epoch"], 1, "{health}");
        assert_eq!(health["restore"]["acknowledged"], false);
        assert_eq!(health["restore"]["gated_stores"][0]["store"], store.to_string());
        assert_eq!(health["restore"]["gated_stores"][0]["waiting"][0], reg.device.to_string());

        // A forged checkpoint is refused and changes nothing.
        let events_before = hub.event_count();
        let mut forged = checkpoint.clone();
        let sig = forged["sig"].as_str().unwrap().to_owned();
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        forged["sig"] = Value::String(format!("{flipped}{}", &sig[1..]));
        let body = serde_json::to_vec(&json!({"events": events, "hub_checkpoint": forged, "own_seq": 0})).unwrap();
        let r = hub
            .signed(&reg, "POST", "/v1/sync/hub-events", &body, now_ms())
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["field"], "hub_checkpoint.sig");
        assert_eq!(hub.event_count(), events_before);
        assert_eq!(
            hub.admin_get("/v1/admin/restore").await["stores"][0]["gated"],
            true
        );

        // The events the hub holds come back as duplicates; the report lifts
        // the gate.
        let body = serde_json::to_vec(&json!({"events": events, "hub_checkpoint": checkpoint, "own_seq": 0})).unwrap();
        let r = hub
            .signed(&reg, "POST", "/v1/sync/hub-events", &body, now_ms())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["duplicates"], 1);
        assert_eq!(r.body["accepted"], 0);
        assert_eq!(r.body["reported"], true);
        assert_eq!(r.body["restore_epoch"], 1);
        assert_eq!(r.body["restored"]["epoch"], 1);
        let again = hub
            .signed(&reg, "POST", "/v1/fiscal/ranges", &ask(2), now_ms())
            .await;
        assert_eq!(again.status, 200, "{}", again.body);

        // Head office: override (audited), acknowledge (audited, seen in pulls).
        let v = hub
            .admin
            .post(
                "/v1/admin/restore/override",
                &json!({"store": store, "by": "maria", "note": "caja 3 en reparación"}),
            )
            .await
            .unwrap();
        assert_eq!(v["overridden"], true, "{v}");
        let v = hub
            .admin
            .post("/v1/admin/restore/ack", &json!({"by": "maria", "note": "revisado"}))
            .await
            .unwrap();
        assert_eq!(v["acked_by"], "maria", "{v}");
        let pulled = hub.pull(&reg, "").await;
        assert_eq!(pulled.body["restore_acknowledged"], true);
        let health = hub.admin_get("/v1/health").await;
        assert_eq!(health["restore"]["acknowledged"], true, "{health}");
        assert_eq!(health["restore"]["acked_by"], "maria");
        assert_eq!(health["restore"]["gated_stores"], json!([]));
        let kinds = audit_kinds(&hub).await;
        for k in ["restored", "restore_overridden", "restore_acknowledged"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gated_store_holds_payment_intents_and_provider_webhooks() {
        const SECRET: &str = "azul-webhook-secret-0123456789";
        let cfg = caja_hub::config::HubConfig {
            payment_providers: [("azul".to_owned(), SECRET.to_owned())].into(),
            payment_reconcile_interval_ms: 3_600_000,
            ..test_config()
        };
        let mut hub = TestHub::start_with(cfg).await;
        let store = hub.create_store("Colmado").await;
        let (reg, _hub_key) = hub.enroll(store).await;
        let intent = |n: u64| {
            serde_json::to_vec(&json!({"request_id": request_id(n), "sale_id": request_id(0xa000 + n),
                "provider": "azul", "method": "card", "amount": 9500}))
            .unwrap()
        };
        let made = hub
            .signed(&reg, "POST", "/v1/payments/intents", &intent(1), now_ms())
            .await;
        assert_eq!(made.status, 200, "{}", made.body);
        let id = made.body["events"][0]["body"]["intent_id"].as_str().unwrap().to_owned();
        let azul = caja_hub::provider_emulator::Provider::new("azul", SECRET);

        mark_restored(&mut hub).await;
        let events_before = hub.event_count();
        let refused = hub
            .signed(&reg, "POST", "/v1/payments/intents", &intent(2), now_ms())
            .await;
        assert_eq!(refused.status, 503, "{}", refused.body);
        assert_eq!(refused.body["error"], "restore_pending");
        assert!(refused.retry_after.is_some());
        let authorized = azul.event("authorized", Some(&id), Some("004512"), 9500);
        let r = azul.deliver(&hub.url, &authorized).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.body["error"], "restore_pending");
        assert_eq!(hub.event_count(), events_before, "nothing became a hub event");

        // Head office lifts the gate: both go through.
        hub.admin
            .post(
                "/v1/admin/restore/override",
                &json!({"store": store, "by": "maria", "note": "caja en reparación"}),
            )
            .await
            .unwrap();
        let made = hub
            .signed(&reg, "POST", "/v1/payments/intents", &intent(2), now_ms())
            .await;
        assert_eq!(made.status, 200, "{}", made.body);
        let r = azul.deliver(&hub.url, &authorized).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["outcome"], "applied", "{}", r.body);
    }
}
