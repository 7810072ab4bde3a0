//! `/ui/conflicts`: the queue of `manual` conflicts and, per conflict, its
//! candidate events side by side with a button to resolve in favour of each
//! (or with no single winner). A resolution is the admin API's: a
//! `ConflictResolved` hub event whose deps are the candidates, and a
//! `conflict_resolved` audit entry naming the operator and their note.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use caja_shared::ids::{ConflictId, EventId};
use maud::{html, Markup};

use crate::conflict::ResolveRequest;
use crate::storage::{ConflictInfo, DeviceInfo, EventSummary, StateFilter, StoreInfo};
use crate::ui::layout::offset_of;
use crate::ui::layout::{self, error, html_response, money, redirect, Nav};
use crate::ui::session::Operator;
use crate::ui::state::{notice, UiState, HEAD_OFFICE_OFFSET};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// Most resolved conflicts listed under the queue.
const RESOLVED_LISTED: usize = 50;

fn store_name(stores: &[StoreInfo], c: &ConflictInfo) -> String {
    stores
        .iter()
        .find(|s| s.store == c.store)
        .map_or_else(|| c.store.to_string(), |s| s.name.clone())
}

/// `GET /ui/conflicts`.
pub(crate) async fn list(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (open, resolved, stores) = match tokio::try_join!(
        ui.app.store.conflicts(StateFilter::Open),
        ui.app.store.conflicts(StateFilter::Resolved),
        ui.app.store.stores()
    ) {
        Ok(x) => x,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let row = |c: &ConflictInfo| {
        html! {
            tr {
                th scope="row" { a href={"/ui/conflicts/" (c.conflict_id)} { (text::conflict_reason(c.reason)) } }
                td { (store_name(&stores, c)) }
                td { code { (c.subject) } }
                td class="num" { (c.candidates.len()) }
                td { (layout::when(c.detected_ms, HEAD_OFFICE_OFFSET)) }
                td { @if let Some(r) = &c.resolution { (r.by) ": " (r.note) } }
            }
        }
    };
    let table = |caption: &str, rows: &[&ConflictInfo]| {
        html! {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { (text::COL_REASON) }
                    th scope="col" { (text::COL_STORE) }
                    th scope="col" { (text::COL_SUBJECT) }
                    th scope="col" class="num" { (text::COL_CANDIDATES) }
                    th scope="col" { (text::COL_DETECTED) }
                    th scope="col" { (text::COL_RESOLUTION) }
                } }
                tbody { @for c in rows { (row(c)) } }
            }
        }
    };
    let open_rows: Vec<&ConflictInfo> = open.iter().collect();
    let resolved_rows: Vec<&ConflictInfo> = resolved.iter().rev().take(RESOLVED_LISTED).collect();
    let content = html! {
        p class="muted" { (text::CONFLICTS_NOTE) }
        @if open.is_empty() {
            p { (text::NO_OPEN_CONFLICTS) }
        } @else {
            (table(&text::open_conflicts(open.len()), &open_rows))
        }
        @if !resolved.is_empty() {
            h2 { (text::RESOLVED_CONFLICTS) }
            (table(text::RESOLVED_CONFLICTS, &resolved_rows))
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Conflicts,
            text::CONFLICTS_TITLE,
            notice(uri.query()),
            content,
        ),
    )
}

fn fact(body: &serde_json::Value, key: &str) -> Option<String> {
    let v = body.get(key)?;
    match key {
        "total" | "amount" => v.as_i64().map(money),
        _ => v
            .as_str()
            .map(str::to_owned)
            .or_else(|| v.as_i64().map(|n| n.to_string())),
    }
}

