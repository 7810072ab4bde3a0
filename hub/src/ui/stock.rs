//! `/ui/stock`: oversell and negative-stock alerts (derived from the applied
//! events, DESIGN "Escrow stock") with the operator's acknowledgement or
//! resolution (`stock_alert_decided` in the audit log).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::html;

use crate::escrow::AlertDecision;
use crate::ui::layout::{self, error, html_response, qty, redirect, Nav};
use crate::ui::state::{notice, UiState};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// `GET /ui/stock`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (alerts, stores, devices) = match tokio::try_join!(
        ui.app.store.stock_alerts(),
        ui.app.store.stores(),
        ui.app.store.devices(None)
    ) {
        Ok(x) => x,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let store_name = |s: &caja_shared::ids::StoreId| {
        stores
            .iter()
            .find(|x| &x.store == s)
            .map_or_else(|| s.to_string(), |x| x.name.clone())
    };
    let register = |d: &caja_shared::ids::DeviceId| {
        devices
            .iter()
            .find(|x| &x.device == d)
            .map_or_else(|| d.to_string(), |x| x.name.clone())
    };
    let open = alerts.iter().filter(|a| a.state == "open").count();
    let content = html! {
        p class="muted" { (text::STOCK_NOTE) }
        p { (text::open_stock_alerts(open)) }
        @if !alerts.is_empty() {
            table {
                caption { (text::STOCK_TABLE) }
                thead { tr {
                    th scope="col" { (text::COL_KIND) }
                    th scope="col" { (text::COL_STORE) }
                    th scope="col" { (text::COL_PRODUCT) }
                    th scope="col" class="num" { (text::COL_QUANTITY) }
                    th scope="col" { (text::COL_REGISTERS) }
                    th scope="col" { (text::COL_STATUS) }
                    th scope="col" { (text::COL_ACTIONS) }
                } }
                tbody {
                    @for (i, a) in alerts.iter().enumerate() {
                        tr {
                            th scope="row" { (text::stock_alert_kind(a.kind)) }
                            td { (store_name(&a.store)) }
                            td { code { (a.product) } }
                            td class="num" { (qty(a.amount_milli)) }
                            td { @for d in &a.registers { (register(d)) br; } }
                            td {
                                (text::alert_state(&a.state))
                                @if let Some(by) = &a.by { br; span class="muted" { (by) ": " (a.note.as_deref().unwrap_or("")) } }
                            }
                            td {
                                @if a.state != "resolved" {
                                    form class="stack" method="post" action="/ui/stock/decide" {
                                        (layout::csrf(&op))
                                        input type="hidden" name="key" value=(a.key);
                                        label for={"alerta-nota-" (i)} { (text::ALERT_NOTE) }
                                        input id={"alerta-nota-" (i)} type="text" name="note" maxlength="1000";
                                        @if a.state == "open" {
                                            button type="submit" name="state" value="acknowledged" class="secondary" { (text::ACKNOWLEDGE) }
                                            " "
                                        }
                                        button type="submit" name="state" value="resolved" { (text::RESOLVE_ALERT) }
                                    }
                                }
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
            Nav::Stock,
            text::STOCK_TITLE,
            notice(uri.query()),
            content,
        ),
    )
}

/// `POST /ui/stock/decide`.
pub(crate) async fn decide(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let fields = form.required("key", 300).and_then(|key| {
        let state = form.required("state", 20)?;
        let note = form.optional("note", 1000)?.unwrap_or_default();
        Ok((key, state, note))
    });
    let (key, state, note) = match fields {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()),
    };
    let d = AlertDecision {
        key,
        state,
        by: op.name.clone(),
        note,
    };
    if let Err(refusal) = d.check() {
        return ui.refused(&op, &refusal);
    }
    match ui.app.store.decide_stock_alert(d).await {
        Ok(Ok(_)) => redirect("/ui/stock?ok=decided"),
        Ok(Err(refusal)) => ui.refused(&op, &refusal),
        Err(e) => ui.failure(Some(&op), e),
    }
}
