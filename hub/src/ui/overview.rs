//! `/ui/`: the state of the chain at a glance — the health report's
//! `overall` and why, the counts that need a person, and net sales per hour
//! per store over the last 24 hours (a chart per store).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use caja_shared::localtime::{LocalDateTime, UtcOffset};
use maud::html;

use crate::health::{self, HealthReport};
use crate::storage::{HealthInputs, HourlySales};
use crate::ui::chart::{self, Bar};
use crate::ui::layout::{self, html_response, money, offset_of, overall_badge, Nav};
use crate::ui::state::{notice, UiState};
use crate::ui::sync::in_contact;
use crate::ui::text;

type Ui = State<Arc<UiState>>;

const HOUR_MS: i64 = 3_600_000;
/// Hours in the sales chart.
pub const SALES_HOURS: i64 = 24;

/// Why the hub is not healthy, in the operator's words (the same rules as
/// `health::report_with`, whose own reasons are for logs, in English).
pub fn reasons(inputs: &HealthInputs, report: &HealthReport, now_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    let quarantined = inputs
        .devices
        .iter()
        .filter(|d| d.quarantined_at_ms.is_some() && d.revoked_at_ms.is_none())
        .count();
    if quarantined > 0 {
        out.push(text::reason_quarantined(quarantined));
    }
    if inputs.fiscal_duplicates > 0 {
        out.push(text::reason_fiscal_duplicates(inputs.fiscal_duplicates));
    }
    for d in &inputs.devices {
        if d.revoked_at_ms.is_some() || d.quarantined_at_ms.is_some() {
            continue;
        }
        if let Some(skew) = d
            .clock_skew_ms
            .filter(|s| s.abs() > health::SKEW_DEGRADED_MS)
        {
            out.push(text::reason_skew(&d.name, &layout::duration(skew)));
        }
    }
    if let Some(t) = inputs.oldest_held_since_ms {
        let age = (now_ms - t).max(0);
        if age > health::HELD_AGE_DEGRADED_MS {
            out.push(text::reason_held(
                inputs.held_events,
                &layout::duration(age),
            ));
        }
    }
    if inputs.conflicts_open > 0 {
        out.push(text::reason_conflicts(inputs.conflicts_open));
    }
    for s in &inputs.fiscal_series {
        if s.days_to_expiry >= 0 && s.days_to_expiry < health::FISCAL_EXPIRY_WARN_DAYS {
            out.push(text::reason_series_expiring(&s.prefix, s.days_to_expiry));
        }
    }
    let electronic = inputs
        .fiscal_series
        .iter()
        .any(|s| s.days_to_expiry >= 0 && s.prefix.starts_with('E'));
    let cert = inputs.certificate.health(now_ms);
    match cert.status {
        "expires_soon" => out.push(text::reason_certificate_expiring(
            cert.days_left.unwrap_or(0),
        )),
        "missing" if electronic => out.push(text::REASON_CERTIFICATE_MISSING.into()),
        "expired" | "not_yet_valid" | "unreadable" => {
            out.push(text::reason_certificate_unusable(cert.status));
        }
        _ => {}
    }
    if inputs.stock_alerts_open > 0 {
        out.push(text::reason_stock_alerts(inputs.stock_alerts_open));
    }
    if inputs.negative_stock > 0 {
        out.push(text::reason_negative_stock(inputs.negative_stock));
    }
    if inputs.open_alerts > 0 {
        out.push(text::reason_open_alerts(inputs.open_alerts));
    }
    if out.is_empty() && !report.reasons.is_empty() {
        // A rule added to the report and not yet worded here.
        out.extend(report.reasons.iter().cloned());
    }
    out
}

