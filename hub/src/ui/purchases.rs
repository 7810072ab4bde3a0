//! `/ui/purchases` ("Compras"): the e-CF suppliers sent to the hub's URL
//! Recepción (DGII receiver services, `crate::receiver`), with head office's
//! commercial decision on each, and the buyers' approvals or rejections
//! (ACECF) of e-CF this taxpayer issued. Read-only: a decision is taken with
//! `caja-hub admin purchases --decide` (the admin API signs the ACECF).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use crate::ui::layout::{self, html_response, Nav};
use crate::ui::state::{UiState, HEAD_OFFICE_OFFSET};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// How many of the newest rows each table lists.
const LATEST: usize = 100;

/// `GET /ui/purchases`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let purchases = match ui.app.store.purchases(LATEST).await {
        Ok(p) => p,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let approvals = match ui.app.store.commercial_approvals(LATEST).await {
        Ok(a) => a,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let content = html! {
        section aria-labelledby="compras-recibidas" {
            h2 id="compras-recibidas" { (text::PURCHASES_RECEIVED) }
            @if purchases.is_empty() {
                p { (text::PURCHASES_EMPTY) }
            } @else {
                table {
                    caption { (text::PURCHASES_RECEIVED) }
                    thead { tr {
                        th scope="col" { (text::COL_SUPPLIER) }
                        th scope="col" { (text::COL_DOCUMENT) }
                        th scope="col" { (text::COL_ISSUED) }
                        th scope="col" class="num" { (text::COL_DOC_TOTAL) }
                        th scope="col" { (text::COL_SECURITY_CODE) }
                        th scope="col" { (text::COL_RECEIVED) }
                        th scope="col" { (text::COL_STATUS) }
                    } }
                    tbody {
                        @for p in &purchases {
                            tr {
                                td { (p.issuer_name) " (" (p.issuer_rnc) ")" }
                                td { code { (p.encf) } }
                                td { (p.issued_date) }
                                td class="num" { (layout::money(p.total)) }
                                td { (p.security_code) }
                                td { (layout::when(p.received_ms, HEAD_OFFICE_OFFSET)) }
                                td { (text::purchase_decision(p.decision.as_deref()))
                                    @if let Some(n) = p.decision_note.as_deref().filter(|n| !n.is_empty()) { ": " (n) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="aprobaciones" {
            h2 id="aprobaciones" { (text::APPROVALS_TITLE) }
            @if approvals.is_empty() {
                p { (text::APPROVALS_EMPTY) }
            } @else {
                table {
                    caption { (text::APPROVALS_TITLE) }
                    thead { tr {
                        th scope="col" { (text::COL_DOCUMENT) }
                        th scope="col" { (text::COL_BUYER) }
                        th scope="col" { (text::COL_STATUS) }
                        th scope="col" { (text::COL_REASON) }
                        th scope="col" { (text::COL_RECEIVED) }
                    } }
                    tbody {
                        @for a in &approvals {
                            tr data-state=(a.state) {
                                td { code { (a.encf) } }
                                td { (a.buyer_rnc) }
                                td { (text::purchase_decision(Some(&a.state))) }
                                td { (a.reason.as_deref().unwrap_or("—")) }
                                td { (layout::when(a.received_ms, HEAD_OFFICE_OFFSET)) }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Purchases, text::PURCHASES_TITLE, None, content),
    )
}
