//! HTTP handlers of fiscal series: `POST /v1/fiscal/ranges` (signed, for
//! registers) and the admin endpoints (series, accounting report, DGII 607,
//! write-off). Same shape as the rest of `http`: read the request, call one
//! store method, write the answer; no SQL and no decision here.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use caja_shared::ids::StoreId;
use caja_shared::localtime::LocalDate;
use serde::Deserialize;

use super::kernel::{
    admitted, answer, body_bytes, body_with_type, device_param, events_answer, json,
    parse_canonical, parse_json, query_params, store_error, AppState,
};
use crate::fiscal::{render_607, render_608, RangeRequest, SeriesSpec};
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

pub(crate) async fn fiscal_ranges(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = admitted(&app, &method, &uri, &headers, body.clone()).await?;
        let parsed = parse_canonical::<RangeRequest>(&body);
        let events = answer(
            app.store
                .grant_fiscal_range(req, parsed, app.cfg.fiscal_block_ttl_ms)
                .await,
        )?;
        events_answer(&app, &events)
    }
    .await;
    app.respond("/v1/fiscal/ranges", r)
}

pub(crate) async fn add_series(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let spec: SeriesSpec = parse_json(&body)?;
        let info = answer(app.store.add_series(spec).await)?;
        json(&info)
    }
    .await;
    app.respond("/v1/admin/fiscal/series", r)
}

pub(crate) async fn list_series(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let series = app.store.fiscal_series().await.map_err(store_error)?;
        json(&serde_json::json!({ "series": series }))
    }
    .await;
    app.respond("/v1/admin/fiscal/series", r)
}

/// `GET /v1/admin/fiscal/report?series=B02&format=json|csv`.
pub(crate) async fn report(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["series", "format"])?;
        let get = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let prefix = get("series").map(str::to_owned);
        if let Some(p) = &prefix {
            caja_shared::fiscal::check_prefix(p)
                .map_err(|e| ApiError::invalid("series", e.to_string()))?;
        }
        let format = get("format").unwrap_or("json");
        if format != "json" && format != "csv" {
            return Err(ApiError::invalid("format", "json or csv"));
        }
        let reports = app
            .store
            .fiscal_reports(prefix.clone())
            .await
            .map_err(store_error)?;
        if reports.is_empty() {
            return Err(ApiError::not_found(format!(
                "no fiscal series {}",
                prefix.unwrap_or_default()
            )));
        }
        if format == "csv" {
            let mut text = String::new();
            for (k, rep) in reports.iter().enumerate() {
                let csv = rep.to_csv();
                // One header for all series.
                text.push_str(if k == 0 {
                    &csv
                } else {
                    csv.split_once('\n').map_or("", |x| x.1)
                });
            }
            return Ok(body_with_type(text, "text/csv; charset=utf-8"));
        }
        json(&serde_json::json!({
            "reports": reports.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        }))
    }
    .await;
    app.respond("/v1/admin/fiscal/report", r)
}

/// The store, month and RNC of a monthly DGII report's query.
fn month_report_params(uri: &Uri) -> Result<(StoreId, LocalDate, String, bool), ApiError> {
    let params = query_params(uri, &["store", "month", "rnc", "part"])?;
    let get = |k: &'static str| {
        params
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| *v)
            .ok_or_else(|| ApiError::invalid(k, "required"))
    };
    let store: StoreId = get("store")?
        .parse()
        .map_err(|_| ApiError::invalid("store", "not a store id"))?;
    let month = LocalDate::parse_iso(&format!("{}-01", get("month")?))
        .ok_or_else(|| ApiError::invalid("month", "must be yyyy-mm"))?;
    let rnc = get("rnc")?;
    caja_shared::fiscal::validate_tax_id(rnc)
        .map_err(|e| ApiError::invalid("rnc", e.to_string()))?;
    let rnc: String = rnc.chars().filter(char::is_ascii_digit).collect();
    let consumer = match params.iter().find(|(n, _)| *n == "part").map(|(_, v)| *v) {
        None | Some("file") => false,
        Some("consumer") => true,
        Some(_) => return Err(ApiError::invalid("part", "must be file or consumer")),
    };
    Ok((store, month, rnc, consumer))
}

/// `GET /v1/admin/fiscal/607?store=<id>&month=yyyy-mm&rnc=<RNC>[&part=consumer]`:
/// the text file, or (`part=consumer`) the JSON sums of the consumer
/// invoices it does not list.
pub(crate) async fn dgii_607(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let (store, month, rnc, consumer) = month_report_params(&uri)?;
        let (offset, docs) = answer(app.store.fiscal_month(store, month).await)?;
        let report = render_607(&rnc, month.year, month.month, offset, &docs);
        if consumer {
            return json(&report.consumer);
        }
        Ok(body_with_type(report.text, "text/plain; charset=utf-8"))
    }
    .await;
    app.respond("/v1/admin/fiscal/607", r)
}

/// `GET /v1/admin/fiscal/608?store=<id>&month=yyyy-mm&rnc=<RNC>`: the
/// voided documents of the month.
pub(crate) async fn dgii_608(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let (store, month, rnc, _) = month_report_params(&uri)?;
        let (offset, docs) = answer(app.store.fiscal_month(store, month).await)?;
        let text = render_608(&rnc, month.year, month.month, offset, &docs);
        Ok(body_with_type(text, "text/plain; charset=utf-8"))
    }
    .await;
    app.respond("/v1/admin/fiscal/608", r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteOffBody {
    reason: String,
}

pub(crate) async fn write_off(
    State(app): App,
    headers: HeaderMap,
    Path(device): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let device = device_param(&device)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: WriteOffBody = parse_json(&body)?;
        let w = answer(app.store.write_off(device, req.reason).await)?;
        json(&w)
    }
    .await;
    app.respond("/v1/admin/devices/{device}/write-off", r)
}

/// `GET /v1/admin/fiscal/documents?from=yyyy-mm-dd&to=yyyy-mm-dd`: every
/// signed document the hub holds (e-CF, RFCE, ANECF) signed on those days
/// (Santo Domingo time, both inclusive), oldest first, each with its exact
/// bytes in base64 and its outbox state → `{"documents": […]}`.
pub(crate) async fn documents(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["from", "to"])?;
        let day = |k: &'static str, next: bool| -> Result<Option<i64>, ApiError> {
            let Some(v) = params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v) else {
                return Ok(None);
            };
            let d = LocalDate::parse_iso(v)
                .ok_or_else(|| ApiError::invalid(k, "must be a date yyyy-mm-dd"))?;
            let start = d.start_utc_ms(caja_shared::localtime::UtcOffset::SANTO_DOMINGO);
            // A fixed offset: every day is 24 h.
            Ok(Some(if next { start + 86_400_000 } else { start }))
        };
        let (from, to) = (day("from", false)?, day("to", true)?);
        let documents = app
            .store
            .signed_documents(from, to)
            .await
            .map_err(store_error)?;
        json(&serde_json::json!({ "documents": documents }))
    }
    .await;
    app.respond("/v1/admin/fiscal/documents", r)
}
