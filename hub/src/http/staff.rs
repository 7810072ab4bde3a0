//! `POST /v1/admin/staff`: head office creates or changes a member of staff.
//! The PIN is hashed here (PBKDF2, `caja_shared::pin`) and only the hash goes
//! into the `StaffUpserted` hub event that reaches the registers; the PIN is
//! never stored, logged or answered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use caja_shared::ids::{StaffId, StoreId};
use caja_shared::kind::{EventBody, Role, StaffUpserted};
use serde::Deserialize;

use super::kernel::{answer, body_bytes, json, parse_json, query_params, store_error, AppState};
use crate::wire::ApiError;

type App = State<Arc<AppState>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffBody {
    /// Keep an existing member's id to change them; absent: a new member.
    #[serde(default)]
    staff_id: Option<StaffId>,
    name: String,
    role: Role,
    pin: String,
    #[serde(default = "yes")]
    active: bool,
    /// Stores they work at; empty: every store.
    #[serde(default)]
    stores: Vec<StoreId>,
}

fn yes() -> bool {
    true
}

pub(crate) async fn upsert(
    State(app): App,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let body = body_bytes(body, app.cfg.body_limit_bytes)?;
        let req: StaffBody = parse_json(&body)?;
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::invalid("name", "1 to 100 characters"));
        }
        let mut rng = crate::system::OsRandom::new();
        let pin = caja_shared::pin::hash_pin_rounds(&req.pin, &mut rng, app.cfg.pin_iterations())
            .map_err(|e| ApiError::invalid("pin", e.to_string()))?;
        let staff_id = match req.staff_id {
            Some(id) => id,
            None => StaffId::new_v7(app.store.now_ms(), &mut rng)
                .map_err(|e| ApiError::invalid("staff_id", e.to_string()))?,
        };
        let event = EventBody::StaffUpserted(StaffUpserted {
            staff_id,
            name: name.clone(),
            role: req.role,
            pin,
            active: req.active,
        });
        let appended = answer(app.store.append_hub_events(req.stores, vec![event]).await)?;
        tracing::info!(staff = %staff_id, role = ?req.role, "staff upserted");
        json(&serde_json::json!({
            "staff_id": staff_id, "name": name, "role": req.role, "active": req.active,
            "stores": appended,
        }))
    }
    .await;
    app.respond("/v1/admin/staff", r)
}

/// `GET /v1/admin/staff/activity?store=<id>`: who approved what in a store
/// (voids, returns, paid-outs, discounts, price overrides, drawer openings,
/// closes of another's shift), the drawer openings without a sale, the
/// returns made without the original (under review) and every customer's
/// store-credit balance.
pub(crate) async fn activity(State(app): App, headers: HeaderMap, uri: Uri) -> Response {
    let r = async {
        app.admin_only(&headers)?;
        let params = query_params(&uri, &["store"])?;
        let store: StoreId = params
            .iter()
            .find(|(k, _)| *k == "store")
            .map(|(_, v)| *v)
            .ok_or_else(|| ApiError::invalid("store", "required"))?
            .parse()
            .map_err(|_| ApiError::invalid("store", "not a store id"))?;
        let v = app.store.staff_activity(store).await.map_err(store_error)?;
        json(&v)
    }
    .await;
    app.respond("/v1/admin/staff/activity", r)
}
