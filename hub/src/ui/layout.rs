//! The page shell (header, navigation, main), responses of the dashboard, and
//! how values are written for a person (money, times, ages, zones, status
//! badges).

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use caja_shared::localtime::{zone_offset, LocalDateTime, UtcOffset};
use caja_shared::money::Money;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::health::Overall;
use crate::storage::{DeviceInfo, StoreInfo};
use crate::ui::session::Operator;
use crate::ui::text;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/ui/`.
    Overview,
    /// `/ui/stores`.
    Stores,
    /// `/ui/sync`.
    Sync,
    /// `/ui/held`.
    Held,
    /// `/ui/conflicts`.
    Conflicts,
    /// `/ui/stock`.
    Stock,
    /// `/ui/fiscal`.
    Fiscal,
    /// `/ui/outbox`.
    Outbox,
    /// `/ui/audit`.
    Audit,
    /// `/ui/purchases`.
    Purchases,
}

const NAV: [(Nav, &str, &str); 10] = [
    (Nav::Overview, "/ui/", text::NAV_OVERVIEW),
    (Nav::Stores, "/ui/stores", text::NAV_STORES),
    (Nav::Sync, "/ui/sync", text::NAV_SYNC),
    (Nav::Held, "/ui/held", text::NAV_HELD),
    (Nav::Conflicts, "/ui/conflicts", text::NAV_CONFLICTS),
    (Nav::Stock, "/ui/stock", text::NAV_STOCK),
    (Nav::Fiscal, "/ui/fiscal", text::NAV_FISCAL),
    (Nav::Outbox, "/ui/outbox", text::NAV_OUTBOX),
    (Nav::Purchases, "/ui/purchases", text::NAV_PURCHASES),
    (Nav::Audit, "/ui/audit", text::NAV_AUDIT),
];

/// The hidden CSRF field every form carries.
pub fn csrf(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="es-DO" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (text::APP_NAME) }
                link rel="stylesheet" href="/ui/assets/style.css";
                script src="/ui/assets/app.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A page of the signed-in dashboard.
pub fn page(op: &Operator, nav: Nav, title: &str, notice: Option<&str>, content: Markup) -> Markup {
    document(
        title,
        html! {
            a class="skip" href="#contenido" { (text::SKIP_TO_CONTENT) }
            header class="top" {
                div { strong { (text::APP_NAME) } }
                div class="who" {
                    (text::SIGNED_IN_AS) " " strong { (op.name) } " "
                    form class="inline" method="post" action="/ui/logout" {
                        (csrf(op))
                        button type="submit" class="secondary" { (text::LOGOUT) }
                    }
                    " "
                    form class="inline" method="post" action="/ui/sessions/end-all" {
                        (csrf(op))
                        button type="submit" class="secondary" title=(text::LOGOUT_EVERYONE_HINT) { (text::LOGOUT_EVERYONE) }
                    }
                }
            }
            nav class="main" aria-label=(text::NAV_LABEL) {
                ul {
                    @for (n, href, label) in NAV {
                        li {
                            @if n == nav {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                }
            }
            main id="contenido" {
                h1 { (title) }
                @if let Some(n) = notice {
                    p class="notice" role="status" { (n) }
                }
                (content)
            }
        },
    )
}

/// A page outside the session (login, errors before login).
pub fn bare(title: &str, content: Markup) -> Markup {
    document(
        title,
        html! {
            main id="contenido" class="login" {
                h1 { (title) }
                (content)
            }
        },
    )
}

/// An HTML answer.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = Response::new(Body::from(markup.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// An error page: inside the shell when someone is signed in.
pub fn error(status: StatusCode, op: Option<&Operator>, message: &str) -> Response {
    let content = html! {
        p class="error" role="alert" { (message) }
        p { a href="/ui/" { (text::BACK_TO_OVERVIEW) } }
    };
    let markup = match op {
        Some(op) => page(op, Nav::Overview, text::ERROR_TITLE, None, content),
        None => bare(text::ERROR_TITLE, content),
    };
    html_response(status, markup)
}

/// `303 See Other` to `location` (after a form, and to the login page).
pub fn redirect(location: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `RD$ 1,234.56`.
pub fn money(minor: i64) -> String {
    let plain = Money(minor).to_string();
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", plain.as_str()),
    };
    let (whole, cents) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}RD$ {grouped}.{cents}")
}

/// A count with thousands separators: `100,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A quantity in thousandths: `12.500`.
pub fn qty(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let a = milli.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// `dd/mm/yyyy hh:mm:ss` in the zone at `offset`.
pub fn when(ms: i64, offset: UtcOffset) -> String {
    let t = LocalDateTime::from_utc_ms(ms, offset);
    format!(
        "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
        t.day, t.month, t.year, t.hour, t.minute, t.second
    )
}

/// A duration for a person: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let s = ms.unsigned_abs() / 1000;
    let sign = if ms < 0 { "-" } else { "" };
    if s < 60 {
        format!("{sign}{s} s")
    } else if s < 3600 {
        format!("{sign}{} min", s / 60)
    } else if s < 86_400 {
        format!("{sign}{} h {} min", s / 3600, s / 60 % 60)
    } else {
        format!("{sign}{} d {} h", s / 86_400, s / 3600 % 24)
    }
}

/// An inline SVG made by a library, trusted (it is ours: the QR renderer).
pub fn trusted_svg(svg: String) -> Markup {
    PreEscaped(svg)
}

/// The badge of an `overall`.
pub fn overall_badge(o: Overall) -> Markup {
    let (class, label) = match o {
        Overall::Healthy => ("badge ok", text::OVERALL_HEALTHY),
        Overall::Degraded => ("badge warn", text::OVERALL_DEGRADED),
        Overall::Critical => ("badge bad", text::OVERALL_CRITICAL),
    };
    html! { span class=(class) { (label) } }
}

/// The store's zone offset (Santo Domingo when unknown).
pub fn offset_of(store: &StoreInfo) -> UtcOffset {
    zone_offset(&store.time_zone).unwrap_or(UtcOffset::SANTO_DOMINGO)
}

/// A register's status as a badge.
pub fn device_status(d: &DeviceInfo) -> Markup {
    if d.revoked_at_ms.is_some() {
        html! { span class="badge bad" { (text::STATUS_REVOKED) } }
    } else if d.quarantined_at_ms.is_some() {
        html! { span class="badge bad" { (text::STATUS_QUARANTINED) } }
    } else {
        html! { span class="badge ok" { (text::STATUS_ACTIVE) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_for_people() {
        assert_eq!(money(123_456), "RD$ 1,234.56");
        assert_eq!(money(-5), "-RD$ 0.05");
        assert_eq!(money(100_000_000), "RD$ 1,000,000.00");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(count(7), "7");
        assert_eq!(qty(12_500), "12.500");
        assert_eq!(qty(-250), "-0.250");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(-90_000), "-1 min");
        assert_eq!(duration(3_900_000), "1 h 5 min");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
        // 2026-01-01T00:00:00Z is 31/12/2025 20:00 in Santo Domingo.
        assert_eq!(
            when(1_767_225_600_000, UtcOffset::SANTO_DOMINGO),
            "31/12/2025 20:00:00"
        );
    }
}
