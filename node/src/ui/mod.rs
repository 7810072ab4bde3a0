//! The cashier's screen: one HTML page, a small script and a
//! style sheet, all compiled into the binary (no CDN, no outside fonts),
//! served by axum on a loopback address, and a JSON API over the same
//! register operations the CLI calls ([`screen`]).
//!
//! - **All state is in the node.** The sale being rung up, the payment in
//!   progress and the last result live in the node's database ([`cart`]);
//!   the page only draws what `GET /api/state` returns, so a closed tab, a
//!   reload or a restart loses nothing.
//! - **Retries apply once.** Every `POST` carries a client operation id made
//!   by the page (`crypto.randomUUID()`); the page retries a request that got
//!   no answer with the *same* id. Register operations answer a known id with
//!   their first result; cart lines are unique by op id; a sale is made under
//!   the cart's payment op id, fixed at the first attempt.
//! - **Only this machine's screen.** The listener is loopback only (checked
//!   in the configuration); a `POST` must be `application/json` with the
//!   `X-Caja-Screen: 1` header (a page from elsewhere cannot send that
//!   without a CORS preflight, which is never granted), its `Host` must be a
//!   loopback name of this port (no DNS rebinding), and an `Origin`, when
//!   sent, must be this address.
//! - **Plain Spanish.** Every error is an [`screen::ApiError`] with a
//!   sentence from [`crate::messages`]; the page's labels come from
//!   [`crate::messages::UI_LABELS`] too (`{{key}}` slots in the page).

pub mod cart;
pub mod dialogs;
pub mod pricing;
pub mod screen;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::datadir::DataDir;
use crate::error::{OpError, Refusal};
use crate::register::Register;
use crate::system::{OsRandom, SystemClock};
use screen::{ApiError, ApiResult, Screen};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Largest request body the screen sends.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How often the background look at the scale refreshes the status bar.
const SCALE_REFRESH: Duration = Duration::from_secs(2);
/// The printer's status is asked every this many scale looks (10 s).
const PRINTER_REFRESH_EVERY: u32 = 5;

/// Why the screen could not be served.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The register could not be opened.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The address could not be bound, or the runtime not started.
    #[error("cashier screen on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The page with its `{{key}}` slots filled from [`crate::messages::UI_LABELS`]
