//! A payment provider emulator for tests and demos: builds webhook bodies,
//! signs them with the provider's secret (`X-Provider-Signature:
//! t=<ms>,v1=<hex>`, the format of [`crate::payments`]) and delivers them to a
//! real hub over HTTP, with faults on demand: duplicates (sent concurrently),
//! reordering (the caller picks the order), delays, corrupted signatures, a
//! wrong secret, no signature, a tampered body, and replayed old (or future)
//! timestamps.
//!
//! Not used by the hub itself; test support behind the `testkit` feature so
//! the hub's API tests and the end-to-end tests share it (like
//! [`crate::workload`]), never in a release build.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use caja_shared::clock::Clock;
use serde_json::{json, Value};

use crate::system::SystemClock;

/// A hub's answer to one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status (0 when the hub could not be reached).
    pub status: u16,
    /// The JSON body (`Value::String` with the text when it is not JSON).
    pub body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            Reply {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            }
        }
        Err(e) => Reply {
            status: 0,
            body: Value::String(e.to_string()),
        },
    }
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// One event the provider reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The provider's event id (idempotency key at the hub).
    pub event_id: String,
    /// `authorized`, `captured`, `refunded`, `voided`, `failed`.
    pub state: &'static str,
    /// The hub's intent, when the payment started from one.
    pub intent_id: Option<String>,
    /// Authorization code.
    pub auth_code: Option<String>,
    /// The terminal that took the card (offline payments), if the provider
    /// names it.
    pub terminal_id: Option<String>,
    /// A refund of part of the intent (`"partial": true`).
    pub partial: bool,
    /// Amount in centavos.
    pub amount: i64,
}

