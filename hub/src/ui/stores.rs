//! `/ui/stores`: stores and their registers. Create a store; enroll a
//! register with a one-time token shown as text and as a QR code (SVG, the
//! `qrcode` crate; the code holds the token alone, so a keyboard-wedge
//! scanner at the register types it into the enrollment field); revoke a
//! register; rotate its key (the new key is shown once).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use caja_shared::ids::StoreId;
use maud::{html, Markup};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::storage::{DeviceInfo, StoreInfo};
use crate::ui::form::FormError;
use crate::ui::layout::offset_of;
use crate::ui::layout::{self, device_status, error, html_response, redirect, Nav};
use crate::ui::session::Operator;
use crate::ui::state::{notice, UiState, HEAD_OFFICE_OFFSET};
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// The zones a store may be in (those `shared::localtime` knows).
pub const ZONES: [&str; 16] = [
    "America/Santo_Domingo",
    "America/Puerto_Rico",
    "America/Caracas",
    "America/La_Paz",
    "America/Manaus",
    "America/Bogota",
    "America/Lima",
    "America/Panama",
    "America/Cancun",
    "America/Guatemala",
    "America/Costa_Rica",
    "America/El_Salvador",
    "America/Tegucigalpa",
    "America/Managua",
    "UTC",
    "Etc/UTC",
];

/// The QR code of `data` as an inline SVG with an accessible name.
pub fn qr_svg(data: &str, label: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // Drop the XML prolog (inline SVG in HTML has none) and name the image.
    let start = svg.find("<svg")?;
    let label = maud::html! { (label) }.into_string();
    Some(svg[start..].replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{label}\" "),
        1,
    ))
}