/// and [`crate::messages::screen::DIALOG_LABELS`]
/// (HTML-escaped) and `{{labels_json}}` with all of them for the script.
pub fn render_page() -> String {
    let mut page = PAGE.to_owned();
    let all = || {
        crate::messages::UI_LABELS
            .iter()
            .chain(crate::messages::screen::DIALOG_LABELS)
    };
    for (key, text) in all() {
        page = page.replace(&format!("{{{{{key}}}}}"), &escape_html(text));
    }
    let labels: serde_json::Map<String, serde_json::Value> = all()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    // Inside <script type="application/json">: no "</script>" can appear.
    let json = serde_json::Value::Object(labels)
        .to_string()
        .replace('<', "\\u003c");
    page.replace("{{labels_json}}", &json)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The hub asked for payment intents after a sale, as `caja-node sell`
/// does: only with a payment provider and the hub configured. Each call opens
/// the sync engine on its own connection; a failure to open it is reported
/// as offline for every payment (the references stand).
fn intents_asker(dir: &DataDir, cfg: &crate::config::NodeConfig) -> Option<screen::AskIntents> {
    let provider = cfg.payment_provider.clone()?;
    let url = cfg.hub_url.clone()?;
    let settings = crate::sync::engine::SyncSettings {
        max_hlc_drift_ms: cfg.max_hlc_drift_ms,
        ..Default::default()
    };
    let dir = dir.clone();
    Some(screen::AskIntents(Box::new(move |sale, paid| {
        let engine = OsRandom::new().map_err(|e| e.to_string()).and_then(|rng| {
            crate::sync::engine::SyncEngine::open(&dir, &url, SystemClock, rng, settings)
                .map_err(|e| e.to_string())
        });
        match engine {
            Ok(mut engine) => engine.create_sale_intents(sale, &provider, paid),
            Err(why) => paid
                .iter()
                .enumerate()
                .filter(|(_, (m, _, _))| crate::sync::intents::needs_intent(*m))
                .map(
                    |(index, (method, amount, reference))| crate::sync::intents::SaleIntent {
                        index,
                        method: *method,
                        amount: *amount,
                        reference: reference.clone(),
                        intent_id: None,
                        error: Some(why.clone()),
                    },
                )
                .collect(),
        }
    })))
}

struct App {
    screen: Screen<SystemClock, OsRandom>,
    page: String,
    addr: SocketAddr,
}

type Shared = Arc<App>;

/// Serves the cashier's screen of the register in `dir` on `addr` until
/// `stop` is set (or the process ends). `ready` is called once listening.
pub fn serve(
    dir: &DataDir,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), UiError> {
    let rng = OsRandom::new().map_err(|e| {
        OpError::Refused(Refusal::Invalid {
            field: "random",
            reason: e.to_string(),
        })
    })?;
    let mut node = Register::open(dir, SystemClock, rng)?;
    // The screen sells for hours: WAL checkpoints off the sales' commits.
    node.start_checkpointer(crate::checkpointer::CheckpointPolicy::default())?;
    let intents = intents_asker(dir, node.config());
    let mut screen = Screen::new(node)?;
    if let Some(ask) = intents {
        screen = screen.with_intents(ask);
    }
    let io = |source| UiError::Io { addr, source };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("caja-ui")
        .enable_all()
        .build()
        .map_err(io)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
        let bound = listener.local_addr().map_err(io)?;
        let app = Arc::new(App {
            screen,
            page: render_page(),
            addr: bound,
        });
        let scale_app = app.clone();
        tokio::spawn(async move {
            let mut printer_due = 0u32;
            loop {
                let a = scale_app.clone();
                let _ = tokio::task::spawn_blocking(move || a.screen.refresh_scale()).await;
                // The printer's status bits, less often (one short
                // connection each time).
                if printer_due == 0 {
                    let a = scale_app.clone();
                    let _ = tokio::task::spawn_blocking(move || a.screen.refresh_printer()).await;
                }
                printer_due = (printer_due + 1) % PRINTER_REFRESH_EVERY;
                tokio::time::sleep(SCALE_REFRESH).await;
            }
        });
        ready(bound);
        let router = Router::new()
            .route("/", get(page))
            .route("/app.js", get(script))
            .route("/app.css", get(style))
            .route("/api/state", get(state))
            .route("/api/sales", get(sales))
            .route("/api/customers", get(customers))
            .route("/api/x-report", get(x_report))
            .route("/api/{action}", post(action))
            .with_state(app);
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await
            .map_err(io)
    })
}

fn security_headers(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn page(State(app): State<Shared>) -> Response {
    security_headers(app.page.clone().into_response(), "text/html; charset=utf-8")
}

async fn script() -> Response {
    security_headers(SCRIPT.into_response(), "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    security_headers(STYLE.into_response(), "text/css; charset=utf-8")
}

fn answer(r: ApiResult) -> Response {
    let (status, body) = match r {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            serde_json::json!({"error": e.code, "message": e.message}),
        ),
    };
    security_headers(
        (status, body.to_string()).into_response(),
        "application/json; charset=utf-8",
    )
}

/// Runs a register call off the async executor.
async fn blocking(
    app: Shared,
    f: impl FnOnce(&Screen<SystemClock, OsRandom>) -> ApiResult + Send + 'static,
) -> Response {
    let r = tokio::task::spawn_blocking(move || f(&app.screen)).await;
    answer(r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cashier screen: request panicked");
        Err(ApiError {
            status: 500,
            code: "storage",
            message: crate::messages::ui_storage("error interno"),
        })
    }))
}

fn host_ok(headers: &HeaderMap, addr: SocketAddr) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = addr.port();
    [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        addr.to_string(),
    ]
    .iter()
    .any(|h| h == host)
}

/// The checks every request from the page passes (see the module doc).
fn guard(headers: &HeaderMap, addr: SocketAddr, write: bool) -> Result<(), ApiError> {
    let forbidden = || ApiError {
        status: 403,
        code: "forbidden",
        message: crate::messages::ui_forbidden(),
    };
    if !host_ok(headers, addr) {
        return Err(forbidden());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if origin.to_str().ok() != Some(&format!("http://{host}")) {
            return Err(forbidden());
        }
    }
    if write {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let ours = headers
            .get("x-caja-screen")
            .is_some_and(|v| v.as_bytes() == b"1");
        if !json || !ours {
            return Err(forbidden());
        }
    }
    Ok(())
}

