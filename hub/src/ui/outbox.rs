//! `/ui/outbox`: the status of the tax authority's outbox (e-CF documents sent
//! to the DGII by the hub's workers, `crate::outbox`): counts per state, the
//! backlog and its oldest document, failing and rejected documents, and the
//! latest documents with their tracking id, security code and the authority's
//! messages. Read-only: a rejection is resolved from the conflict queue.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use crate::outbox::DocState;
use crate::ui::layout::{self, html_response, Nav};
use crate::ui::state::{UiState, HEAD_OFFICE_OFFSET};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// How many of the newest documents the page lists.
const LATEST: usize = 100;

/// `GET /ui/outbox`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let health = match ui.app.store.outbox_health().await {
        Ok(h) => h,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let docs = match ui.app.store.outbox_list(None, LATEST).await {
        Ok(d) => d,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let content = html! {
        section aria-labelledby="resumen-envios" {
            h2 id="resumen-envios" { (text::OUTBOX_SUMMARY) }
            p { (text::outbox_backlog(health.backlog, health.failing, health.rejected)) }
            @if let Some(since) = health.oldest_pending_since_ms {
                p { (text::OUTBOX_OLDEST) " " (layout::when(since, HEAD_OFFICE_OFFSET)) }
            }
            table {
                caption { (text::OUTBOX_BY_STATE) }
                thead { tr {
                    th scope="col" { (text::COL_STATUS) }
                    th scope="col" class="num" { (text::COL_DOCUMENTS) }
                } }
                tbody {
                    @for s in DocState::ALL {
                        tr {
                            td { (text::outbox_state(s.as_str())) }
                            td class="num" { (health.by_state.get(s.as_str()).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="ultimos-envios" {
            h2 id="ultimos-envios" { (text::OUTBOX_LATEST) }
            @if docs.is_empty() {
                p { (text::OUTBOX_EMPTY) }
            } @else {
                table {
                    caption { (text::OUTBOX_LATEST) }
                    thead { tr {
                        th scope="col" { (text::COL_DOCUMENT) }
                        th scope="col" { (text::COL_SERIES) }
                        th scope="col" { (text::COL_STATUS) }
                        th scope="col" { (text::COL_TRACK_ID) }
                        th scope="col" { (text::COL_SECURITY_CODE) }
                        th scope="col" class="num" { (text::COL_ATTEMPTS) }
                        th scope="col" { (text::COL_QUEUED) }
                        th scope="col" { (text::COL_MESSAGES) }
                    } }
                    tbody {
                        @for d in &docs {
                            tr data-state=(d.state) {
                                td { code { (d.document) } }
                                td { (d.series) }
                                td { (text::outbox_state(&d.state))
                                    @if d.in_doubt { " " (text::OUTBOX_IN_DOUBT) } }
                                td { (d.track_id.as_deref().unwrap_or("—")) }
                                td { (d.security_code.as_deref().unwrap_or("—")) }
                                td class="num" { (d.attempts) }
                                td { (layout::when(d.created_ms, HEAD_OFFICE_OFFSET)) }
                                td { (messages(d)) }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Outbox, text::OUTBOX_TITLE, None, content),
    )
}

/// The authority's messages, or the last failure of an undecided document.
fn messages(d: &crate::storage::DocInfo) -> String {
    let from_authority: Vec<String> = d
        .messages
        .as_ref()
        .and_then(|m| m.as_array())
        .map(|a| {
            a.iter()
                .map(|m| {
                    let code = m.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = m.get("text").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code} {msg}").trim().to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    if !from_authority.is_empty() {
        return from_authority.join("; ");
    }
    d.last_error.clone().unwrap_or_else(|| "—".to_owned())
}
