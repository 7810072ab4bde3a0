//! `/ui/fiscal`: the fiscal series with the numbers left in each (free at the
//! hub and outstanding on registers; a chart), then per series the
//! per-number report (`shared::fiscal::account`: every number used, voided,
//! released unused, written off, outstanding or never allocated) on screen
//! and as CSV (the admin API's `to_csv`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use caja_shared::fiscal::{format_number, NumberStatus};
use maud::html;

use crate::fiscal::SeriesReport;
use crate::storage::FiscalHealth;
use crate::ui::chart::{self, Bar};
use crate::ui::layout::{self, count, error, html_response, Nav};
use crate::ui::state::UiState;
use crate::ui::text;

type Ui = State<Arc<UiState>>;

/// Most runs shown on the series page (the CSV has them all).
const RUNS_SHOWN: usize = 500;

/// Numbers of a series not yet used: free at the hub plus outstanding on
/// registers.
fn left(r: &SeriesReport) -> u64 {
    let a = &r.accounting;
    a.total(NumberStatus::NeverAllocated)
        + a.total(NumberStatus::ReleasedUnused)
        + a.total(NumberStatus::Outstanding)
}

fn series_health<'h>(health: &'h [FiscalHealth], series_id: &str) -> Option<&'h FiscalHealth> {
    health.iter().find(|h| h.series_id == series_id)
}