async fn state(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = guard(&headers, app.addr, false) {
        return answer(Err(e));
    }
    blocking(app, |s| s.state()).await
}

async fn sales(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = guard(&headers, app.addr, false) {
        return answer(Err(e));
    }
    blocking(app, |s| s.sales()).await
}

async fn customers(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = guard(&headers, app.addr, false) {
        return answer(Err(e));
    }
    blocking(app, |s| s.customers()).await
}

async fn x_report(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = guard(&headers, app.addr, false) {
        return answer(Err(e));
    }
    blocking(app, |s| s.x_report()).await
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(&e.to_string()))
}

async fn action(
    State(app): State<Shared>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = guard(&headers, app.addr, true) {
        return answer(Err(e));
    }
    if body.len() > MAX_BODY_BYTES {
        return answer(Err(ApiError::bad_request("too large")));
    }
    blocking(app, move |s| match action.as_str() {
        "add" => s.add_line(&decode(&body)?),
        "remove" => s.remove_line(&decode(&body)?),
        "price" => s.set_price(&decode(&body)?),
        "clear" => s.clear(&decode(&body)?),
        "pay" => s.pay(&decode(&body)?),
        "shift-open" => s.open_shift(&decode(&body)?),
        "shift-close" => s.close_shift(&decode(&body)?),
        "void" => s.void(&decode(&body)?),
        "return" => s.return_sale(&decode(&body)?),
        "cash" => s.cash(&decode(&body)?),
        "reprint" => s.reprint(&decode(&body)?),
        "discount" => s.discount(&decode(&body)?),
        "customer" => s.add_customer(&decode(&body)?),
        "customer-edit" => s.edit_customer(&decode(&body)?),
        "debt-pay" => s.pay_debt(&decode(&body)?),
        "print-now" => s.print_pending_now(&decode(&body)?),
        "drawer-manual" => s.drawer_manual(&decode(&body)?),
        other => Err(ApiError::bad_request(other)),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn every_slot_of_the_page_is_filled_and_escaped() {
        let page = render_page();
        assert!(!page.contains("{{"), "a slot without a label");
        assert!(page.contains(r#"<html lang="es-DO">"#));
        assert!(page.contains("<title>Caja — pantalla del cajero</title>"));
        // The labels for the script are JSON that cannot close the script.
        let start = page.find(r#"id="labels">"#).expect("labels") + 12;
        let end = start + page[start..].find("</script>").expect("end");
        let v: serde_json::Value = serde_json::from_str(&page[start..end]).expect("json");
        assert_eq!(v["pay"], "Cobrar (F4)");
        // Nothing is fetched from elsewhere.
        for s in [PAGE, SCRIPT, STYLE] {
            assert!(!s.contains("http://") && !s.contains("https://"));
            assert!(!s.contains("@import") && !s.contains("url("));
        }
        assert_eq!(
            escape_html(r#"<a href="x">&"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }

    #[test]
    fn only_this_machines_screen_may_call() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let ok = [
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
            ("x-caja-screen", "1"),
        ];
        assert!(guard(&headers(&ok), addr, true).is_ok());
        assert!(guard(&headers(&[("host", "localhost:8080")]), addr, false).is_ok());
        let with_origin = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("content-type", "application/json; charset=utf-8"),
            ("x-caja-screen", "1"),
        ];
        assert!(guard(&headers(&with_origin), addr, true).is_ok());
        for bad in [
            // DNS rebinding: another name for this address.
            vec![
                ("host", "evil.example:8080"),
                ("content-type", "application/json"),
                ("x-caja-screen", "1"),
            ],
            // Another port.
            vec![
                ("host", "127.0.0.1:9090"),
                ("content-type", "application/json"),
                ("x-caja-screen", "1"),
            ],
            // A page from elsewhere.
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
                ("content-type", "application/json"),
                ("x-caja-screen", "1"),
            ],
            // A form post (no preflight): no JSON type, no header.
            vec![("host", "127.0.0.1:8080"), ("content-type", "text/plain")],
            vec![
                ("host", "127.0.0.1:8080"),
                ("content-type", "application/json"),
            ],
            vec![],
        ] {
            let e = guard(&headers(&bad), addr, true).expect_err("refused");
            assert_eq!((e.status, e.code), (403, "forbidden"), "{bad:?}");
            assert!(e.message.contains("esta misma caja"));
        }
    }
}