/// The 24 bars of one store, the first hour starting at `since_ms`.
fn store_bars(rows: &[&HourlySales], since_ms: i64, offset: UtcOffset) -> Vec<Bar> {
    let by_hour: BTreeMap<i64, &HourlySales> = rows.iter().map(|r| (r.hour, *r)).collect();
    (0..SALES_HOURS)
        .map(|h| {
            let t = LocalDateTime::from_utc_ms(since_ms + h * HOUR_MS, offset);
            let (count, total) = by_hour.get(&h).map_or((0, 0), |r| (r.count, r.total));
            Bar {
                label: format!("{:02}:{:02}", t.hour, t.minute),
                value: total,
                text: text::sales_in_hour(&money(total), count),
                of: 0,
            }
        })
        .collect()
}

/// `GET /ui/`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap, uri: Uri) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let store = &ui.app.store;
    let now = store.now_ms();
    let since = (now - now.rem_euclid(HOUR_MS)) - (SALES_HOURS - 1) * HOUR_MS;
    let (inputs, stores, sales, seen) = match tokio::try_join!(
        ui.app.health_inputs(),
        store.stores(),
        store.ui_sales_by_hour(since),
        store.ui_last_seen()
    ) {
        Ok(x) => x,
        Err(e) => return ui.failure(Some(&op), e),
    };
    let report = health::report_with(&inputs, now, ui.app.cfg.register_silent_ms);
    let why = reasons(&inputs, &report, now);
    let active: Vec<_> = inputs
        .devices
        .iter()
        .filter(|d| d.revoked_at_ms.is_none())
        .collect();
    let silent = active
        .iter()
        .filter(|d| !in_contact(d, &seen, now, ui.app.cfg.register_silent_ms))
        .count();
    let content = html! {
        section aria-labelledby="estado" {
            h2 id="estado" { (text::OVERALL_TITLE) " " (overall_badge(report.overall)) }
            @if why.is_empty() {
                p { (text::ALL_HEALTHY) }
            } @else {
                ul { @for r in &why { li { (r) } } }
            }
            div class="cards" {
                div class="card" { div { (text::CARD_STORES) } div class="big" { (stores.len()) } }
                div class="card" { div { (text::CARD_REGISTERS) } div class="big" { (active.len()) } }
                div class="card" { div { a href="/ui/sync" { (text::CARD_SILENT) } } div class="big" { (silent) } }
                div class="card" { div { a href="/ui/conflicts" { (text::CARD_CONFLICTS) } } div class="big" { (inputs.conflicts_open) } }
                div class="card" { div { a href="/ui/held" { (text::CARD_HELD) } } div class="big" { (inputs.held_events) } }
                div class="card" { div { a href="/ui/stock" { (text::CARD_STOCK_ALERTS) } } div class="big" { (inputs.stock_alerts_open) } }
                div class="card" { div { a href="/ui/fiscal" { (text::CARD_FISCAL_DUPLICATES) } } div class="big" { (inputs.fiscal_duplicates) } }
                @let cert = inputs.certificate.health(now);
                div class="card" title=[cert.subject.as_deref()] {
                    div { (text::CARD_CERTIFICATE) }
                    div class="big" { (cert.days_left.map_or("—".to_string(), |d| d.to_string())) }
                }
            }
            p { a href="/ui/health.json" { (text::HEALTH_JSON_LINK) } }
        }
        section aria-labelledby="ventas" {
            h2 id="ventas" { (text::SALES_TITLE) }
            p class="muted" { (text::SALES_NOTE) }
            @if stores.is_empty() {
                p { (text::NO_STORES) " " a href="/ui/stores" { (text::NAV_STORES) } }
            }
            @for s in &stores {
                @let rows: Vec<&HourlySales> = sales.iter().filter(|r| r.store == s.store).collect();
                @let bars = store_bars(&rows, since, offset_of(s));
                @let total: i64 = rows.iter().map(|r| r.total).sum();
                (chart::columns(
                    &format!("ventas-{}", s.store),
                    &text::sales_chart_title(&s.name, &money(total)),
                    text::CHART_HOUR,
                    &bars,
                    3,
                ))
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Overview,
            text::OVERVIEW_TITLE,
            notice(uri.query()),
            content,
        ),
    )
}
