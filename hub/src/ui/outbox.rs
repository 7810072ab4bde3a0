//! `/ui/outbox`: the status of the tax authority's outbox (e-CF sends to the
//! DGII). *Not built:* the outbox is being built on another branch
//! (`outbox`); until it is merged this page says so, plainly, instead of
//! showing anything made up.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use crate::ui::layout::{self, html_response, Nav};
use crate::ui::{text, UiState};

type Ui = State<Arc<UiState>>;

/// `GET /ui/outbox`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let content = html! {
        p class="notbuilt" role="status" data-not-built="outbox" { (text::OUTBOX_NOT_BUILT) }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Outbox, text::OUTBOX_TITLE, None, content),
    )
}