fn store_section(op: &Operator, s: &StoreInfo, devices: &[&DeviceInfo]) -> Markup {
    let offset = offset_of(s);
    html! {
        section aria-labelledby={"tienda-" (s.store)} {
            h2 id={"tienda-" (s.store)} { (s.name) }
            p class="muted" { (text::STORE_ID) " " code { (s.store) } " · " (text::STORE_ZONE) " " (s.time_zone) }
            @if devices.is_empty() {
                p { (text::NO_REGISTERS) }
            } @else {
                table {
                    caption { (text::registers_of(&s.name)) }
                    thead { tr {
                        th scope="col" { (text::COL_REGISTER) }
                        th scope="col" { (text::COL_STATUS) }
                        th scope="col" { (text::COL_ENROLLED) }
                        th scope="col" { (text::COL_KEYS) }
                        th scope="col" { (text::COL_ACTIONS) }
                    } }
                    tbody {
                        @for d in devices {
                            tr {
                                th scope="row" { (d.name) br; code class="muted" { (d.device) } }
                                td { (device_status(d)) }
                                td { (layout::when(d.enrolled_at_ms, offset)) }
                                td { @for k in &d.key_ids { code { (k) } " " } }
                                td {
                                    @if d.revoked_at_ms.is_none() {
                                        form class="inline" method="post" action={"/ui/devices/" (d.device) "/rotate"}
                                            data-confirm=(text::CONFIRM_ROTATE) {
                                            (layout::csrf(op))
                                            button type="submit" class="secondary" { (text::ROTATE_BUTTON) }
                                        }
                                        form class="row" method="post" action={"/ui/devices/" (d.device) "/revoke"}
                                            data-confirm=(text::CONFIRM_REVOKE) {
                                            (layout::csrf(op))
                                            div {
                                                label for={"motivo-" (d.device)} { (text::REVOKE_REASON) }
                                                input id={"motivo-" (d.device)} type="text" name="reason" required maxlength="200";
                                            }
                                            button type="submit" class="danger" { (text::REVOKE_BUTTON) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/stores`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (stores, devices) =
        match tokio::try_join!(ui.app.store.stores(), ui.app.store.devices(None)) {
            Ok(x) => x,
            Err(e) => return ui.failure(Some(&op), e),
        };
    let content = html! {
        section aria-labelledby="inscribir" {
            h2 id="inscribir" { (text::ENROLL_TITLE) }
            @if stores.is_empty() {
                p { (text::NO_STORES) }
            } @else {
                form class="row" method="post" action="/ui/stores/enroll" {
                    (layout::csrf(&op))
                    div {
                        label for="inscribir-tienda" { (text::FIELD_STORE) }
                        select id="inscribir-tienda" name="store" required {
                            @for s in &stores { option value=(s.store) { (s.name) } }
                        }
                    }
                    div {
                        label for="inscribir-nombre" { (text::FIELD_REGISTER_NAME) }
                        input id="inscribir-nombre" type="text" name="name" required maxlength="100" placeholder="caja 1";
                    }
                    button type="submit" { (text::ENROLL_BUTTON) }
                }
            }
        }
        @for s in &stores {
            @let of_store: Vec<&DeviceInfo> = devices.iter().filter(|d| d.store == s.store).collect();
            (store_section(&op, s, &of_store))
        }
        section aria-labelledby="nueva-tienda" {
            h2 id="nueva-tienda" { (text::NEW_STORE_TITLE) }
            form class="row" method="post" action="/ui/stores" {
                (layout::csrf(&op))
                div {
                    label for="tienda-nombre" { (text::FIELD_STORE_NAME) }
                    input id="tienda-nombre" type="text" name="name" required maxlength="200";
                }
                div {
                    label for="tienda-zona" { (text::FIELD_TIME_ZONE) }
                    select id="tienda-zona" name="time_zone" {
                        @for z in ZONES { option value=(z) { (z) } }
                    }
                }
                button type="submit" { (text::NEW_STORE_BUTTON) }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Stores,
            text::STORES_TITLE,
            notice(uri.query()),
            content,
        ),
    )
}

fn bad_form(op: &Operator, e: &FormError) -> Response {
    error(StatusCode::BAD_REQUEST, Some(op), &e.for_person())
}

/// `POST /ui/stores`: a new store.
pub(crate) async fn create_store(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = match form.required("name", 200) {
        Ok(n) => n,
        Err(e) => return bad_form(&op, &e),
    };
    let zone = form
        .optional("time_zone", 64)
        .ok()
        .flatten()
        .unwrap_or_else(|| "America/Santo_Domingo".to_owned());
    if !ZONES.contains(&zone.as_str()) {
        return bad_form(
            &op,
            &FormError::Invalid {
                field: "time_zone",
                reason: text::UNKNOWN_ZONE.to_owned(),
            },
        );
    }
    match ui.app.store.create_store(name.clone(), zone).await {
        Ok(info) => {
            tracing::info!(operator = %op.name, store = %info.store, "dashboard: store created");
            redirect("/ui/stores?ok=store_created")
        }
        Err(e) => ui.failure(Some(&op), e),
    }
}

/// `POST /ui/stores/enroll`: a one-time enrollment token, shown once.
pub(crate) async fn enroll(
    State(ui): Ui,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let store: StoreId = match form.parsed("store", |v| v.parse().ok(), text::NOT_A_STORE) {
        Ok(s) => s,
        Err(e) => return bad_form(&op, &e),
    };
    let name = match form.required("name", 100) {
        Ok(n) => n,
        Err(e) => return bad_form(&op, &e),
    };
    let ttl = ui.app.cfg.token_ttl_ms;
    let (token, expires) = match ui.app.store.create_token(store, name.clone(), ttl).await {
        Ok(Ok(t)) => t,
        Ok(Err(refusal)) => return ui.refused(&op, &refusal),
        Err(e) => return ui.failure(Some(&op), e),
    };
    tracing::info!(operator = %op.name, %store, register = %name, "dashboard: enrollment token made");
    let qr = qr_svg(&token, text::QR_LABEL);
    let content = html! {
        p { (text::token_for(&name)) }
        p { span class="token mono" id="token" { (token) } " "
            button type="button" class="secondary" data-copy="token" { (text::COPY) } }
        @if let Some(svg) = qr {
            figure class="qr" {
                (layout::trusted_svg(svg))
                figcaption { (text::QR_CAPTION) }
            }
        }
        p { (text::token_expires(&layout::when(expires, HEAD_OFFICE_OFFSET))) }
        p { (text::ENROLL_COMMAND) }
        pre class="mono" { "caja-node enroll --hub <URL del hub> --token " (token) }
        p class="notbuilt" { (text::TOKEN_SHOWN_ONCE) }
        p { a href="/ui/stores" { (text::BACK_TO_STORES) } }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Stores, text::TOKEN_TITLE, None, content),
    )
}

/// `POST /ui/devices/{device}/revoke`.
pub(crate) async fn revoke(
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
    let reason = match form.required("reason", 200) {
        Ok(r) => r,
        Err(e) => return bad_form(&op, &e),
    };
    let reason = format!("{reason} (by {} on the dashboard)", op.name);
    match ui.app.store.revoke(device, reason).await {
        Ok(Ok(())) => redirect("/ui/stores?ok=revoked"),
        Ok(Err(refusal)) => ui.refused(&op, &refusal),
        Err(e) => ui.failure(Some(&op), e),
    }
}

/// `POST /ui/devices/{device}/rotate`: the new key is shown once.
pub(crate) async fn rotate(
    State(ui): Ui,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (op, _form) = match ui.form(&headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(device) = device.parse() else {
        return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_REGISTER);
    };
    let rotated = match ui.app.store.admin_rotate(device).await {
        Ok(Ok(r)) => r,
        Ok(Err(refusal)) => return ui.refused(&op, &refusal),
        Err(e) => return ui.failure(Some(&op), e),
    };
    tracing::info!(operator = %op.name, %device, key_id = %rotated.key_id, "dashboard: key rotated");
    let content = html! {
        p { (text::ROTATED_INTRO) }
        dl {
            dt { (text::KEY_ID) } dd { code { (rotated.key_id) } }
            dt { (text::NEW_KEY) } dd { code class="token" { (rotated.key.to_hex().as_str()) } }
            dt { (text::OLD_KEY_UNTIL) } dd { (layout::when(rotated.old_key_valid_until_ms, HEAD_OFFICE_OFFSET)) }
        }
        p class="notbuilt" { (text::KEY_SHOWN_ONCE) }
        p { a href="/ui/stores" { (text::BACK_TO_STORES) } }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Stores, text::ROTATED_TITLE, None, content),
    )
}