impl ProviderEvent {
    /// The JSON body the provider sends (with a field the hub does not know,
    /// as real providers add fields).
    pub fn body(&self) -> Vec<u8> {
        let mut v = json!({
            "event_id": self.event_id,
            "state": self.state,
            "amount": self.amount,
            "livemode": false,
        });
        if let Some(i) = &self.intent_id {
            v["intent_id"] = Value::String(i.clone());
        }
        if let Some(a) = &self.auth_code {
            v["auth_code"] = Value::String(a.clone());
        }
        if let Some(t) = &self.terminal_id {
            v["terminal_id"] = Value::String(t.clone());
        }
        if self.partial {
            v["partial"] = Value::Bool(true);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// A fault to inject into one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A correct delivery.
    None,
    /// The signature's hex has one digit changed.
    CorruptSignature,
    /// Signed with a secret the hub does not have.
    WrongSecret,
    /// No signature header at all.
    Unsigned,
    /// A correctly signed delivery whose timestamp is this many ms from now
    /// (negative: a replay of an old delivery).
    Timestamp(i64),
    /// The body is changed after signing.
    TamperedBody,
}

/// The emulator of one provider.
#[derive(Debug)]
pub struct Provider {
    /// The name configured at the hub.
    pub name: String,
    secret: String,
    http: reqwest::Client,
    next: AtomicU64,
}

impl Provider {
    /// A provider with its webhook secret.
    pub fn new(name: &str, secret: &str) -> Provider {
        crate::admin_client::install_crypto_provider();
        Provider {
            name: name.to_owned(),
            secret: secret.to_owned(),
            http: reqwest::Client::new(),
            next: AtomicU64::new(1),
        }
    }

    /// A new event with a fresh event id.
    pub fn event(
        &self,
        state: &'static str,
        intent_id: Option<&str>,
        auth_code: Option<&str>,
        amount: i64,
    ) -> ProviderEvent {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        ProviderEvent {
            event_id: format!("evt_{}_{n:06}", self.name),
            state,
            intent_id: intent_id.map(str::to_owned),
            auth_code: auth_code.map(str::to_owned),
            terminal_id: None,
            partial: false,
            amount,
        }
    }

    /// A new report that `amount` of intent `intent_id` was refunded (part
    /// of it).
    pub fn partial_refund(&self, intent_id: &str, amount: i64) -> ProviderEvent {
        ProviderEvent {
            partial: true,
            ..self.event("refunded", Some(intent_id), None, amount)
        }
    }

    /// A new event about a card taken offline at `terminal_id`.
    pub fn terminal_event(
        &self,
        state: &'static str,
        terminal_id: &str,
        auth_code: &str,
        amount: i64,
    ) -> ProviderEvent {
        ProviderEvent {
            terminal_id: Some(terminal_id.to_owned()),
            ..self.event(state, None, Some(auth_code), amount)
        }
    }

    /// The signature header for `body` at `t_ms`.
    pub fn sign(&self, body: &[u8], t_ms: i64) -> String {
        crate::payments::sign_webhook(self.secret.as_bytes(), t_ms, body)
    }

    /// Delivers `e` to the hub at `url` with `fault`.
    pub async fn deliver_with(&self, url: &str, e: &ProviderEvent, fault: Fault) -> Reply {
        let mut body = e.body();
        let now = now_ms();
        let header = match fault {
            Fault::None | Fault::TamperedBody => Some(self.sign(&body, now)),
            Fault::CorruptSignature => {
                let mut h = self.sign(&body, now);
                let last = h.pop();
                h.push(if last == Some('0') { '1' } else { '0' });
                Some(h)
            }
            Fault::WrongSecret => Some(crate::payments::sign_webhook(
                b"not-the-providers-secret",
                now,
                &body,
            )),
            Fault::Unsigned => None,
            Fault::Timestamp(delta) => Some(self.sign(&body, now + delta)),
        };
        if fault == Fault::TamperedBody {
            body = String::from_utf8_lossy(&body)
                .replace(&format!("\"amount\":{}", e.amount), "\"amount\":1")
                .into_bytes();
        }
        let mut req = self
            .http
            .post(format!("{url}/v1/payments/webhooks/{}", self.name))
            .header("content-type", "application/json")
            .body(body);
        if let Some(h) = header {
            req = req.header("X-Provider-Signature", h);
        }
        send(req).await
    }

    /// Delivers `e` correctly.
    pub async fn deliver(&self, url: &str, e: &ProviderEvent) -> Reply {
        self.deliver_with(url, e, Fault::None).await
    }

    /// Delivers `e` after `delay`.
    pub async fn deliver_late(&self, url: &str, e: &ProviderEvent, delay: Duration) -> Reply {
        tokio::time::sleep(delay).await;
        self.deliver(url, e).await
    }

    /// Delivers `e` `n` times at once (each a separate connection, as two
    /// provider workers or two hub instances behind a balancer would see).
    pub async fn deliver_concurrently(
        self: &std::sync::Arc<Self>,
        url: &str,
        e: &ProviderEvent,
        n: usize,
    ) -> Vec<Reply> {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let p = self.clone();
            let e = e.clone();
            let url = url.to_owned();
            tasks.push(tokio::spawn(async move { p.deliver(&url, &e).await }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap_or_else(|e| Reply {
                status: 0,
                body: Value::String(e.to_string()),
            }));
        }
        out
    }

    /// Delivers `events` in the given order (indices into `events`, repeats
    /// allowed: a duplicate), one after the other.
    pub async fn deliver_in_order(
        &self,
        url: &str,
        events: &[ProviderEvent],
        order: &[usize],
    ) -> Vec<Reply> {
        let mut out = Vec::new();
        for i in order {
            out.push(self.deliver(url, &events[*i]).await);
        }
        out
    }
}

/// The provider's refund API, served on loopback for tests: `POST
/// /v1/refunds` checks the hub's signature (`X-Hub-Signature` with the
/// provider's secret, ±5 min), takes each `request_id` once (a repeat
/// answers the first refund id and refunds nothing more), answers
/// `{"refund_id"}` and then reports the refund to the hub as a `refunded`
/// webhook marked `partial` (the hub decides whether it completes the
/// amount). A request with a bad signature is answered 401 and refunds
/// nothing.
#[derive(Debug)]
pub struct RefundApi {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    /// Every request the hub made, in order (their JSON bodies; refused ones
    /// included, with `"refused": true`).
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    hub_url: std::sync::Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefundApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct RefundApiState {
    provider: std::sync::Arc<Provider>,
    hub_url: std::sync::Arc<std::sync::Mutex<String>>,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    refunds: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl RefundApi {
    /// Starts the API for `provider`, delivering its webhooks to `hub_url`.
    pub async fn start(
        provider: std::sync::Arc<Provider>,
        hub_url: &str,
    ) -> std::io::Result<RefundApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let hub_url = std::sync::Arc::new(std::sync::Mutex::new(hub_url.to_owned()));
        let state = std::sync::Arc::new(RefundApiState {
            provider,
            hub_url: hub_url.clone(),
            requests: requests.clone(),
            refunds: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        });
        let app = axum::Router::new()
            .route("/v1/refunds", axum::routing::post(refund))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RefundApi {
            url,
            requests,
            hub_url,
            task,
        })
    }

    /// Where the webhooks go (a hub started after the API, whose
    /// configuration needed the API's URL).
    pub fn set_hub_url(&self, url: &str) {
        if let Ok(mut u) = self.hub_url.lock() {
            url.clone_into(&mut u);
        }
    }
}

async fn refund(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<RefundApiState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    use axum::http::StatusCode;
    let mut seen: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let signed = crate::payments::verify_webhook(
        st.provider.secret.as_bytes(),
        headers
            .get(crate::payments_client::HUB_SIGNATURE_HEADER)
            .and_then(|h| h.to_str().ok()),
        &body,
        now_ms(),
        crate::payments::WEBHOOK_TOLERANCE_MS,
    );
    let (Ok(()), Some(intent), Some(amount), Some(request)) = (
        signed,
        seen["intent_id"].as_str().map(str::to_owned),
        seen["amount"].as_i64(),
        seen["request_id"].as_str().map(str::to_owned),
    ) else {
        seen["refused"] = Value::Bool(true);
        if let Ok(mut r) = st.requests.lock() {
            r.push(seen);
        }
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"refused\"}".into());
    };
    if let Ok(mut r) = st.requests.lock() {
        r.push(seen);
    }
    let (refund_id, new) = {
        let Ok(mut refunds) = st.refunds.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
        };
        match refunds.get(&request) {
            Some(id) => (id.clone(), false),
            None => {
                let id = format!("re_{}_{:06}", st.provider.name, refunds.len() + 1);
                refunds.insert(request, id.clone());
                (id, true)
            }
        }
    };
    if new {
        let st = st.clone();
        tokio::spawn(async move {
            let e = st.provider.partial_refund(&intent, amount);
            let hub = st.hub_url.lock().map(|u| u.clone()).unwrap_or_default();
            st.provider.deliver(&hub, &e).await;
        });
    }
    (
        StatusCode::OK,
        json!({ "refund_id": refund_id }).to_string(),
    )
}
