//! HTTP handlers of payments: `POST /v1/payments/intents` (signed, for
//! registers), `POST /v1/payments/webhooks/{provider}` (signed by the
//! provider with its secret) and the admin endpoints (overview, a
//! reconciliation pass on demand). Same shape as the rest of `http`: read
//! the request, call one pure check and one store method, write the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use caja_shared::digest::Hash256;
use caja_shared::ids::StoreId;

use super::kernel::{
    admitted, answer, body_bytes, json, parse_json, query_params, store_error, AppState,
};
use super::kernel::{events_answer, parse_canonical};
use crate::payments::{self, IntentRequest, Webhook};
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

/// `POST /v1/payments/intents` `{"request_id","sale_id","provider","method","amount"}`
/// → the `PaymentIntentUpdated` hub event (state `pending`) and a hub
/// checkpoint, like a fiscal range.
pub(crate) async fn intents(
    State(app): App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req = admitted(&app, &method, &uri, &headers, body.clone()).await?;
        let parsed = parse_canonical::<IntentRequest>(&body);
        let providers: Vec<String> = app.cfg.payment_providers.keys().cloned().collect();
        let events = answer(
            app.store
                .create_payment_intent(req, parsed, providers)
                .await,
        )?;
        events_answer(&app, &events)
    }
    .await;
    app.respond("/v1/payments/intents", r)
}

/// `POST /v1/payments/webhooks/{provider}`: the provider must be configured
/// (else 404 `unknown_provider`), the signature must verify within ±5 min
/// (else 401 `bad_signature` / `stale_timestamp`), the body must be a
/// webhook (else 400 naming the field). Nothing is stored before all three
/// pass. A well-signed delivery is answered 200 whatever the state machine
/// decides (`applied`, `held`, `rejected` with its reason, `recorded`,
/// `duplicate`), so the provider stops retrying a decision already made.
pub(crate) async fn webhook(
    State(app): App,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        let secret =
            app.cfg.payment_providers.get(&provider).ok_or_else(|| {
                ApiError::new(404, "unknown_provider", "no such payment provider")
            })?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let header = headers
            .get(payments::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        let now = app.store.now_ms();
        if let Err(e) = payments::verify_webhook(
            secret.as_bytes(),
            header,
            &body,
            now,
            payments::WEBHOOK_TOLERANCE_MS,
        ) {
            tracing::warn!(provider = %provider, reason = %e, "payment webhook refused");
            return Err(e.to_api(now));
        }
        let hook: Webhook = parse_json(&body)?;
        hook.check()?;
        let decided = answer(
            app.store
                .payment_webhook(
                    provider.clone(),
                    hook,
                    Hash256::of(&body),
                    app.cfg.payment_confirm_deadline_ms,
                )
                .await,
        )?;
        app.metrics
            .payment_webhooks
            .get_or_create(&crate::metrics::Code {
                code: decided.outcome.to_owned(),
            })
            .inc();
        json(&decided)
    }
    .await;
    app.respond("/v1/payments/webhooks/{provider}", r)
}

/// `GET /v1/admin/payments?store=<id>`: intents, webhooks received (with
/// rejections and their reasons) and card payments checked.
pub(crate) async fn overview(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["store"])?;
        let store: Option<StoreId> = params
            .iter()
            .find(|(k, _)| *k == "store")
            .map(|(_, v)| {
                v.parse()
                    .map_err(|_| ApiError::invalid("store", "not a store id"))
            })
            .transpose()?;
        let overview = app
            .store
            .payments_overview(store)
            .await
            .map_err(store_error)?;
        json(&overview)
    }
    .await;
    app.respond("/v1/admin/payments", r)
}

/// `POST /v1/admin/payments/reconcile`: one reconciliation pass now (the hub
/// also runs one every `payment_reconcile_interval_ms`).
pub(crate) async fn reconcile(State(app): App, headers: HeaderMap) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let report = app
            .store
            .reconcile_payments(app.cfg.payment_confirm_deadline_ms)
            .await
            .map_err(store_error)?;
        json(&report)
    }
    .await;
    app.respond("/v1/admin/payments/reconcile", r)
}

// — COUNTER —

/// `POST /v1/admin/payments/refund` `{"intent_id","amount","request_id"}`:
/// head office asks the intent's provider to refund (part of) a captured
/// payment. Checked and audited first (404 unknown intent, 409 not captured
/// or more than is left, 409 `provider_not_callable` when the provider has no
/// `payment_provider_urls` entry: nothing asked), then the provider is
/// called (502 when it cannot be reached or refuses; the same `request_id`
/// may be sent again). The answer is `requested`: the refund is applied when
/// the provider's `refunded` webhook arrives.
pub(crate) async fn refund(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: payments::RefundRequest = parse_json(&body)?;
        let callable: Vec<String> = app.cfg.payment_provider_urls.keys().cloned().collect();
        let target = answer(
            app.store
                .payment_refund_request(req.clone(), callable)
                .await,
        )?;
        let (Some(url), Some(secret)) = (
            app.cfg.payment_provider_urls.get(&target.provider),
            app.cfg.payment_providers.get(&target.provider),
        ) else {
            return Err(ApiError::internal());
        };
        let provider =
            crate::payments_client::ask_refund(url, secret, &req, app.store.now_ms()).await?;
        json(&serde_json::json!({
            "outcome": "requested",
            "intent_id": req.intent_id,
            "amount": req.amount,
            "request_id": req.request_id,
            "provider": target.provider,
            "left_after": target.left_after,
            "provider_answer": provider,
        }))
    }
    .await;
    app.respond("/v1/admin/payments/refund", r)
}
