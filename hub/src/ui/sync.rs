//! `/ui/sync`: sync health per register — the health report's sync section
//! (last push, backlog the register reported, clock skew) and the hub's view
//! of the link: "en línea" while the register's signed requests arrive (a
//! push, or the pull every round makes when it has nothing to push), "sin
//! contacto" once silent for `register_silent_ms` — with charts of the time
//! since the last contact and of the backlog per register. `/ui/health.json` is DESIGN's health report
//! itself, for the session (the API's `/v1/health` needs the admin token).
//! The page reloads itself every 15 seconds.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use crate::health;
use caja_shared::ids::DeviceId;

use crate::storage::{DeviceInfo, StoreInfo};
use crate::ui::chart::{self, Bar};
use crate::ui::layout::{self, html_response, Nav};
use crate::ui::layout::{device_status, offset_of, overall_badge};
use crate::ui::state::UiState;
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// When the hub last heard from `d`: its last push or, later, its last
/// signed request of any kind (`seen`, from the store's replay window).
pub fn last_contact(d: &DeviceInfo, seen: &[(DeviceId, i64)]) -> Option<i64> {
    let request = seen.iter().find(|(id, _)| *id == d.device).map(|(_, t)| *t);
    match (d.last_push_ms, request) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Whether the hub hears from `d`: in contact within `silent_ms`.
pub fn in_contact(d: &DeviceInfo, seen: &[(DeviceId, i64)], now_ms: i64, silent_ms: i64) -> bool {
    last_contact(d, seen).is_some_and(|t| now_ms - t <= silent_ms)
}

/// `GET /ui/sync`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (inputs, stores, seen) = match tokio::try_join!(
        ui.app.health_inputs(),
        ui.app.store.stores(),
        ui.app.store.ui_last_seen()
    ) {
        Ok(x) => x,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let now = ui.app.store.now_ms();
    let silent_ms = ui.app.cfg.register_silent_ms;
    let report = health::report_with(&inputs, now, silent_ms);
    let store_of = |d: &DeviceInfo| stores.iter().find(|s| s.store == d.store);
    let name_of = |d: &DeviceInfo| match store_of(d) {
        Some(s) => format!("{} · {}", s.name, d.name),
        None => d.name.clone(),
    };
    let live: Vec<&DeviceInfo> = inputs
        .devices
        .iter()
        .filter(|d| d.revoked_at_ms.is_none())
        .collect();
    let lag: Vec<Bar> = live
        .iter()
        .map(|d| match last_contact(d, &seen) {
            Some(t) => Bar {
                label: name_of(d),
                value: (now - t).max(0),
                text: layout::duration((now - t).max(0)),
                of: 0,
            },
            None => Bar {
                label: name_of(d),
                value: 0,
                text: text::NEVER_SEEN.to_owned(),
                of: 0,
            },
        })
        .collect();
    let backlog: Vec<Bar> = live
        .iter()
        .map(|d| Bar {
            label: name_of(d),
            value: i64::try_from(d.backlog).unwrap_or(i64::MAX),
            text: text::events_count(d.backlog),
            of: 0,
        })
        .collect();
    let content = html! {
        p { (text::OVERALL_TITLE) " " (overall_badge(report.overall)) " · "
            a href="/ui/health.json" { (text::HEALTH_JSON_LINK) } }
        p class="muted" { (text::sync_note(&layout::duration(silent_ms))) }
        table {
            caption { (text::SYNC_TABLE) }
            thead { tr {
                th scope="col" { (text::COL_REGISTER) }
                th scope="col" { (text::COL_LINK) }
                th scope="col" { (text::COL_LAST_CONTACT) }
                th scope="col" { (text::COL_LAST_PUSH) }
                th scope="col" class="num" { (text::COL_BACKLOG) }
                th scope="col" class="num" { (text::COL_SKEW) }
                th scope="col" class="num" { (text::COL_ACKED) }
                th scope="col" { (text::COL_STATUS) }
            } }
            tbody {
                @for d in &inputs.devices {
                    @let store: Option<&StoreInfo> = store_of(d);
                    @let offset = store.map_or(crate::ui::state::HEAD_OFFICE_OFFSET, offset_of);
                    tr id={"caja-" (d.device)} {
                        th scope="row" { (name_of(d)) }
                        td {
                            @if d.revoked_at_ms.is_some() {
                                span class="muted" { "—" }
                            } @else if in_contact(d, &seen, now, silent_ms) {
                                span class="badge ok" data-link="closed" { (text::LINK_UP) }
                            } @else {
                                span class="badge bad" data-link="open" { (text::LINK_DOWN) }
                            }
                        }
                        td {
                            @match last_contact(d, &seen) {
                                Some(t) => { (layout::when(t, offset)) br; span class="muted" { (text::ago(&layout::duration((now - t).max(0)))) } }
                                None => { (text::NEVER_SEEN) }
                            }
                        }
                        td {
                            @match d.last_push_ms {
                                Some(t) => { (layout::when(t, offset)) br; span class="muted" { (text::ago(&layout::duration((now - t).max(0)))) } }
                                None => { (text::NEVER_PUSHED) }
                            }
                        }
                        td class="num" { (d.backlog) }
                        td class="num" {
                            @match d.clock_skew_ms {
                                Some(s) => { (layout::duration(s)) }
                                None => { "—" }
                            }
                        }
                        td class="num" { (d.acked_seq) }
                        td { (device_status(d)) }
                    }
                }
            }
        }
        (chart::rows("retraso", text::LAG_CHART, text::COL_REGISTER, &lag))
        (chart::rows("pendientes", text::BACKLOG_CHART, text::COL_REGISTER, &backlog))
    };
    let mut r = html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Sync, text::SYNC_TITLE, None, content),
    );
    r.headers_mut().insert(
        axum::http::header::REFRESH,
        axum::http::HeaderValue::from_static("15"),
    );
    r
}

/// `GET /ui/health.json`: DESIGN's health report.
pub(crate) async fn health_json(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let inputs = match ui.app.health_inputs().await {
        Ok(i) => i,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let report = health::report_with(
        &inputs,
        ui.app.store.now_ms(),
        ui.app.cfg.register_silent_ms,
    );
    match serde_json::to_vec_pretty(&report) {
        Ok(body) => crate::http::body_with_type(body, "application/json"),
        Err(_) => layout::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&op),
            text::STORAGE_FAILED,
        ),
    }
}