fn candidate(
    op: &Operator,
    c: &ConflictInfo,
    e: &EventSummary,
    who: &str,
    offset: caja_shared::localtime::UtcOffset,
) -> Markup {
    let facts: Vec<(&str, String)> = [
        ("total", text::FACT_TOTAL),
        ("amount", text::FACT_AMOUNT),
        ("reason", text::FACT_REASON),
        ("sale_id", text::FACT_SALE),
        ("debt_id", text::FACT_DEBT),
        ("cashier", text::FACT_CASHIER),
    ]
    .into_iter()
    .filter_map(|(k, label)| fact(&e.body, k).map(|v| (label, v)))
    .collect();
    let fiscal = e
        .body
        .get("fiscal")
        .and_then(|f| f.get("number"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    let pretty = serde_json::to_string_pretty(&e.body).unwrap_or_default();
    let open = c.state == "open";
    html! {
        article class="candidate" aria-labelledby={"cand-" (e.event_id)} {
            h3 id={"cand-" (e.event_id)} { (text::kind_label(&e.kind)) }
            dl {
                dt { (text::COL_REGISTER) } dd { (who) " · " (text::COL_SEQ) " " (e.seq) }
                dt { (text::WHEN_MADE) } dd { (layout::when(e.hlc_ms, offset)) }
                dt { (text::WHEN_RECEIVED) } dd { (layout::when(e.received_ms, offset)) }
                @if let Some(n) = &fiscal { dt { (text::FACT_FISCAL) } dd { (n) } }
                @for (label, v) in &facts { dt { (label) } dd { (v) } }
                @if e.held { dt { (text::COL_STATUS) } dd { (text::HELD_EVENT) } }
                dt { (text::COL_EVENT) } dd { code { (e.event_id) } }
            }
            details { summary { (text::SHOW_BODY) } pre { (pretty) } }
            @if open {
                form class="stack" method="post" action={"/ui/conflicts/" (c.conflict_id) "/resolve"} {
                    (layout::csrf(op))
                    input type="hidden" name="winner" value=(e.event_id);
                    label for={"nota-" (e.event_id)} { (text::RESOLVE_NOTE) }
                    textarea id={"nota-" (e.event_id)} name="note" required maxlength="1000" {}
                    button type="submit" { (text::RESOLVE_FOR_THIS) }
                }
            }
        }
    }
}

fn author(e: &EventSummary, devices: &[DeviceInfo], stores: &[StoreInfo]) -> String {
    if let Some(d) = devices.iter().find(|d| d.device.to_string() == e.device) {
        return d.name.clone();
    }
    if stores.iter().any(|s| s.hub_device.to_string() == e.device) {
        return text::HEAD_OFFICE.to_owned();
    }
    e.device.clone()
}

/// `GET /ui/conflicts/{id}`.
pub(crate) async fn detail(
    State(ui): Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<ConflictId>() else {
        return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_CONFLICT);
    };
    let (all, stores, devices) = match tokio::try_join!(
        ui.app.store.conflicts(StateFilter::All),
        ui.app.store.stores(),
        ui.app.store.devices(None)
    ) {
        Ok(x) => x,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let Some(c) = all.into_iter().find(|c| c.conflict_id == id) else {
        return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_CONFLICT);
    };
    let ids: Vec<EventId> = c.candidates.iter().copied().collect();
    let events = match ui.app.store.ui_events(ids).await {
        Ok(e) => e,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let offset = stores
        .iter()
        .find(|s| s.store == c.store)
        .map_or(HEAD_OFFICE_OFFSET, offset_of);
    let content = html! {
        dl {
            dt { (text::COL_REASON) } dd { (text::conflict_reason(c.reason)) " " code { "(" (c.reason) ")" } }
            dt { (text::COL_STRATEGY) } dd { (c.strategy) }
            dt { (text::COL_STORE) } dd { (store_name(&stores, &c)) }
            dt { (text::COL_SUBJECT) } dd { code { (c.subject) } }
            dt { (text::COL_DETECTED) } dd { (layout::when(c.detected_ms, offset)) }
            dt { (text::COL_STATUS) } dd {
                @if c.state == "open" { span class="badge warn" { (text::CONFLICT_OPEN) } }
                @else { span class="badge ok" { (text::CONFLICT_RESOLVED) } }
            }
            @if let Some(r) = &c.resolution {
                dt { (text::COL_RESOLUTION) } dd {
                    (r.by) ": " (r.note)
                    @if let Some(w) = r.winner { " · " (text::WINNER) " " code { (w) } }
                }
            }
        }
        h2 { (text::CANDIDATES_TITLE) }
        div class="side-by-side" {
            @for e in &events {
                (candidate(&op, &c, e, &author(e, &devices, &stores), offset))
            }
        }
        @if c.state == "open" {
            h2 { (text::RESOLVE_WITHOUT_WINNER_TITLE) }
            form class="stack" method="post" action={"/ui/conflicts/" (c.conflict_id) "/resolve"} {
                (layout::csrf(&op))
                label for="nota-sin-ganador" { (text::RESOLVE_NOTE) }
                textarea id="nota-sin-ganador" name="note" required maxlength="1000" {}
                button type="submit" class="secondary" { (text::RESOLVE_WITHOUT_WINNER) }
            }
        }
        p { a href="/ui/conflicts" { (text::BACK_TO_CONFLICTS) } }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Conflicts,
            &text::conflict_title(c.reason),
            notice(uri.query()),
            content,
        ),
    )
}

/// `POST /ui/conflicts/{id}/resolve`.
pub(crate) async fn resolve(
    State(ui): Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<ConflictId>() else {
        return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_CONFLICT);
    };
    let winner = match form.optional("winner", 64) {
        Ok(None) => None,
        Ok(Some(w)) => match w.parse::<EventId>() {
            Ok(w) => Some(w),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some(&op),
                    &text::refusal("invalid", Some("winner"), ""),
                )
            }
        },
        Err(e) => return error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()),
    };
    let note = match form.required("note", crate::conflict::MAX_RESOLUTION_TEXT) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()),
    };
    let req = ResolveRequest {
        winner,
        note,
        by: op.name.clone(),
    };
    match ui.app.store.resolve_conflict(id, req).await {
        Ok(Ok(c)) => {
            tracing::info!(operator = %op.name, conflict = %c.conflict_id, "dashboard: conflict resolved");
            redirect(&format!("/ui/conflicts/{id}?ok=resolved"))
        }
        Ok(Err(refusal)) => ui.refused(&op, &refusal),
        Err(e) => ui.failure(Some(&op), e),
    }
}
