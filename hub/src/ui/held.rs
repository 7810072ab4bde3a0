//! `/ui/held`: what the hub holds back. Events held for their causal
//! dependencies (stored and acknowledged, applied by the hub itself when the
//! dependencies arrive — DESIGN invariant 6 — so they are listed, with what
//! they miss and their age, not released by hand) and registers quarantined
//! after a chain mismatch, which a person releases after review (audited as
//! `quarantine_released` with their note).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::html;

use crate::storage::DeviceInfo;
use crate::ui::layout::{self, error, html_response, redirect, Nav};
use crate::ui::state::{notice, UiState, HEAD_OFFICE_OFFSET};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// `GET /ui/held`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let inputs = match ui.app.store.health_inputs().await {
        Ok(i) => i,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let now = ui.app.store.now_ms();
    let name = |device: &str| {
        inputs
            .devices
            .iter()
            .find(|d| d.device.to_string() == device)
            .map_or_else(|| device.to_owned(), |d| d.name.clone())
    };
    let quarantined: Vec<&DeviceInfo> = inputs
        .devices
        .iter()
        .filter(|d| d.quarantined_at_ms.is_some())
        .collect();
    let content = html! {
        section aria-labelledby="cuarentena" {
            h2 id="cuarentena" { (text::QUARANTINE_TITLE) }
            p class="muted" { (text::QUARANTINE_NOTE) }
            @if quarantined.is_empty() {
                p { (text::NO_QUARANTINE) }
            }
            @for d in &quarantined {
                div class="candidate" {
                    h3 { (d.name) }
                    p { code { (d.device) } }
                    p { (text::QUARANTINED_SINCE) " " (layout::when(d.quarantined_at_ms.unwrap_or(0), HEAD_OFFICE_OFFSET))
                        " · " (text::COL_ACKED) ": " (d.acked_seq) }
                    p { (text::QUARANTINE_REASON) " " (d.quarantine_reason.as_deref().unwrap_or("—")) }
                    form class="stack" method="post" action={"/ui/devices/" (d.device) "/release"} {
                        (layout::csrf(&op))
                        label for={"nota-" (d.device)} { (text::RELEASE_NOTE) }
                        textarea id={"nota-" (d.device)} name="note" required maxlength="1000" {}
                        button type="submit" { (text::RELEASE_BUTTON) }
                    }
                }
            }
        }
        section aria-labelledby="retenidos" {
            h2 id="retenidos" { (text::HELD_TITLE) }
            p class="muted" { (text::HELD_NOTE) }
            p { (text::held_total(inputs.held_events)) }
            @if !inputs.held.is_empty() {
                table {
                    caption { (text::HELD_TABLE) }
                    thead { tr {
                        th scope="col" { (text::COL_EVENT) }
                        th scope="col" { (text::COL_REGISTER) }
                        th scope="col" class="num" { (text::COL_SEQ) }
                        th scope="col" { (text::COL_KIND) }
                        th scope="col" { (text::COL_AGE) }
                        th scope="col" { (text::COL_MISSING) }
                    } }
                    tbody {
                        @for h in &inputs.held {
                            tr {
                                th scope="row" { code { (h.event_id) } }
                                td { (name(&h.device)) }
                                td class="num" { (h.seq) }
                                td { (h.kind) }
                                td { (layout::duration((now - h.held_since_ms).max(0))) }
                                td { @for m in &h.missing { code { (m) } br; } }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Held,
            text::HELD_PAGE_TITLE,
            notice(uri.query()),
            content,
        ),
    )
}

/// `POST /ui/devices/{device}/release`: releases a quarantine after review.
pub(crate) async fn release(
    State(ui): Ui,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(device) = device.parse() else {
        return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_REGISTER);
    };
    let note = match form.required("note", 1000) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()),
    };
    let note = format!("{note} (by {} on the dashboard)", op.name);
    match ui.app.store.release_quarantine(device, note).await {
        Ok(Ok(())) => redirect("/ui/held?ok=released"),
        Ok(Err(refusal)) => ui.refused(&op, &refusal),
        Err(e) => ui.failure(Some(&op), e),
    }
}
