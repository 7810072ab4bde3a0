//! What the dashboard's handlers share: [`UiState`] (the hub's handler
//! state and the data directory), the signed-in operator and their forms
//! checked (session, CSRF), the answers to a storage failure or a refusal,
//! and the notices a redirect may show.
//!
//! Invariant: imports no page module; pages and the router import it.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use caja_shared::localtime::UtcOffset;

use crate::http::AppState;
use crate::storage::StorageError;
use crate::ui::form::Form;
use crate::ui::layout::{self, error};
use crate::ui::session::{self, Operator};
use crate::ui::text;

/// Largest form body the dashboard accepts.
pub const FORM_LIMIT_BYTES: usize = 64 * 1024;

/// The zone times are shown in when no store is concerned (head office's).
pub const HEAD_OFFICE_OFFSET: UtcOffset = UtcOffset::SANTO_DOMINGO;

/// What the dashboard's handlers share.
#[derive(Debug)]
pub struct UiState {
    /// The hub's handler state (store, configuration, admin token, key).
    pub app: Arc<AppState>,
    /// The hub's data directory (for the audit export).
    pub data_dir: PathBuf,
}

impl UiState {
    /// The signed-in operator, or the answer that sends the browser to the
    /// login page.
    pub(crate) async fn operator(&self, headers: &HeaderMap) -> Result<Operator, Response> {
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(id) =
            session::cookie(cookies, session::SESSION_COOKIE).filter(|v| session::is_secret(v))
        else {
            return Err(layout::redirect("/ui/login"));
        };
        let hash = session::session_hash(self.app.admin.session_binding(), id);
        match self.app.store.ui_session(hash).await {
            Ok(Some(s)) => Ok(Operator {
                name: s.operator,
                csrf: s.csrf,
                session: hash,
            }),
            Ok(None) => Err(layout::redirect("/ui/login")),
            Err(e) => Err(self.failure(None, e)),
        }
    }

    /// A form of a signed-in operator whose CSRF token matches; otherwise the
    /// refusal (nothing is changed).
    pub(crate) async fn form(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<(Operator, Form), Response> {
        let op = self.operator(headers).await?;
        let body = body.map_err(|rej| {
            let status = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            error(status, Some(&op), text::FORM_MALFORMED)
        })?;
        let form = Form::parse(&body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, Some(&op), &e.for_person()))?;
        if !session::tokens_match(&op.csrf, form.get("csrf").unwrap_or("")) {
            tracing::warn!(operator = %op.name, "dashboard form refused: missing or wrong CSRF token");
            return Err(error(StatusCode::FORBIDDEN, Some(&op), text::CSRF_REFUSED));
        }
        Ok((op, form))
    }

    /// The answer to a storage failure (logged; the person gets a sentence).
    pub(crate) fn failure(&self, op: Option<&Operator>, e: StorageError) -> Response {
        match e {
            StorageError::Overloaded => error(StatusCode::TOO_MANY_REQUESTS, op, text::BUSY),
            StorageError::Closed => error(StatusCode::SERVICE_UNAVAILABLE, op, text::BUSY),
            other => {
                tracing::error!(error = %other, "dashboard: storage failure");
                error(StatusCode::INTERNAL_SERVER_ERROR, op, text::STORAGE_FAILED)
            }
        }
    }

    /// The answer to a refusal of the store (an `ApiError`): its status, and
    /// its message in the person's words where we have them.
    pub(crate) fn refused(&self, op: &Operator, e: &crate::wire::ApiError) -> Response {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        error(
            status,
            Some(op),
            &text::refusal(e.error, e.field.as_deref(), &e.message),
        )
    }
}

/// The notice a redirect after a form asks for (`?ok=<code>`): only known
/// codes are shown, nothing from the URL is echoed.
pub(crate) fn notice(query: Option<&str>) -> Option<&'static str> {
    let code = query?.split('&').find_map(|p| p.strip_prefix("ok="))?;
    text::notice(code)
}
