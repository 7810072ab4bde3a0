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
