//! Sign-in and sign-out. The login form is protected by a double-submit
//! token (`caja_login` cookie = hidden field); each attempt takes a token
//! from the client address's bucket and from the bucket all clients share
//! (persisted, `rate_limits`) *before* the admin token is compared, so
//! guessing is slow however many addresses are used and across restarts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use crate::ratelimit::{Decision, RateLimit};
use crate::system::OsRandom;
use crate::ui::form::Form;
use crate::ui::layout::{bare, html_response, redirect};
use crate::ui::session::{self, COOKIE_PATH, LOGIN_COOKIE, SESSION_COOKIE};
use crate::ui::state::FORM_LIMIT_BYTES;
use crate::ui::text;

type Ui = State<Arc<crate::ui::state::UiState>>;

/// Longest operator name.
pub const MAX_NAME: usize = 100;
/// The login form's cookie path.
const LOGIN_PATH: &str = "/ui/login";

fn login_form(token: &str, name: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p class="error" role="alert" { (m) }
        }
        form class="stack" method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(token);
            label for="login-name" { (text::LOGIN_NAME) }
            input id="login-name" type="text" name="name" value=(name) required autocomplete="username" maxlength=(MAX_NAME);
            label for="login-token" { (text::LOGIN_SECRET) }
            input id="login-token" type="password" name="token" required autocomplete="current-password";
            p class="muted" { (text::LOGIN_SECRET_HINT) }
            button type="submit" { (text::LOGIN_BUTTON) }
        }
    }
}

fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The form with a fresh double-submit token in its cookie.
fn form_page(
    ui: &crate::ui::state::UiState,
    status: StatusCode,
    name: &str,
    message: Option<&str>,
) -> Response {
    let token = session::new_secret(&mut OsRandom::new());
    let r = html_response(
        status,
        bare(text::LOGIN_TITLE, login_form(&token, name, message)),
    );
    with_cookie(
        r,
        &session::set_cookie(
            LOGIN_COOKIE,
            &token,
            LOGIN_PATH,
            session::LOGIN_COOKIE_MAX_AGE_S,
            ui.app.cfg.ui_secure_cookie,
        ),
    )
}

/// `GET /ui/login`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    if ui.operator(&headers).await.is_ok() {
        return redirect("/ui/");
    }
    form_page(&ui, StatusCode::OK, "", None)
}

fn global(limit: RateLimit) -> RateLimit {
    RateLimit {
        burst: limit.burst.saturating_mul(6),
        per_minute: limit.per_minute.saturating_mul(6),
    }
}

/// `POST /ui/login`.
pub(crate) async fn submit(State(ui): Ui, req: Request) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, FORM_LIMIT_BYTES).await else {
        return form_page(&ui, StatusCode::BAD_REQUEST, "", Some(text::FORM_MALFORMED));
    };
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(e) => return form_page(&ui, StatusCode::BAD_REQUEST, "", Some(&e.for_person())),
    };
    let cookies = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let expected = session::cookie(cookies, LOGIN_COOKIE).unwrap_or("");
    if !session::is_secret(expected)
        || !session::tokens_match(expected, form.get("csrf").unwrap_or(""))
    {
        tracing::warn!(
            client,
            "dashboard login refused: missing or wrong form token"
        );
        return form_page(
            &ui,
            StatusCode::FORBIDDEN,
            "",
            Some(text::LOGIN_FORM_EXPIRED),
        );
    }
    let name = match form.required("name", MAX_NAME) {
        Ok(n) => n,
        Err(e) => return form_page(&ui, StatusCode::BAD_REQUEST, "", Some(&e.for_person())),
    };
    let limit = ui.app.cfg.ui_login_limit;
    let decision = ui
        .app
        .store
        .ui_login_attempt(
            format!("ui-login:{client}"),
            "ui-login:*".to_owned(),
            limit,
            global(limit),
        )
        .await;
    match decision {
        Ok(Decision::Allow) => {}
        Ok(Decision::Limited { retry_after_ms }) => {
            let wait_s = (retry_after_ms + 999) / 1000;
            tracing::warn!(client, wait_s, "dashboard login refused: rate limit");
            let mut r = form_page(
                &ui,
                StatusCode::TOO_MANY_REQUESTS,
                &name,
                Some(&text::login_limited(wait_s)),
            );
            if let Ok(v) = HeaderValue::from_str(&wait_s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        Err(e) => return ui.failure(None, e),
    }
    let secret = form.get("token").unwrap_or("").trim();
    if !ui.app.admin.check(Some(&format!("Bearer {secret}"))) {
        tracing::warn!(client, operator = %name, "dashboard login refused: wrong admin token");
        return form_page(
            &ui,
            StatusCode::UNAUTHORIZED,
            &name,
            Some(text::LOGIN_WRONG),
        );
    }
    let mut rng = OsRandom::new();
    let id = session::new_secret(&mut rng);
    let csrf = session::new_secret(&mut rng);
    let ttl = ui.app.cfg.ui_session_ttl_ms;
    if let Err(e) = ui
        .app
        .store
        .ui_create_session(
            session::session_hash(ui.app.admin.session_binding(), &id),
            name.clone(),
            csrf,
            ttl,
        )
        .await
    {
        return ui.failure(None, e);
    }
    tracing::info!(client, operator = %name, "dashboard login");
    let secure = ui.app.cfg.ui_secure_cookie;
    let r = with_cookie(
        redirect("/ui/"),
        &session::set_cookie(SESSION_COOKIE, &id, COOKIE_PATH, ttl / 1000, secure),
    );
    with_cookie(r, &session::clear_cookie(LOGIN_COOKIE, LOGIN_PATH, secure))
}

/// `POST /ui/logout`: ends the session (CSRF-checked like every form).
pub(crate) async fn logout(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let op = match ui.form(&headers, body).await {
        Ok((op, _)) => op,
        Err(r) => return r,
    };
    if let Err(e) = ui.app.store.ui_end_session(op.session).await {
        return ui.failure(Some(&op), e);
    }
    tracing::info!(operator = %op.name, "dashboard logout");
    with_cookie(
        redirect("/ui/login"),
        &session::clear_cookie(SESSION_COOKIE, COOKIE_PATH, ui.app.cfg.ui_secure_cookie),
    )
}

/// `POST /ui/sessions/end-all`: signs every operator out, this one included
/// (a leaked session cookie, a laptop left signed in). CSRF-checked.
pub(crate) async fn end_all(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let op = match ui.form(&headers, body).await {
        Ok((op, _)) => op,
        Err(r) => return r,
    };
    match ui.app.store.ui_end_all_sessions().await {
        Ok(n) => {
            tracing::warn!(operator = %op.name, sessions = n, "dashboard: every session ended")
        }
        Err(e) => return ui.failure(Some(&op), e),
    }
    with_cookie(
        redirect("/ui/login"),
        &session::clear_cookie(SESSION_COOKIE, COOKIE_PATH, ui.app.cfg.ui_secure_cookie),
    )
}