/// `GET /ui/fiscal`.
pub(crate) async fn page(State(ui): Ui, headers: HeaderMap) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (reports, inputs) =
        match tokio::try_join!(ui.app.store.fiscal_reports(None), ui.app.health_inputs()) {
            Ok(x) => x,
            Err(e) => return ui.failure(Some(&op), e),
        };
    let bars: Vec<Bar> = reports
        .iter()
        .map(|r| Bar {
            label: format!("{} ({}–{})", r.series.prefix, r.series.first, r.series.last),
            value: i64::try_from(left(r)).unwrap_or(i64::MAX),
            text: text::numbers_left(&count(left(r)), &count(r.accounting.size())),
            of: i64::try_from(r.accounting.size()).unwrap_or(i64::MAX),
        })
        .collect();
    let content = html! {
        @if reports.is_empty() {
            p { (text::NO_SERIES) }
        } @else {
            (chart::rows("quedan", text::NUMBERS_LEFT_CHART, text::COL_SERIES, &bars))
            table {
                caption { (text::SERIES_TABLE) }
                thead { tr {
                    th scope="col" { (text::COL_SERIES) }
                    th scope="col" { (text::COL_VALID_UNTIL) }
                    th scope="col" class="num" { (text::COL_LEFT) }
                    @for s in NumberStatus::ALL { th scope="col" class="num" { (text::number_status(s)) } }
                    th scope="col" class="num" { (text::COL_DUPLICATES) }
                    th scope="col" { (text::COL_REPORT) }
                } }
                tbody {
                    @for r in &reports {
                        @let h = series_health(&inputs.fiscal_series, &r.series.series_id);
                        tr {
                            th scope="row" { (r.series.prefix) " " span class="muted" { (count(r.series.first)) "–" (count(r.series.last)) } }
                            td {
                                (r.series.valid_until)
                                @if let Some(h) = h { br; span class="muted" { (text::days_left(h.days_to_expiry)) } }
                            }
                            td class="num" { strong { (count(left(r))) } }
                            @for s in NumberStatus::ALL { td class="num" { (count(r.accounting.total(s))) } }
                            td class="num" { (r.accounting.duplicates) }
                            td {
                                a href={"/ui/fiscal/" (r.series.series_id)} { (text::SEE_REPORT) } br;
                                a href={"/ui/fiscal/" (r.series.series_id) "/report.csv"} download { (text::DOWNLOAD_CSV) }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout::page(&op, Nav::Fiscal, text::FISCAL_TITLE, None, content),
    )
}

async fn one_report(
    ui: &UiState,
    series_id: &str,
) -> Result<Option<SeriesReport>, crate::storage::StorageError> {
    Ok(ui
        .app
        .store
        .fiscal_reports(None)
        .await?
        .into_iter()
        .find(|r| r.series.series_id == series_id))
}

/// `GET /ui/fiscal/{series}`: the per-number report on screen.
pub(crate) async fn series(State(ui): Ui, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let r = match one_report(&ui, &id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_SERIES),
        Err(e) => return ui.failure(Some(&op), e),
    };
    let (devices, stores) =
        match tokio::try_join!(ui.app.store.devices(None), ui.app.store.stores()) {
            Ok(x) => x,
            Err(e) => return ui.failure(Some(&op), e),
        };
    let register = |d: &caja_shared::ids::DeviceId| {
        devices
            .iter()
            .find(|x| &x.device == d)
            .map_or_else(|| d.to_string(), |x| x.name.clone())
    };
    let number = |n: u64| {
        format_number(&r.series.prefix, r.series.digits, n)
            .unwrap_or_else(|_| format!("{}{n}", r.series.prefix))
    };
    let a = &r.accounting;
    let served: Vec<String> = if r.series.stores.is_empty() {
        vec![text::ALL_STORES.to_owned()]
    } else {
        r.series
            .stores
            .iter()
            .map(|s| {
                stores
                    .iter()
                    .find(|x| &x.store == s)
                    .map_or_else(|| s.to_string(), |x| x.name.clone())
            })
            .collect()
    };
    let content = html! {
        p {
            (text::series_summary(&number(r.series.first), &number(r.series.last), &r.series.valid_until))
            " · " (text::SERVES) " " (served.join(", "))
        }
        p { a href={"/ui/fiscal/" (r.series.series_id) "/report.csv"} download { (text::DOWNLOAD_CSV) } }
        table {
            caption { (text::TOTALS_TABLE) }
            thead { tr { th scope="col" { (text::COL_STATUS) } th scope="col" class="num" { (text::COL_NUMBERS) } } }
            tbody {
                @for s in NumberStatus::ALL {
                    tr { th scope="row" { (text::number_status(s)) } td class="num" { (count(a.total(s))) } }
                }
                tr { th scope="row" { (text::COL_TOTAL) } td class="num" { strong { (count(a.size())) } } }
                tr { th scope="row" { (text::COL_DUPLICATES) } td class="num" { (a.duplicates) } }
            }
        }
        @if !a.anomalies.is_empty() {
            h2 { (text::ANOMALIES) }
            ul { @for x in &a.anomalies { li { code { (format!("{x:?}")) } } } }
        }
        h2 { (text::RUNS_TITLE) }
        @if a.runs.len() > RUNS_SHOWN { p class="muted" { (text::runs_truncated(RUNS_SHOWN, a.runs.len())) } }
        table {
            caption { (text::RUNS_TABLE) }
            thead { tr {
                th scope="col" { (text::COL_FROM) }
                th scope="col" { (text::COL_TO) }
                th scope="col" class="num" { (text::COL_NUMBERS) }
                th scope="col" { (text::COL_STATUS) }
                th scope="col" { (text::COL_REGISTER) }
                th scope="col" { (text::COL_SALES) }
            } }
            tbody {
                @for run in a.runs.iter().take(RUNS_SHOWN) {
                    tr {
                        th scope="row" { (number(run.first)) }
                        td { (number(run.last)) }
                        td class="num" { (count(run.last - run.first + 1)) }
                        td { (text::number_status(run.status)) }
                        td { @if let Some(d) = &run.device { (register(d)) } }
                        td { @for u in &run.sales {
                            code { (u.sale) } " (" (register(&u.device)) @if u.voided { ", " (text::VOIDED) } ")" br;
                        } }
                    }
                }
            }
        }
        p { a href="/ui/fiscal" { (text::BACK_TO_FISCAL) } }
    };
    html_response(
        StatusCode::OK,
        layout::page(
            &op,
            Nav::Fiscal,
            &text::series_title(&r.series.prefix),
            None,
            content,
        ),
    )
}

/// `GET /ui/fiscal/{series}/report.csv`: the per-number report as CSV.
pub(crate) async fn csv(State(ui): Ui, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let op = match ui.operator(&headers).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let r = match one_report(&ui, &id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, Some(&op), text::NO_SUCH_SERIES),
        Err(e) => return ui.failure(Some(&op), e),
    };
    tracing::info!(operator = %op.name, series = %id, "dashboard: fiscal report downloaded");
    let mut resp = crate::http::body_with_type(r.to_csv(), "text/csv; charset=utf-8");
    let name: String = format!("fiscal-{}-{}.csv", r.series.prefix, r.series.series_id)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
