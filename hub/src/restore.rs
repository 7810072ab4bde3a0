//! Hub restore, the pure part (DESIGN "Hub restore (disaster recovery)"):
//! the body of `POST /v1/sync/hub-events` — hub-chain events a register
//! held that a hub restored from an older backup lacks — parsed and
//! verified with the hub's own key before storage sees it, and the name of
//! the header every `/v1` answer carries.
//!
//! Invariant: an event is accepted back only when it belongs to the
//! sender's store, the events chain to one another (seq + 1, `prev` = the
//! previous hash) and a hub checkpoint signed by this hub's key covers the
//! last of them, so a register can return what the hub signed and nothing
//! else. Where the chain starts is storage's check (against the stored head).
//! Pure: no SQL, no clock.
//!
//! Wire shape (an addition to DESIGN's `{"events"}`): `{"events":[…],
//! "hub_checkpoint":{device,seq,hash,key_id,sig}` (required with events),
//! `"own_seq"?: <the register's journal head>}`. With `own_seq` the call is
//! also the register's report that its own chain is back (the hub records
//! it when it holds that seq).

use caja_shared::canonical::{self, Value};
use caja_shared::checkpoint::HubCheckpoint;
use caja_shared::event::Event;
use caja_shared::ids::StoreId;
use caja_shared::key::HubPublicKey;

use crate::ingest::PushedEvent;
use crate::wire::ApiError;

/// The response header that carries the restore epoch in every `/v1` answer.
pub const EPOCH_HEADER: &str = "caja-restore-epoch";

/// Most hub events one request may return.
pub const MAX_HUB_EVENTS: usize = 10_000;

/// A verified `POST /v1/sync/hub-events` body.
#[derive(Debug)]
pub struct HubEventsBatch {
    /// The events, in seq order, chained, covered by a verified checkpoint.
    pub events: Vec<PushedEvent>,
    /// The register's journal head, when this call reports.
    pub own_seq: Option<u64>,
}

/// Parses and verifies a hub-events body for a register of `store`.
pub fn parse_hub_events(
    bytes: &[u8],
    store: StoreId,
    hub_key: &HubPublicKey,
) -> Result<HubEventsBatch, ApiError> {
    let value = canonical::parse(bytes).map_err(|e| ApiError::invalid("$", e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid("$", "must be an object"))?;
    for k in obj.keys() {
        if !matches!(k, "events" | "hub_checkpoint" | "own_seq") {
            return Err(ApiError::invalid(k, "unknown field"));
        }
    }
    let own_seq = match obj.get("own_seq") {
        None => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| ApiError::invalid("own_seq", "must be an integer ≥ 0"))?,
        ),
    };
    let list = obj
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("events", "must be a list"))?;
    if list.len() > MAX_HUB_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("at most {MAX_HUB_EVENTS} events per request"),
        ));
    }
    let mut events = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let (event, body) = Event::from_value_strict(v.clone()).map_err(|e| {
            ApiError::bad_request(e.code(), format!("events[{i}].{}", e.field), e.to_string())
        })?;
        let env = event.envelope();
        if env.store != store {
            return Err(ApiError::forbidden(
                "wrong_store",
                format!("events[{i}] belongs to another store"),
            ));
        }
        if let Some(PushedEvent { event: prev, .. }) = events.last() {
            let prev: &Event = prev;
            if env.device != prev.envelope().device
                || env.seq.get() != prev.seq().get() + 1
                || env.prev != prev.hash()
            {
                return Err(ApiError::invalid(
                    format!("events[{i}].prev"),
                    "does not continue the events before it",
                ));
            }
        }
        events.push(PushedEvent { event, body });
    }
    if let Some(last) = events.last() {
        let cp = obj
            .get("hub_checkpoint")
            .ok_or_else(|| ApiError::invalid("hub_checkpoint", "required with events"))?;
        let cp: HubCheckpoint = serde_json::from_value(cp.to_serde())
            .map_err(|e| ApiError::invalid("hub_checkpoint", e.to_string()))?;
        if cp.device != last.event.envelope().device
            || cp.seq != last.event.seq()
            || cp.hash != last.event.hash()
        {
            return Err(ApiError::invalid(
                "hub_checkpoint",
                "does not cover the last event",
            ));
        }
        cp.verify(hub_key).map_err(|e| {
            ApiError::invalid(
                "hub_checkpoint.sig",
                format!("not signed by this hub's key: {e}"),
            )
        })?;
    }
    Ok(HubEventsBatch { events, own_seq })
}

/// 503 `restore_pending`: the store's registers have not all reported since
/// the hub was restored.
pub fn restore_pending(store: StoreId, waiting: usize) -> ApiError {
    ApiError {
        retry_after_s: Some(30),
        ..ApiError::new(
            503,
            "restore_pending",
            format!(
                "the hub was restored from a backup: store {store} gets no new hub event or grant until its {waiting} register(s) not yet reported have synced once (or head office overrides)"
            ),
        )
    }
}

/// 503 `restore_pending` for a provider's webhook while a store is gated.
pub fn restore_pending_webhook() -> ApiError {
    ApiError {
        retry_after_s: Some(30),
        ..ApiError::new(
            503,
            "restore_pending",
            "the hub was restored from a backup and waits for its registers; send this webhook again later",
        )
    }
}
