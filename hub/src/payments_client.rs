//! The hub's calls to a payment provider's API: a refund request
//! (`POST <provider url>/v1/refunds`), signed like the provider's webhooks
//! (`X-Hub-Signature: t=<ms>,v1=<hex>`, HMAC-SHA256 of `"<t>.<body>"` with the
//! provider's secret, [`crate::payments::sign_webhook`]).
//!
//! The body is ours, like the webhooks' (provider-specific formats are not
//! built): `{"intent_id","amount","request_id"}`; `request_id` is the
//! idempotency key, so a retried request refunds once. The provider answers
//! 2xx when it takes the request; the refund's outcome arrives later as its
//! `refunded` webhook (`"partial": true` for part of the amount).
//!
//! Invariant: every call has a deadline; nothing here touches storage.

use std::time::Duration;

use crate::payments::{sign_webhook, RefundRequest};
use crate::wire::ApiError;

/// The header carrying the hub's signature on a request to a provider.
pub const HUB_SIGNATURE_HEADER: &str = "x-hub-signature";

/// How long the provider may take to answer.
const DEADLINE: Duration = Duration::from_secs(10);

/// Asks the provider at `url` to refund `req`; its answer's JSON body, or 502
/// `provider_unreachable` / `provider_refused` naming what happened.
pub async fn ask_refund(
    url: &str,
    secret: &str,
    req: &RefundRequest,
    now_ms: i64,
) -> Result<serde_json::Value, ApiError> {
    let body = serde_json::to_vec(req).map_err(|_| ApiError::internal())?;
    let signature = sign_webhook(secret.as_bytes(), now_ms, &body);
    // reqwest is built without a default TLS provider: ring's, as everywhere.
    crate::admin_client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .map_err(|_| ApiError::internal())?;
    let endpoint = format!("{}/v1/refunds", url.trim_end_matches('/'));
    let reply = client
        .post(&endpoint)
        .header("content-type", "application/json")
        .header(HUB_SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::new(
                502,
                "provider_unreachable",
                format!("the provider could not be reached: {e}"),
            )
        })?;
    let status = reply.status();
    let text = reply.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(ApiError::new(
            502,
            "provider_refused",
            format!(
                "the provider answered {}: {}",
                status.as_u16(),
                text.chars().take(200).collect::<String>()
            ),
        ));
    }
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}
